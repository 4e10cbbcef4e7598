"""ONNX export of a checkpoint, and the sidecar JSON every ONNX-based backend reads.

Graph contract (opset >= 17, fixed shapes, batch 1, NMS outside the graph):
- inputs: ``rgb`` float32 ``(1, 3, h, w)`` in [0, 1] RGB order; ``thermal`` float32
  ``(1, 1, h, w)`` in [0, 1]; ``noise_boxes`` float32 ``(1, N, 4)``, the initial diffusion boxes
  (standard normal samples of the signal space, see ``backend_base.make_noise_boxes``). ImageNet
  normalization is inside the graph.
- outputs: ``pred_logits`` float32 ``(1, N, C)``; ``pred_boxes`` float32 ``(1, N, 4)`` xyxy pixels
  of the network input; ``fused_rgb`` float32 ``(1, 3, h, w)`` in [0, 1] (only with fusion).
- ``--fp16`` keeps that float32 interface and stores weights and computation in float16 (the
  strongly typed input TensorRT 11 needs); numerically sensitive ops (LayerNorm, Exp, Log, Sin,
  Cos, RoiAlign and the RoI level assignment, whose box areas overflow float16) stay in float32.

The sidecar ``<file>.onnx.json`` records names, shapes, dtypes, normalization, class names, input
size, noise seed, opset, precision, the ONNX file's sha256 and the checkpoint's sha256 (so a stale
export next to retrained weights is detected).
"""
import json
import os
from pathlib import Path
import tempfile
from typing import TYPE_CHECKING, Any, Callable
import warnings

import torch

from efficientmfd_ros import __version__
from efficientmfd_ros.runtime.backend_base import ModelInfo
from efficientmfd_ros.runtime.engine_cache import sha256_file
from efficientmfd_ros.runtime.errors import ModelFileError

if TYPE_CHECKING:
    from efficientmfd_ros.model.efficientmfd import EfficientMFD

SIDECAR_FORMAT = 'efficientmfd_ros.onnx/1'
# Raised when the exported graph changes for the same weights (2: one stacked RoIAlign per head
# stage instead of one per level), so the ONNX cache replaces exports an older version made.
GRAPH_VERSION = 2
INPUT_NAMES = ('rgb', 'thermal', 'noise_boxes')
OUTPUT_NAMES = ('pred_logits', 'pred_boxes', 'fused_rgb')
MIN_OPSET = 17
FP32_OPS = ['LayerNormalization', 'Exp', 'Log', 'Sin', 'Cos', 'RoiAlign']


