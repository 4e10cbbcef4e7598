"""TensorRT backend: engines built from the exported ONNX, cached by ``engine_cache.py``, run on
torch CUDA tensors.

Precision:
- an ONNX exported with ``--fp16`` (float16 weights and computation, float32 interface) is built as
  a strongly typed network: the graph's own types decide the precision. TensorRT 11 removed
  ``BuilderFlag.FP16``, so this is the only fp16 route there (TensorRT 11 ignores the flag, as
  every network is strongly typed);
- an fp32 ONNX with precision fp16 uses ``BuilderFlag.FP16`` (TensorRT 10's weak typing);
- fp32 builds the fp32 ONNX as is.

The optimization profile fixes every input at the exported shape. Inference binds static torch CUDA
buffers by name (``set_tensor_address``) once and calls ``execute_async_v3`` on torch's current
stream, so preprocessing, the engine and postprocessing share one stream and never cross to the
host. ``tensorrt`` is imported lazily; without it every entry point raises
BackendUnavailableError.
"""
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import torch

from efficientmfd_ros.runtime.backend_base import Backend, NetworkOutput, check_precision
from efficientmfd_ros.runtime.engine_cache import CachedEngine, EngineCache, EngineKey
from efficientmfd_ros.runtime.errors import BackendUnavailableError, ModelFileError
from efficientmfd_ros.runtime.export import check_io_contract, model_info, read_sidecar
from efficientmfd_ros.runtime.timing import StageTimer

WORKSPACE_BYTES = 4 << 30


def import_tensorrt() -> ModuleType:
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendUnavailableError(
            'the tensorrt backend needs NVIDIA TensorRT >= 10 and its Python package (pip install '
            'tensorrt, or the wheels shipped with JetPack/the TensorRT tarball); it is not '
            'installed') from exc
    major = int(tensorrt.__version__.split('.')[0])
    if major < 10:
        raise BackendUnavailableError(f'TensorRT {tensorrt.__version__} is too old: the backend '
                                      'uses the named-tensor API of TensorRT >= 10')
    return tensorrt


def build_mode(trt: ModuleType, onnx_precision: str, precision: str) -> str:
    """'strongly_typed', 'fp16_flag' or 'fp32' for this TensorRT and ONNX; ModelFileError if the
    combination cannot give the requested precision."""
    if onnx_precision == 'fp16':
        if precision != 'fp16':
            raise ModelFileError('this ONNX was exported with --fp16; use precision fp16 or the '
                                 'fp32 export for fp32')
        return 'strongly_typed'
    if precision == 'fp32':
        return 'fp32'
    if not hasattr(trt.BuilderFlag, 'FP16'):
        raise ModelFileError(f'TensorRT {trt.__version__} has no BuilderFlag.FP16: fp16 needs an '
                             'ONNX exported with efficientmfd_export --fp16')
    return 'fp16_flag'


def engine_key(trt: ModuleType, meta: dict, precision: str, device: torch.device) -> EngineKey:
    props = torch.cuda.get_device_properties(device)
    return EngineKey(onnx_sha256=meta['onnx_sha256'], tensorrt_version=trt.__version__,
                     gpu_name=props.name, compute_capability=f'{props.major}.{props.minor}',
                     precision=precision,
                     input_shapes=tuple((d['name'], tuple(d['shape'])) for d in meta['inputs']))


