"""Network outputs -> detections in RGB-image pixels; shared by every backend.

Decoding follows DiffusionDet's focal-loss head: every (proposal, class) pair is a candidate scored
by ``sigmoid(logit)``; the top ``N`` of the ``N * C`` candidates are kept, then the score
threshold, class-aware NMS and the detection cap apply. Boxes are mapped back through the input
transform (undoing the resize or letterbox) and clamped to the image; boxes left with no area are
dropped.
"""
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms

from efficientmfd_ros.model.color import fused_to_rgb, rgb_to_luma
from efficientmfd_ros.model.pyramid import choose_max_abs
from efficientmfd_ros.runtime.preprocess import InputTransform


@dataclass(frozen=True)
class PostprocessConfig:
    """score_threshold in [0, 1] (kept if score >= it); nms_iou in (0, 1]; max_detections >= 1."""

    score_threshold: float = 0.3
    nms_iou: float = 0.5
    max_detections: int = 100

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.score_threshold) <= 1.0:
            raise ValueError(f'score_threshold must be in [0, 1], got {self.score_threshold}')
        if not 0.0 < float(self.nms_iou) <= 1.0:
            raise ValueError(f'nms_iou must be in (0, 1], got {self.nms_iou}')
        count = self.max_detections
        if isinstance(count, bool) or int(count) != count or int(count) < 1:
            raise ValueError(f'max_detections must be an integer >= 1, got {self.max_detections}')


def decode(pred_logits: torch.Tensor, pred_boxes: torch.Tensor, transform: InputTransform,
           cfg: PostprocessConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections of one image as numpy arrays.

    Args:
        pred_logits: ``(N, C)`` or ``(1, N, C)`` class logits (any float dtype, any device).
        pred_boxes: ``(N, 4)`` or ``(1, N, 4)`` xyxy pixels of the network input.
        transform: how the RGB image became the network input.
    Returns:
        boxes float32 ``(K, 4)`` xyxy RGB-image pixels, scores float32 ``(K,)`` sorted descending,
        labels int64 ``(K,)`` 0-based class indices.
    """
    logits = pred_logits.reshape(-1, pred_logits.shape[-1]).float()
    boxes_in = pred_boxes.reshape(-1, 4).float()
    num, num_classes = logits.shape
    if num == 0 or num_classes == 0:
        return _empty()
    scores_all = torch.sigmoid(logits).flatten()
    scores, flat_idx = scores_all.topk(min(num, scores_all.numel()), sorted=True)
    labels = flat_idx % num_classes
    boxes = transform.boxes_to_image(boxes_in[flat_idx // num_classes])
    keep = scores >= cfg.score_threshold
    keep &= (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = batched_nms(boxes, scores, labels, float(cfg.nms_iou))[: int(cfg.max_detections)]
    return (boxes[keep].cpu().numpy().astype(np.float32),
            scores[keep].cpu().numpy().astype(np.float32),
            labels[keep].cpu().numpy().astype(np.int64))


def fused_to_image(fused_rgb: torch.Tensor, transform: InputTransform,
                   sources: Callable[[], tuple[torch.Tensor, torch.Tensor]] | None = None
                   ) -> torch.Tensor:
    """Fused ``(1, 3, h, w)`` float in [0, 1] at the network input -> uint8 ``(H, W, 3)`` at the
    RGB image's size, on the same device (letterbox padding cropped off).

    Without ``sources`` the fused image is resized bilinearly. ``sources`` is called, only when the
    sizes differ, for ``(rgb (1,3,H,W), thermal (1,1,H,W))`` in [0, 1] on the RGB image's grid
    (``Preprocessor.full_resolution``); the detail that the network input's resampling removed is
    then put back (``restore_detail``).
    """
    py, px = transform.pad_y, transform.pad_x
    c_h, c_w = transform.content_hw
    image = fused_rgb[:, :, py:py + c_h, px:px + c_w].float()
    if (c_h, c_w) != tuple(transform.image_hw):
        if sources is None:
            image = F.interpolate(image, size=transform.image_hw, mode='bilinear',
                                  align_corners=False)
        else:
            rgb, thermal = sources()
            image = restore_detail(image, rgb.float(), thermal.float())
    image = image[0].clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    return image.permute(1, 2, 0).contiguous()


def restore_detail(fused_rgb: torch.Tensor, rgb: torch.Tensor,
                   thermal: torch.Tensor) -> torch.Tensor:
    """Full-resolution fused image `(1,3,H,W)` in [0,1] from the network's `(1,3,h,w)` one.

    The network sees the cameras resampled to its input size, so its fused luminance lacks the
    detail `d(z) = z - up(down(z))` of each full-resolution source `z` (down: the preprocessing's
    bilinear resize to `(h, w)`; up: bilinear back to `(H, W)`). The result's luminance is
    `up(Y_fused) + choose_max_abs(d(Y_rgb), d(thermal))`, one more Laplacian-pyramid level at the
    cameras' resolution, coloured with the full-resolution RGB chroma. When both cameras show
    one grey image and the network returns it, the result is that image at full resolution.
    """
    size, small = tuple(rgb.shape[-2:]), tuple(fused_rgb.shape[-2:])
    luma = rgb_to_luma(rgb)
    sources = torch.cat([luma, thermal], dim=0)
    coarse = F.interpolate(sources, size=small, mode='bilinear', align_corners=False)
    lost = sources.sub_(F.interpolate(coarse, size=size, mode='bilinear', align_corners=False))
    detail = choose_max_abs(lost[:1], lost[1:])
    fused_y = F.interpolate(rgb_to_luma(fused_rgb), size=size, mode='bilinear',
                            align_corners=False)
    return fused_to_rgb(fused_y.add_(detail).clamp_(0.0, 1.0), rgb, rgb_luma=luma)


def _empty() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64))
