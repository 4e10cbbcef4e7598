"""Bag evaluation (efficientmfd_eval_bag): score the detector on a recorded RGB-thermal bag,
offline or live.

offline (default, deterministic): the bag is read with rosbags, paired with the node's policy and
run through FusionDetector in this process. live: the real node is started (or a running one
used), the bag is replayed to it over DDS at its recorded rate x --rate and its outputs are
recorded and scored; see ``eval_live`` for exactly what the latency numbers measure.

Writes DIR/metrics.json, DIR/report.html, DIR/ground_truth.json + DIR/predictions.json (COCO,
re-scorable with pycocotools; images named by RGB stamp in ns), and with --video DIR/video.mp4.
"""
import argparse
import json
import math
from pathlib import Path

import numpy as np

from efficientmfd_ros.bags.bagio import DETECTIONS, IMAGE, BagError, BagReader
from efficientmfd_ros.evaluation.collect import RunCollector
from efficientmfd_ros.evaluation.drawing import VideoSink
from efficientmfd_ros.evaluation.feed import feed_live
from efficientmfd_ros.evaluation.ground_truth import GroundTruth, gt_from_bag, gt_from_coco
from efficientmfd_ros.evaluation.live import LiveConfig, run_live
from efficientmfd_ros.evaluation.offline import SyncConfig, run_offline
from efficientmfd_ros.runtime.errors import ModelLoadError

DEFAULT_GT_TOPIC = '/ground_truth/detections'
LATENCY_WHAT = {
    'offline': 'Offline latency is the wall time of FusionDetector.infer per pair in this '
               'process (compute only: no transport, no waiting for the partner image).',
    'live': "Live latency is the arrival time of the node's detections message minus the wall "
            'time the replayer published the RGB image with the same stamp (transport, waiting '
            'for the thermal partner, queueing, inference and publishing).',
}


