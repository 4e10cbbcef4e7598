"""`efficientmfd_export --weights W [--out F.onnx] [--fusion|--no-fusion] [--opset 17] [--fp16]
[--num-proposals N]`.

Exports a checkpoint to ONNX (fixed shapes at the checkpoint's input size; inputs rgb, thermal,
noise_boxes; outputs pred_logits, pred_boxes and, with fusion, fused_rgb; NMS stays outside; the
noise box count N is fixed too, the checkpoint's unless --num-proposals says otherwise) plus
the sidecar `<out>.json` the onnxruntime and tensorrt backends read. By default the file goes next
to the weights (`<stem>.onnx`, or `<stem>.fp16.onnx` with --fp16), where `backend: auto` looks.
Exit status: 0 written, 2 bad arguments, checkpoint or export failure.
"""
import argparse
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='efficientmfd_export',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--weights', required=True, help='checkpoint (.pt) to export')
    parser.add_argument('--out', default=None,
                        help='ONNX path (default: next to the weights, <stem>[.fp16].onnx)')
    parser.add_argument('--fusion', action=argparse.BooleanOptionalAction, default=True,
                        help='include the fusion decoder and the fused_rgb output (default: on)')
    parser.add_argument('--opset', type=int, default=17, help='ONNX opset, >= 17 (default 17)')
    parser.add_argument('--fp16', action='store_true',
                        help='float16 weights and computation behind a float32 interface (the '
                             'strongly typed input TensorRT 11 needs)')
    parser.add_argument('--num-proposals', type=int, default=None, metavar='N',
                        help="noise boxes per image in the graph (default: the checkpoint's)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from efficientmfd_ros.model import CheckpointError
    from efficientmfd_ros.runtime.errors import ModelFileError
    from efficientmfd_ros.runtime.export import export_onnx

    def log(message):
        print(f'efficientmfd_export: {message}', flush=True)

    try:
        export_onnx(args.weights, args.out, fusion=args.fusion, opset=args.opset, fp16=args.fp16,
                    log=log, num_proposals=args.num_proposals)
    except (CheckpointError, ModelFileError, ValueError, OSError) as exc:
        print(f'efficientmfd_export: error: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
