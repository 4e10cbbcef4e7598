"""FusionDetector: one call from camera images to the fused image and detections.

``infer`` = shared preprocessing on the device -> backend network -> shared postprocessing. The
initial diffusion boxes are drawn once, at load, from a generator seeded with ``noise_seed`` and
reused for every frame, so the same input always gives the same detections.
"""
from dataclasses import dataclass, field, replace
import logging
from pathlib import Path
import time
import typing

import numpy as np
import torch

from efficientmfd_ros.runtime.backend_base import Backend
from efficientmfd_ros.runtime.postprocess import PostprocessConfig, decode, fused_to_image
from efficientmfd_ros.runtime.preprocess import PreprocessConfig, Preprocessor
from efficientmfd_ros.runtime.selection import (
    BackendRequest,
    check_input_size,
    check_num_proposals,
    create_backend,
)
from efficientmfd_ros.runtime.timing import StageTimer

LOG = logging.getLogger('efficientmfd_ros.runtime')


@dataclass
class Detections:
    """One frame's result.

    boxes float32 ``(K, 4)`` xyxy pixels of the RGB image; scores float32 ``(K,)`` descending;
    labels int64 ``(K,)`` 0-based indices into ``class_names``; fused uint8 ``(H, W, 3)`` RGB at
    the RGB image's size, or None; timings_ms: milliseconds per stage (``preprocess``,
    ``backbone``, ``fusion``, ``head`` for torch or ``network`` for ONNX backends, ``postprocess``,
    ``total``).
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    fused: np.ndarray | None = None
    timings_ms: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.scores.shape[0])


class FusionDetector:
    """Runs one backend with shared pre/post-processing; build it with :func:`load_detector`."""

    def __init__(self, backend: Backend, preprocess: PreprocessConfig,
                 postprocess: PostprocessConfig, noise_seed: int | None = None,
                 notes: typing.Iterable[str] = ()) -> None:
        self.backend = backend
        self._pre = Preprocessor(preprocess, backend.device)
        self._post = postprocess
        self.noise_seed = backend.info.noise_seed if noise_seed is None else int(noise_seed)
        self._noise = backend.make_noise_boxes(self.noise_seed)
        self.selection_notes = list(notes)
        self._timings: dict = {}
        self._host: dict = {}
        self._warned_no_fusion = False

    @property
    def class_names(self) -> tuple:
        return tuple(self.backend.info.class_names)

    @property
    def input_size(self) -> tuple:
        """Network input ``(h, w)``."""
        return tuple(self.backend.info.input_hw)

    @property
    def num_proposals(self) -> int:
        """Noise boxes the head refines per pair."""
        return int(self.backend.info.num_proposals)

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def device(self) -> torch.device:
        return self.backend.device

    @property
    def precision(self) -> str:
        return self.backend.precision

    @property
    def has_fusion(self) -> bool:
        return bool(self.backend.info.has_fusion)

    @property
    def thresholds(self) -> PostprocessConfig:
        return self._post

    @property
    def timings_ms(self) -> dict:
        """Stage timings of the last ``infer`` call."""
        return dict(self._timings)

    def describe(self) -> str:
        return self.backend.describe()

    def set_thresholds(self, score: float | None = None, nms_iou: float | None = None,
                       max_detections: int | None = None,
                       score_threshold: float | None = None) -> None:
        """Change postprocessing at run time (``score_threshold`` is an alias of ``score``);
        ValueError, with nothing changed, for an invalid value."""
        score = score_threshold if score_threshold is not None else score
        changes: dict[str, typing.Any] = {
            k: v for k, v in (('score_threshold', score), ('nms_iou', nms_iou),
                              ('max_detections', max_detections)) if v is not None}
        self._post = replace(self._post, **changes)

    def infer(self, rgb: np.ndarray, thermal: np.ndarray, fuse: bool = True) -> Detections:
        """``rgb`` uint8 ``(H, W, 3)`` RGB order; ``thermal`` uint8/uint16 ``(H_t, W_t)``.

        Raises InputError for a wrong dtype, channel count or an empty image. ``fuse=False`` skips
        the fusion decoder where the backend can (torch) and returns ``fused=None``.
        """
        t0 = time.perf_counter()
        timer = StageTimer(self.device)
        with timer.stage('preprocess'):
            rgb_t, thermal_t, transform = self._pre(rgb, thermal)
        want_fused = fuse and self._fusion_available()
        out = self.backend.run(rgb_t, thermal_t, self._noise, want_fused, timer)
        with timer.stage('postprocess'):
            boxes, scores, labels = decode(out.pred_logits, out.pred_boxes, transform, self._post)
            fused = None
            if want_fused and out.fused_rgb is not None:
                fused = self._to_host(fused_to_image(out.fused_rgb, transform,
                                                     self._pre.full_resolution))
        timings = timer.result_ms()
        timings['total'] = (time.perf_counter() - t0) * 1e3
        self._timings = timings
        return Detections(boxes, scores, labels, fused, dict(timings))

    def warmup(self, frames: int = 2) -> None:
        """Run ``frames`` blank frames (cuDNN autotuning, lazy initialization) before real work,
        through both paths a node takes: with the fused image and, where the model fuses,
        without it (a fusion-free graph or session has its own first-run cost)."""
        h, w = self.input_size
        rgb, thermal = np.zeros((h, w, 3), np.uint8), np.zeros((h, w), np.uint8)
        for _ in range(frames):
            self.infer(rgb, thermal, fuse=self.has_fusion)
            if self.has_fusion:
                self.infer(rgb, thermal, fuse=False)

    def _fusion_available(self) -> bool:
        if self.has_fusion:
            return True
        if not self._warned_no_fusion:
            LOG.warning('%s was exported without fusion: no fused image', self.describe())
            self._warned_no_fusion = True
        return False

    def _to_host(self, image: torch.Tensor) -> np.ndarray:
        if image.device.type != 'cuda':
            return image.numpy()
        key = tuple(image.shape)
        host = self._host.get(key)
        if host is None:
            host = torch.empty(image.shape, dtype=image.dtype, pin_memory=True)
            self._host = {key: host}
        host.copy_(image, non_blocking=True)
        torch.cuda.current_stream(image.device).synchronize()
        # A copy: the pinned buffer is overwritten by the next frame.
        return host.numpy().copy()


def load_detector(weights: str | Path, backend: str = 'torch', device: str = 'cpu',
                  precision: str = 'fp32', score_threshold: float = 0.3, nms_iou: float = 0.5,
                  max_detections: int = 100,
                  thermal_range: typing.Sequence[float] = (0, 65535),
                  homography: typing.Any = None, letterbox: bool = False,
                  noise_seed: int | None = None,
                  input_size: typing.Sequence[int] | None = None, fast: bool = False,
                  build_engine_if_missing: bool = False,
                  engine_cache_dir: str | None = None,
                  onnx_cache_dir: str | None = None,
                  cpu_threads: int | None = None,
                  num_proposals: int | None = None) -> FusionDetector:
    """Build a detector from a checkpoint (``.pt``; or an exported ``.onnx`` for ONNX backends).

    backend: 'torch' | 'onnxruntime' | 'tensorrt' | 'auto' (tensorrt, then onnxruntime, then torch;
    the reasons for skipping are logged and kept in ``selection_notes``). device: 'cpu' | 'cuda' |
    'cuda:N'. precision: 'fp32' | 'fp16' (CUDA). thermal_range: uint16 values mapped to [0, 1].
    homography: 3x3 thermal -> RGB pixel mapping (see ``preprocess.py``). noise_seed: seed of the
    fixed initial boxes (None: the model's ``head.noise_seed``). input_size: ``(h, w)`` of the
    network input, multiples of 32 (None: the checkpoint's; ONNX backends need the exported size).
    fast: torch's CUDA-graph path (CUDA only). build_engine_if_missing: let the tensorrt backend
    build a missing engine (minutes) instead of failing; engine_cache_dir: where engines live
    (default ``~/.cache/efficientmfd_ros/engines``); onnx_cache_dir: where onnxruntime on a CPU
    keeps the export it makes on first use (default ``~/.cache/efficientmfd_ros/onnx``).
    cpu_threads: intra-op threads on a CPU (0: every CPU this process may use; None: torch keeps
    its process-wide setting, onnxruntime uses every usable CPU); never spin-waiting.
    num_proposals: noise boxes the head refines per image, 1-1000 (None: the checkpoint's); more
    find more objects at a head cost that grows with them (models/README.md). ONNX files have the
    count fixed: a cached export is made per count, a given one must match.
    """
    post = PostprocessConfig(score_threshold, nms_iou, max_detections)
    lo, hi = (float(v) for v in thermal_range)
    thermal_span = (lo, hi)
    # Validate the preprocessing options before the (slow) backend creation.
    PreprocessConfig((1, 1), bool(letterbox), thermal_span, homography)
    request = BackendRequest(Path(weights), str(device), precision, bool(fast),
                             bool(build_engine_if_missing), engine_cache_dir,
                             check_input_size(input_size), onnx_cache_dir=onnx_cache_dir,
                             cpu_threads=cpu_threads,
                             num_proposals=check_num_proposals(num_proposals))
    chosen, notes = create_backend(request, backend)
    pre = PreprocessConfig(tuple(chosen.info.input_hw), bool(letterbox), thermal_span, homography)
    return FusionDetector(chosen, pre, post, noise_seed, notes)
