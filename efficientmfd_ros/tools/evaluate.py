"""efficientmfd_eval: COCO detection and fusion metrics of a trained model on a paired dataset.

  efficientmfd_eval --weights W --data DIR [--split FILE | --range FIRST..LAST] --out OUT
                    [--labels auto|voc|yolo|coco|none] [--save-fused DIR2] [--baselines]
                    [--noise-seed N] [--blank rgb|thermal]

Writes OUT/metrics.json and prints a table: COCO map50, map50_95 and per-class AP (labelled sets;
the detections also go to OUT/predictions.json with OUT/ground_truth.json, so pycocotools can
re-score them) and the fusion metrics en, sd, sf, mi, vif, qabf, ssim, paper_mi, paper_vif (means
over the pairs, on the HSV V channel). Unlabelled sets (RoadScene, TNO) get the fusion metrics
alone. --baselines adds the pixel average and pixel maximum of the two inputs and a classic
Laplacian-pyramid fusion, scored the same way. --blank rgb|thermal feeds that camera as zeros (the
node's degraded mode) to score detection from the other one alone.
Exit status: 0 done, 2 bad arguments, weights or data.
"""
import argparse
import json
import logging
import math
from pathlib import Path
import sys

from efficientmfd_ros.evaluation.dataset import (
    BASELINES,
    BLANKABLE,
    FUSION_KEYS,
    EvalSettings,
    EvaluationError,
    evaluate_dataset,
)
from efficientmfd_ros.model.factory import CheckpointError
from efficientmfd_ros.train.data.paired import PairedDataset
from efficientmfd_ros.train.data.spec import LABEL_FORMATS, DatasetError, DatasetSpec

PROG = 'efficientmfd_eval'


def build_parser():
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--weights', required=True, help='checkpoint (.pt) or exported .onnx')
    parser.add_argument('--data', required=True, help='dataset root (LLVIP, M3FD or generic)')
    split = parser.add_mutually_exclusive_group()
    split.add_argument('--split', help='id-list file (one id per line); default: all pairs')
    split.add_argument('--range', dest='id_range', metavar='FIRST..LAST',
                       help='ids from FIRST to LAST (numeric when both are digits)')
    parser.add_argument('--rgb-dir', help='RGB folder under --data (default: found)')
    parser.add_argument('--thermal-dir', help='thermal folder under --data (default: found)')
    parser.add_argument('--labels', choices=('auto', *LABEL_FORMATS), default='auto',
                        help='label format; auto: voc with an Annotations*/ folder, yolo with '
                             'labels/, coco with --coco-json, else none (fusion metrics only)')
    parser.add_argument('--label-dir', help='VOC/YOLO label folder under --data')
    parser.add_argument('--coco-json', help='COCO annotation file (with --labels coco)')
    parser.add_argument('--out', default='eval_out', help='output folder (default: eval_out)')
    parser.add_argument('--save-fused', metavar='DIR2', help='write every fused image as PNG')
    parser.add_argument('--baselines', action='store_true',
                        help='also score the pixel average, pixel maximum and Laplacian-pyramid '
                             'fusion of the two inputs')
    parser.add_argument('--backend', choices=('torch', 'onnxruntime', 'auto'), default='torch')
    parser.add_argument('--device', default='auto', help='cpu, cuda, cuda:N or auto')
    parser.add_argument('--score-threshold', type=float, default=0.001,
                        help='keep detections scoring at least this (low for mAP)')
    parser.add_argument('--nms-iou', type=float, default=0.5)
    parser.add_argument('--max-detections', type=int, default=100)
    parser.add_argument('--noise-seed', type=int, metavar='N',
                        help="seed of the initial noise boxes (default: the model's own, as the "
                             'node runs); one draw moves AP50 on a small split: compare several')
    parser.add_argument('--num-proposals', type=int, metavar='N',
                        help="noise boxes per pair, 1-1000 (default: the checkpoint's); more find "
                             'more pedestrians at a higher head cost')
    parser.add_argument('--blank', choices=BLANKABLE,
                        help='feed this camera as zeros (degraded mode): detection from the '
                             'other camera alone')
    parser.add_argument('--thermal-range', type=float, nargs=2, metavar=('LO', 'HI'),
                        default=(0.0, 65535.0), help='uint16 thermal values mapped to [0, 1]')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser


def resolve_labels(args, root: Path) -> str:
    """The label format for ``--labels auto``: whatever label source the dataset has."""
    if args.labels != 'auto':
        return args.labels
    if args.coco_json:
        return 'coco'
    if args.label_dir:
        folder = root / args.label_dir
        return 'yolo' if folder.is_dir() and any(folder.glob('*.txt')) else 'voc'
    if (root / 'Annotations').is_dir() or any(p.is_dir() for p in root.glob('Annotation*')):
        return 'voc'
    if (root / 'labels').is_dir():
        return 'yolo'
    return 'none'


