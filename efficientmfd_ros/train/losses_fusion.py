"""The fusion loss L_u of EfficientMFD (paper Eq. 7-10): SSIM, object-aware pixel and gradient.

All images are single-channel float tensors `(B,1,H,W)` in [0,1]:
`u` the fused luminance, `x` the visible luminance, `y` the thermal image.
Object boxes are `xyxy` float pixels of the same `(H,W)` grid.

Choices the paper leaves open, stated once here:

* SSIM uses the usual 11x11 Gaussian window (sigma 1.5) without padding, constants for a data
  range of 1.
* Saliency: `S_x(v) = sum_i H_x(i) |v - i|` with `H_x` the per-image 256-bin histogram
  normalised to sum 1 and `v, i` grey levels 0..255; evaluated once per grey level (a 256-entry
  lookup table) and gathered per pixel. The per-pixel weights are `w_x = S_x/(S_x+S_y)` and
  `w_y = S_y/(S_x+S_y)` (0.5 each where both saliencies are 0).
* Pixel targets: read literally, `mean(w_x x, w_y y)` with `w_x + w_y = 1` is half a convex
  combination and would teach the network to halve the brightness. We scale both weights by 2
  (their mean is 1): outside objects the target is `w_x x + w_y y`, a saliency-weighted average;
  inside objects it is `max(2 w_x x, 2 w_y y)` clipped to 1. With equal saliencies both reduce
  to the standard targets `mean(x, y)` and `max(x, y)`; the weights only shift the target
  towards the more salient modality.
* Gradient: `grad_k(z) = z - G_k * z` (Gaussian blur of size k, OpenCV's default sigma for k,
  reflect padding so the border makes no false edges). `grad_target='magnitude'` compares
  magnitudes, `|| |grad_k u| - max(|grad_k x|, |grad_k y|) ||_1` (an edge of either sign is
  texture to keep); `'signed'` compares `grad_k u` with whichever source detail is larger in
  magnitude, sign included, `|| grad_k u - choose_max_abs(grad_k x, grad_k y) ||_1`, so an edge
  must also keep its polarity (a dark-on-bright edge may not turn into bright-on-dark).
* Pixel-term normalisation: `pixel_norm='image'` divides both parts by H*W, as Eq. 8-9 read; the
  object part then weighs about the objects' area fraction, so warm targets barely count.
  `'region'` averages each part over its own pixels (objects, background), so `w1` and `w2`
  weigh the two regions as the paper's weights suggest, whatever their sizes.
"""
from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from efficientmfd_ros.model.pyramid import choose_max_abs

_LEVELS = 256
PIXEL_NORMS = ('image', 'region')
GRAD_TARGETS = ('magnitude', 'signed')
_SSIM_C1 = 0.01 ** 2
_SSIM_C2 = 0.03 ** 2


