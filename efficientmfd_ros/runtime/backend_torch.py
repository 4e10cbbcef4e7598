"""PyTorch backend: eager on CPU or CUDA (fp16 by autocast on CUDA), plus the fast CUDA path.

The model is rewritten for inference first (``EfficientMFD.optimize_for_inference``: backbone
BatchNorm folded into the convs, channels-last). Stages are timed separately: ``backbone`` (the
shared backbone over both modalities -- one batched pass on CUDA, two passes on the CPU -- and the
FPN), ``fusion`` (ORPPT decoder and colour restoration) and ``head`` (CFDP sampling).

The fast path (``fast=True``, CUDA only) is for machines without TensorRT:
- float16 convolution and remaining BatchNorm weights, channels-last; the rest of the network runs
  under fp16 autocast, so LayerNorm, the time embedding's sinusoids and the box arithmetic keep
  autocast's float32 safeguards;
- cuDNN autotuning for the fixed input shape;
- one CUDA graph per stage captured at the fixed input size (static input/output buffers, private
  memory pools), replayed per frame, so the fusion graph can be skipped on frames without fusion. A
  stage that synchronizes with the host (found by a run under torch's sync debug mode) or whose
  capture fails runs eagerly instead, with a warning naming it.
Pinned host buffers with non-blocking uploads live in the shared preprocessing (``preprocess.py``).
"""
import logging
from typing import Any, Callable, ContextManager

import torch
from torch import nn

from efficientmfd_ros.model.color import fused_to_rgb
from efficientmfd_ros.model.efficientmfd import EfficientMFD
from efficientmfd_ros.runtime.backend_base import (
    Backend,
    ModelInfo,
    NetworkOutput,
    check_precision,
)
from efficientmfd_ros.runtime.errors import BackendUnavailableError
from efficientmfd_ros.runtime.threads import configure_torch_cpu
from efficientmfd_ros.runtime.timing import StageTimer

LOG = logging.getLogger(__name__)
STAGES = ('backbone', 'fusion', 'head')


