"""The DiffusionDet set criterion: sigmoid focal classification, L1 and GIoU box losses.

`cls_loss: quality_focal` replaces the focal loss's 0/1 class target of a matched proposal by
the IoU of its (detached) box with its ground truth (the quality focal loss of Generalized Focal
Loss, Li et al. 2020), so a score estimates how well its box sits and ranks boxes by it.

Each head stage (the final one and every `aux_outputs` entry) is matched to the ground truth on
its own by the dynamic-k matcher and contributes the same weighted sum (deep supervision).

Normalisation: the classification loss is summed over all proposals and classes and divided by
the number of ground-truth boxes in the batch (averaged over DDP ranks, at least 1), as in
DETR/DiffusionDet; the L1 and GIoU losses are averaged over the matched (proposal, box) pairs,
since dynamic-k gives a box several proposals. Images without boxes are valid: all their
proposals learn "background".
"""
from dataclasses import dataclass

import torch
from torch import nn
import torch.distributed as dist
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from efficientmfd_ros.train.matcher import DynamicKMatcher, MatcherConfig


@dataclass
class DetectionLossConfig:
    """Loss weights (paper/DiffusionDet: class 2, L1 5, GIoU 2) and focal parameters."""

    weight_class: float = 2.0  # weight of the focal classification loss
    weight_l1: float = 5.0  # weight of the L1 loss on image-normalised xyxy boxes
    weight_giou: float = 2.0  # weight of the GIoU loss
    focal_alpha: float = 0.25  # focal loss alpha
    focal_gamma: float = 2.0  # focal loss gamma
    cls_loss: str = 'focal'  # 'focal' (0/1 targets) or 'quality_focal' (IoU targets, module doc)
    quality_beta: float = 2.0  # exponent of |target - score| in the quality focal loss
    ota_k: int = 5  # dynamic-k: top IoUs summed per ground truth
    deep_supervision: bool = True  # also supervise every earlier head stage


CLS_LOSSES = ('focal', 'quality_focal')


def check_detection_loss_config(cfg: DetectionLossConfig) -> str | None:
    """The first problem with `cfg` as a message, or None."""
    if cfg.cls_loss not in CLS_LOSSES:
        return f'loss.detection.cls_loss must be one of {CLS_LOSSES}, got {cfg.cls_loss!r}'
    if not cfg.quality_beta > 0:
        return f'loss.detection.quality_beta must be > 0, got {cfg.quality_beta}'
    return None


