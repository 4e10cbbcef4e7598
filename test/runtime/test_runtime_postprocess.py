"""Postprocessing: sigmoid top-k over proposals x classes, threshold, class-aware NMS, the
detection cap, undoing the input transform, and the fused image's way back to the RGB size."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from efficientmfd_ros.model.color import rgb_to_luma
from efficientmfd_ros.runtime.postprocess import (
    PostprocessConfig,
    decode,
    fused_to_image,
    restore_detail,
)
from efficientmfd_ros.runtime.preprocess import compute_transform

IDENTITY = compute_transform((100, 100), (100, 100), letterbox=False)


def logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def outputs(rows):
    """rows: (box xyxy, [per-class probability]) -> (logits (1,N,C), boxes (1,N,4))."""
    boxes = torch.tensor([[list(b) for b, _ in rows]], dtype=torch.float32)
    logits = torch.tensor([[[logit(p) for p in probs] for _, probs in rows]])
    return logits, boxes


def test_outputs_are_numpy_with_the_documented_dtypes():
    logits, boxes = outputs([((10, 10, 50, 50), [0.9, 0.1])])
    b, s, lab = decode(logits, boxes, IDENTITY, PostprocessConfig(0.5, 0.5, 10))
    assert b.dtype == np.float32 and b.shape == (1, 4)
    assert s.dtype == np.float32 and lab.dtype == np.int64
    np.testing.assert_allclose(b, [[10, 10, 50, 50]])
    assert s[0] == pytest.approx(0.9) and lab[0] == 0


def test_score_threshold_drops_low_scores_and_keeps_equal_ones():
    logits, boxes = outputs([((0, 0, 10, 10), [0.3, 0.01]), ((50, 50, 60, 60), [0.29, 0.01])])
    _, s, _ = decode(logits, boxes, IDENTITY, PostprocessConfig(0.3, 0.5, 10))
    assert s.tolist() == pytest.approx([0.3], abs=1e-6)


def test_nms_is_class_aware():
    same = [((10, 10, 50, 50), [0.9, 0.0]), ((12, 12, 52, 52), [0.8, 0.0])]
    _, s, lab = decode(*outputs(same), IDENTITY, PostprocessConfig(0.1, 0.5, 10))
    assert s.tolist() == pytest.approx([0.9]) and lab.tolist() == [0]
    other = [((10, 10, 50, 50), [0.9, 0.0]), ((12, 12, 52, 52), [0.0, 0.8])]
    _, s, lab = decode(*outputs(other), IDENTITY, PostprocessConfig(0.1, 0.5, 10))
    assert s.tolist() == pytest.approx([0.9, 0.8]) and lab.tolist() == [0, 1]


def test_one_proposal_can_yield_several_classes():
    logits, boxes = outputs([((10, 10, 50, 50), [0.9, 0.7]), ((70, 70, 90, 90), [0.01, 0.01])])
    b, s, lab = decode(logits, boxes, IDENTITY, PostprocessConfig(0.5, 0.5, 10))
    assert lab.tolist() == [0, 1] and s.tolist() == pytest.approx([0.9, 0.7])
    np.testing.assert_allclose(b, [[10, 10, 50, 50]] * 2)


def test_top_k_keeps_at_most_n_candidates_of_n_times_c():
    # 2 proposals x 2 classes all above threshold, far apart: only the best N = 2 pairs survive.
    rows = [((0, 0, 10, 10), [0.9, 0.8]), ((50, 50, 60, 60), [0.7, 0.6])]
    _, s, _ = decode(*outputs(rows), IDENTITY, PostprocessConfig(0.1, 0.5, 10))
    assert s.tolist() == pytest.approx([0.9, 0.8])


def test_max_detections_caps_after_nms_in_score_order():
    rows = [((i * 10, 0, i * 10 + 5, 5), [0.5 + i * 0.01, 0.0]) for i in range(8)]
    _, s, _ = decode(*outputs(rows), IDENTITY, PostprocessConfig(0.1, 0.5, 3))
    assert s.tolist() == pytest.approx([0.57, 0.56, 0.55])


def test_boxes_are_mapped_back_through_the_letterbox_and_clamped():
    tf = compute_transform((100, 200), (64, 64), letterbox=True)  # scale 0.32, pad_y 16
    rows = [((3.2, 19.2, 32.0, 32.0), [0.9, 0.0]), ((-5.0, 10.0, 70.0, 40.0), [0.0, 0.8])]
    b, _, lab = decode(*outputs(rows), tf, PostprocessConfig(0.1, 0.5, 10))
    np.testing.assert_allclose(b[lab == 0], [[10, 10, 100, 50]], atol=1e-4)
    np.testing.assert_allclose(b[lab == 1], [[0, 0, 200, 75]], atol=1e-4)


def test_boxes_entirely_in_the_letterbox_padding_are_dropped():
    tf = compute_transform((100, 200), (64, 64), letterbox=True)
    rows = [((5.0, 2.0, 20.0, 12.0), [0.9, 0.0])]  # rows 0..16 are padding
    b, s, _ = decode(*outputs(rows), tf, PostprocessConfig(0.1, 0.5, 10))
    assert b.shape == (0, 4) and s.shape == (0,)


def test_nothing_above_threshold_gives_empty_arrays():
    b, s, lab = decode(*outputs([((0, 0, 5, 5), [0.1, 0.1])]), IDENTITY,
                     PostprocessConfig(0.5, 0.5, 10))
    assert b.shape == (0, 4) and s.shape == (0,) and lab.shape == (0,) and lab.dtype == np.int64


@pytest.mark.parametrize('kwargs', [{'score_threshold': 1.5}, {'score_threshold': -0.1},
                                    {'nms_iou': 0.0}, {'nms_iou': 1.2},
                                    {'max_detections': 0}, {'max_detections': 2.5},
                                    {'max_detections': True}])
def test_invalid_thresholds_are_rejected(kwargs):
    with pytest.raises(ValueError):
        PostprocessConfig(**kwargs)


def test_fused_image_is_cropped_and_resized_to_the_rgb_size():
    tf = compute_transform((100, 200), (64, 64), letterbox=True)
    fused = torch.zeros(1, 3, 64, 64)
    fused[:, :, 16:48, :] = 0.5  # the content
    fused[:, 0, 16:48, :32] = 1.0  # left half of the content is red
    image = fused_to_image(fused, tf)
    assert image.dtype == torch.uint8 and tuple(image.shape) == (100, 200, 3)
    assert int(image[50, 20, 0]) == 255 and int(image[50, 180, 0]) == 128
    assert int(image[0, 100, 1]) == 128 and int(image[99, 100, 2]) == 128


def test_restore_detail_gives_back_a_full_resolution_image_that_both_cameras_show():
    """Grey scene seen by both cameras, fused as itself at the network size: the full-resolution
    result is the scene, edges included, where a plain resize blurs them."""
    gen = torch.Generator().manual_seed(0)
    scene = torch.rand(1, 1, 90, 120, generator=gen)
    tf = compute_transform((90, 120), (32, 40), letterbox=False)
    small = F.interpolate(scene, size=(32, 40), mode='bilinear', align_corners=False)
    fused = small.expand(-1, 3, -1, -1)
    rgb = scene.expand(-1, 3, -1, -1)
    restored = restore_detail(fused, rgb, scene)
    torch.testing.assert_close(restored, rgb, atol=1e-5, rtol=0)
    image = fused_to_image(fused, tf, lambda: (rgb, scene))
    want = scene[0, 0].mul(255).round().to(torch.uint8)
    assert (image[..., 0].int() - want.int()).abs().max() <= 1
    resized = fused_to_image(fused, tf)
    assert (resized[..., 0].int() - want.int()).abs().float().mean() > 5


def test_restore_detail_keeps_the_stronger_camera_detail_and_rgb_chroma():
    rgb = torch.zeros(1, 3, 64, 64)
    rgb[:, 0] = 0.3  # a flat reddish scene
    thermal = torch.full((1, 1, 64, 64), 0.2)
    thermal[..., ::2, :] = 0.8  # fine stripes only the thermal camera sees
    small_t = F.interpolate(thermal, size=(16, 16), mode='bilinear', align_corners=False)
    # a network that returned the thermal image, coloured like the RGB one
    rgb_small = F.interpolate(rgb, size=(16, 16), mode='bilinear', align_corners=False)
    fused = (rgb_small + (small_t - rgb_to_luma(rgb_small))).clamp(0, 1)
    restored = restore_detail(fused, rgb, thermal)
    luma = rgb_to_luma(restored)
    assert (luma[..., 0::2, :].mean() - luma[..., 1::2, :].mean()).item() > 0.4
    # chroma: red minus green is the RGB input's wherever nothing clipped
    ok = (restored > 0).all(dim=1) & (restored < 1).all(dim=1)
    diff = (restored[:, 0] - restored[:, 1])[ok]
    torch.testing.assert_close(diff, torch.full_like(diff, 0.3), atol=1e-5, rtol=0)
