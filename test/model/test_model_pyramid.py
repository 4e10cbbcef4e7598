"""Laplacian-pyramid fusion: exact reconstruction, the selection rules, odd sizes."""
import pytest

torch = pytest.importorskip('torch')

from efficientmfd_ros.model.pyramid import (  # noqa: E402
    choose_max_abs,
    downsample,
    laplacian_fuse,
    laplacian_pyramid,
    max_levels,
    reconstruct,
)


@pytest.mark.parametrize('hw', [(64, 80), (37, 51), (9, 9)])
def test_pyramid_reconstructs_the_image(hw):
    img = torch.rand(2, 1, *hw, generator=torch.Generator().manual_seed(0))
    levels = max(1, max_levels(*hw))
    pyramid = laplacian_pyramid(img, levels)
    assert len(pyramid) == levels + 1
    assert pyramid[1].shape[-2:] == ((hw[0] + 1) // 2, (hw[1] + 1) // 2)
    torch.testing.assert_close(reconstruct(pyramid), img, atol=1e-6, rtol=0)


def test_downsample_keeps_a_constant_and_halves_the_size():
    img = torch.full((1, 1, 10, 7), 0.25)
    small = downsample(img)
    assert small.shape == (1, 1, 5, 4)
    torch.testing.assert_close(small, torch.full_like(small, 0.25))


def test_max_levels_stops_at_the_minimum_side():
    assert max_levels(384, 480) == 5  # 384 -> 192 -> 96 -> 48 -> 24 -> 12
    assert max_levels(15, 100) == 0
    assert max_levels(16, 16) == 1


def test_choose_max_abs_keeps_sign():
    a = torch.tensor([0.5, -0.1, -0.7])
    b = torch.tensor([-0.2, 0.3, 0.6])
    assert choose_max_abs(a, b).tolist() == pytest.approx([0.5, 0.3, -0.7])


def test_fusing_an_image_with_itself_gives_it_back():
    img = torch.rand(1, 1, 48, 64, generator=torch.Generator().manual_seed(1))
    for base in ('mean', 'max'):
        torch.testing.assert_close(laplacian_fuse(img, img, 4, base), img, atol=1e-6, rtol=0)


def test_fusion_keeps_the_edges_of_both_inputs():
    """An edge only in x and an edge only in y both survive; a flat image adds nothing."""
    x = torch.full((1, 1, 64, 64), 0.3)
    y = torch.full((1, 1, 64, 64), 0.3)
    x[..., :, 32:] = 0.7  # vertical edge in x
    y[..., 32:, :] = 0.7  # horizontal edge in y
    fused = laplacian_fuse(x, y, 4, 'mean')
    # across each edge (adjacent pixels) most of its 0.4 step survives; averaging halves it
    vertical_step = (fused[..., 10, 32] - fused[..., 10, 31]).item()
    horizontal_step = (fused[..., 32, 10] - fused[..., 31, 10]).item()
    assert vertical_step > 0.3 and horizontal_step > 0.3
    average = (x + y) / 2
    assert (average[..., 10, 32] - average[..., 10, 31]).item() == pytest.approx(0.2)


def test_max_base_keeps_the_brighter_low_pass():
    dark = torch.full((1, 1, 64, 64), 0.05)
    warm = torch.full((1, 1, 64, 64), 0.2)
    warm[..., 16:48, 24:40] = 0.9  # a large warm target
    fused = laplacian_fuse(dark, warm, 5, 'max')
    assert fused[..., 32, 32].item() > 0.85
    mean_fused = laplacian_fuse(dark, warm, 5, 'mean')
    assert mean_fused[..., 32, 32].item() < fused[..., 32, 32].item()


def test_laplacian_fuse_rejects_bad_input():
    x = torch.rand(1, 1, 32, 32)
    with pytest.raises(ValueError, match='one shape'):
        laplacian_fuse(x, torch.rand(1, 1, 32, 31))
    with pytest.raises(ValueError, match='base'):
        laplacian_fuse(x, x, 3, 'median')
    with pytest.raises(ValueError, match='levels'):
        laplacian_fuse(x, x, 0)
