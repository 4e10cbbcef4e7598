"""CFDP head pieces: box deltas, level assignment, pooling paths, stage wiring, and the
sync-free (CUDA-graph capture) path of `detect()`."""
import math

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torchvision.ops import roi_align

from efficientmfd_ros.model import build_model
from efficientmfd_ros.model.config import HeadConfig
from efficientmfd_ros.model.head import CFDPHead, apply_deltas
from efficientmfd_ros.model.head_layers import (
    DynamicInteraction,
    MultiLevelRoIAlign,
    TimeEmbedding,
)

# Torch calls that wait for the device or copy host values to it: none may run during capture.
HOST_SYNC_OPS = {'nonzero', 'item', 'tolist', '__bool__', '__int__', '__float__', '__index__',
                 'new_tensor', 'tensor', 'as_tensor', 'cpu', 'numpy', 'masked_select', 'unique'}


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


def _per_level(pooler, levels, boxes):
    """torchvision's RoIAlign of each box on its own level, the reference for `stack` + forward."""
    flat = boxes.reshape(-1, 4)
    image = torch.arange(boxes.shape[0], dtype=boxes.dtype).repeat_interleave(boxes.shape[1])
    rois = torch.cat([image[:, None], flat], dim=1)
    assigned = pooler.assign_levels(flat)
    out = torch.zeros(flat.shape[0], levels[0].shape[1], pooler.output_size, pooler.output_size)
    for k, feat in zip(pooler.level_ids, levels):
        rows = assigned == k
        out[rows] = roi_align(feat, rois[rows], pooler.output_size, 1.0 / 2 ** k,
                              pooler.sampling_ratio, aligned=True)
    return out, assigned


