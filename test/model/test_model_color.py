"""BT.601 colour conversion and colouring of the fused luminance."""
import torch

from efficientmfd_ros.model.color import fused_to_rgb, rgb_to_luma, rgb_to_ycbcr, ycbcr_to_rgb


def test_round_trip_and_known_values():
    rgb = torch.rand(2, 3, 8, 10, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-5)
    white, red = torch.ones(1, 3, 1, 1), torch.tensor([1.0, 0, 0]).reshape(1, 3, 1, 1)
    assert torch.allclose(rgb_to_ycbcr(white).flatten(), torch.tensor([1.0, 0.5, 0.5]), atol=1e-5)
    assert torch.allclose(rgb_to_ycbcr(red).flatten(), torch.tensor([0.299, 0.331264, 1.0]),
                          atol=1e-5)
    assert torch.allclose(rgb_to_luma(rgb), rgb_to_ycbcr(rgb)[:, :1])


def test_fused_to_rgb_keeps_chroma_and_takes_fused_luma():
    g = torch.Generator().manual_seed(1)
    rgb = 0.2 + 0.6 * torch.rand(1, 3, 6, 7, generator=g)
    assert torch.allclose(fused_to_rgb(rgb_to_luma(rgb), rgb), rgb, atol=1e-6)
    # Mid-grey-ish colours and luma, so that no channel leaves [0, 1] and clamping stays idle.
    rgb = 0.4 + 0.2 * rgb
    fused = 0.45 + 0.1 * torch.rand(1, 1, 6, 7, generator=g)
    out = fused_to_rgb(fused, rgb)
    explicit = ycbcr_to_rgb(torch.cat([fused, rgb_to_ycbcr(rgb)[:, 1:]], dim=1)).clamp(0, 1)
    assert torch.allclose(out, explicit, atol=1e-5)
    assert ((explicit > 0) & (explicit < 1)).all()
    assert torch.allclose(rgb_to_luma(out), fused, atol=1e-5)
    assert torch.allclose(rgb_to_ycbcr(out)[:, 1:], rgb_to_ycbcr(rgb)[:, 1:], atol=1e-5)


def test_fused_to_rgb_clamps_to_unit_range():
    rgb = torch.tensor([1.0, 0.0, 0.0]).reshape(1, 3, 1, 1).expand(1, 3, 4, 4)
    out = fused_to_rgb(torch.ones(1, 1, 4, 4), rgb)
    assert out.min() >= 0 and out.max() <= 1 and out.shape == (1, 3, 4, 4)