def build_parser():
    parser = argparse.ArgumentParser(prog='efficientmfd_eval_bag', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--bag', required=True)
    parser.add_argument('--weights', required=True, help='checkpoint (.pt) or exported model')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--rgb-topic', default='/rgb/image_raw')
    parser.add_argument('--thermal-topic', default='/thermal/image_raw')
    gt = parser.add_mutually_exclusive_group()
    gt.add_argument('--gt-topic', help=f'Detection2DArray ground truth (default {DEFAULT_GT_TOPIC}'
                    ' when the bag has it)')
    gt.add_argument('--annotations', help='COCO json ground truth keyed by RGB stamp (ns)')
    parser.add_argument('--mode', choices=('offline', 'live'), default='offline')
    parser.add_argument('--rate', type=float, default=1.0, help='live replay speed factor')
    parser.add_argument('--use-running-node', action='store_true',
                        help='live: feed a node that is already running instead of starting one')
    parser.add_argument('--namespace', help="live: the node's namespace (default: a private "
                        'one for the node this tool starts, the root for --use-running-node)')
    parser.add_argument('--video', action='store_true', help='also write DIR/video.mp4')
    parser.add_argument('--backend', default='auto')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--score-threshold', type=float, default=0.3)
    parser.add_argument('--nms-iou', type=float, default=0.5)
    parser.add_argument('--max-detections', type=int, default=100)
    parser.add_argument('--slop-s', type=float, default=SyncConfig.slop_s,
                        help="pairing tolerance (the node's approximate_sync_tolerance_s)")
    parser.add_argument('--queue-size', type=int, default=SyncConfig.queue_size)
    parser.add_argument('--match-wait-s', type=float, default=SyncConfig.match_wait_s,
                        help="hold a match this long for a closer partner (the node's "
                             'approximate_sync_wait_s; 0: greedy)')
    parser.add_argument('--max-waiting-pairs', type=int, default=1,
                        help="live: the node's max_waiting_pairs (1, its default: the freshest "
                             'pair runs next; more: fewer pairs lost after a slow inference)')
    parser.add_argument('--fusion-samples', type=int, default=16,
                        help='fusion metrics on about this many evenly spread pairs')
    parser.add_argument('--quiet', action='store_true', help='no progress bars')
    return parser


def load_ground_truth(args, reader, class_names):
    if args.annotations:
        return gt_from_coco(args.annotations, class_names)
    topic = args.gt_topic or (DEFAULT_GT_TOPIC if DEFAULT_GT_TOPIC in reader.topics else None)
    if topic is None:
        return GroundTruth({}, 'none')
    return gt_from_bag(reader, topic, class_names)


def latency_summary(values):
    if not values:
        return None
    values = np.asarray(values, np.float64)
    return {'p50': float(np.percentile(values, 50)), 'p95': float(np.percentile(values, 95)),
            'max': float(values.max()), 'mean': float(values.mean()), 'count': int(values.size)}


def fusion_stride(rgb_count, fusion_samples):
    """Every how many pairs a fusion sample is taken (0: none): about ``fusion_samples``
    evenly spread over ``rgb_count`` pairs."""
    return max(1, math.ceil(rgb_count / fusion_samples)) if fusion_samples > 0 else 0


def live_fused_every(args, rgb_count):
    """The node's fused_image_every_n in a live run: the fusion sampling stride (every pair
    with --video, which shows the fused image of each)."""
    return 1 if args.video else max(1, fusion_stride(rgb_count, args.fusion_samples))


def _collector(args, reader, class_names, gt, fused_every_pair=True):
    """Offline, every pair has a fused image and the collector samples every stride-th; live,
    the node was asked for a fused image every stride-th pair only, and each one is sampled."""
    rgb_count = reader.topics[args.rgb_topic].count
    fps = rgb_count / max(reader.duration_ns / 1e9, 1e-3) if rgb_count > 1 else 10.0
    video = VideoSink(Path(args.out) / 'video.mp4', min(max(fps, 1.0), 60.0)) \
        if args.video else None
    every = fusion_stride(rgb_count, args.fusion_samples)
    return RunCollector(class_names, gt, every if fused_every_pair else min(every, 1), video)


def evaluate(args):
    """Run the evaluation the arguments ask for; return the metrics dict (also written)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sync = SyncConfig(slop_s=args.slop_s, queue_size=args.queue_size,
                      match_wait_s=args.match_wait_s)
    extra = {}
    with BagReader(args.bag) as reader:
        reader.require(args.rgb_topic, IMAGE)
        reader.require(args.thermal_topic, IMAGE)
        if args.gt_topic:  # fail before the slow part
            reader.require(args.gt_topic, DETECTIONS)
        if args.annotations and not Path(args.annotations).is_file():
            raise BagError(f'no COCO annotation file at {args.annotations}')
        if args.mode == 'offline':
            detector = _load_detector(args)
            class_names = list(detector.class_names)
            backend = getattr(detector, 'backend_name', args.backend)
            device = str(getattr(detector, 'device', args.device))
            gt = load_ground_truth(args, reader, class_names)
            collector = _collector(args, reader, class_names, gt)
            pairing = run_offline(reader, detector, collector, args.rgb_topic,
                                  args.thermal_topic, sync, progress=not args.quiet)
        else:
            fused_every = live_fused_every(args, reader.topics[args.rgb_topic].count)
            outputs = _run_live(args, sync, reader, fused_every)
            class_names = outputs.class_names or _checkpoint_classes(args.weights)
            backend = outputs.diagnostics.get('backend', args.backend)
            device = outputs.diagnostics.get('device', args.device)
            gt = load_ground_truth(args, reader, class_names)
            collector = _collector(args, reader, class_names, gt, fused_every_pair=False)
            pairing, after_pair = feed_live(reader, outputs, collector, args.rgb_topic,
                                            args.thermal_topic, sync)
            extra = {**_live_extra(outputs, after_pair, args),
                     'fused_image_every_n': fused_every}
        rgb_total = reader.topics[args.rgb_topic].count
    if collector.video is not None:
        collector.video.close()
    coco, fusion = collector.scores(out_dir=out if gt.frames else None)
    records = [collector.records[s] for s in sorted(collector.records)]
    metrics = {
        'mode': args.mode, 'bag': str(Path(args.bag).resolve()), 'model': str(args.weights),
        'backend': backend, 'device': device, 'class_names': class_names,
        'map50': coco['map50'] if coco else None,
        'map50_95': coco['map50_95'] if coco else None,
        'per_class': coco['per_class'] if coco else {},
        **fusion, 'fusion_frames': len(collector.fusion),
        'pairs_total': rgb_total, 'pairs_matched': len(records),
        'pairs_dropped': rgb_total - len(records),
        'unpaired': pairing['unpaired'], 'pairing': {**pairing, 'slop_s': sync.slop_s,
                                                     'queue_size': sync.queue_size},
        'latency_ms': latency_summary([r.latency_ms for r in records]),
        'latency_what': LATENCY_WHAT[args.mode],
        'ground_truth': {'source': gt.source, 'frames': len(gt.frames), 'boxes': gt.num_boxes,
                         'ignored_classes': dict(gt.ignored)},
        'notes': ('mAP counts every ground-truth frame of the bag; a frame without an answer '
                  'counts as all misses. pairs_dropped = RGB frames without an answer; unpaired = '
                  'frames the pairing policy left without a partner. Fusion metrics are means '
                  f'over {len(collector.fusion)} evenly spread pairs.'),
        **extra,
    }
    (out / 'metrics.json').write_text(json.dumps(metrics, indent=2))
    from efficientmfd_ros.evaluation.report import write_report
    write_report(out / 'report.html', metrics, collector, coco)
    return metrics


def _load_detector(args):
    from efficientmfd_ros.runtime import load_detector
    from efficientmfd_ros.runtime.backend_torch import auto_device
    try:
        return load_detector(args.weights, backend=args.backend, device=auto_device(args.device),
                             score_threshold=args.score_threshold, nms_iou=args.nms_iou,
                             max_detections=args.max_detections)
    except Exception as exc:  # missing, corrupt, mismatching, backend or device unavailable
        raise ModelLoadError(f'cannot load model {args.weights}: {type(exc).__name__}: '
                             f'{str(exc).splitlines()[0] if str(exc) else ""}') from exc


def _run_live(args, sync, reader, fused_every):
    """The node publishes fused/image every ``fused_every`` pairs (``live_fused_every``: only
    those whose fusion metrics are taken; the fusion-free graph runs for the others, as for a
    deployment with fused_image_every_n > 1). ``reader``: the bag, open, for the progress total."""
    from tqdm import tqdm
    total = reader.topics[args.rgb_topic].count + reader.topics[args.thermal_topic].count
    node_params = {'score_threshold': args.score_threshold,
                   'nms_iou_threshold': args.nms_iou, 'max_detections': args.max_detections,
                   'approximate_sync_tolerance_s': sync.slop_s, 'queue_size': sync.queue_size,
                   'max_backwards_s': sync.max_backwards_s,
                   'approximate_sync_wait_s': sync.match_wait_s, 'backend': args.backend,
                   'device': args.device, 'fused_image_every_n': fused_every,
                   'max_waiting_pairs': args.max_waiting_pairs}
    config = LiveConfig(rate=args.rate, namespace=args.namespace,
                        use_running_node=args.use_running_node, node_params=node_params)
    bar = tqdm(total=total, desc='live replay (waiting for the node)', unit='msg',
               disable=args.quiet)

    def on_line(line):
        if line.startswith('ready'):
            bar.set_description('live replay')
        elif line.startswith('sent'):
            bar.update(1)
    try:
        return run_live(args.bag, args.weights, args.out, args.rgb_topic, args.thermal_topic,
                        config, on_line)
    finally:
        bar.close()


def _live_extra(outputs, after_pair, args):
    arrivals = sorted(a for a, _ in outputs.detections.values())
    span = (arrivals[-1] - arrivals[0]) / 1e9 if len(arrivals) > 1 else 0.0
    return {'rate': args.rate, 'node_ready_s': outputs.ready_s,
            'max_waiting_pairs': args.max_waiting_pairs,
            'output_rate_hz': (len(arrivals) - 1) / span if span > 0 else None,
            'latency_after_pair_ms': latency_summary(after_pair),
            'node_diagnostics': outputs.diagnostics, 'output_bag': str(outputs.output_bag)}


def _checkpoint_classes(weights):
    from efficientmfd_ros.model.safe_load import load_weights_only
    checkpoint = load_weights_only(weights, ModelLoadError, 'model file not found',
                                   'cannot read the class names of')
    return list(checkpoint['class_names'])


def headline(metrics, out):
    def fmt(v):
        return '–' if v is None else f'{v:.3f}'
    lat = metrics['latency_ms'] or {}
    rate = metrics.get('output_rate_hz')
    return (f'report: {out / "report.html"}\n'
            f'  detection  mAP@0.5 {fmt(metrics["map50"])}  mAP@0.5:0.95 '
            f'{fmt(metrics["map50_95"])}\n'
            f'  fusion     EN {fmt(metrics["en"])}  MI {fmt(metrics["mi"])}  VIF '
            f'{fmt(metrics["vif"])}  Qabf {fmt(metrics["qabf"])}  SSIM {fmt(metrics["ssim"])}\n'
            f'  pairs      {metrics["pairs_matched"]}/{metrics["pairs_total"]} answered, '
            f'{metrics["pairs_dropped"]} dropped, unpaired rgb/thermal '
            f'{metrics["unpaired"]["rgb"]}/{metrics["unpaired"]["thermal"]}'
            + (f', output {rate:.1f} Hz' if rate else '') + '\n'
            f'  latency    p50 {fmt(lat.get("p50"))} ms  p95 {fmt(lat.get("p95"))} ms  max '
            f'{fmt(lat.get("max"))} ms  ({metrics["mode"]}, {metrics["backend"]} on '
            f'{metrics["device"]})')

