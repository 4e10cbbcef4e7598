"""Image-fusion quality metrics with their standard definitions, and the EfficientMFD paper's ones.

Every metric works on the luminance of the images, the V channel of HSV (``max(R, G, B)``) as the
paper does; grey images are their own luminance. Inputs are uint8 ``HxW`` or ``HxWx3`` RGB
arrays, or float arrays in [0, 1] (quantized to 0..255 first, as a saved PNG would be). Throughout,
``x`` is the visible image, ``y`` the infrared image and ``u`` the fused one, on the 0..255 scale.

Standard metrics (``fusion_metrics`` keys):
- ``en``: Shannon entropy of ``u``, 256-bin histogram, bits.
- ``sd``: standard deviation of ``u`` (population, divided by ``H*W``).
- ``sf``: spatial frequency ``sqrt(RF^2 + CF^2)``, RF/CF the RMS of horizontal/vertical neighbour
  differences (mean over the ``H*(W-1)`` and ``(H-1)*W`` differences).
- ``mi``: ``MI(x,u) + MI(y,u)``, 256x256-bin joint histograms, bits.
- ``vif``: VIFF, Han et al. 2013 (Information Fusion 14(2)): four-scale VIF-style information with
  and without distortion, per scale and pixel taking the source whose gain to ``u`` is smaller,
  scale weights ``(1, 0, 0.15, 1) / 2.15``, visual noise ``0.005 * 255^2``, ``C = 1e-7``.
- ``qabf``: Xydeas-Petrovic Q^AB/F with Sobel gradients and the constants ``Γg=0.9994, κg=-15,
  σg=0.5, Γα=0.9879, κα=-22, σα=0.8, L=1``. Image borders replicate the edge pixel, so a constant
  image has no gradient (zero padding would add an artificial frame edge to every image).
- ``ssim``: ``SSIM(x,u) + SSIM(y,u)``, the sum that fusion papers report (its range is [-2, 2]; the
  mean of the two is ``ssim / 2``). Each SSIM is Wang et al. 2004: Gaussian window 11, σ 1.5,
  ``K1=0.01, K2=0.03, L=255``, averaged over the valid (unpadded) window positions.

The paper's variants, which are not the standard metrics:
- ``paper_mi``: the joint entropies ``H(x,u) + H(y,u)`` in bits.
- ``paper_vif``: ``VIFp(x,u) + VIFp(y,u)``, the pixel-domain multi-scale VIF of Sheikh & Bovik
  (source as reference, ``σn² = 2``), summed over the two sources.

Undefined cases (a VIFp reference or both Q^AB/F sources without any variation) give NaN.
"""
import cv2
import numpy as np

STANDARD_KEYS = ('en', 'sd', 'sf', 'mi', 'vif', 'qabf', 'ssim')
PAPER_KEYS = ('paper_mi', 'paper_vif')
ALL_KEYS = STANDARD_KEYS + PAPER_KEYS  # every key of fusion_metrics(), in report order


class MetricInputError(ValueError):
    """Images that the fusion metrics cannot score; the message names the problem."""


QABF_CONSTANTS = dict(gamma_g=0.9994, kappa_g=-15.0, sigma_g=0.5,
                      gamma_a=0.9879, kappa_a=-22.0, sigma_a=0.8, L=1.0)
VIFF_SCALE_WEIGHTS = np.array([1.0, 0.0, 0.15, 1.0]) / 2.15
VIFF_NOISE = 0.005 * 255.0 * 255.0
VIFF_C = 1e-7
VIFP_NOISE = 2.0
_EPS = 1e-10
# the 33/17/9/5-pixel windows and the three 2x decimations of the VIF scales need this many pixels
VIF_MIN_SIDE = 81


def luminance(image: np.ndarray) -> np.ndarray:
    """HSV V channel (``max`` over RGB) of ``image`` as uint8 ``HxW``.

    ``image``: uint8 ``HxW``/``HxWx1``/``HxWx3`` RGB, or float in [0, 1] (rounded to 0..255).
    """
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] in (1, 3):
        img = img.max(axis=2)
    if img.ndim != 2:
        raise MetricInputError(f'expected an HxW or HxWx3 image, got shape {img.shape}')
    if img.dtype == np.uint8:
        return img
    if np.issubdtype(img.dtype, np.floating):
        if not np.isfinite(img).all() or img.min() < 0.0 or img.max() > 1.0:
            raise MetricInputError('float images must be finite and in [0, 1]')
        return np.round(img * 255.0).astype(np.uint8)
    raise MetricInputError(f'unsupported image dtype {img.dtype}: use uint8 or float in [0, 1]')


def _hist_entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0].astype(np.float64)
    p /= p.sum()
    return float(-(p * np.log2(p)).sum())


