"""Preprocessing: resize/letterbox geometry and its inverse, thermal ranges, homography warp, and
the InputError cases."""
import cv2
import numpy as np
import pytest
import torch

from efficientmfd_ros.runtime.errors import InputError
from efficientmfd_ros.runtime.preprocess import PreprocessConfig, Preprocessor, compute_transform


def test_stretch_transform_maps_boxes_back_exactly():
    tf = compute_transform((100, 200), (64, 96), letterbox=False)
    assert tf.content_hw == (64, 96) and (tf.pad_x, tf.pad_y) == (0, 0)
    box_img = torch.tensor([[20.0, 10.0, 150.0, 90.0]])
    box_in = box_img * torch.tensor([96 / 200, 64 / 100, 96 / 200, 64 / 100])
    torch.testing.assert_close(tf.boxes_to_image(box_in), box_img)


def test_letterbox_pads_centrally_and_undo_removes_the_padding():
    # 100x200 (h, w) into 64x64: scale 0.32, content 32x64, 16 rows of padding above.
    tf = compute_transform((100, 200), (64, 64), letterbox=True)
    assert tf.content_hw == (32, 64)
    assert (tf.pad_x, tf.pad_y) == (0, 16)
    assert tf.scale_x == pytest.approx(0.32) and tf.scale_y == pytest.approx(0.32)
    box_in = torch.tensor([[3.2, 16.0 + 3.2, 32.0, 16.0 + 16.0]])
    expected = torch.tensor([[10.0, 10.0, 100.0, 50.0]])
    torch.testing.assert_close(tf.boxes_to_image(box_in), expected)


def test_undo_clamps_boxes_to_the_image():
    tf = compute_transform((100, 200), (64, 64), letterbox=True)
    out = tf.boxes_to_image(torch.tensor([[-10.0, 0.0, 80.0, 60.0]]))
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0, 200.0, 100.0]]))


def test_letterboxed_rgb_has_padding_rows_and_resized_content():
    rgb = np.full((100, 200, 3), 200, np.uint8)
    pre = Preprocessor(PreprocessConfig((64, 64), letterbox=True, pad_value=0.25))
    rgb_t, thermal_t, tf = pre(rgb, np.zeros((100, 200), np.uint8))
    assert rgb_t.shape == (1, 3, 64, 64) and thermal_t.shape == (1, 1, 64, 64)
    assert rgb_t.dtype == torch.float32
    assert torch.all(rgb_t[..., :16, :] == 0.25) and torch.all(rgb_t[..., 48:, :] == 0.25)
    torch.testing.assert_close(rgb_t[..., 16:48, :], torch.full((1, 3, 32, 64), 200 / 255))