def gaussian_kernel1d(size: int, sigma: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian `(size,)`."""
    coords = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    kernel = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    return kernel / kernel.sum()


def _separable_blur(img: torch.Tensor, kernel1d: torch.Tensor, pad_mode=None) -> torch.Tensor:
    """Blur `(B,1,H,W)` with a separable kernel; `pad_mode=None` gives the 'valid' region only."""
    k = kernel1d.numel()
    if pad_mode is not None:
        img = F.pad(img, (k // 2, k // 2, k // 2, k // 2), mode=pad_mode)
    img = F.conv2d(img, kernel1d.view(1, 1, 1, k))
    return F.conv2d(img, kernel1d.view(1, 1, k, 1))


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM per image `(B,)` of `(B,1,H,W)` tensors in [0,1] (differentiable).

    The window shrinks to the largest odd size that fits images smaller than `window`.
    """
    if a.shape != b.shape or a.dim() != 4 or a.shape[1] != 1:
        raise ValueError('ssim expects two (B,1,H,W) tensors of one shape, '
                         f'got {tuple(a.shape)}, {tuple(b.shape)}')
    window = min(window, a.shape[-1], a.shape[-2])
    window -= 1 - window % 2
    kernel = gaussian_kernel1d(window, sigma, a.device, a.dtype)
    mu_a = _separable_blur(a, kernel)
    mu_b = _separable_blur(b, kernel)
    var_a = _separable_blur(a * a, kernel) - mu_a ** 2
    var_b = _separable_blur(b * b, kernel) - mu_b ** 2
    cov = _separable_blur(a * b, kernel) - mu_a * mu_b
    num = (2 * mu_a * mu_b + _SSIM_C1) * (2 * cov + _SSIM_C2)
    den = (mu_a ** 2 + mu_b ** 2 + _SSIM_C1) * (var_a + var_b + _SSIM_C2)
    return (num / den).flatten(1).mean(1)


def saliency_map(img: torch.Tensor) -> torch.Tensor:
    """Histogram saliency `S(k) = sum_i H(i) |img(k) - i|` per pixel, `(B,1,H,W)` float in [0,255].

    `img` is `(B,1,H,W)` in [0,1], quantised to 256 grey levels; `H` is each image's normalised
    histogram.
    """
    levels = (img.detach().clamp(0, 1) * (_LEVELS - 1)).round().long().flatten(1)
    hist = torch.zeros(levels.shape[0], _LEVELS, device=img.device, dtype=torch.float32)
    hist.scatter_add_(1, levels, torch.ones_like(levels, dtype=torch.float32))
    hist = hist / levels.shape[1]
    grey = torch.arange(_LEVELS, device=img.device, dtype=torch.float32)
    distance = (grey[:, None] - grey[None, :]).abs()
    table = hist @ distance
    return torch.gather(table, 1, levels).view_as(img).to(img.dtype)


def saliency_weights(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel weights `(w_x, w_y)`, each `(B,1,H,W)`, with `w_x + w_y = 1`."""
    s_x = saliency_map(x)
    s_y = saliency_map(y)
    total = s_x + s_y
    w_x = torch.where(total > 0, s_x / total.clamp_min(1e-12), torch.full_like(total, 0.5))
    return w_x, 1 - w_x


def object_mask(boxes: list, height: int, width: int, device=None) -> torch.Tensor:
    """Binary mask `(B,1,H,W)` float: 1 on pixels whose centre lies in any `xyxy` pixel box.

    `boxes` holds one `(K,4)` tensor per image; `K = 0` (or `None`) gives an all-zero mask.
    """
    mask = torch.zeros(len(boxes), 1, height, width, device=device)
    for i, img_boxes in enumerate(boxes):
        if img_boxes is None or len(img_boxes) == 0:
            continue
        # Pixel c covers [c, c+1): its centre c+0.5 is in [x1, x2] iff round(x1) <= c < round(x2).
        coords = img_boxes.detach().to('cpu', torch.float64).round().long()
        for x1, y1, x2, y2 in coords.tolist():
            x1, x2 = max(x1, 0), min(x2, width)
            y1, y2 = max(y1, 0), min(y2, height)
            if x2 > x1 and y2 > y1:
                mask[i, 0, y1:y2, x1:x2] = 1
    return mask


def pixel_targets(x, y):
    """Pixel-loss targets `(inside, outside)`, each `(B,1,H,W)`.

    `inside = min(1, max(2 w_x x, 2 w_y y))` for object pixels, `outside = w_x x + w_y y`.
    """
    w_x, w_y = saliency_weights(x, y)
    inside = torch.maximum(2 * w_x * x, 2 * w_y * y).clamp(max=1)
    outside = w_x * x + w_y * y
    return inside, outside


def high_pass(img: torch.Tensor, size: int) -> torch.Tensor:
    """`img - G_size * img` for `(B,1,H,W)`, Gaussian sigma as OpenCV picks it for `size`."""
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    pad_mode = 'reflect' if min(img.shape[-2:]) > size // 2 else 'replicate'
    kernel = gaussian_kernel1d(size, sigma, img.device, img.dtype)
    return img - _separable_blur(img, kernel, pad_mode)


@dataclass
class FusionLossWeights:
    """The weights of L_u; defaults follow the paper's equal weighting."""

    eta_ssim: float = 1.0  # eta_1, weight of L_SSIM
    eta_pixel: float = 1.0  # eta_2, weight of L_pixel
    eta_grad: float = 1.0  # eta_3, weight of L_grad
    w1: float = 1.0  # weight of the pixel term inside object boxes
    w2: float = 1.0  # weight of the pixel term on the background
    pixel_norm: str = 'image'  # 'image': both parts over H*W (Eq. 8-9); 'region': each its own
    grad_target: str = 'magnitude'  # 'magnitude' or 'signed' (see the module docstring)


class FusionLoss(nn.Module):
    """L_u = eta_ssim L_SSIM + eta_pixel L_pixel + eta_grad L_grad.

    `forward(fused, visible, thermal, boxes=None) -> (total, parts)`: `total` a scalar, `parts`
    the detached `ssim`, `pixel`, `grad` terms. `fused`, `visible`, `thermal` are `(B,1,H,W)`
    float in [0,1]; `boxes` is a list of `(K,4)` `xyxy` pixel tensors, one per image (empty or
    `None`: no objects, every pixel is background).
    """

    def __init__(self, eta_ssim=1.0, eta_pixel=1.0, eta_grad=1.0, w1=1.0, w2=1.0,
                 pixel_norm='image', grad_target='magnitude', grad_sizes=(3, 5, 7)):
        super().__init__()
        for name, value in (('eta_ssim', eta_ssim), ('eta_pixel', eta_pixel),
                            ('eta_grad', eta_grad), ('w1', w1), ('w2', w2)):
            if value < 0:
                raise ValueError(f'FusionLoss weight {name} must be >= 0, got {value}')
        if pixel_norm not in PIXEL_NORMS:
            raise ValueError(f'FusionLoss pixel_norm must be one of {PIXEL_NORMS}, '
                             f'got {pixel_norm!r}')
        if grad_target not in GRAD_TARGETS:
            raise ValueError(f'FusionLoss grad_target must be one of {GRAD_TARGETS}, '
                             f'got {grad_target!r}')
        self.weights = FusionLossWeights(eta_ssim, eta_pixel, eta_grad, w1, w2, pixel_norm,
                                         grad_target)
        self.grad_sizes = tuple(grad_sizes)

    def ssim_loss(self, u, x, y):
        """Eq. 7: `(1-SSIM(u,x))/2 + (1-SSIM(u,y))/2`, averaged over the batch."""
        return ((1 - ssim(u, x)) / 2 + (1 - ssim(u, y)) / 2).mean()

    def pixel_loss(self, u, x, y, mask):
        """Eq. 8-9: L1 to the object / background targets, normalised by H*W (`pixel_norm`
        'image') or each by its own region's pixel count ('region'; an empty region adds 0)."""
        inside, outside = pixel_targets(x, y)
        in_err = mask * (u - inside).abs()
        out_err = (1 - mask) * (u - outside).abs()
        w = self.weights
        if w.pixel_norm == 'image':
            return (w.w1 * in_err + w.w2 * out_err).mean()
        in_count, out_count = mask.sum(), (1 - mask).sum()
        return (w.w1 * in_err.sum() / in_count.clamp_min(1)
                + w.w2 * out_err.sum() / out_count.clamp_min(1))

    def grad_loss(self, u, x, y):
        """Eq. 10: sum over k of the mean L1 between u's detail and the stronger source detail
        (magnitudes or signed, per `grad_target`)."""
        total = u.new_zeros(())
        for size in self.grad_sizes:
            hx, hy, hu = high_pass(x, size), high_pass(y, size), high_pass(u, size)
            if self.weights.grad_target == 'magnitude':
                error = hu.abs() - torch.maximum(hx.abs(), hy.abs())
            else:
                error = hu - choose_max_abs(hx, hy)
            total = total + error.abs().mean()
        return total

    def forward(self, fused, visible, thermal, boxes=None):
        if not (fused.shape == visible.shape == thermal.shape) or fused.dim() != 4 \
                or fused.shape[1] != 1:
            raise ValueError('FusionLoss expects fused, visible, thermal of one shape (B,1,H,W), '
                             f'got {tuple(fused.shape)}, {tuple(visible.shape)}, '
                             f'{tuple(thermal.shape)}')
        batch, _, height, width = fused.shape
        if boxes is None:
            boxes = [None] * batch
        if len(boxes) != batch:
            raise ValueError(f'FusionLoss got {len(boxes)} box lists for a batch of {batch}')
        fused = fused.float()
        visible = visible.float()
        thermal = thermal.float()
        mask = object_mask(boxes, height, width, fused.device)
        parts = {
            'ssim': self.ssim_loss(fused, visible, thermal),
            'pixel': self.pixel_loss(fused, visible, thermal, mask),
            'grad': self.grad_loss(fused, visible, thermal),
        }
        w = self.weights
        total = (w.eta_ssim * parts['ssim'] + w.eta_pixel * parts['pixel']
                 + w.eta_grad * parts['grad'])
        return total, {k: v.detach() for k, v in parts.items()}
