"""Camera images -> network input tensors, on the inference device.

Conventions:
- ``rgb``: uint8 ``(H, W, 3)`` in RGB order. ``thermal``: uint8 or uint16 ``(H_t, W_t)``
  (``(H_t, W_t, 1)`` is accepted too). uint8 thermal maps 0..255 to [0, 1]; uint16 maps
  ``thermal_range=(lo, hi)`` to [0, 1], clipped.
- Outputs: ``rgb`` float32 ``(1, 3, h, w)`` and ``thermal`` float32 ``(1, 1, h, w)`` in [0, 1] at
  the network input size ``input_hw=(h, w)``, plus the :class:`InputTransform` that maps
  network-input pixels back.
- Geometry: pixel centres sit at integer coordinates (OpenCV's convention), so bilinear resampling
  here matches ``cv2.resize``/``cv2.warpPerspective`` with ``INTER_LINEAR``. Boxes are continuous
  ``xyxy`` pixel coordinates, for which the mapping is a plain scale and offset.
- Thermal-to-RGB registration: ``homography`` H maps thermal pixel coordinates to RGB pixel
  coordinates, ``[x_rgb, y_rgb, 1]^T ~ H [x_t, y_t, 1]^T``, as ``cv2.findHomography(thermal_pts,
  rgb_pts)`` returns it. The thermal image is warped onto the RGB image grid and resized with it in
  one ``grid_sample``; RGB pixels the thermal camera does not see read 0. When the sizes differ and
  no homography is given, thermal is scaled to the RGB size (the cameras are assumed to share a
  field of view).
"""
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from efficientmfd_ros.runtime.errors import InputError


@dataclass(frozen=True)
class PreprocessConfig:
    """input_hw: network input (h, w); letterbox keeps the aspect ratio and pads with pad_value."""

    input_hw: tuple[int, int]
    letterbox: bool = False
    thermal_range: tuple[float, float] = (0.0, 65535.0)
    homography: tuple[tuple[float, ...], ...] | None = None
    pad_value: float = 0.0

    def __post_init__(self) -> None:
        h, w = self.input_hw
        if int(h) <= 0 or int(w) <= 0:
            raise ValueError(f'input_hw must be positive, got {self.input_hw}')
        lo, hi = self.thermal_range
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise ValueError(f'thermal_range must be (lo, hi) with hi > lo, got '
                             f'{self.thermal_range}')
        if self.homography is not None:
            mat = np.asarray(self.homography, dtype=np.float64)
            if mat.shape != (3, 3) or not np.all(np.isfinite(mat)):
                raise ValueError(f'homography must be a finite 3x3 matrix, got shape {mat.shape}')
            if abs(np.linalg.det(mat)) < 1e-12:
                raise ValueError('homography is singular (determinant ~ 0)')
            object.__setattr__(self, 'homography', tuple(tuple(float(v) for v in r) for r in mat))


@dataclass(frozen=True)
class InputTransform:
    """Network-input pixels -> RGB-image pixels: ``x_img = (x_in - pad_x) / scale_x`` (same for y).

    image_hw: the RGB image (H, W); input_hw: the network input (h, w); content_hw: the resized
    image inside the network input (equals input_hw without letterbox).
    """

    image_hw: tuple[int, int]
    input_hw: tuple[int, int]
    content_hw: tuple[int, int]
    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int

    def boxes_to_image(self, boxes: torch.Tensor) -> torch.Tensor:
        """``(K, 4)`` xyxy network-input pixels -> xyxy RGB-image pixels clamped to the image."""
        h, w = self.image_hw
        offset = boxes.new_tensor([self.pad_x, self.pad_y, self.pad_x, self.pad_y])
        scale = boxes.new_tensor([self.scale_x, self.scale_y, self.scale_x, self.scale_y])
        out = (boxes - offset) / scale
        out[:, 0::2] = out[:, 0::2].clamp(0.0, float(w))
        out[:, 1::2] = out[:, 1::2].clamp(0.0, float(h))
        return out


