"""efficientmfd_make_bag: a paired RGB-thermal dataset (or the synthetic scene) -> a ROS 2 bag
(topics, stamps and metadata: efficientmfd_ros/bags/make.py)."""
import argparse
import sys

from efficientmfd_ros.bags.bagio import STORAGES, BagError
from efficientmfd_ros.bags.frame_source import FrameSourceError, dataset_frames, synthetic_frames
from efficientmfd_ros.bags.make import __doc__ as BAG_DOC
from efficientmfd_ros.bags.make import write_bag


def _size(text):
    try:
        width, height = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size must be WIDTHxHEIGHT, got {text!r}') from None
    if width < 32 or height < 32:
        raise argparse.ArgumentTypeError(f'size must be at least 32x32, got {text!r}')
    return width, height


def build_parser():
    parser = argparse.ArgumentParser(prog='efficientmfd_make_bag', description=BAG_DOC,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument('--data', help='dataset folder: visible/ + infrared/ (+ Annotations/ VOC)')
    src.add_argument('--synthetic', type=int, metavar='N', help='render N synthetic frames')
    parser.add_argument('--split', help='text file of frame ids to take from --data, in order')
    parser.add_argument('--out', required=True, help='bag directory to create (must not exist)')
    parser.add_argument('--storage', choices=STORAGES, default='mcap')
    parser.add_argument('--rate-hz', type=float, default=10.0, help='frame rate of the stamps')
    parser.add_argument('--thermal-offset-ms', type=float, default=0.0,
                        help='thermal stamps lag (+) or lead (-) the RGB stamps by this')
    parser.add_argument('--jitter-ms', type=float, default=0.0,
                        help='uniform stamp jitter bound, drawn per message')
    parser.add_argument('--rgb-encoding', choices=('rgb8', 'bgr8'), default='rgb8')
    parser.add_argument('--thermal-encoding', choices=('mono8', 'mono16'), default='mono8',
                        help='mono16 stores the 8-bit thermal scaled by 257 (full range)')
    parser.add_argument('--size', type=_size, metavar='WxH',
                        help='resize frames (and boxes); synthetic default 320x256')
    parser.add_argument('--max-frames', type=int, help='take at most this many frames')
    parser.add_argument('--classes', help='comma-separated class names: those to label in '
                        "the synthetic scene (default person; person,car), or the dataset's "
                        '(default: the names found in its VOC files)')
    parser.add_argument('--label-format', choices=('voc', 'yolo', 'coco', 'none'), default='voc',
                        help="--data labels (coco expects the dataset's annotations json)")
    parser.add_argument('--seed', type=int, default=0, help='synthetic scene and jitter seed')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        classes = None if args.classes is None else [
            c.strip() for c in args.classes.split(',') if c.strip()]
        if args.data:
            frames = dataset_frames(args.data, args.split, args.max_frames, args.size, classes,
                                    args.label_format)
        else:
            frames = synthetic_frames(args.synthetic, args.size, args.seed,
                                      tuple(classes or ('person',)))
        records = write_bag(frames, args.out, args.storage, args.rate_hz, args.thermal_offset_ms,
                            args.jitter_ms, args.rgb_encoding, args.thermal_encoding, args.seed,
                            progress=not args.quiet)
    except (BagError, FrameSourceError) as exc:
        print(f'efficientmfd_make_bag: error: {exc}', file=sys.stderr)
        return 2
    print(f'wrote {args.out}: {len(records)} frames ({args.storage}) from {frames.source}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
