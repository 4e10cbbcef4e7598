"""Dynamic-k (SimOTA-style) assignment of proposals to ground truth, as DiffusionDet trains.

Per image: a cost `w_cls * focal + w_l1 * L1 + w_giou * (-GIoU)` between every proposal and
every ground-truth box, a heavy penalty for proposals whose centre is not both inside the box and
near its centre (and a heavier one for proposals near no box at all); then each ground truth
takes its `k` cheapest proposals, `k` = the integer part of the sum of its top `ota_k` IoUs (at
least 1). A proposal claimed by several boxes stays with the cheapest; a box left with none takes
the cheapest proposal that is free or whose box keeps another one, so with `N >= K` every ground
truth gets at least one proposal.
"""
from dataclasses import dataclass

import torch
from torchvision.ops import box_iou, generalized_box_iou

_OUTSIDE_CENTRE_COST = 100.0
_OUTSIDE_ALL_COST = 10000.0


@dataclass
class MatcherConfig:
    """Cost weights and the dynamic-k settings (DiffusionDet's defaults)."""

    cost_class: float = 2.0  # weight of the focal classification cost
    cost_l1: float = 5.0  # weight of the L1 cost on image-normalised xyxy boxes
    cost_giou: float = 2.0  # weight of the -GIoU cost
    focal_alpha: float = 0.25  # focal loss alpha used inside the classification cost
    focal_gamma: float = 2.0  # focal loss gamma used inside the classification cost
    ota_k: int = 5  # how many top IoUs set each ground truth's dynamic k
    center_radius: float = 2.5  # the centre prior's half-size, in units of the box's own size


def centre_prior(pred_boxes: torch.Tensor, gt_boxes: torch.Tensor, radius: float):
    """Where proposal centres fall relative to the ground truth.

    `pred_boxes (N,4)`, `gt_boxes (K,4)`, both `xyxy` pixels. Returns `(near_any (N,) bool,
    in_box_and_centre (N,K) bool)`: `near_any` is true for proposals whose centre lies inside
    some box or some box's centre region (its centre +- `radius` times its width/height).
    """
    cx = ((pred_boxes[:, 0] + pred_boxes[:, 2]) / 2)[:, None]
    cy = ((pred_boxes[:, 1] + pred_boxes[:, 3]) / 2)[:, None]
    x1, y1, x2, y2 = gt_boxes.unbind(1)
    in_box = (cx > x1) & (cx < x2) & (cy > y1) & (cy < y2)
    gx, gy = (x1 + x2) / 2, (y1 + y2) / 2
    half_w, half_h = radius * (x2 - x1), radius * (y2 - y1)
    in_centre = ((cx > gx - half_w) & (cx < gx + half_w)
                 & (cy > gy - half_h) & (cy < gy + half_h))
    return in_box.any(1) | in_centre.any(1), in_box & in_centre


class DynamicKMatcher:
    """Callable: `(pred_logits (N,C), pred_boxes (N,4), gt_labels (K,), gt_boxes (K,4), image_hw)
    -> (pred_idx (M,) int64, gt_idx (M,) int64)`.

    Boxes are `xyxy` pixels of the network input of size `image_hw = (H, W)`. Each proposal
    appears at most once in `pred_idx`; with `K = 0` both outputs are empty; with `N >= K` every
    ground-truth index appears at least once in `gt_idx`.
    """

    def __init__(self, config: MatcherConfig | None = None):
        self.config = config or MatcherConfig()

    def cost_matrix(self, pred_logits, pred_boxes, gt_labels, gt_boxes, image_hw):
        """The `(N,K)` matching cost (lower is better) and the `(N,K)` IoU matrix."""
        cfg = self.config
        prob = pred_logits.float().sigmoid()[:, gt_labels]
        neg = (1 - cfg.focal_alpha) * prob ** cfg.focal_gamma * -(1 - prob + 1e-8).log()
        pos = cfg.focal_alpha * (1 - prob) ** cfg.focal_gamma * -(prob + 1e-8).log()
        height, width = image_hw
        scale = pred_boxes.new_tensor([width, height, width, height]).float()
        pred = pred_boxes.float()
        gt = gt_boxes.float()
        cost_l1 = torch.cdist(pred / scale, gt / scale, p=1)
        cost_giou = -generalized_box_iou(pred, gt)
        near_any, in_box_and_centre = centre_prior(pred, gt, cfg.center_radius)
        cost = (cfg.cost_class * (pos - neg) + cfg.cost_l1 * cost_l1 + cfg.cost_giou * cost_giou
                + _OUTSIDE_CENTRE_COST * (~in_box_and_centre).float())
        cost = cost + _OUTSIDE_ALL_COST * (~near_any).float()[:, None]
        return cost, box_iou(pred, gt)

    @torch.no_grad()
    def __call__(self, pred_logits, pred_boxes, gt_labels, gt_boxes, image_hw):
        num_pred, num_gt = pred_boxes.shape[0], gt_boxes.shape[0]
        empty = torch.zeros(0, dtype=torch.int64, device=pred_boxes.device)
        if num_gt == 0 or num_pred == 0:
            return empty, empty.clone()
        cost, ious = self.cost_matrix(pred_logits, pred_boxes, gt_labels, gt_boxes, image_hw)
        owner = self.assign(cost, ious)
        pred_idx = torch.nonzero(owner >= 0).squeeze(1)
        return pred_idx, owner[pred_idx]

    def assign(self, cost: torch.Tensor, ious: torch.Tensor) -> torch.Tensor:
        """Owner of each proposal `(N,)` int64 (-1: background) from the `(N,K)` cost and IoU."""
        num_pred, num_gt = cost.shape
        top = torch.topk(ious, min(self.config.ota_k, num_pred), dim=0).values
        ks = top.sum(0).int().clamp(1, num_pred)
        claimed = torch.zeros_like(cost, dtype=torch.bool)
        for j in range(num_gt):
            cheapest = torch.topk(cost[:, j], int(ks[j]), largest=False).indices
            claimed[cheapest, j] = True
        masked = cost.masked_fill(~claimed, float('inf'))
        background = torch.full((num_pred,), -1, dtype=torch.int64, device=cost.device)
        owner = torch.where(claimed.any(1), masked.argmin(1), background)
        self._give_every_gt_one(owner, cost)
        return owner

    @staticmethod
    def _give_every_gt_one(owner: torch.Tensor, cost: torch.Tensor) -> None:
        """In place: each ground truth without a proposal takes the cheapest free or spare one."""
        num_gt = cost.shape[1]
        counts = torch.bincount(owner[owner >= 0], minlength=num_gt)
        orphans = torch.nonzero(counts == 0).squeeze(1)
        if orphans.numel() == 0:
            return
        # Serve the orphans that have a clear favourite first, so they get it.
        order = orphans[cost[:, orphans].min(0).values.argsort()]
        for j in order.tolist():
            spare = (owner < 0) | (counts[owner.clamp(min=0)] > 1)
            if not spare.any():
                break
            i = int(cost[:, j].masked_fill(~spare, float('inf')).argmin())
            if owner[i] >= 0:
                counts[owner[i]] -= 1
            owner[i] = j
            counts[j] += 1
