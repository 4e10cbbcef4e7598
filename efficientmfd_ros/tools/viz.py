"""efficientmfd_viz: draw a bag's images with its Detection2DArray boxes, for people without RViz
(what it draws: efficientmfd_ros/evaluation/viz.py)."""
from pathlib import Path
import sys

from efficientmfd_ros.bags.bagio import BagError
from efficientmfd_ros.evaluation.viz import _folder_name, build_parser, visualize


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        written = visualize(args)
    except BagError as exc:
        print(f'efficientmfd_viz: error: {exc}', file=sys.stderr)
        return 2
    for topic, count in written.items():
        kind = 'video frames' if args.video else 'PNGs'
        print(f'{topic}: {count} {kind} in {Path(args.out) / _folder_name(topic)}'
              f'{".mp4" if args.video else "/"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