def make_dataset(args, class_names) -> PairedDataset:
    root = Path(args.data).expanduser()
    if args.split and not Path(args.split).expanduser().is_file():
        raise DatasetError(f'split file {args.split} does not exist')
    labels = resolve_labels(args, root) if root.is_dir() else 'none'
    spec = DatasetSpec(root=str(root), rgb_dir=args.rgb_dir, thermal_dir=args.thermal_dir,
                       label_format=labels, label_dir=args.label_dir, coco_json=args.coco_json,
                       split=args.split or args.id_range, class_names=list(class_names),
                       labelled=labels != 'none')
    return PairedDataset(spec)


def _fmt(value, digits=4):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '-'
    return f'{value:.{digits}f}'


def format_table(metrics: dict) -> str:
    """The printed report: detection (labelled sets) and the fusion metrics side by side."""
    lines = []
    if metrics['labelled']:
        lines += [f'detection (COCO bbox, {metrics["num_images"]} images, {metrics["num_gt"]} '
                  f'boxes, {metrics["num_pred"]} detections)',
                  f'  map50     {_fmt(metrics["map50"])}',
                  f'  map50_95  {_fmt(metrics["map50_95"])}',
                  f'  {"class":<16}{"ap50":>8}{"ap50_95":>9}{"gt":>6}{"pred":>7}']
        for name, c in metrics['per_class'].items():
            lines.append(f'  {name:<16}{_fmt(c["ap50"]):>8}{_fmt(c["ap50_95"]):>9}'
                         f'{c["num_gt"]:>6}{c["num_pred"]:>7}')
    else:
        lines.append('detection: not scored (unlabelled pairs)')
    methods = {'model': metrics['fusion'], **metrics.get('baselines', {})}
    lines.append(f'fusion (mean over {metrics["num_pairs"]} pairs, luminance = HSV V)')
    lines.append(f'  {"metric":<10}' + ''.join(f'{m:>10}' for m in methods))
    for key in FUSION_KEYS:
        lines.append(f'  {key:<10}' + ''.join(f'{_fmt(v.get(key), 3):>10}'
                                               for v in methods.values()))
    return '\n'.join(lines)


def _json_safe(value):
    """NaN and infinities as None: strict JSON has no spelling for them."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fail(message) -> int:
    print(f'{PROG}: error: {" ".join(str(message).split())}', file=sys.stderr)
    return 2


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    from efficientmfd_ros.runtime import BackendUnavailableError, ModelFileError, load_detector
    from efficientmfd_ros.runtime.backend_torch import auto_device

    device = auto_device(args.device)
    try:
        detector = load_detector(args.weights, backend=args.backend, device=device,
                                 score_threshold=args.score_threshold, nms_iou=args.nms_iou,
                                 max_detections=args.max_detections,
                                 thermal_range=tuple(args.thermal_range),
                                 noise_seed=args.noise_seed, num_proposals=args.num_proposals)
    except (FileNotFoundError, CheckpointError, ModelFileError) as exc:
        return _fail(f'cannot load weights {args.weights}: {exc}')
    except (BackendUnavailableError, ValueError) as exc:
        return _fail(exc)
    try:
        dataset = make_dataset(args, detector.class_names)
        if len(dataset):
            print(dataset.summary(), file=sys.stderr)
        out_dir = Path(args.out)
        settings = EvalSettings(out_dir=str(out_dir), save_fused_dir=args.save_fused,
                                baselines=args.baselines, thermal_range=tuple(args.thermal_range),
                                progress=not args.no_progress, blank=args.blank)
        metrics = evaluate_dataset(detector, dataset, settings)
    except (DatasetError, EvaluationError) as exc:
        return _fail(exc)
    metrics['settings'] = {
        'weights': str(args.weights), 'data': str(args.data),
        'split': args.split or args.id_range, 'dataset': dataset.name,
        'label_format': dataset.spec.label_format, 'backend': detector.backend_name,
        'device': device, 'input_size': list(detector.input_size),
        'score_threshold': args.score_threshold, 'nms_iou': args.nms_iou,
        'max_detections': args.max_detections, 'noise_seed': detector.noise_seed,
        'num_proposals': detector.num_proposals,
        'baselines': list(BASELINES) if args.baselines else [], 'blank': args.blank}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / 'metrics.json').write_text(json.dumps(_json_safe(metrics), indent=2) + '\n')
    print(format_table(metrics))
    print(f'wrote {out_dir / "metrics.json"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