def _joint_counts(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.bincount(a.ravel().astype(np.int64) * 256 + b.ravel(), minlength=65536)


def en(u: np.ndarray) -> float:
    """Entropy (bits) of the 256-bin histogram of the uint8 luminance ``u``."""
    return _hist_entropy(np.bincount(luminance(u).ravel(), minlength=256))


def sd(u: np.ndarray) -> float:
    """Population standard deviation of the luminance ``u`` (0..255 scale)."""
    return float(luminance(u).astype(np.float64).std())


def sf(u: np.ndarray) -> float:
    """Spatial frequency ``sqrt(RF^2 + CF^2)`` of the luminance ``u`` (0..255 scale)."""
    f = luminance(u).astype(np.float64)
    rf2 = np.mean(np.diff(f, axis=1) ** 2) if f.shape[1] > 1 else 0.0
    cf2 = np.mean(np.diff(f, axis=0) ** 2) if f.shape[0] > 1 else 0.0
    return float(np.sqrt(rf2 + cf2))


def joint_entropy(a: np.ndarray, b: np.ndarray) -> float:
    """Joint entropy ``H(a, b)`` in bits from the 256x256 joint histogram of two luminances."""
    return _hist_entropy(_joint_counts(luminance(a), luminance(b)))


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """``MI(a, b) = H(a) + H(b) - H(a, b)`` in bits, 256-bin histograms."""
    return en(a) + en(b) - joint_entropy(a, b)


def mi(x: np.ndarray, y: np.ndarray, u: np.ndarray) -> float:
    """Standard fusion MI: ``MI(x,u) + MI(y,u)`` in bits."""
    return mutual_information(x, u) + mutual_information(y, u)


def paper_mi(x: np.ndarray, y: np.ndarray, u: np.ndarray) -> float:
    """The EfficientMFD paper's "MI": joint entropies ``H(x,u) + H(y,u)`` in bits."""
    return joint_entropy(x, u) + joint_entropy(y, u)


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    k = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2.0 * sigma * sigma))
    return k / k.sum()