@pytest.mark.filterwarnings('ignore')  # tracer warnings: the trace below is the point
def test_stacked_pooling_equals_per_level_pooling_for_boxes_in_the_image():
    g = torch.Generator().manual_seed(0)
    levels = [torch.randn(2, 8, 64 // 2 ** k, 96 // 2 ** k, generator=g) for k in (2, 3, 4, 5)]
    pooler = MultiLevelRoIAlign([2, 3, 4, 5], 5, 2, canonical_size=24)
    wh = torch.rand(2, 30, 2, generator=g) * torch.tensor([90.0, 60.0]) + 2
    xy = torch.rand(2, 30, 2, generator=g) * (torch.tensor([96.0, 64.0]) - wh)
    boxes = torch.cat([xy, xy + wh], dim=-1)
    stacked = pooler.stack(levels)
    assert stacked.shape == (8, 8, 16, 24)
    pooled = pooler(stacked, boxes)
    reference, assigned = _per_level(pooler, levels, boxes)
    assert len(set(assigned.tolist())) == 4
    assert pooled.shape == (60, 8, 5, 5)
    assert torch.allclose(pooled, reference, atol=1e-6)
    traced = torch.jit.trace(pooler, (stacked, boxes), check_trace=False)
    assert torch.allclose(traced(stacked, boxes), pooled)


def test_stacked_pooling_past_the_image_edge():
    levels = [torch.ones(1, 2, 16, 16), torch.ones(1, 2, 8, 8)]
    pooler = MultiLevelRoIAlign([3, 4], 2, 1, canonical_size=16)
    # A 16 px box (level 4) half past the right edge: its outer bins read past the last column.
    # Within one level pixel they read the edge (as torchvision does); a box far outside reads 0.
    boxes = torch.tensor([[[120.0, 0.0, 136.0, 16.0], [120.0, 0.0, 128.0, 8.0],
                           [400.0, 400.0, 416.0, 416.0]]])
    pooled = pooler(pooler.stack(levels), boxes)
    reference, assigned = _per_level(pooler, levels, boxes)
    assert assigned.tolist() == [4.0, 3.0, 4.0]
    assert torch.equal(pooled[:2], reference[:2])
    assert torch.equal(pooled[2], torch.zeros(2, 2, 2))


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


def test_fp16_boxes_get_the_fp32_level():
    pooler = MultiLevelRoIAlign([2, 3, 4, 5], 7, 2)
    boxes = torch.tensor([[0.0, 0.0, 300.0, 300.0], [10.0, 20.0, 310.0, 320.0],
                          [0.0, 0.0, 20.0, 20.0], [0.0, 0.0, 60.0, 1000.0]])
    half = boxes.half()
    # 300 * 300 does not fit in float16: an fp16 area would send these boxes to the top level.
    assert torch.isinf(half[0, 2] * half[0, 3])
    levels = pooler.assign_levels(half)
    assert levels.dtype == torch.float32
    assert torch.equal(levels, pooler.assign_levels(boxes))
    assert levels.tolist() == [4.0, 4.0, 2.0, 4.0]
    feats = [torch.randn(1, 4, 512 // 2 ** k, 512 // 2 ** k) for k in (2, 3, 4, 5)]
    stacked = pooler.stack(feats)
    assert torch.equal(pooler(stacked, half[None]), pooler(stacked, boxes[None]))


class _OpRecorder(TorchFunctionMode):
    """Records the name of every torch function and tensor method called inside it."""

    def __init__(self):
        super().__init__()
        self.names = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.add(getattr(func, '__name__', str(func)))
        return func(*args, **(kwargs or {}))


def _multi_step_model(cfg):
    """The tiny model with two DDIM steps and box renewal, so `detect()` runs every box
    conversion (signal -> boxes -> signal) the sampler has."""
    cfg.head.sampling_steps = 2
    cfg.head.box_renewal = True
    torch.manual_seed(0)
    return build_model(cfg).eval()


def test_detect_never_syncs_with_the_host(tiny_cfg, tiny_inputs):
    model = _multi_step_model(tiny_cfg)
    rgb, thermal = tiny_inputs
    noise = model.make_noise_boxes(2, torch.Generator().manual_seed(4))
    hw = (64, 96)
    start = model.diffusion.signal_to_boxes(noise, hw).reshape(-1, 4)
    assert len(set(model.head.stages[0].pooler.assign_levels(start).tolist())) > 1
    with torch.inference_mode():
        feats = model.extract(rgb, thermal)
        with _OpRecorder() as ops:
            model.detect(feats, hw, noise)
    # Pooling is one stacked RoIAlign however the boxes spread over the levels: no host round
    # trip, so the same code runs eagerly and inside a CUDA-graph capture.
    assert not HOST_SYNC_OPS & ops.names, HOST_SYNC_OPS & ops.names


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason='needs a CUDA device to capture detect() in a CUDA graph')
def test_detect_runs_as_a_cuda_graph(tiny_cfg, tiny_inputs):
    model = _multi_step_model(tiny_cfg).cuda()
    rgb, thermal = (x.cuda() for x in tiny_inputs)
    hw = (64, 96)
    first = model.make_noise_boxes(2, torch.Generator().manual_seed(1), device='cuda')
    second = model.make_noise_boxes(2, torch.Generator().manual_seed(2), device='cuda')
    static_noise = first.clone()
    with torch.inference_mode():
        feats = model.extract(rgb, thermal)
        expected = model.detect(feats, hw, second)
        # The torch backend's probe: a stage that syncs raises under this mode.
        previous = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode('error')
        try:
            model.detect(feats, hw, static_noise)
        finally:
            torch.cuda.set_sync_debug_mode(previous)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                model.detect(feats, hw, static_noise)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = model.detect(feats, hw, static_noise)
        static_noise.copy_(second)
        graph.replay()
        torch.cuda.synchronize()
    torch.testing.assert_close(out['pred_logits'], expected['pred_logits'], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out['pred_boxes'], expected['pred_boxes'], atol=1e-3, rtol=1e-4)