def build_serialized_engine(trt: ModuleType, onnx_path: str | Path, meta: dict, precision: str,
                            log: Callable[[str], None] = print) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine with a fixed-shape profile."""
    mode = build_mode(trt, meta['precision'], precision)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if mode == 'strongly_typed':
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelFileError(f'TensorRT cannot parse {onnx_path}: {errors}')
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if mode == 'fp16_flag':
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for spec in meta['inputs']:
        shape = tuple(spec['shape'])
        profile.set_shape(spec['name'], shape, shape, shape)
    config.add_optimization_profile(profile)
    log(f'TensorRT {trt.__version__}: building {Path(onnx_path).name} ({mode})')
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelFileError(f'TensorRT failed to build an engine from {onnx_path} (see its log)')
    return bytes(serialized)


def load_engine(onnx_path: str | Path, device: str | torch.device = 'cuda',
                precision: str = 'fp16', cache_dir: str | Path | None = None,
                build_if_missing: bool = False, force: bool = False,
                log: Callable[[str], None] = print) -> tuple[Any, CachedEngine, dict]:
    """(deserialized engine, CachedEngine, sidecar meta) for ``onnx_path`` from the cache, building
    it first when allowed."""
    trt = import_tensorrt()
    check_precision(precision)
    if not torch.cuda.is_available():
        raise BackendUnavailableError('the tensorrt backend needs a CUDA device; torch sees none')
    device = torch.device(device)
    if device.type != 'cuda':
        raise BackendUnavailableError(f'the tensorrt backend runs on CUDA, not {device}')
    meta = read_sidecar(onnx_path)
    check_io_contract(onnx_path, meta)
    build_mode(trt, meta['precision'], precision)
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))

    def deserialize(data: bytes) -> Any:
        return runtime.deserialize_cuda_engine(data)

    with torch.cuda.device(device):
        cached = EngineCache(cache_dir).get(
            engine_key(trt, meta, precision, device),
            build=lambda: build_serialized_engine(trt, onnx_path, meta, precision, log),
            validate=deserialize, build_if_missing=build_if_missing, force=force, log=log)
    cached.keepalive = runtime  # the runtime must outlive its engines
    return cached.engine, cached, meta


class TensorRTBackend(Backend):
    name = 'tensorrt'

    def __init__(self, onnx_path: str | Path, device: str | torch.device = 'cuda',
                 precision: str = 'fp16', cache_dir: str | Path | None = None,
                 build_engine_if_missing: bool = False,
                 log: Callable[[str], None] = print) -> None:
        trt = import_tensorrt()
        self.engine, self.cached, self.meta = load_engine(
            onnx_path, device, precision, cache_dir, build_engine_if_missing, log=log)
        self.device = torch.device(device)
        if self.device.index is None:
            self.device = torch.device('cuda', torch.cuda.current_device())
        self.precision = precision
        self.info = model_info(self.meta)
        self.context = self.engine.create_execution_context()
        self._buffers: dict[str, torch.Tensor] = {}
        with torch.cuda.device(self.device):
            for i in range(self.engine.num_io_tensors):
                name = self.engine.get_tensor_name(i)
                shape = tuple(self.engine.get_tensor_shape(name))
                dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(name))
                buffer = torch.empty(shape, dtype=dtype, device=self.device)
                self.context.set_tensor_address(name, buffer.data_ptr())
                self._buffers[name] = buffer
        expected = {d['name'] for d in self.meta['inputs'] + self.meta['outputs']}
        if set(self._buffers) != expected:
            raise ModelFileError(f'engine I/O {sorted(self._buffers)} differs from the sidecar '
                                 f'{sorted(expected)}; rebuild the engine')

    def run(self, rgb: torch.Tensor, thermal: torch.Tensor, noise_boxes: torch.Tensor, fuse: bool,
            timer: StageTimer) -> NetworkOutput:
        buffers = self._buffers
        # The fused output is part of the engine; fuse=False only skips copying it out.
        with timer.stage('network'):
            buffers['rgb'].copy_(rgb)
            buffers['thermal'].copy_(thermal)
            buffers['noise_boxes'].copy_(noise_boxes)
            stream = torch.cuda.current_stream(self.device).cuda_stream
            if not self.context.execute_async_v3(stream):
                raise RuntimeError('TensorRT execute_async_v3 failed (see the TensorRT log)')
        fused = buffers.get('fused_rgb') if fuse else None
        return NetworkOutput(buffers['pred_logits'], buffers['pred_boxes'], fused)


def _torch_dtype(trt: ModuleType, dtype: Any) -> torch.dtype:
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16,
             trt.DataType.INT32: torch.int32, trt.DataType.INT8: torch.int8,
             trt.DataType.BOOL: torch.bool}
    if hasattr(trt.DataType, 'INT64'):
        table[trt.DataType.INT64] = torch.int64
    if dtype not in table:
        raise ModelFileError(f'engine tensor of unsupported dtype {dtype}')
    return table[dtype]
