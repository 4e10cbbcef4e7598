"""ONNX exports made on first use, cached outside the install tree and keyed on the weights.

``backend: auto`` on a CPU prefers onnxruntime (it keeps its speed when other processes share the
cores, where torch's thread pool does not; `benchmarks/bench_cpu_backends.py`). When no export
sits next to the checkpoint, one is made the first time and kept as
``<cache>/<weights stem>-<first 16 hex digits of the weights' sha256>.onnx`` with its sidecar, so
new weights never meet an old export (``-p<N>`` is added when a noise box count N is asked for:
it is fixed in the graph; asking for the checkpoint's own count makes a file of its own too). A
cached file is used only when its sidecar names these exact weights and its own bytes match the
sidecar's hash, and was made by an exporter of the current graph version; otherwise it is exported
again.
Exports happen under a file lock, so two nodes starting together export once.

Default location: ``$EFFICIENTMFD_ONNX_CACHE``, else the engine cache's parent folder + ``onnx``
(``~/.cache/efficientmfd_ros/onnx``).
"""
import logging
import os
from pathlib import Path
from typing import Callable

from efficientmfd_ros.runtime.engine_cache import default_cache_dir, file_lock
from efficientmfd_ros.runtime.errors import ModelFileError
from efficientmfd_ros.runtime.export import GRAPH_VERSION, export_onnx, read_sidecar

LOG = logging.getLogger('efficientmfd_ros.runtime')


def default_onnx_cache_dir() -> Path:
    env = os.environ.get('EFFICIENTMFD_ONNX_CACHE')
    return Path(env).expanduser() if env else default_cache_dir().parent / 'onnx'


def cached_path(weights: str | Path, weights_sha256: str, cache_dir: str | Path | None = None,
                fusion: bool = True, num_proposals: int | None = None) -> Path:
    folder = Path(cache_dir).expanduser() if cache_dir else default_onnx_cache_dir()
    tail = ('' if num_proposals is None else f'-p{int(num_proposals)}') + (
        '' if fusion else '-detect')
    return folder / f'{Path(weights).stem}-{weights_sha256[:16]}{tail}.onnx'


def _usable(path: Path, weights_sha256: str, fusion: bool, num_proposals: int | None) -> str:
    """'' when ``path`` is a complete fp32 export of these weights (drawing ``num_proposals``
    boxes, when given), else why not."""
    if not path.is_file():
        return f'no cached export at {path}'
    try:
        meta = read_sidecar(path)
    except ModelFileError as exc:
        return f'cached export unusable ({exc})'
    if meta.get('checkpoint_sha256') != weights_sha256:
        return f'cached export {path.name} was made from other weights (stale)'
    if meta.get('graph_version', 1) != GRAPH_VERSION:
        return (f'cached export {path.name} holds graph version {meta.get("graph_version", 1)}, '
                f'this efficientmfd_ros exports version {GRAPH_VERSION}')
    if meta.get('precision') != 'fp32' or bool(meta.get('fusion')) != fusion:
        kind = 'with' if fusion else 'without'
        return f'cached export {path.name} is not an fp32 export {kind} fusion'
    if num_proposals is not None and meta.get('num_proposals') != int(num_proposals):
        return f'cached export {path.name} does not draw {num_proposals} noise boxes'
    return ''


def cached_onnx(weights: str | Path, weights_sha256: str, cache_dir: str | Path | None = None,
                log: Callable[[str], None] = LOG.info, fusion: bool = True,
                num_proposals: int | None = None) -> tuple[Path, str]:
    """``(onnx path, status)``: status ``'hit'`` or ``'exported: <why>'``. ``fusion`` False: the
    detection-only graph (``<...>-detect.onnx``); ``num_proposals``: noise boxes per image (None:
    the checkpoint's). Raises what the export raises (ModelFileError for unreadable weights,
    ImportError without onnx)."""
    path = cached_path(weights, weights_sha256, cache_dir, fusion, num_proposals)
    if not _usable(path, weights_sha256, fusion, num_proposals):
        return path, 'hit'
    with file_lock(path.with_suffix('.lock'), 1800.0, 'the ONNX export lock'):
        reason = _usable(path, weights_sha256, fusion, num_proposals)
        if not reason:  # another process exported it while this one waited
            return path, 'hit'
        log(f'exporting {weights} to ONNX for onnxruntime ({reason}); once per weights')
        export_onnx(weights, out=path, fusion=fusion, log=log, num_proposals=num_proposals)
    return path, f'exported: {reason}'