def _filter_valid(img: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Correlation keeping only positions where the window lies inside the image (odd window)."""
    r = window.shape[0] // 2
    out = cv2.filter2D(img, cv2.CV_64F, window, borderType=cv2.BORDER_REFLECT)
    return out[r:img.shape[0] - r, r:img.shape[1] - r]


def _ssim_single(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    if min(a.shape) < 11:
        raise MetricInputError(f'SSIM needs images of at least 11x11 pixels, got {a.shape}')
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    w = _gaussian_window(11, 1.5)
    mu_a, mu_b = _filter_valid(a, w), _filter_valid(b, w)
    var_a = _filter_valid(a * a, w) - mu_a ** 2
    var_b = _filter_valid(b * b, w) - mu_b ** 2
    cov = _filter_valid(a * b, w) - mu_a * mu_b
    num = (2.0 * mu_a * mu_b + c1) * (2.0 * cov + c2)
    den = (mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def ssim_pair(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM (Wang et al. 2004, Gaussian 11 / σ 1.5) of two luminances, in [-1, 1]."""
    return _ssim_single(luminance(a), luminance(b))


def ssim(x: np.ndarray, y: np.ndarray, u: np.ndarray) -> float:
    """Fusion SSIM as fusion papers report it: the sum ``SSIM(x,u) + SSIM(y,u)`` (mean = half)."""
    return ssim_pair(x, u) + ssim_pair(y, u)


def _vif_scales(ref: np.ndarray, dist: np.ndarray, noise: float) -> list:
    """Per-scale maps ``(info_with_distortion, info_without, gain)`` of Sheikh-Bovik pixel VIF."""
    if min(ref.shape) < VIF_MIN_SIDE:
        raise MetricInputError(f'VIF needs images of at least {VIF_MIN_SIDE} pixels a side, '
                               f'got {ref.shape}')
    ref = ref.astype(np.float64)
    dist = dist.astype(np.float64)
    maps = []
    for scale in range(4):
        n = 2 ** (4 - scale) + 1
        win = _gaussian_window(n, n / 5.0)
        if scale > 0:
            ref = _filter_valid(ref, win)[::2, ::2]
            dist = _filter_valid(dist, win)[::2, ::2]
        mu1, mu2 = _filter_valid(ref, win), _filter_valid(dist, win)
        s1 = np.maximum(_filter_valid(ref * ref, win) - mu1 * mu1, 0.0)
        s2 = np.maximum(_filter_valid(dist * dist, win) - mu2 * mu2, 0.0)
        s12 = _filter_valid(ref * dist, win) - mu1 * mu2
        g = s12 / (s1 + _EPS)
        sv = s2 - g * s12
        flat_ref = s1 < _EPS
        g[flat_ref] = 0.0
        sv[flat_ref] = s2[flat_ref]
        s1[flat_ref] = 0.0
        flat_dist = s2 < _EPS
        g[flat_dist] = 0.0
        sv[flat_dist] = 0.0
        negative = g < 0
        sv[negative] = s2[negative]
        g[negative] = 0.0
        sv = np.maximum(sv, _EPS)
        with_dist = np.log10(1.0 + g * g * s1 / (sv + noise))
        without = np.log10(1.0 + s1 / noise)
        maps.append((with_dist, without, g))
    return maps


def vifp(ref: np.ndarray, dist: np.ndarray) -> float:
    """Pixel-domain multi-scale VIF (Sheikh & Bovik), ``ref`` the source, ``dist`` the fused image.

    ``sum over scales and pixels of info_with_distortion / info_without``; 1 for ``dist == ref``.
    """
    ref, dist = _same_shape(luminance(ref), luminance(dist))
    maps = _vif_scales(ref, dist, VIFP_NOISE)
    num = sum(m[0].sum() for m in maps)
    den = sum(m[1].sum() for m in maps)
    return float(num / den) if den > 0 else float('nan')


def paper_vif(x: np.ndarray, y: np.ndarray, u: np.ndarray) -> float:
    """The EfficientMFD paper's "VIF": ``VIFp(x,u) + VIFp(y,u)``."""
    return vifp(x, u) + vifp(y, u)


def vif(x: np.ndarray, y: np.ndarray, u: np.ndarray) -> float:
    """VIFF (Han et al. 2013) of ``u`` given the sources ``x`` and ``y``; 1 when all are equal."""
    x, y, u = _same_shape(luminance(x), luminance(y), luminance(u))
    maps_x = _vif_scales(x, u, VIFF_NOISE)
    maps_y = _vif_scales(y, u, VIFF_NOISE)
    per_scale = []
    for (wx, ox, gx), (wy, oy, gy) in zip(maps_x, maps_y):
        take_x = gx < gy
        with_dist = np.where(take_x, wx, wy)
        without = np.where(take_x, ox, oy)
        per_scale.append((with_dist + VIFF_C).sum() / (without + VIFF_C).sum())
    return float(np.dot(VIFF_SCALE_WEIGHTS, per_scale))


def _sobel(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = img.astype(np.float64)
    gx = cv2.Sobel(f, cv2.CV_64F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.Sobel(f, cv2.CV_64F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE)
    magnitude = np.hypot(gx, gy)
    safe_gx = np.where(gx == 0, 1.0, gx)
    angle = np.where(gx == 0, np.pi / 2, np.arctan(gy / safe_gx))
    return magnitude, angle


def _edge_preservation(g_src: np.ndarray, a_src: np.ndarray, g_fused: np.ndarray,
                       a_fused: np.ndarray) -> np.ndarray:
    c = QABF_CONSTANTS
    larger = np.maximum(g_src, g_fused)
    smaller = np.minimum(g_src, g_fused)
    # relative strength: the smaller over the larger magnitude, 1 where both are equal
    strength = np.where(larger > 0, smaller / np.where(larger > 0, larger, 1.0), 1.0)
    orientation = 1.0 - np.abs(a_src - a_fused) / (np.pi / 2)
    q_g = c['gamma_g'] / (1.0 + np.exp(c['kappa_g'] * (strength - c['sigma_g'])))
    q_a = c['gamma_a'] / (1.0 + np.exp(c['kappa_a'] * (orientation - c['sigma_a'])))
    return q_g * q_a


def qabf(x: np.ndarray, y: np.ndarray, u: np.ndarray) -> float:
    """Xydeas-Petrovic Q^AB/F: how well ``u`` keeps the edges of ``x`` and ``y``, in [0, 1]."""
    x, y, u = _same_shape(luminance(x), luminance(y), luminance(u))
    gx_, ax_ = _sobel(x)
    gy_, ay_ = _sobel(y)
    gu_, au_ = _sobel(u)
    L = QABF_CONSTANTS['L']
    wx, wy = gx_ ** L, gy_ ** L
    den = (wx + wy).sum()
    if den == 0:
        return float('nan')
    num = (_edge_preservation(gx_, ax_, gu_, au_) * wx
           + _edge_preservation(gy_, ay_, gu_, au_) * wy).sum()
    return float(num / den)


def _same_shape(*images: np.ndarray) -> tuple[np.ndarray, ...]:
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise MetricInputError(f'images must have the same height and width, got {sorted(shapes)}')
    return images


def fusion_metrics(vis: np.ndarray, ir: np.ndarray, fused: np.ndarray) -> dict[str, float]:
    """All fusion metrics of one pair as a dict of floats (keys as in the module docstring).

    ``vis``: uint8 HxWx3 RGB or HxW grey (or float [0, 1]); ``ir``: HxW grey; ``fused``: RGB or
    grey. All three must have the same HxW.
    """
    x, y, u = _same_shape(luminance(vis), luminance(ir), luminance(fused))
    return {
        'en': en(u),
        'sd': sd(u),
        'sf': sf(u),
        'mi': mi(x, y, u),
        'vif': vif(x, y, u),
        'qabf': qabf(x, y, u),
        'ssim': ssim(x, y, u),
        'paper_mi': paper_mi(x, y, u),
        'paper_vif': paper_vif(x, y, u),
    }
