"""Fusion metrics against hand-made cases with known answers."""
import math

import cv2
import numpy as np
import pytest

from efficientmfd_ros.core import metrics_fusion as mf


def _texture(rng, shape=(96, 112)):
    noise = rng.uniform(0, 255, size=shape).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255.0
    return np.round(smooth).astype(np.uint8)


def _half_half(shape=(96, 96), axis=1, levels=(0, 255)):
    img = np.full(shape, levels[0], np.uint8)
    if axis == 1:
        img[:, shape[1] // 2:] = levels[1]
    else:
        img[shape[0] // 2:, :] = levels[1]
    return img


# Q^AB/F of a perfectly preserved edge: strength and orientation preservation both 1
Q_PERFECT = (0.9994 / (1 + math.exp(-15 * 0.5))) * (0.9879 / (1 + math.exp(-22 * 0.2)))


def test_fusion_metrics_returns_exactly_the_declared_keys():
    rng = np.random.default_rng(0)
    vis, ir = (rng.integers(0, 256, (96, 96), dtype=np.uint8) for _ in range(2))
    assert tuple(mf.fusion_metrics(vis, ir, np.maximum(vis, ir))) == mf.ALL_KEYS
    assert mf.ALL_KEYS == mf.STANDARD_KEYS + mf.PAPER_KEYS


def test_entropy_of_two_and_four_level_images():
    assert mf.en(_half_half()) == pytest.approx(1.0)
    four = np.repeat(np.array([[0, 60, 120, 250]], np.uint8), 8, axis=0)
    assert mf.en(four) == pytest.approx(2.0)
    assert mf.en(np.full((20, 20), 7, np.uint8)) == 0.0


def test_sd_of_known_array():
    assert mf.sd(np.array([[0, 2], [4, 6]], np.uint8)) == pytest.approx(math.sqrt(5.0))


def test_spatial_frequency_known_cases():
    assert mf.sf(np.full((16, 16), 99, np.uint8)) == 0.0
    ramp = np.tile(np.arange(0, 160, 10, dtype=np.uint8), (12, 1))
    assert mf.sf(ramp) == pytest.approx(10.0)
    checker = ((np.indices((10, 10)).sum(axis=0) % 2) * 50).astype(np.uint8)
    assert mf.sf(checker) == pytest.approx(50.0 * math.sqrt(2.0))


def test_mutual_information_identical_and_independent():
    img = _half_half()
    e = mf.en(img)
    assert mf.mi(img, img, img) == pytest.approx(2 * e)
    assert mf.paper_mi(img, img, img) == pytest.approx(2 * e)
    # a vertical split and a horizontal split are statistically independent: MI 0, H(x,u) 2 bits
    u = _half_half(axis=0)
    flat = np.full_like(img, 30)
    assert mf.mi(img, flat, u) == pytest.approx(0.0, abs=1e-12)
    assert mf.paper_mi(img, flat, u) == pytest.approx(2.0 + 1.0)


def test_ssim_identical_is_two_and_constant_images_match_formula():
    rng = np.random.default_rng(1)
    img = _texture(rng)
    assert mf.ssim(img, img, img) == pytest.approx(2.0)
    a = np.full((32, 32), 100, np.uint8)
    b = np.full((32, 32), 150, np.uint8)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 150 + c1) / (100 ** 2 + 150 ** 2 + c1)
    assert mf.ssim_pair(a, b) == pytest.approx(expected, rel=1e-9)
    assert mf.ssim(a, b, b) == pytest.approx(expected + 1.0, rel=1e-9)
    noisy = np.clip(img + rng.normal(0, 25, img.shape), 0, 255).astype(np.uint8)
    assert 0.0 < mf.ssim_pair(img, noisy) < 0.9


def test_qabf_fused_equal_to_one_input_with_the_other_constant():
    rng = np.random.default_rng(2)
    x = _texture(rng)
    flat = np.full_like(x, 80)
    assert mf.qabf(x, flat, x) == pytest.approx(Q_PERFECT, rel=1e-9)
    assert mf.qabf(flat, x, x) == pytest.approx(Q_PERFECT, rel=1e-9)
    # a flat fusion result preserves no edge at all
    assert mf.qabf(x, flat, flat) < 0.01
    assert math.isnan(mf.qabf(flat, flat, x))


def test_vif_identical_images_and_information_loss():
    rng = np.random.default_rng(3)
    x = _texture(rng)
    y = _texture(rng)
    assert mf.vif(x, x, x) == pytest.approx(1.0, abs=1e-6)
    assert mf.vifp(x, x) == pytest.approx(1.0, abs=1e-6)
    assert mf.paper_vif(x, x, x) == pytest.approx(2.0, abs=1e-6)
    # a constant fused image carries no information from either source
    flat = np.full_like(x, 128)
    assert mf.vif(x, y, flat) == pytest.approx(0.0, abs=1e-6)
    noisy = np.clip(x + rng.normal(0, 20, x.shape), 0, 255).astype(np.uint8)
    assert 0.0 < mf.vifp(x, noisy) < 0.9
    assert 0.0 < mf.vif(x, y, noisy) < 1.0


def test_vif_rejects_too_small_images():
    small = np.zeros((64, 64), np.uint8)
    with pytest.raises(mf.MetricInputError, match='at least'):
        mf.vifp(small, small)


def test_luminance_is_hsv_value_and_float_inputs_are_quantized(rng):
    rgb = rng.integers(0, 256, size=(24, 20, 3), dtype=np.uint8)
    v = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[:, :, 2]
    np.testing.assert_array_equal(mf.luminance(rgb), v)
    np.testing.assert_array_equal(mf.luminance(rgb.astype(np.float64) / 255.0), v)
    with pytest.raises(mf.MetricInputError, match=r'\[0, 1\]'):
        mf.luminance(np.full((4, 4), 2.0))
    with pytest.raises(mf.MetricInputError, match='dtype'):
        mf.luminance(np.zeros((4, 4), np.int32))


def test_fusion_metrics_dict_on_rgb_matches_value_channel():
    rng = np.random.default_rng(4)
    vis = np.stack([_texture(rng), _texture(rng), _texture(rng)], axis=2)
    ir = _texture(rng)
    fused_grey = np.maximum(mf.luminance(vis), ir)
    metrics = mf.fusion_metrics(vis, ir, fused_grey)
    assert set(metrics) == {'en', 'sd', 'sf', 'mi', 'vif', 'qabf', 'ssim', 'paper_mi', 'paper_vif'}
    assert all(math.isfinite(v) for v in metrics.values())
    grey_metrics = mf.fusion_metrics(mf.luminance(vis), ir, np.dstack([fused_grey] * 3))
    assert grey_metrics == pytest.approx(metrics)
    assert metrics['mi'] < metrics['paper_mi']
    with pytest.raises(mf.MetricInputError, match='same height and width'):
        mf.fusion_metrics(vis, ir[:-1], fused_grey)
