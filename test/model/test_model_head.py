"""CFDP head pieces: box deltas, level assignment, pooling paths, stage wiring."""
import math

import pytest
import torch

from efficientmfd_ros.model.config import HeadConfig
from efficientmfd_ros.model.head import CFDPHead, apply_deltas
from efficientmfd_ros.model.head_layers import (
    DynamicInteraction,
    MultiLevelRoIAlign,
    TimeEmbedding,
)


def test_apply_deltas():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    assert torch.allclose(apply_deltas(torch.zeros(1, 4), boxes, (2, 2, 1, 1)), boxes)
    moved = apply_deltas(torch.tensor([[2.0, 0.0, math.log(2), 0.0]]), boxes, (2, 2, 1, 1))
    # dx = 2 / 2 moves the centre by one width (20 -> 40); dw = log 2 doubles the width.
    assert torch.allclose(moved, torch.tensor([[20.0, 20.0, 60.0, 60.0]]))
    huge = apply_deltas(torch.tensor([[0.0, 0.0, 100.0, 0.0]]), boxes, (2, 2, 1, 1))
    assert torch.isfinite(huge).all()


def test_level_assignment():
    pooler = MultiLevelRoIAlign([2, 3, 4, 5], 7, 2)
    side = torch.tensor([20.0, 112.0, 224.0, 500.0, 5000.0])
    boxes = torch.stack([torch.zeros(5), torch.zeros(5), side, side], dim=1)
    assert pooler.assign_levels(boxes).tolist() == [2.0, 3.0, 4.0, 5.0, 5.0]
    small = MultiLevelRoIAlign([3, 4], 7, 2, canonical_size=32)
    assert small.assign_levels(boxes[:2]).tolist() == [3.0, 4.0]


@pytest.mark.filterwarnings('ignore')  # tracer warnings: the trace below is the point
def test_eager_pooling_equals_the_static_masked_pooling():
    g = torch.Generator().manual_seed(0)
    levels = [torch.randn(2, 8, 64 // 2 ** k, 96 // 2 ** k, generator=g) for k in (2, 3, 4, 5)]
    pooler = MultiLevelRoIAlign([2, 3, 4, 5], 5, 2, canonical_size=24)
    xy = torch.rand(2, 30, 2, generator=g) * torch.tensor([80.0, 50.0])
    wh = torch.rand(2, 30, 2, generator=g) * 90 + 2
    boxes = torch.cat([xy, xy + wh], dim=-1)
    eager = pooler(levels, boxes)
    rois = torch.cat([torch.arange(2.0).repeat_interleave(30)[:, None], boxes.reshape(-1, 4)], 1)
    assigned = pooler.assign_levels(boxes.reshape(-1, 4))
    assert len(set(assigned.tolist())) == 4
    masked = sum(pooler._pool(f, rois, k) * (assigned == k).float()[:, None, None, None]
                 for k, f in zip([2, 3, 4, 5], levels))
    assert eager.shape == (60, 8, 5, 5)
    assert torch.equal(eager, masked)
    traced = torch.jit.trace(pooler, (levels, boxes), check_trace=False)
    assert torch.allclose(traced(levels, boxes), eager)


def test_dynamic_interaction_and_time_embedding_shapes():
    inter = DynamicInteraction(16, 4, 3)
    out = inter(torch.randn(5, 16), torch.randn(5, 9, 16))
    assert out.shape == (5, 16) and (out >= 0).all()
    emb = TimeEmbedding(16)(torch.tensor([0, 999]))
    assert emb.shape == (2, 64) and not torch.allclose(emb[0], emb[1])


def test_head_stages_refine_and_detach():
    cfg = HeadConfig(num_classes=3, num_proposals=6, num_stages=3, hidden_dim=16,
                     dim_feedforward=32, nheads=2, dynamic_dim=4, pooler_resolution=3)
    head = CFDPHead(cfg, [3, 4])
    levels = [torch.randn(2, 16, 8, 12, requires_grad=True), torch.randn(2, 16, 4, 6)]
    boxes = torch.tensor([[4.0, 4.0, 40.0, 30.0]]).repeat(2, 6, 1)
    outputs = head(levels, boxes, torch.tensor([10, 500]))
    assert len(outputs) == 3
    for logits, pred in outputs:
        assert logits.shape == (2, 6, 3) and pred.shape == (2, 6, 4)
    prior = -math.log((1 - cfg.prior_prob) / cfg.prior_prob)
    assert torch.allclose(head.stages[0].class_logits.bias, torch.full((3,), prior))
    # Stage 2 reads stage 1's boxes detached: its box gradient does not reach stage 1's deltas.
    outputs[1][1].sum().backward()
    assert head.stages[0].box_deltas.weight.grad is None
    assert head.stages[1].box_deltas.weight.grad is not None
