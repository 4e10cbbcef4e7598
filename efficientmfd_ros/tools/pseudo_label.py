"""efficientmfd_pseudo_label: VOC pseudo-labels of unlabelled pairs from a trained model.

  efficientmfd_pseudo_label --weights W --data DIR [--split FILE | --range FIRST..LAST]
                            --out LABEL_DIR [--score-threshold 0.5] [--agreement-iou 0.5]
                            [--no-hflip] [--noise-seed N]

Makes OUT a dataset root: OUT/Annotations/<id>.xml per pair (boxes the model finds with score
>= the threshold, in the pair and, unless --no-hflip, again in the mirrored pair), links to DIR's
image folders and OUT/summary.json. Train on it with a dataset entry
``{root: OUT, label_format: voc}``. Exit status: 0 done, 2 bad arguments, weights or data.
"""
import argparse
import logging
from pathlib import Path
import sys

from efficientmfd_ros.evaluation.pseudo_labels import (
    PseudoLabelError,
    PseudoLabelSettings,
    pseudo_label_dataset,
)
from efficientmfd_ros.model.factory import CheckpointError
from efficientmfd_ros.train.data.paired import PairedDataset
from efficientmfd_ros.train.data.spec import DatasetError, DatasetSpec

PROG = 'efficientmfd_pseudo_label'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--weights', required=True, help='checkpoint (.pt)')
    parser.add_argument('--data', required=True, help='dataset root (visible/ + infrared/)')
    split = parser.add_mutually_exclusive_group()
    split.add_argument('--split', help='id-list file (one id per line); default: all pairs')
    split.add_argument('--range', dest='id_range', metavar='FIRST..LAST')
    parser.add_argument('--out', required=True, help='the new dataset root')
    parser.add_argument('--score-threshold', type=float, default=0.5)
    parser.add_argument('--agreement-iou', type=float, default=0.5,
                        help='IoU a box must reach with its partner in the mirrored pair')
    parser.add_argument('--no-hflip', action='store_true', help='one run per pair, no mirror')
    parser.add_argument('--noise-seed', type=int, metavar='N',
                        help="seed of the initial noise boxes (default: the model's own)")
    parser.add_argument('--device', default='auto', help='cpu, cuda, cuda:N or auto')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    from efficientmfd_ros.runtime import load_detector
    from efficientmfd_ros.runtime.backend_torch import auto_device

    try:
        settings = PseudoLabelSettings(args.score_threshold, args.agreement_iou,
                                       not args.no_hflip, not args.no_progress)
        detector = load_detector(args.weights, backend='torch', device=auto_device(args.device),
                                 score_threshold=args.score_threshold,
                                 noise_seed=args.noise_seed)
        spec = DatasetSpec(root=str(Path(args.data).expanduser()), label_format='none',
                           split=args.split or args.id_range, labelled=False,
                           class_names=list(detector.class_names))
        summary = pseudo_label_dataset(detector, PairedDataset(spec), args.out, args.weights,
                                       settings)
    except (PseudoLabelError, DatasetError, CheckpointError, FileNotFoundError,
            ValueError) as exc:
        print(f'{PROG}: {exc}', file=sys.stderr)
        return 2
    print(f'{summary["num_boxes"]} boxes on {summary["num_pairs"]} pairs -> {args.out} '
          f'(score >= {settings.score_threshold}'
          f'{", found in the mirrored pair too" if settings.hflip else ""})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
