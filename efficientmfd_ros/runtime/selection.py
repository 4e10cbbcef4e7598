"""Choosing and creating an inference backend.

``backend='auto'`` tries tensorrt, then onnxruntime, then torch, and records (and logs) why each
skipped one was skipped. An explicit backend never falls back: if it cannot run,
BackendUnavailableError says why. ONNX-based backends look for the export next to the weights:
``<stem>.onnx`` (fp32) and ``<stem>.fp16.onnx`` (``efficientmfd_export --fp16``), and use one only
if its sidecar says it was exported from these exact weights. On a CPU, onnxruntime (the one auto
picks there) without such a file exports the checkpoint once into the ONNX cache
(``runtime/onnx_cache.py``) and runs that.
"""
from dataclasses import dataclass, field
import logging
from pathlib import Path
from typing import Sequence

from efficientmfd_ros.runtime.backend_base import Backend, check_precision
from efficientmfd_ros.runtime.engine_cache import EngineCacheError, sha256_file
from efficientmfd_ros.runtime.errors import BackendUnavailableError, ModelFileError
from efficientmfd_ros.runtime.export import default_onnx_path, read_sidecar

LOG = logging.getLogger('efficientmfd_ros.runtime')
BACKENDS = ('auto', 'tensorrt', 'onnxruntime', 'torch')
AUTO_ORDER = ('tensorrt', 'onnxruntime', 'torch')


@dataclass
class BackendRequest:
    """What ``load_detector`` asks for; see its docstring for each field."""

    weights: Path
    device: str = 'cpu'
    precision: str = 'fp32'
    fast: bool = False
    build_engine_if_missing: bool = False
    engine_cache_dir: str | None = None
    input_hw: tuple | None = None
    onnx_cache_dir: str | None = None  # None: runtime.onnx_cache.default_onnx_cache_dir()
    export_if_missing: bool = True  # CPU onnxruntime: export into the cache on first use
    cpu_threads: int | None = None  # see load_detector
    num_proposals: int | None = None  # noise boxes per image; None: the checkpoint's
    _weights_sha: str | None = field(default=None, repr=False)

    def weights_sha256(self) -> str:
        if self._weights_sha is None:
            self._weights_sha = sha256_file(self.weights)
        return self._weights_sha


def check_input_size(input_size: Sequence[int] | None) -> tuple[int, int] | None:
    """None, or ``(h, w)`` as ints; ValueError unless both are positive multiples of 32."""
    if input_size is None:
        return None
    size = tuple(int(v) for v in input_size)
    if len(size) != 2 or any(v <= 0 or v % 32 for v in size):
        raise ValueError(f'input_size must be (h, w), positive multiples of 32, got {input_size}')
    return size


def check_num_proposals(num: int | None) -> int | None:
    """None, or ``num`` as an int; ValueError unless it is in [1, 1000]."""
    if num is None:
        return None
    if isinstance(num, bool) or int(num) != num or not 1 <= int(num) <= 1000:
        raise ValueError(f'num_proposals must be an integer in [1, 1000], got {num}')
    return int(num)


def create_backend(request: BackendRequest, backend: str = 'auto') -> tuple[Backend, list[str]]:
    """(backend, notes): notes say why each backend tried before the chosen one was skipped."""
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
    check_precision(request.precision)
    if not request.weights.is_file():
        raise FileNotFoundError(f'weights not found: {request.weights}')
    if backend != 'auto':
        return _CREATORS[backend](request), []
    notes = []
    for name in AUTO_ORDER:
        try:
            chosen = _CREATORS[name](request)
        except (BackendUnavailableError, ModelFileError, EngineCacheError) as exc:
            note = f'backend auto: skipped {name}: {exc}'
            LOG.info(note)
            notes.append(note)
            continue
        LOG.info('backend auto: using %s', chosen.describe())
        return chosen, notes
    raise BackendUnavailableError('backend auto: no backend can run here:\n' + '\n'.join(notes))


def onnx_for(request: BackendRequest, backend: str, fp16_ok: bool) -> Path:
    """The ONNX file ``backend`` should run for ``request``; BackendUnavailableError if none."""
    weights = request.weights
    if weights.suffix == '.onnx':
        _check_exported_shape(weights, read_sidecar(weights), request)
        return weights
    candidates = []
    if request.precision == 'fp16' and fp16_ok:
        candidates.append(default_onnx_path(weights, fp16=True))
    if request.precision == 'fp32' or backend == 'tensorrt':
        candidates.append(default_onnx_path(weights))
    found = [c for c in candidates if c.is_file()]
    if not found:
        names = ' or '.join(str(c) for c in candidates)
        raise BackendUnavailableError(
            f'no ONNX file next to the weights ({names}); export one with efficientmfd_export '
            f'--weights {weights}' + (' --fp16' if request.precision == 'fp16' else ''))
    path = found[0]
    meta = read_sidecar(path)
    if meta.get('checkpoint_sha256') != request.weights_sha256():
        raise ModelFileError(f'{path} was exported from other weights than {weights.name} '
                             '(stale export); export it again')
    _check_exported_shape(path, meta, request)
    return path