class _ExportGraph(torch.nn.Module):
    """The network with a fixed fusion switch, so it traces to one static graph."""

    def __init__(self, model: 'EfficientMFD', fusion: bool) -> None:
        super().__init__()
        self.model = model
        self.fusion = fusion

    def forward(self, rgb: torch.Tensor, thermal: torch.Tensor,
                noise_boxes: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, boxes, fused = self.model(rgb, thermal, noise_boxes, run_fusion=self.fusion)
        return (logits, boxes, fused) if self.fusion else (logits, boxes)


def sidecar_path(onnx_path: str | Path) -> Path:
    return Path(f'{onnx_path}.json')


def default_onnx_path(weights: str | Path, fp16: bool = False) -> Path:
    """Where the exporter writes by default and ``backend: auto`` looks: next to the weights."""
    weights = Path(weights)
    return weights.with_name(weights.stem + ('.fp16.onnx' if fp16 else '.onnx'))


def export_onnx(weights: str | Path, out: str | Path | None = None, fusion: bool = True,
                opset: int = MIN_OPSET, fp16: bool = False,
                log: Callable[[str], None] = print,
                num_proposals: int | None = None) -> tuple[Path, dict]:
    """Export checkpoint ``weights`` to ONNX at ``out`` (default: beside it) -> (path, sidecar).

    ``num_proposals``: noise boxes the graph refines per image (fixed in the graph; None: the
    checkpoint's ``head.num_proposals``)."""
    from efficientmfd_ros.model import load_checkpoint

    if int(opset) < MIN_OPSET:
        raise ValueError(f'opset must be >= {MIN_OPSET} (LayerNormalization, RoiAlign '
                         f'half_pixel), got {opset}')
    out = Path(out) if out else default_onnx_path(weights, fp16)
    model, cfg, _ = load_checkpoint(weights, 'cpu')
    if num_proposals is not None:
        cfg = model.cfg = cfg.with_num_proposals(num_proposals)
    h, w = (int(s) for s in cfg.input_size)
    rgb = torch.full((1, 3, h, w), 0.5)
    thermal = torch.full((1, 1, h, w), 0.5)
    noise = model.make_noise_boxes(1)
    outputs = OUTPUT_NAMES if fusion else OUTPUT_NAMES[:2]
    log(f'exporting {weights} ({cfg.backbone.name}, {cfg.head.num_proposals} proposals, '
        f'{h}x{w}, fusion {"on" if fusion else "off"}, opset {opset}, '
        f'{"fp16" if fp16 else "fp32"}) -> {out}')
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        tmp_onnx = Path(tmp) / 'model.onnx'
        with warnings.catch_warnings(), torch.inference_mode():
            # Shape checks in the model trace to constants; that is what a fixed-shape graph wants.
            warnings.simplefilter('ignore')
            torch.onnx.export(_ExportGraph(model, fusion), (rgb, thermal, noise), str(tmp_onnx),
                              input_names=list(INPUT_NAMES), output_names=list(outputs),
                              opset_version=int(opset), dynamo=False, do_constant_folding=True)
        if fp16:
            log('converting weights and computation to float16 (float32 interface)')
            _convert_fp16(tmp_onnx)
        _check_graph(tmp_onnx)
        os.replace(tmp_onnx, out)
    meta = {
        'format': SIDECAR_FORMAT,
        'graph_version': GRAPH_VERSION,
        'onnx_file': out.name,
        'onnx_sha256': sha256_file(out),
        'checkpoint_sha256': sha256_file(weights),
        'opset': int(opset),
        'precision': 'fp16' if fp16 else 'fp32',
        'fusion': bool(fusion),
        'inputs': [_io('rgb', (1, 3, h, w)), _io('thermal', (1, 1, h, w)),
                   _io('noise_boxes', tuple(noise.shape))],
        'outputs': [_io('pred_logits', (1, cfg.head.num_proposals, cfg.head.num_classes)),
                    _io('pred_boxes', (1, cfg.head.num_proposals, 4))]
        + ([_io('fused_rgb', (1, 3, h, w))] if fusion else []),
        'input_size': [h, w],
        'input_range': 'rgb and thermal float32 in [0, 1]; rgb in RGB order',
        'normalization': cfg.normalization,
        'class_names': list(cfg.class_names),
        'num_proposals': cfg.head.num_proposals,
        'noise_seed': cfg.head.noise_seed,
        'noise_boxes': 'standard normal (1, N, 4) from torch.Generator().manual_seed(noise_seed)',
        'box_format': 'pred_boxes: xyxy pixels of the network input',
        'score': 'per-class sigmoid of pred_logits',
        'model_config': cfg.to_dict(),
        'exporter': f'torch {torch.__version__} (TorchScript exporter), efficientmfd_ros '
                    f'{__version__}',
    }
    check_io_contract(out, meta)
    _atomic_text(sidecar_path(out), json.dumps(meta, indent=2))
    log(f'wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {sidecar_path(out).name}')
    return out, meta


def read_sidecar(onnx_path: str | Path, verify_hash: bool = True) -> dict:
    """The sidecar of ``onnx_path``, checked; ModelFileError if missing, malformed or stale."""
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ModelFileError(f'ONNX file not found: {onnx_path}')
    side = sidecar_path(onnx_path)
    try:
        meta = json.loads(side.read_text())
    except FileNotFoundError:
        raise ModelFileError(f'{side} is missing: export with efficientmfd_export, which writes '
                             'it next to the ONNX file') from None
    except (OSError, ValueError) as exc:
        raise ModelFileError(f'{side} is unreadable: {exc}') from exc
    required = ('format', 'onnx_sha256', 'inputs', 'outputs', 'input_size', 'class_names',
                'num_proposals', 'noise_seed', 'precision', 'fusion', 'opset')
    if not isinstance(meta, dict) or meta.get('format') != SIDECAR_FORMAT:
        raise ModelFileError(f'{side} is not an efficientmfd_ros ONNX sidecar ({SIDECAR_FORMAT})')
    missing = [k for k in required if k not in meta]
    if missing:
        raise ModelFileError(f'{side} lacks keys {missing}')
    if verify_hash and sha256_file(onnx_path) != meta['onnx_sha256']:
        raise ModelFileError(f'{onnx_path} changed since export (sha256 differs from '
                             f'{side.name}); export it again')
    return meta


def model_info(meta: dict) -> ModelInfo:
    return ModelInfo(class_names=tuple(meta['class_names']), input_hw=tuple(meta['input_size']),
                     num_proposals=int(meta['num_proposals']), has_fusion=bool(meta['fusion']),
                     normalization=dict(meta.get('normalization') or {}),
                     noise_seed=int(meta['noise_seed']))


def graph_io(onnx_path: str | Path) -> dict:
    """``{'inputs': [...], 'outputs': [...]}`` of the ONNX graph, each ``{name, shape, dtype}``
    (a symbolic dimension appears as its name)."""
    import onnx
    from onnx import helper

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}

    def describe(value: Any) -> dict:
        tensor = value.type.tensor_type
        shape = [d.dim_value if d.HasField('dim_value') else d.dim_param for d in tensor.shape.dim]
        dtype = str(helper.tensor_dtype_to_np_dtype(tensor.elem_type))
        return {'name': value.name, 'shape': shape, 'dtype': dtype}

    return {'inputs': [describe(v) for v in graph.input if v.name not in initializers],
            'outputs': [describe(v) for v in graph.output]}


