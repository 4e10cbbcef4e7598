"""CFDP detection head: a DiffusionDet-style iterative head over noised proposal boxes."""
import math
import typing

import torch
from torch import nn

from efficientmfd_ros.model.config import HeadConfig
from efficientmfd_ros.model.head_layers import (
    DynamicInteraction,
    MultiLevelRoIAlign,
    ProposalAttention,
    TimeEmbedding,
)

SCALE_CLAMP = math.log(100000.0 / 16)


def apply_deltas(deltas: torch.Tensor, boxes: torch.Tensor,
                 weights: typing.Sequence[float]) -> torch.Tensor:
    """Move `boxes (...,4)` xyxy pixels by `deltas (...,4)`: (dx, dy, dw, dh) times `weights`.

    Centres shift by dx * width, dy * height; sizes scale by exp(dw), exp(dh) (clamped).
    """
    widths = boxes[..., 2] - boxes[..., 0]
    heights = boxes[..., 3] - boxes[..., 1]
    cx = boxes[..., 0] + 0.5 * widths
    cy = boxes[..., 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dw = (deltas[..., 2] / ww).clamp(max=SCALE_CLAMP)
    dh = (deltas[..., 3] / wh).clamp(max=SCALE_CLAMP)
    cx = deltas[..., 0] / wx * widths + cx
    cy = deltas[..., 1] / wy * heights + cy
    w = torch.exp(dw) * widths
    h = torch.exp(dh) * heights
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def _tower(dim: int, layers: int) -> nn.Sequential:
    blocks = []
    for _ in range(layers):
        blocks += [nn.Linear(dim, dim, bias=False), nn.LayerNorm(dim), nn.ReLU(inplace=True)]
    return nn.Sequential(*blocks)


class HeadStage(nn.Module):
    """One refinement stage.

    `forward(stacked (MultiLevelRoIAlign.stack of the FPN maps), boxes (B,N,4) xyxy pixels,
    proposals (B,N,d) | None, time (B,4d))
    -> (logits (B,N,C), boxes (B,N,4) xyxy pixels, proposals (B,N,d))`: RoIAlign, self-attention
    among proposals, dynamic instance interaction, FFN, time scale/shift, class and box towers. The
    first stage starts its proposal features from the mean of the pooled RoI features.
    """

    def __init__(self, cfg: HeadConfig, pooler: MultiLevelRoIAlign):
        super().__init__()
        d = cfg.hidden_dim
        self.pooler = pooler
        self.bbox_weights = tuple(cfg.bbox_weights)
        self.attention = ProposalAttention(d, cfg.nheads, cfg.dropout)
        self.interaction = DynamicInteraction(d, cfg.dynamic_dim, cfg.pooler_resolution)
        self.ffn = nn.Sequential(nn.Linear(d, cfg.dim_feedforward), nn.ReLU(inplace=True),
                                 nn.Dropout(cfg.dropout), nn.Linear(cfg.dim_feedforward, d))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)
        self.time_scale_shift = nn.Sequential(nn.SiLU(), nn.Linear(4 * d, 2 * d))
        self.cls_tower = _tower(d, cfg.num_cls_layers)
        self.reg_tower = _tower(d, cfg.num_reg_layers)
        self.class_logits = nn.Linear(d, cfg.num_classes)
        self.box_deltas = nn.Linear(d, 4)

    def forward(self, stacked: torch.Tensor, boxes: torch.Tensor,
                proposals: torch.Tensor | None,
                time: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, num = boxes.shape[:2]
        rois = self.pooler(stacked, boxes)
        rois = rois.flatten(2).transpose(1, 2)
        if proposals is None:
            proposals = rois.mean(dim=1).reshape(batch, num, -1)
        proposals = self.norm1(proposals + self.drop(self.attention(proposals)))
        interacted = self.interaction(proposals.reshape(batch * num, -1), rois)
        objects = self.norm2(proposals + self.drop(interacted.reshape(batch, num, -1)))
        objects = self.norm3(objects + self.drop(self.ffn(objects)))
        scale, shift = self.time_scale_shift(time)[:, None].chunk(2, dim=-1)
        features = objects * (scale + 1) + shift
        logits = self.class_logits(self.cls_tower(features))
        deltas = self.box_deltas(self.reg_tower(features))
        return logits, apply_deltas(deltas, boxes, self.bbox_weights), objects


class CFDPHead(nn.Module):
    """`num_stages` stages refining the same N boxes; each stage reads the previous one's boxes
    (detached, as in DiffusionDet) and proposal features.

    `forward(levels [FPN maps], boxes (B,N,4) xyxy pixels, t (B,) int64 diffusion step)
    -> [(logits (B,N,C), boxes (B,N,4) xyxy pixels) per stage]`; logits are per-class sigmoid
    scores (no background class).
    """

    def __init__(self, cfg: HeadConfig, level_ids: list[int]):
        super().__init__()
        pooler = MultiLevelRoIAlign(level_ids, cfg.pooler_resolution, cfg.pooler_sampling_ratio,
                                    cfg.pooler_canonical_size)
        self.pooler = pooler  # one module, shared by the stages (it holds no parameters)
        self.time_embedding = TimeEmbedding(cfg.hidden_dim)
        self.stages = nn.ModuleList(HeadStage(cfg, pooler) for _ in range(cfg.num_stages))
        for param in self.parameters():
            if param.dim() > 1:
                nn.init.xavier_uniform_(param)
        bias = -math.log((1 - cfg.prior_prob) / cfg.prior_prob)
        for stage in typing.cast(typing.Iterable[HeadStage], self.stages):
            nn.init.constant_(stage.class_logits.bias, bias)

    def forward(self, levels: list[torch.Tensor], boxes: torch.Tensor,
                t: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        time = self.time_embedding(t)
        stacked = self.pooler.stack(levels)
        proposals = None
        outputs = []
        for stage in self.stages:
            logits, pred_boxes, proposals = stage(stacked, boxes, proposals, time)
            outputs.append((logits, pred_boxes))
            boxes = pred_boxes.detach()
        return outputs