def _exports_on_first_use(request: BackendRequest) -> bool:
    """Whether onnxruntime runs the cache's exports of this checkpoint: fp32 on a CPU, allowed,
    and no export beside the weights (which, when present, is what runs)."""
    weights = request.weights
    return (weights.suffix != '.onnx' and request.precision == 'fp32'
            and request.export_if_missing and not request.device.startswith('cuda')
            and not default_onnx_path(weights).is_file())


def _cached_exports(request: BackendRequest) -> tuple[Path, Path]:
    """(full graph, fusion-free graph) of the checkpoint from the ONNX cache, exported if
    missing."""
    from efficientmfd_ros.runtime.onnx_cache import cached_onnx

    try:
        import onnx  # noqa: F401 - the exporter needs it; say so before a long trace
    except ImportError as exc:
        raise BackendUnavailableError(f'no ONNX export and onnx is not installed to make one '
                                      f'({exc}); pip install onnx') from exc
    paths = []
    for fusion in (True, False):
        path, status = cached_onnx(request.weights, request.weights_sha256(),
                                   request.onnx_cache_dir, fusion=fusion,
                                   num_proposals=request.num_proposals)
        LOG.info('onnxruntime%s: %s (%s)', '' if fusion else ', pairs without a fused image',
                 path, status)
        paths.append(path)
    # the cache checked both sidecars; the backend verifies the files' hashes when it loads them
    _check_exported_shape(paths[0], read_sidecar(paths[0], verify_hash=False), request)
    return paths[0], paths[1]


def _check_exported_shape(path: Path, meta: dict, request: BackendRequest) -> None:
    """ModelFileError unless the graph has the requested input size and noise box count (both
    are fixed in an export)."""
    if request.input_hw is not None and tuple(meta['input_size']) != request.input_hw:
        raise ModelFileError(f'{path} was exported at input size {tuple(meta["input_size"])}, '
                             f'not the requested {request.input_hw}: export at that size')
    wanted = request.num_proposals
    if wanted is not None and int(meta['num_proposals']) != wanted:
        raise ModelFileError(f'{path} was exported drawing {meta["num_proposals"]} noise boxes, '
                             f'not the requested {wanted}: efficientmfd_export --num-proposals '
                             f'{wanted}')


def _torch(request: BackendRequest) -> Backend:
    from efficientmfd_ros.model import load_checkpoint
    from efficientmfd_ros.runtime.backend_torch import TorchBackend, resolve_device

    if request.weights.suffix == '.onnx':
        raise BackendUnavailableError('the torch backend needs a checkpoint (.pt), not an ONNX '
                                      'file')
    device = resolve_device(request.device)
    model, _, _ = load_checkpoint(request.weights, 'cpu')
    if request.num_proposals is not None:
        model.cfg = model.cfg.with_num_proposals(request.num_proposals)
    return TorchBackend(model, device, request.precision, fast=request.fast,
                        input_hw=request.input_hw, cpu_threads=request.cpu_threads)


def _onnxruntime(request: BackendRequest) -> Backend:
    from efficientmfd_ros.runtime.backend_onnx import OnnxRuntimeBackend, import_onnxruntime

    import_onnxruntime()
    if request.device.startswith('cuda'):
        from efficientmfd_ros.runtime.backend_onnx import cuda_provider_available

        if not cuda_provider_available():
            raise BackendUnavailableError(f'device {request.device} but onnxruntime has no '
                                          'CUDAExecutionProvider (install onnxruntime-gpu)')
    if _exports_on_first_use(request):
        path, detect_only = _cached_exports(request)
    else:
        path, detect_only = onnx_for(request, 'onnxruntime', fp16_ok=True), None
    return OnnxRuntimeBackend(path, request.device, request.precision,
                              threads=request.cpu_threads or 0, detect_only_path=detect_only)


def _tensorrt(request: BackendRequest) -> Backend:
    import torch

    from efficientmfd_ros.runtime.backend_tensorrt import TensorRTBackend, import_tensorrt

    import_tensorrt()
    if not request.device.startswith('cuda'):
        raise BackendUnavailableError(f'tensorrt runs on CUDA and the device is {request.device}')
    if not torch.cuda.is_available():
        raise BackendUnavailableError('tensorrt needs a CUDA device; torch sees none')
    path = onnx_for(request, 'tensorrt', fp16_ok=True)
    return TensorRTBackend(path, request.device, request.precision, request.engine_cache_dir,
                           request.build_engine_if_missing, log=LOG.info)


_CREATORS = {'torch': _torch, 'onnxruntime': _onnxruntime, 'tensorrt': _tensorrt}