def auto_device(name: str) -> str:
    """``'auto'`` (any case, spaces ignored) -> ``'cuda'`` when torch sees a GPU, else
    ``'cpu'``; any other name as given (lower-cased). The one place 'auto' is decided."""
    name = str(name).strip().lower()
    if name != 'auto':
        return name
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def resolve_device(device: str | torch.device) -> torch.device:
    """``'cpu'``, ``'cuda'`` or ``'cuda:N'`` -> torch.device; BackendUnavailableError if CUDA is
    requested but absent."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise BackendUnavailableError(f'unsupported device {device!r}: use cpu, cuda or '
                                      'cuda:N') from None
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            raise BackendUnavailableError(f'device {device} requested but torch sees no CUDA '
                                          'device')
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise BackendUnavailableError(f'device {device}: only {torch.cuda.device_count()} '
                                          'CUDA device(s)')
        return torch.device('cuda', index)
    if dev.type != 'cpu':
        raise BackendUnavailableError(f'unsupported device {device}: use cpu, cuda or cuda:N')
    return dev


class TorchBackend(Backend):
    name = 'torch'

    def __init__(self, model: EfficientMFD, device: str | torch.device = 'cpu',
                 precision: str = 'fp32', fast: bool = False,
                 input_hw: tuple[int, int] | None = None, cpu_threads: int | None = None) -> None:
        """``model``: an EfficientMFD (eval mode is set here). fp16 and ``fast`` need CUDA.
        ``input_hw``: network input (h, w), multiples of 32; None: the model config's.
        ``cpu_threads`` on a CPU: torch's intra-op threads (0: every usable CPU; None: left as
        the process has them, since torch's setting is process-wide)."""
        check_precision(precision)
        self.device = resolve_device(device)
        if precision == 'fp16' and self.device.type != 'cuda':
            raise BackendUnavailableError('precision fp16 needs a CUDA device; use fp32 on the '
                                          'CPU')
        if fast and self.device.type != 'cuda':
            raise BackendUnavailableError('the fast torch path needs a CUDA device')
        self.precision = 'fp16' if fast else precision
        self.fast = bool(fast)
        if self.device.type == 'cpu' and cpu_threads is not None:
            configure_torch_cpu(torch, cpu_threads)
        self.model = model.eval().to(self.device)
        # BatchNorm folded into the backbone convs, channels-last; one batched backbone pass for
        # both modalities on a GPU, two passes (less memory traffic) on a CPU.
        self.model.optimize_for_inference(batch_modalities=self.device.type == 'cuda',
                                          channels_last=True)
        cfg = model.cfg
        self.input_hw = tuple(int(s) for s in (input_hw or cfg.input_size))
        self.info = ModelInfo(class_names=tuple(cfg.class_names), input_hw=self.input_hw,
                              num_proposals=cfg.head.num_proposals, has_fusion=True,
                              normalization=cfg.normalization, noise_seed=cfg.head.noise_seed)
        self._graphs: dict[str, torch.cuda.CUDAGraph] | None = None
        if self.fast:
            self._prepare_fast()

    def make_noise_boxes(self, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(int(seed))
        return self.model.make_noise_boxes(1, generator, device=self.device).float()

    def describe(self) -> str:
        graphs = ', '.join(self._graphs or {}) or 'no stage'
        mode = f', fast path: CUDA graphs for {graphs}' if self.fast else ''
        return f'{self.name} on {self.device} ({self.precision}{mode})'

    def run(self, rgb: torch.Tensor, thermal: torch.Tensor, noise_boxes: torch.Tensor, fuse: bool,
            timer: StageTimer) -> NetworkOutput:
        if self._graphs is not None:
            return self._run_fast(rgb, thermal, noise_boxes, fuse, timer)
        with torch.inference_mode(), self._autocast():
            with timer.stage('backbone'):
                feats = self.model.extract(rgb, thermal)
            fused = None
            if fuse:
                with timer.stage('fusion'):
                    fused = fused_to_rgb(self.model.fuse(rgb, thermal, feats), rgb)
            with timer.stage('head'):
                out = self.model.detect(feats, self.input_hw, noise_boxes)
        return NetworkOutput(out['pred_logits'], out['pred_boxes'], fused)

    def _autocast(self) -> torch.autocast:
        enabled = self.device.type == 'cuda' and self.precision == 'fp16'
        # CUDA graphs need autocast's weight-cast cache off (cached casts would outlive capture).
        return torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=enabled,
                              cache_enabled=not self.fast)

    # ---- fast CUDA path -------------------------------------------------------------------
    def _prepare_fast(self) -> None:
        torch.backends.cudnn.benchmark = True
        for module in self.model.modules():
            if isinstance(module, (nn.Conv2d, nn.BatchNorm2d)):
                module.half()
        self.model.to(memory_format=torch.channels_last)
        h, w = self.input_hw
        dev = self.device
        self._static_in = {
            'rgb': torch.zeros((1, 3, h, w), device=dev).to(memory_format=torch.channels_last),
            'thermal': torch.zeros((1, 1, h, w), device=dev).to(memory_format=torch.channels_last),
            'noise': torch.zeros((1, self.info.num_proposals, 4), device=dev),
        }
        self._static_out: dict[str, Any] = {}
        self._graphs = {}
        for stage in STAGES:
            self._capture(stage)

    def _stage_fn(self, stage: str) -> Callable[[], dict[str, Any]]:
        s_in, s_out = self._static_in, self._static_out
        if stage == 'backbone':
            return lambda: {'feats': self.model.extract(s_in['rgb'], s_in['thermal'])}
        if stage == 'fusion':
            return lambda: {'fused': fused_to_rgb(
                self.model.fuse(s_in['rgb'], s_in['thermal'], s_out['feats']), s_in['rgb'])}
        return lambda: self.model.detect(s_out['feats'], self.input_hw, s_in['noise'])

    def _capture(self, stage: str) -> None:
        fn = self._stage_fn(stage)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        # Warm-up on a side stream (cuDNN autotuning, lazy inits) must precede capture.
        with torch.inference_mode(), self._autocast(), torch.cuda.stream(side):
            for _ in range(3):
                self._static_out.update(fn())
        torch.cuda.current_stream(self.device).wait_stream(side)
        problem = _host_sync_problem(fn, self._autocast)
        if problem:
            LOG.warning('fast path: stage %s synchronizes with the host (%s), so it cannot be a '
                        'CUDA graph; it runs eagerly', stage, problem)
            return
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.inference_mode(), self._autocast(), torch.cuda.graph(graph):
                outputs = fn()
        except RuntimeError as exc:
            torch.cuda.synchronize(self.device)
            LOG.warning('fast path: stage %s cannot be captured in a CUDA graph (%s); it runs '
                        'eagerly', stage, exc)
            return
        self._static_out.update(outputs)
        assert self._graphs is not None  # set by _prepare_fast before any capture
        self._graphs[stage] = graph
        # Capture only records kernels: replay once so later stages warm up on real features.
        graph.replay()

    def _run_fast(self, rgb: torch.Tensor, thermal: torch.Tensor, noise_boxes: torch.Tensor,
                  fuse: bool, timer: StageTimer) -> NetworkOutput:
        s_in, s_out = self._static_in, self._static_out
        with torch.inference_mode():
            s_in['rgb'].copy_(rgb)
            s_in['thermal'].copy_(thermal)
            s_in['noise'].copy_(noise_boxes)
            for stage in STAGES:
                if stage == 'fusion' and not fuse:
                    continue
                with timer.stage(stage):
                    graph = (self._graphs or {}).get(stage)
                    if graph is not None:
                        graph.replay()
                    else:
                        with self._autocast():
                            # Later graphs read these exact tensors, so write into them.
                            for key, value in self._stage_fn(stage)().items():
                                _copy_into(s_out[key], value)
        return NetworkOutput(s_out['pred_logits'], s_out['pred_boxes'],
                             s_out['fused'] if fuse else None)


def _host_sync_problem(fn: Callable[[], object], autocast: Callable[[], ContextManager]) -> str:
    """Why ``fn`` cannot be captured ('' if it can): a stage that waits for the GPU (``nonzero``,
    ``.item()``, a blocking host-to-device copy) would abort a capture, so it is run once with
    torch's sync debug mode set to raise instead of trying a capture that fails half-way."""
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode('error')
    try:
        with torch.inference_mode(), autocast():
            fn()
        return ''
    except RuntimeError as exc:
        return str(exc).splitlines()[0]
    finally:
        torch.cuda.set_sync_debug_mode(previous)


def _copy_into(dst: torch.Tensor | tuple | list, src: torch.Tensor | tuple | list) -> None:
    if isinstance(dst, torch.Tensor) and isinstance(src, torch.Tensor):
        dst.copy_(src)
    else:
        for d, s in zip(dst, src):
            d.copy_(s)
