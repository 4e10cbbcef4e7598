"""The interface every inference backend implements, and what the detector knows about a model.

A backend runs the network only: preprocessing and postprocessing are shared (``preprocess.py``,
``postprocess.py``) so every backend gives the same detections for the same network outputs.
"""
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from efficientmfd_ros.runtime.timing import StageTimer

PRECISIONS = ('fp32', 'fp16')


@dataclass(frozen=True)
class ModelInfo:
    """What the runtime needs about a model, from a checkpoint or an ONNX sidecar JSON.

    input_hw: network input (h, w); num_proposals: N noise boxes per image; has_fusion: whether the
    backend can produce the fused image; normalization: mean/std applied inside the network.
    """

    class_names: tuple
    input_hw: tuple
    num_proposals: int
    has_fusion: bool
    normalization: dict
    noise_seed: int = 0


@dataclass
class NetworkOutput:
    """pred_logits ``(1, N, C)`` class logits; pred_boxes ``(1, N, 4)`` xyxy pixels of the network
    input; fused_rgb ``(1, 3, h, w)`` in [0, 1] at the network input size, or None."""

    pred_logits: torch.Tensor
    pred_boxes: torch.Tensor
    fused_rgb: torch.Tensor | None


def make_noise_boxes(num_proposals: int, seed: int,
                     device: str | torch.device = 'cpu') -> torch.Tensor:
    """The fixed initial boxes z_T ``(1, N, 4)`` float32: standard normal samples of the diffusion
    signal space (see ``model/diffusion.py``), drawn once from a CPU generator seeded with ``seed``
    so every backend, device and run starts from the same boxes."""
    generator = torch.Generator(device='cpu').manual_seed(int(seed))
    return torch.randn((1, int(num_proposals), 4), generator=generator).to(device)


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')


class Backend(ABC):
    """Runs the network on preprocessed tensors.

    Attributes: name ('torch', 'onnxruntime', 'tensorrt'), device (torch.device the inputs and
    outputs live on), precision ('fp32' | 'fp16'), info (:class:`ModelInfo`).
    """

    name: str
    device: torch.device
    precision: str
    info: ModelInfo

    @abstractmethod
    def run(self, rgb: torch.Tensor, thermal: torch.Tensor, noise_boxes: torch.Tensor, fuse: bool,
            timer: StageTimer) -> NetworkOutput:
        """rgb ``(1, 3, h, w)`` and thermal ``(1, 1, h, w)`` float32 in [0, 1] on ``device``;
        noise_boxes ``(1, N, 4)`` float32; ``timer`` a :class:`~.timing.StageTimer` to record
        stages in. The fused output is computed only when ``fuse`` (where the backend can skip
        it)."""

    def make_noise_boxes(self, seed: int) -> torch.Tensor:
        """The fixed initial boxes ``(1, N, 4)`` float32 on this backend's device."""
        return make_noise_boxes(self.info.num_proposals, seed, self.device)

    def describe(self) -> str:
        return f'{self.name} on {self.device} ({self.precision})'