def compute_transform(image_hw: Sequence[int], input_hw: Sequence[int],
                      letterbox: bool) -> InputTransform:
    """The resize (aspect stretch) or letterbox taking an ``image_hw`` image to ``input_hw``."""
    (img_h, img_w), (in_h, in_w) = image_hw, input_hw
    if not letterbox:
        return InputTransform((img_h, img_w), (in_h, in_w), (in_h, in_w),
                              in_w / img_w, in_h / img_h, 0, 0)
    scale = min(in_w / img_w, in_h / img_h)
    new_w, new_h = max(1, min(in_w, round(img_w * scale))), max(1, min(in_h, round(img_h * scale)))
    return InputTransform((img_h, img_w), (in_h, in_w), (new_h, new_w), new_w / img_w,
                          new_h / img_h, (in_w - new_w) // 2, (in_h - new_h) // 2)


def check_rgb(rgb: Any) -> np.ndarray:
    """Raise :class:`InputError` unless ``rgb`` is a non-empty uint8 (H, W, 3) array."""
    if not isinstance(rgb, np.ndarray):
        raise InputError(f'rgb must be a numpy array, got {type(rgb).__name__}')
    if rgb.dtype != np.uint8:
        raise InputError(f'rgb must be uint8 (H, W, 3) in RGB order, got dtype {rgb.dtype}')
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputError(f'rgb must have shape (H, W, 3), got {rgb.shape}')
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise InputError(f'rgb image is empty: shape {rgb.shape}')
    return rgb


def check_thermal(thermal: Any) -> np.ndarray:
    """Raise :class:`InputError` unless ``thermal`` is a non-empty uint8/uint16 (H, W[, 1])."""
    if not isinstance(thermal, np.ndarray):
        raise InputError(f'thermal must be a numpy array, got {type(thermal).__name__}')
    if thermal.dtype not in (np.uint8, np.uint16):
        raise InputError(f'thermal must be uint8 or uint16 (H, W), got dtype {thermal.dtype}')
    if thermal.ndim == 3 and thermal.shape[2] == 1:
        thermal = thermal[:, :, 0]
    if thermal.ndim != 2:
        raise InputError(f'thermal must have shape (H, W) (one channel), got {thermal.shape}')
    if thermal.shape[0] == 0 or thermal.shape[1] == 0:
        raise InputError(f'thermal image is empty: shape {thermal.shape}')
    return thermal


def scale_homography(thermal_hw: Sequence[int], rgb_hw: Sequence[int]) -> np.ndarray:
    """The homography stretching a ``thermal_hw`` image onto ``rgb_hw`` (pixel centres aligned)."""
    sx, sy = rgb_hw[1] / thermal_hw[1], rgb_hw[0] / thermal_hw[0]
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def warp_grid(homography: np.ndarray, thermal_hw: Sequence[int],
              transform: InputTransform) -> torch.Tensor:
    """``grid_sample`` grid ``(1, h_c, w_c, 2)`` sampling thermal at the input's content pixels.

    Content pixel (u, v) -> RGB pixel ``((u + 0.5) / scale_x - 0.5, ...)`` -> thermal pixel via
    H^-1 -> grid_sample's normalized coordinates (align_corners=False).
    """
    (h_c, w_c), (t_h, t_w) = transform.content_hw, thermal_hw
    v, u = np.meshgrid(np.arange(h_c, dtype=np.float64), np.arange(w_c, dtype=np.float64),
                       indexing='ij')
    x_rgb = (u + 0.5) / transform.scale_x - 0.5
    y_rgb = (v + 0.5) / transform.scale_y - 0.5
    pts = np.stack([x_rgb, y_rgb, np.ones_like(x_rgb)], axis=-1) @ np.linalg.inv(homography).T
    denom = pts[..., 2]
    # Points mapped to infinity (behind the thermal camera's horizon) must sample nothing.
    safe = np.where(np.abs(denom) < 1e-12, np.nan, denom)
    x_t, y_t = pts[..., 0] / safe, pts[..., 1] / safe
    grid = np.stack([(2.0 * x_t + 1.0) / t_w - 1.0, (2.0 * y_t + 1.0) / t_h - 1.0], axis=-1)
    grid = np.nan_to_num(grid, nan=-10.0, posinf=-10.0, neginf=-10.0)
    return torch.from_numpy(grid[None].astype(np.float32))


class Preprocessor:
    """Uploads the two images and turns them into network inputs on ``device`` (torch ops only).

    On CUDA the raw images are staged in reusable pinned host buffers and copied with
    ``non_blocking=True``; reuse is safe because every frame ends with a synchronizing copy of its
    results before the next frame overwrites a buffer.
    """

    def __init__(self, cfg: PreprocessConfig, device: str | torch.device = 'cpu') -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        self._pinned = self.device.type == 'cuda'
        self._host: dict[tuple, torch.Tensor] = {}
        self._grids: dict[tuple, torch.Tensor] = {}
        self._homography = None if cfg.homography is None else np.asarray(cfg.homography)
        self._frame: tuple[torch.Tensor, torch.Tensor, tuple[int, ...]] | None = None

    def __call__(self, rgb: np.ndarray,
                 thermal: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, InputTransform]:
        """Returns ``(rgb (1,3,h,w) float32, thermal (1,1,h,w) float32, InputTransform)``."""
        rgb, thermal = check_rgb(rgb), check_thermal(thermal)
        transform = compute_transform(rgb.shape[:2], self.cfg.input_hw, self.cfg.letterbox)
        rgb_dev = self._upload(rgb)
        # uint16 travels as int16 bits: CUDA has few torch.uint16 kernels and all int32 ones.
        raw = self._upload(thermal.view(np.int16) if thermal.dtype == np.uint16 else thermal)
        rgb_t = rgb_dev.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
        thermal_t = self._thermal_unit(raw, thermal.dtype).unsqueeze(0).unsqueeze(0)
        rgb_in = self._resize(rgb_t, transform)
        if self._needs_warp(thermal.shape, rgb.shape[:2]):
            thermal_in = self._warp(thermal_t, thermal.shape, transform)
        else:
            thermal_in = self._resize(thermal_t, transform)
        self._frame = (rgb_t, thermal_t, thermal.shape)
        return rgb_in, thermal_in, transform

    def full_resolution(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The last frame's ``(rgb (1,3,H,W), thermal (1,1,H,W))`` float32 in [0, 1] on the RGB
        image's own grid (thermal registered and resampled as for the network input, unpadded)."""
        if self._frame is None:
            raise RuntimeError('full_resolution() needs a frame: call the preprocessor first')
        rgb_t, thermal_t, thermal_hw = self._frame
        rgb_hw = tuple(rgb_t.shape[-2:])
        if not self._needs_warp(thermal_hw, rgb_hw):
            return rgb_t, thermal_t
        identity = compute_transform(rgb_hw, rgb_hw, letterbox=False)
        return rgb_t, self._warp(thermal_t, thermal_hw, identity)

    def _upload(self, array: np.ndarray) -> torch.Tensor:
        src = torch.from_numpy(np.ascontiguousarray(array))
        if self.device.type == 'cpu':
            return src
        key = (tuple(src.shape), src.dtype)
        host = self._host.get(key)
        if host is None:
            host = torch.empty(src.shape, dtype=src.dtype, pin_memory=self._pinned)
            self._host[key] = host
        host.copy_(src)
        return host.to(self.device, non_blocking=True)

    def _thermal_unit(self, raw: torch.Tensor, dtype: np.dtype) -> torch.Tensor:
        if dtype == np.uint8:
            return raw.float().div_(255.0)
        lo, hi = self.cfg.thermal_range
        values = (raw.to(torch.int32) & 0xFFFF).float()
        return values.sub_(lo).div_(hi - lo).clamp_(0.0, 1.0)

    def _needs_warp(self, thermal_hw: Sequence[int], rgb_hw: Sequence[int]) -> bool:
        if self._homography is None:
            return tuple(thermal_hw) != tuple(rgb_hw)
        same_size = tuple(thermal_hw) == tuple(rgb_hw)
        return not (same_size and np.allclose(self._homography, np.eye(3)))

    def _resize(self, image: torch.Tensor, transform: InputTransform) -> torch.Tensor:
        if transform.content_hw != tuple(image.shape[-2:]):
            image = F.interpolate(image, size=transform.content_hw, mode='bilinear',
                                  align_corners=False)
        return self._pad(image, transform)

    def _warp(self, thermal: torch.Tensor, thermal_hw: Sequence[int],
              transform: InputTransform) -> torch.Tensor:
        key = (tuple(thermal_hw), transform.image_hw, transform.content_hw)
        grid = self._grids.get(key)
        if grid is None:
            mat = self._homography
            if mat is None:
                mat = scale_homography(thermal_hw, transform.image_hw)
            grid = warp_grid(mat, thermal_hw, transform).to(self.device)
            self._grids[key] = grid
        warped = F.grid_sample(thermal, grid, mode='bilinear', padding_mode='zeros',
                               align_corners=False)
        return self._pad(warped, transform)

    def _pad(self, image: torch.Tensor, transform: InputTransform) -> torch.Tensor:
        (in_h, in_w), (c_h, c_w) = transform.input_hw, transform.content_hw
        if (in_h, in_w) == (c_h, c_w):
            return image.contiguous()
        px, py = transform.pad_x, transform.pad_y
        return F.pad(image, (px, in_w - c_w - px, py, in_h - c_h - py), value=self.cfg.pad_value)
