"""`efficientmfd_build_engine --onnx model.onnx [--fp16] [--cache-dir DIR] [--force]`.

Builds the TensorRT engine for an exported ONNX (see `efficientmfd_export`) ahead of time, so the
node never builds inside its configure transition. The engine lands in the engine cache (default
`~/.cache/efficientmfd_ros/engines`, or `$EFFICIENTMFD_ENGINE_CACHE`), keyed by the ONNX hash,
TensorRT version, GPU, compute capability, precision and shapes; a valid cached engine is reused
unless --force. fp16 uses the strongly typed path for an ONNX exported with --fp16 and
BuilderFlag.FP16 (TensorRT 10 only) for an fp32 ONNX.
Exit status: 0 engine ready, 1 TensorRT or CUDA unavailable, 2 bad arguments or build failure.
"""
import argparse
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='efficientmfd_build_engine',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--onnx', required=True, help='ONNX file written by efficientmfd_export')
    parser.add_argument('--fp16', action='store_true', help='build a float16 engine')
    parser.add_argument('--cache-dir', default=None,
                        help='engine cache directory (default ~/.cache/efficientmfd_ros/engines)')
    parser.add_argument('--device', default='cuda', help='CUDA device to build for (cuda:N)')
    parser.add_argument('--force', action='store_true',
                        help='rebuild even when a valid engine is cached')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from efficientmfd_ros.runtime.backend_tensorrt import load_engine
    from efficientmfd_ros.runtime.engine_cache import EngineCacheError
    from efficientmfd_ros.runtime.errors import BackendUnavailableError, ModelFileError

    def log(message):
        print(f'efficientmfd_build_engine: {message}', flush=True)

    precision = 'fp16' if args.fp16 else 'fp32'
    try:
        _, cached, _ = load_engine(args.onnx, args.device, precision, args.cache_dir,
                                   build_if_missing=True, force=args.force, log=log)
    except BackendUnavailableError as exc:
        print(f'efficientmfd_build_engine: error: {exc}', file=sys.stderr)
        return 1
    except (ModelFileError, EngineCacheError, ValueError, OSError) as exc:
        print(f'efficientmfd_build_engine: error: {exc}', file=sys.stderr)
        return 2
    state = 'built' if cached.built else 'already cached and valid'
    log(f'engine {state}: {cached.path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
