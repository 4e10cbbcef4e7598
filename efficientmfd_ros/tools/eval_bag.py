"""efficientmfd_eval_bag: score the detector on a recorded RGB-thermal bag, offline or live
(what it runs and writes: efficientmfd_ros/evaluation/bag.py)."""
from pathlib import Path
import sys

from efficientmfd_ros.bags.bagio import BagError
from efficientmfd_ros.evaluation.bag import build_parser, evaluate, headline
from efficientmfd_ros.evaluation.live import LiveRunError
from efficientmfd_ros.runtime.errors import ModelLoadError


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        metrics = evaluate(args)
    except (BagError, LiveRunError, ModelLoadError) as exc:
        print(f'efficientmfd_eval_bag: error: {exc}', file=sys.stderr)
        return 2
    print(headline(metrics, Path(args.out)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