def test_resize_matches_opencv_bilinear():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)
    pre = Preprocessor(PreprocessConfig((96, 160)))
    rgb_t, _, _ = pre(rgb, rng.integers(0, 256, (48, 80), dtype=np.uint8))
    expected = cv2.resize(rgb.astype(np.float32) / 255, (160, 96), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(rgb_t[0].permute(1, 2, 0).numpy(), expected, atol=1e-4)


def test_thermal_uint16_range_maps_and_clips():
    thermal = np.array([[1000, 2000, 3000, 65535]], np.uint16).repeat(4, 0)
    pre = Preprocessor(PreprocessConfig((4, 4), thermal_range=(2000, 3000)))
    _, thermal_t, _ = pre(np.zeros((4, 4, 3), np.uint8), thermal)
    np.testing.assert_allclose(thermal_t[0, 0, 0].numpy(), [0.0, 0.0, 1.0, 1.0])
    mid = np.full((4, 4), 2500, np.uint16)
    assert float(pre(np.zeros((4, 4, 3), np.uint8), mid)[1].mean()) == pytest.approx(0.5)


def test_thermal_uint8_uses_the_full_byte_range():
    pre = Preprocessor(PreprocessConfig((2, 2), thermal_range=(2000, 3000)))
    _, thermal_t, _ = pre(np.zeros((2, 2, 3), np.uint8), np.full((2, 2), 51, np.uint8))
    torch.testing.assert_close(thermal_t, torch.full((1, 1, 2, 2), 0.2))


def _blob(hw, centre, radius=3, value=255):
    image = np.zeros(hw, np.uint8)
    cv2.circle(image, centre, radius, value, -1)
    return image


def _peak(image: np.ndarray):
    ys, xs = np.nonzero(image > 0.5 * image.max())
    return float(xs.mean()), float(ys.mean())


def test_homography_translation_moves_a_thermal_blob_of_another_size():
    # Thermal 40x50 with a blob at (10, 12); H maps thermal -> RGB with a shift of (+30, +20).
    thermal = _blob((40, 50), (10, 12))
    hom = ((1.0, 0.0, 30.0), (0.0, 1.0, 20.0), (0.0, 0.0, 1.0))
    pre = Preprocessor(PreprocessConfig((60, 80), homography=hom))
    _, thermal_t, _ = pre(np.zeros((60, 80, 3), np.uint8), thermal)
    warped = thermal_t[0, 0].numpy()
    assert _peak(warped) == pytest.approx((40.0, 32.0), abs=0.5)
    expected = cv2.warpPerspective(thermal.astype(np.float32) / 255, np.array(hom), (80, 60),
                                   flags=cv2.INTER_LINEAR)
    np.testing.assert_allclose(warped, expected, atol=2e-3)
    # RGB pixels the thermal camera does not cover read 0.
    assert warped[:20].max() == 0.0 and warped[:, :30].max() == 0.0


def test_homography_is_composed_with_the_resize_to_the_network_input():
    thermal = _blob((40, 50), (10, 12))
    hom = ((1.0, 0.0, 30.0), (0.0, 1.0, 20.0), (0.0, 0.0, 1.0))
    pre = Preprocessor(PreprocessConfig((30, 40), homography=hom))  # half the RGB size
    _, thermal_t, _ = pre(np.zeros((60, 80, 3), np.uint8), thermal)
    x, y = _peak(thermal_t[0, 0].numpy())
    # RGB (40, 32) -> input ((40 + 0.5) / 2 - 0.5, (32 + 0.5) / 2 - 0.5)
    assert (x, y) == pytest.approx((19.75, 15.75), abs=0.5)


def test_thermal_of_another_size_without_homography_is_scaled_to_rgb():
    thermal = _blob((30, 40), (20, 15))
    pre = Preprocessor(PreprocessConfig((60, 80)))
    _, thermal_t, _ = pre(np.zeros((60, 80, 3), np.uint8), thermal)
    assert _peak(thermal_t[0, 0].numpy()) == pytest.approx((40.5, 30.5), abs=0.6)


def test_full_resolution_gives_both_cameras_on_the_rgb_grid():
    thermal = _blob((40, 50), (10, 12))
    hom = ((1.0, 0.0, 30.0), (0.0, 1.0, 20.0), (0.0, 0.0, 1.0))
    pre = Preprocessor(PreprocessConfig((32, 32), letterbox=True, homography=hom))
    with pytest.raises(RuntimeError, match='needs a frame'):
        pre.full_resolution()
    rgb = np.full((60, 80, 3), 51, np.uint8)
    pre(rgb, thermal)
    rgb_full, thermal_full = pre.full_resolution()
    assert rgb_full.shape == (1, 3, 60, 80) and thermal_full.shape == (1, 1, 60, 80)
    torch.testing.assert_close(rgb_full, torch.full_like(rgb_full, 0.2))
    # the thermal blob lands where the homography puts it, at the RGB image's own scale
    assert _peak(thermal_full[0, 0].numpy()) == pytest.approx((40.0, 32.0), abs=0.5)
    same = Preprocessor(PreprocessConfig((32, 32)))
    same(rgb, np.full((60, 80), 255, np.uint8))
    assert same.full_resolution()[1].min().item() == 1.0


@pytest.mark.parametrize('rgb, thermal, message', [
    (np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8), 'rgb must be uint8'),
    (np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), r'rgb must have shape \(H, W, 3\)'),
    (np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8), np.uint8), r'rgb must have shape'),
    (np.zeros((0, 8, 3), np.uint8), np.zeros((8, 8), np.uint8), 'rgb image is empty'),
    (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.int32), 'thermal must be uint8 or'),
    (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8), 'one channel'),
    (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 0), np.uint16), 'thermal image is empty'),
    ([[0]], np.zeros((8, 8), np.uint8), 'numpy array'),
])
def test_bad_inputs_raise_input_error(rgb, thermal, message):
    pre = Preprocessor(PreprocessConfig((32, 32)))
    with pytest.raises(InputError, match=message):
        pre(rgb, thermal)


def test_thermal_with_a_trailing_channel_axis_is_accepted():
    pre = Preprocessor(PreprocessConfig((8, 8)))
    _, thermal_t, _ = pre(np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 1), 255, np.uint8))
    assert torch.all(thermal_t == 1.0)


@pytest.mark.parametrize('kwargs, message', [
    ({'thermal_range': (10, 10)}, 'thermal_range'),
    ({'homography': np.zeros((3, 3))}, 'singular'),
    ({'homography': np.eye(2)}, '3x3'),
    ({'input_hw': (0, 32)}, 'positive'),
])
def test_invalid_preprocess_config_is_rejected(kwargs, message):
    args = {'input_hw': (32, 32), **kwargs}
    with pytest.raises(ValueError, match=message):
        PreprocessConfig(**args)
