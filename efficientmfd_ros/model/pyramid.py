"""Laplacian-pyramid image fusion (Burt & Adelson), in torch, for any image size.

Each level blurs with the 5x5 binomial kernel (the outer product of `[1, 4, 6, 4, 1] / 16`, reflect
padding) and keeps every second pixel, in one stride-2 convolution that computes only the kept
pixels; expanding is bilinear interpolation back to the finer level's exact
size, so odd sizes need no padding and `reconstruct(laplacian_pyramid(x)) == x` to float rounding.
Plain convolutions and interpolation: it runs on any device and exports to ONNX.

Images are float `(B,1,H,W)`, values in [0,1] for fusion.
"""
import typing

import torch
import torch.nn.functional as F

_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)
FUSION_BASES = ('mean', 'max')


def _pad2(img: torch.Tensor, dim: int) -> torch.Tensor:
    """Two pixels of reflect padding (edge pixel not repeated) along `dim`, replicate padding when
    the side is under 3 pixels. Slices and concatenation rather than `F.pad(mode='reflect')`,
    whose exported ONNX graph loses the static output shape."""
    n = img.shape[dim]
    if n >= 3:
        before = img.narrow(dim, 1, 2).flip(dim)
        after = img.narrow(dim, n - 3, 2).flip(dim)
    else:
        first, last = img.narrow(dim, 0, 1), img.narrow(dim, n - 1, 1)
        before, after = torch.cat([first, first], dim=dim), torch.cat([last, last], dim=dim)
    return torch.cat([before, img, after], dim=dim)


def downsample(img: torch.Tensor) -> torch.Tensor:
    """Blur and decimate `(B,1,H,W)` -> `(B,1,ceil(H/2),ceil(W/2))`."""
    taps = img.new_tensor(_BINOMIAL) / 16.0
    kernel = (taps[:, None] * taps[None, :]).view(1, 1, 5, 5)
    return F.conv2d(_pad2(_pad2(img, 2), 3), kernel, stride=2)


def expand(img: torch.Tensor, size: typing.Sequence[int]) -> torch.Tensor:
    """Bilinear upsampling of a coarser level to `size = (H, W)`."""
    # Plain ints: an exported graph then has fixed sizes instead of computing them at run time.
    size = (int(size[0]), int(size[1]))
    return F.interpolate(img, size=size, mode='bilinear', align_corners=False)


def max_levels(height: int, width: int, min_side: int = 8) -> int:
    """Detail levels that fit before the coarsest level's shorter side drops below `min_side`."""
    levels, side = 0, min(height, width)
    while side // 2 >= min_side:
        side = (side + 1) // 2
        levels += 1
    return levels


def laplacian_pyramid(img: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """`levels` detail bands (fine to coarse, each `img - expand(down(img))` at its size), then
    the low-pass base: `levels + 1` tensors."""
    bands, current = [], img
    for _ in range(levels):
        coarse = downsample(current)
        bands.append(current - expand(coarse, current.shape[-2:]))
        current = coarse
    return bands + [current]


def reconstruct(pyramid: list[torch.Tensor]) -> torch.Tensor:
    """Inverse of `laplacian_pyramid`: `(B,1,H,W)` at the finest band's size."""
    image = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        image = band + expand(image, band.shape[-2:])
    return image


def choose_max_abs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per pixel, whichever of `a`, `b` has the larger magnitude (`a` on ties)."""
    return torch.where(a.abs() >= b.abs(), a, b)


def laplacian_fuse(x: torch.Tensor, y: torch.Tensor, levels: int = 5,
                   base: str = 'mean') -> torch.Tensor:
    """Fuse two `(B,1,H,W)` images in [0,1]: per band the detail of larger magnitude, and the
    bases averaged (`base='mean'`, the classic rule) or their maximum (`'max'`). `levels` is capped
    at what the image size allows (`max_levels`). Returns `(B,1,H,W)` clamped to [0,1]."""
    if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f'laplacian_fuse expects two (B,1,H,W) tensors of one shape, got '
                         f'{tuple(x.shape)}, {tuple(y.shape)}')
    if base not in FUSION_BASES:
        raise ValueError(f'base must be one of {FUSION_BASES}, got {base!r}')
    if levels < 1:
        raise ValueError(f'levels must be >= 1, got {levels}')
    levels = max(1, min(levels, max_levels(*x.shape[-2:])))
    batch = x.shape[0]
    both = laplacian_pyramid(torch.cat([x, y], dim=0), levels)
    px, py = [band[:batch] for band in both], [band[batch:] for band in both]
    fused = [choose_max_abs(a, b) for a, b in zip(px[:-1], py[:-1])]
    fused.append((px[-1] + py[-1]) / 2 if base == 'mean' else torch.maximum(px[-1], py[-1]))
    return reconstruct(fused).clamp(0.0, 1.0)
