"""efficientmfd_demo (``./dev demo``): make a bag, replay it live through the real node, report.

1. The bag: ``--bag`` as given; else made from ``--data`` (a paired dataset folder, e.g.
   ../shared/data/llvip_person); else from the built-in synthetic night street (no download).
2. ``efficientmfd_eval_bag --mode live`` on it with the committed weights
   (models/efficientmfd_lite_llvip.pt): the node is started, fed over DDS at the bag's rate,
   its outputs recorded and scored.
3. Prints where the report is and its headline numbers.
Everything goes under ``--out`` (default ./out/demo); a rerun replaces only what the demo made.
"""
import argparse
import os
from pathlib import Path
import shutil
import sys
import time

from efficientmfd_ros.bags.bagio import BagError
from efficientmfd_ros.bags.frame_source import FrameSourceError, dataset_frames, synthetic_frames
from efficientmfd_ros.bags.make import write_bag
from efficientmfd_ros.evaluation.bag import build_parser as eval_parser
from efficientmfd_ros.evaluation.bag import evaluate, headline
from efficientmfd_ros.evaluation.live import LiveRunError
from efficientmfd_ros.runtime.errors import ModelLoadError

WEIGHTS = 'efficientmfd_lite_llvip.pt'
MARKER = '.made_by_efficientmfd_demo'


def default_weights():
    """The committed weights: the source checkout's models/, else an installed share/."""
    candidates = [Path(__file__).resolve().parents[2] / 'models' / WEIGHTS]
    for prefix in filter(None, os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep)):
        candidates.append(Path(prefix) / 'share' / 'efficientmfd_ros' / 'models' / WEIGHTS)
    return next((c for c in candidates if c.is_file()), candidates[0])


def build_parser():
    parser = argparse.ArgumentParser(prog='efficientmfd_demo', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument('--data', help='paired dataset folder to make the bag from')
    source.add_argument('--bag', help='an existing bag to replay')
    parser.add_argument('--out', default='out/demo', help='output folder (default out/demo)')
    parser.add_argument('--weights', help=f'checkpoint (default models/{WEIGHTS})')
    parser.add_argument('--frames', type=int, default=40, help='frames in the made bag')
    parser.add_argument('--size', default='640x512', help='frame size of the made bag')
    parser.add_argument('--rate', type=float, default=1.0, help='replay speed factor')
    parser.add_argument('--mode', choices=('live', 'offline'), default='live')
    parser.add_argument('--video', action='store_true', help='also write an MP4')
    parser.add_argument('--max-waiting-pairs', type=int, default=2,
                        help="live: the node's max_waiting_pairs (default 2: a replay scores "
                             'every pair, so the demo trades some latency for fewer drops)')
    return parser


def _fresh(folder):
    """Remove ``folder`` if the demo made it; refuse to touch anything else."""
    if folder.exists():
        if not (folder / MARKER).exists():
            raise BagError(f'{folder} exists and was not made by the demo; choose another --out')
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text('made by efficientmfd_demo; replaced on the next run\n')


def make_demo_bag(args, out):
    width, height = (int(v) for v in args.size.lower().split('x'))
    bag_dir = out / 'bag'
    _fresh(bag_dir)
    if args.data:
        frames = dataset_frames(args.data, max_frames=args.frames, size=(width, height))
    else:
        frames = synthetic_frames(args.frames, (width, height), seed=0)
    print(f'[demo] making a bag of {frames.count} frames from {frames.source}')
    write_bag(frames, bag_dir / 'demo', progress=True)
    return bag_dir / 'demo'


def main(argv=None):
    args = build_parser().parse_args(argv)
    start = time.monotonic()
    weights = Path(args.weights) if args.weights else default_weights()
    if not weights.is_file():
        print(f'efficientmfd_demo: the weights {weights} are missing. The demo runs the committed '
              'LLVIP lite model; train one (efficientmfd_train) or pass --weights PATH.',
              file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        bag = Path(args.bag) if args.bag else make_demo_bag(args, out)
        eval_dir = out / 'eval'
        _fresh(eval_dir)
        eval_args = ['--bag', str(bag), '--weights', str(weights), '--out', str(eval_dir),
                     '--mode', args.mode, '--rate', str(args.rate),
                     '--max-waiting-pairs', str(args.max_waiting_pairs)]
        print(f'[demo] evaluating ({args.mode}) with {weights}'
              + (f', max_waiting_pairs {args.max_waiting_pairs}' if args.mode == 'live' else ''))
        metrics = evaluate(eval_parser().parse_args(eval_args + (['--video'] if args.video
                                                                 else [])))
    except (BagError, FrameSourceError, LiveRunError, ModelLoadError) as exc:
        print(f'efficientmfd_demo: error: {exc}', file=sys.stderr)
        return 2
    print(headline(metrics, eval_dir))
    print(f'[demo] done in {time.monotonic() - start:.0f} s; open {eval_dir / "report.html"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
