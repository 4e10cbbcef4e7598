"""RGB <-> YCbCr (BT.601 full range, as in JPEG) in torch, on whatever device the tensors live.

All tensors are float `(B,3,H,W)` or `(B,1,H,W)` with values in [0,1]; Cb and Cr are offset by 0.5.
Plain channel arithmetic: no host round trip, no constant tensors, exports to ONNX as is.
"""
import torch


def rgb_to_luma(rgb: torch.Tensor) -> torch.Tensor:
    """Y of `rgb (B,3,H,W)` -> `(B,1,H,W)`."""
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """`(B,3,H,W)` RGB in [0,1] -> `(B,3,H,W)` Y, Cb, Cr in [0,1]."""
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = (b - y) * 0.564334 + 0.5  # 0.5 / (1 - 0.114)
    cr = (r - y) * 0.713267 + 0.5  # 0.5 / (1 - 0.299)
    return torch.cat([y, cb, cr], dim=1)


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """`(B,3,H,W)` Y, Cb, Cr -> RGB `(B,3,H,W)`, not clamped."""
    y, cb, cr = ycbcr[:, 0:1], ycbcr[:, 1:2] - 0.5, ycbcr[:, 2:3] - 0.5
    r = y + 1.402 * cr
    g = y - 0.344136 * cb - 0.714136 * cr
    b = y + 1.772 * cb
    return torch.cat([r, g, b], dim=1)


def fused_to_rgb(fused_y: torch.Tensor, rgb: torch.Tensor,
                 rgb_luma: torch.Tensor | None = None) -> torch.Tensor:
    """Colour the fused luminance with the chroma of the RGB input.

    `fused_y (B,1,H,W)` and `rgb (B,3,H,W)`, both in [0,1], same size -> `(B,3,H,W)` in [0,1].
    Equals `ycbcr_to_rgb(cat(fused_y, CbCr(rgb)))`, simplified: each channel moves by the change
    of luminance, because the chroma terms cancel. `rgb_luma`: `rgb_to_luma(rgb)`, when the caller
    already has it.
    """
    luma = rgb_to_luma(rgb) if rgb_luma is None else rgb_luma
    return (rgb + (fused_y - luma)).clamp(0.0, 1.0)