def paired_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU `(M,)` of row i of `a (M,4)` with row i of `b (M,4)`, both xyxy; 0 for empty unions."""
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(1)
    union = area_a + area_b - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def quality_focal_loss(logits: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    """Elementwise `BCE(sigmoid(logits), target) * |target - sigmoid(logits)|**beta`, any shape;
    `target` in [0, 1] (0 for background). Its minimum over the logit is at score == target."""
    score = logits.sigmoid()
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction='none')
    return bce * (target - score).abs().pow(beta)


def num_boxes_per_rank(targets, device) -> float:
    """Ground-truth boxes of `targets`, averaged over DDP ranks (a collective: every rank must
    call it), at least 1."""
    count = torch.tensor(float(sum(len(t['labels']) for t in targets)), device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(count)
        count = count / dist.get_world_size()
    return max(float(count), 1.0)


class DetectionLoss(nn.Module):
    """`forward(outputs, targets, image_hw) -> (total scalar, parts dict of detached scalars)`.

    `outputs`: `dict(pred_logits (B,N,C), pred_boxes (B,N,4) xyxy pixels of the network input,
    aux_outputs=[dict(pred_logits, pred_boxes), ...])`; `targets`: `B` dicts of `labels (K,) int64`
    and `boxes (K,4) float32 xyxy pixels`; `image_hw`: the network input's `(H, W)`;
    `num_boxes`: the classification normaliser, by default `num_boxes_per_rank(targets)` (under
    DDP a collective: a rank that may skip this loss computes it itself on every step).
    Parts: `cls`, `l1`, `giou` summed over stages (unweighted), and `matched` (final stage pairs).
    """

    def __init__(self, num_classes: int, config: DetectionLossConfig | None = None):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f'DetectionLoss needs num_classes >= 1, got {num_classes}')
        self.num_classes = num_classes
        self.config = config or DetectionLossConfig()
        cfg = self.config
        problem = check_detection_loss_config(cfg)
        if problem:
            raise ValueError(problem)
        self.matcher = DynamicKMatcher(MatcherConfig(
            cost_class=cfg.weight_class, cost_l1=cfg.weight_l1, cost_giou=cfg.weight_giou,
            focal_alpha=cfg.focal_alpha, focal_gamma=cfg.focal_gamma, ota_k=cfg.ota_k))

    def _check(self, outputs, targets):
        logits = outputs['pred_logits']
        if logits.dim() != 3 or logits.shape[-1] != self.num_classes:
            raise ValueError(f'pred_logits must be (B,N,{self.num_classes}), '
                             f'got {tuple(logits.shape)}')
        if len(targets) != logits.shape[0]:
            raise ValueError(f'{len(targets)} targets for a batch of {logits.shape[0]}')
        for t in targets:
            labels = t['labels']
            if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
                raise ValueError(f'target labels must lie in [0, {self.num_classes}), got '
                                 f'{labels.tolist()}')
            if t['boxes'].shape != (len(labels), 4):
                raise ValueError(f'target boxes must be ({len(labels)},4), got '
                                 f'{tuple(t["boxes"].shape)}')

    def stage_loss(self, logits, boxes, targets, image_hw, num_boxes):
        """Unweighted `(cls, l1, giou, pairs)` of one stage: `logits (B,N,C)`, `boxes (B,N,4)`."""
        logits = logits.float()
        boxes = boxes.float()
        height, width = image_hw
        scale = boxes.new_tensor([width, height, width, height])
        cls_target = torch.zeros_like(logits)
        pred_sel, gt_sel = [], []
        for b, target in enumerate(targets):
            gt_boxes = target['boxes'].to(boxes)
            gt_labels = target['labels'].to(logits.device)
            pred_idx, gt_idx = self.matcher(logits[b].detach(), boxes[b].detach(), gt_labels,
                                            gt_boxes, image_hw)
            pred_sel.append(boxes[b, pred_idx])
            gt_sel.append(gt_boxes[gt_idx])
            if self.config.cls_loss == 'quality_focal':
                quality = paired_iou(pred_sel[-1].detach(), gt_sel[-1]).to(cls_target)
            else:
                quality = 1.0
            cls_target[b, pred_idx, gt_labels[gt_idx]] = quality
        cfg = self.config
        if cfg.cls_loss == 'quality_focal':
            cls = quality_focal_loss(logits, cls_target, cfg.quality_beta).sum() / num_boxes
        else:
            cls = sigmoid_focal_loss(logits, cls_target, cfg.focal_alpha, cfg.focal_gamma,
                                     reduction='sum') / num_boxes
        pred = torch.cat(pred_sel)
        gt = torch.cat(gt_sel)
        if len(pred) == 0:
            # Keeps the box head in the graph, so DDP and autograd.grad see a (zero) gradient.
            zero = boxes.sum() * 0
            return cls, zero, zero, 0
        l1 = (pred / scale - gt / scale).abs().sum(1).mean()
        giou = generalized_box_iou_loss(pred, gt, reduction='mean')
        return cls, l1, giou, len(pred)

    def forward(self, outputs, targets, image_hw, num_boxes=None):
        self._check(outputs, targets)
        if num_boxes is None:
            num_boxes = num_boxes_per_rank(targets, outputs['pred_logits'].device)
        stages = [outputs]
        if self.config.deep_supervision:
            stages += list(outputs.get('aux_outputs', []))
        cfg = self.config
        total = outputs['pred_logits'].new_zeros((), dtype=torch.float32)
        parts = {'cls': total.detach(), 'l1': total.detach(), 'giou': total.detach()}
        for i, stage in enumerate(stages):
            cls, l1, giou, pairs = self.stage_loss(stage['pred_logits'], stage['pred_boxes'],
                                                   targets, image_hw, num_boxes)
            total = total + cfg.weight_class * cls + cfg.weight_l1 * l1 + cfg.weight_giou * giou
            parts['cls'] = parts['cls'] + cls.detach()
            parts['l1'] = parts['l1'] + l1.detach()
            parts['giou'] = parts['giou'] + giou.detach()
            if i == 0:
                parts['matched'] = torch.tensor(float(pairs))
        return total, parts