def check_io_contract(onnx_path: str | Path, meta: dict) -> None:
    """Raise ModelFileError unless the graph's inputs/outputs are the sidecar's, in order."""
    actual = graph_io(onnx_path)
    problems = []
    for kind in ('inputs', 'outputs'):
        want = [(d['name'], list(d['shape']), d['dtype']) for d in meta[kind]]
        got = [(d['name'], list(d['shape']), d['dtype']) for d in actual[kind]]
        if want != got:
            problems.append(f'{kind}: sidecar says {want}, graph has {got}')
    if problems:
        raise ModelFileError(f'{onnx_path} does not match its sidecar: ' + '; '.join(problems))


def _io(name: str, shape: tuple | list, dtype: str = 'float32') -> dict:
    return {'name': name, 'shape': [int(s) for s in shape], 'dtype': dtype}


def _convert_fp16(path: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = onnx.load(str(path))
    # RoI level assignment squares box sides (areas up to ~8e5 px^2 overflow float16's 65504).
    pooler_nodes = [n.name for n in model.graph.node if '/pooler/' in n.name]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = convert_float_to_float16(model, keep_io_types=True,
                                         op_block_list=DEFAULT_OP_BLOCK_LIST + FP32_OPS,
                                         node_block_list=pooler_nodes)
    # The converter appends the input casts after their consumers; the checker wants topo order.
    wrapped = OnnxModel(model)
    wrapped.topological_sort()
    onnx.save(wrapped.model, str(path))


def _check_graph(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # the checker raises several types; all mean a broken export
        raise ModelFileError(f'the exported graph fails onnx.checker: {exc}') from exc


def _atomic_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + '.', suffix='.tmp')
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    os.replace(tmp, path)
