"""Augmentation that keeps the RGB image, the thermal image and the boxes aligned.

Transforms take and return the sample dicts of ``PairedDataset`` (``rgb`` HxWx3, ``thermal`` HxW of
the same HxW, ``boxes`` (K,4) float32 ``xyxy`` pixels, ``labels`` (K,) int64) and draw every
random number from the ``np.random.Generator`` they are given, so a seeded generator reproduces
them. Both add ``orig_hw`` (H, W) of the image they received, ``scale`` (sx, sy) and ``offset``
(dx, dy) such that ``x_out = x_in * sx + dx`` (see ``boxes_to_original``).

- ``TrainAugment``: optional copy-paste of the image's own objects, or of other training frames'
  (``donors``; ``copy_paste.py``),
  horizontal flip, scale jitter around the fit-to-size scale, random crop/pad to the training
  size, photometric jitter per modality (independent draws), optional modality dropout.
  Outputs float32 images in [0, 1] and ``flipped``, ``dropped`` (None, 'rgb', 'thermal').
- ``resize_to(size)``: the deterministic evaluation transform; keeps the image dtype.
"""
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from efficientmfd_ros.core.config_io import from_plain
from efficientmfd_ros.train.data.copy_paste import paste_copies


class AugmentError(ValueError):
    """An augmentation setting or sample that cannot be used; the message names the problem."""


@dataclass
class AugmentConfig:
    """Training augmentation settings (``augment:`` in a train config)."""

    size: tuple = (512, 640)               # (H, W) of the network input
    hflip_p: float = 0.5                   # probability of a horizontal flip
    scale_range: tuple = (0.75, 1.25)      # jitter factor on the scale fitting the image to size
    photometric_p: float = 0.8             # per modality: probability of photometric jitter
    brightness: float = 0.1                # additive shift drawn in [-b, b] of the full scale
    contrast: float = 0.2                  # factor drawn in [1-c, 1+c] around the image mean
    gamma: float = 1.25                    # exponent drawn log-uniformly in [1/g, g]
    modality_dropout_p: float = 0.0        # probability of blanking one modality
    dropout_rgb_share: float = 0.5         # of the blanked images, the share whose RGB is blanked
    copy_paste_p: float = 0.0              # probability of pasting copies of the image's objects
    copy_paste_max: int = 3                # at most this many copies per image (copy_paste.py)
    copy_paste_donor_p: float = 0.0        # share of the copies cut from other training frames
    min_box_size: float = 2.0              # pixels; smaller boxes after the crop are dropped
    min_visible: float = 0.3               # boxes keeping less of their area in the crop go
    thermal_range: tuple = (0.0, 65535.0)  # uint16 thermal counts mapped to [0, 1]

    def __post_init__(self):
        h, w = (int(v) for v in self.size)
        if h <= 0 or w <= 0:
            raise AugmentError(f'size must be two positive ints (H, W), got {self.size}')
        self.size = (h, w)
        for name in ('hflip_p', 'photometric_p', 'modality_dropout_p', 'dropout_rgb_share',
                     'min_visible', 'copy_paste_p', 'copy_paste_donor_p'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise AugmentError(f'{name} must be in [0, 1], got {getattr(self, name)}')
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise AugmentError(f'scale_range must satisfy 0 < low <= high, got {self.scale_range}')
        if not self.thermal_range[0] < self.thermal_range[1]:
            raise AugmentError(f'thermal_range must be (low, high), got {self.thermal_range}')
        if self.copy_paste_max < 1:
            raise AugmentError(f'copy_paste_max must be >= 1, got {self.copy_paste_max}')
        if self.gamma < 1.0:
            raise AugmentError(f'gamma must be >= 1 (range [1/g, g]), got {self.gamma}')

    @classmethod
    def from_dict(cls, data, where='augment'):
        """Keys and value types checked against the fields; `where` names it in messages."""
        return from_plain(cls, data, where, root=False, error=AugmentError)


def to_unit(image, thermal_range=(0.0, 65535.0)):
    """float32 copy in [0, 1]: uint8 / 255, uint16 mapped from ``thermal_range``, float clipped."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        lo, hi = thermal_range
        return np.clip((image.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)
    if np.issubdtype(image.dtype, np.floating):
        return np.clip(image, 0.0, 1.0).astype(np.float32)
    raise AugmentError(f'unsupported image dtype {image.dtype}: use uint8, uint16 or float')


def boxes_to_original(boxes, scale, offset):
    """Boxes (K,4) ``xyxy`` in network-input pixels back to the pixels of the original image."""
    sx, sy = scale
    dx, dy = offset
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    shift = np.array([dx, dy, dx, dy], np.float32)
    return (boxes - shift) / np.array([sx, sy, sx, sy], np.float32)


def _resize(image, width, height):
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrink = width < image.shape[1] and height < image.shape[0]
    return cv2.resize(image, (width, height),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _paste(image, out_hw, offset):
    """``image`` placed at ``offset`` (dx, dy) on a zero canvas of ``out_hw``, cropped to it."""
    canvas = np.zeros(out_hw + image.shape[2:], image.dtype)
    (dx, dy), (h, w) = offset, image.shape[:2]
    x0, y0 = max(dx, 0), max(dy, 0)
    sx0, sy0 = max(-dx, 0), max(-dy, 0)
    cw, ch = min(w - sx0, out_hw[1] - x0), min(h - sy0, out_hw[0] - y0)
    if cw > 0 and ch > 0:
        canvas[y0:y0 + ch, x0:x0 + cw] = image[sy0:sy0 + ch, sx0:sx0 + cw]
    return canvas


def _placement(length, target, rng):
    """Offset of a ``length`` axis in a ``target`` axis: a random crop or a random pad."""
    if length >= target:
        return -int(rng.integers(0, length - target + 1))
    return int(rng.integers(0, target - length + 1))


def _checked(sample):
    rgb, thermal = sample['rgb'], sample['thermal']
    if rgb.ndim != 3 or rgb.shape[2] != 3 or thermal.shape != rgb.shape[:2]:
        raise AugmentError(f'sample {sample.get("id")}: rgb must be HxWx3 and thermal HxW of the '
                           f'same size, got {rgb.shape} and {thermal.shape}')
    boxes = np.asarray(sample['boxes'], np.float32).reshape(-1, 4)
    labels = np.asarray(sample['labels'], np.int64).reshape(-1)
    return rgb, thermal, boxes, labels


class TrainAugment:
    """Training transform ``(sample, rng) -> sample``; see the module docstring.

    ``donors``: dataset name -> ``copy_paste.Donor`` list, the objects a sample of that dataset
    may receive from its other frames (``copy_paste_donor_p``); empty: own objects only.
    """

    def __init__(self, config=None, seed=None, donors=None):
        self.config = config or AugmentConfig()
        self._rng = np.random.default_rng(seed)
        self.donors = dict(donors or {})

    def __call__(self, sample, rng=None):
        rng = self._rng if rng is None else rng
        cfg = self.config
        rgb, thermal, boxes, labels = _checked(sample)
        height, width = rgb.shape[:2]
        out = dict(sample)
        out['orig_hw'] = (height, width)
        if cfg.copy_paste_p and rng.random() < cfg.copy_paste_p:
            donors = [d for d in self.donors.get(sample.get('dataset'), ())
                      if d.frame != str(sample.get('id'))] if cfg.copy_paste_donor_p else ()
            rgb, thermal, boxes, labels = paste_copies(rgb, thermal, boxes, labels, rng,
                                                       cfg.copy_paste_max, donors,
                                                       cfg.copy_paste_donor_p)
        out['flipped'] = bool(rng.random() < cfg.hflip_p)
        if out['flipped']:
            rgb, thermal = rgb[:, ::-1], thermal[:, ::-1]
            boxes = np.stack([width - boxes[:, 2], boxes[:, 1],
                              width - boxes[:, 0], boxes[:, 3]], axis=1)
        th, tw = cfg.size
        scale = min(th / height, tw / width) * rng.uniform(*cfg.scale_range)
        nw, nh = max(1, round(width * scale)), max(1, round(height * scale))
        sx, sy = nw / width, nh / height
        offset = (_placement(nw, tw, rng), _placement(nh, th, rng))
        rgb = _paste(_resize(np.ascontiguousarray(rgb), nw, nh), cfg.size, offset)
        thermal = _paste(_resize(np.ascontiguousarray(thermal), nw, nh), cfg.size, offset)
        boxes, labels = self._move_boxes(boxes, labels, (sx, sy), offset)
        rgb = self._photometric(to_unit(rgb), rng)
        thermal = self._photometric(to_unit(thermal, cfg.thermal_range), rng)
        out['dropped'] = None
        if rng.random() < cfg.modality_dropout_p:
            out['dropped'] = 'rgb' if rng.random() < cfg.dropout_rgb_share else 'thermal'
            if out['dropped'] == 'rgb':
                rgb = np.zeros_like(rgb)
            else:
                thermal = np.zeros_like(thermal)
        out.update(rgb=rgb, thermal=thermal, boxes=boxes, labels=labels,
                   scale=(sx, sy), offset=(float(offset[0]), float(offset[1])))
        return out

    def _move_boxes(self, boxes, labels, scale, offset):
        cfg = self.config
        factors = np.array([scale[0], scale[1], scale[0], scale[1]], np.float32)
        shift = np.array([offset[0], offset[1], offset[0], offset[1]], np.float32)
        moved = boxes * factors + shift
        th, tw = cfg.size
        clipped = np.clip(moved, 0.0, np.array([tw, th, tw, th], np.float32))
        w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
        full_area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
        keep = ((w >= cfg.min_box_size) & (h >= cfg.min_box_size)
                & (w * h >= cfg.min_visible * full_area))
        return clipped[keep].astype(np.float32), labels[keep]

    def _photometric(self, image, rng):
        cfg = self.config
        if rng.random() >= cfg.photometric_p:
            return image
        log_g = np.log(cfg.gamma)
        image = image ** np.float32(np.exp(rng.uniform(-log_g, log_g)))
        mean = image.mean()
        image = (image - mean) * np.float32(rng.uniform(1 - cfg.contrast, 1 + cfg.contrast)) + mean
        image = image + np.float32(rng.uniform(-cfg.brightness, cfg.brightness))
        return np.clip(image, 0.0, 1.0).astype(np.float32)


class ResizeTo:
    """Deterministic evaluation transform to ``size`` (H, W): a plain resize, or with
    ``keep_ratio`` a resize that fits the image and pads the bottom/right with zeros."""

    def __init__(self, size, keep_ratio=False):
        self.size = tuple(int(v) for v in size)
        if len(self.size) != 2 or min(self.size) <= 0:
            raise AugmentError(f'size must be two positive ints (H, W), got {size}')
        self.keep_ratio = keep_ratio

    def __call__(self, sample, rng=None):
        rgb, thermal, boxes, labels = _checked(sample)
        height, width = rgb.shape[:2]
        th, tw = self.size
        if self.keep_ratio:
            s = min(th / height, tw / width)
            nw, nh = max(1, round(width * s)), max(1, round(height * s))
        else:
            nw, nh = tw, th
        sx, sy = nw / width, nh / height
        rgb = _paste(_resize(rgb, nw, nh), self.size, (0, 0))
        thermal = _paste(_resize(thermal, nw, nh), self.size, (0, 0))
        factors = np.array([sx, sy, sx, sy], np.float32)
        boxes = np.clip(boxes * factors, 0.0, np.array([nw, nh, nw, nh], np.float32))
        out = dict(sample)
        out.update(rgb=rgb, thermal=thermal, boxes=boxes.astype(np.float32), labels=labels,
                   orig_hw=(height, width), scale=(sx, sy), offset=(0.0, 0.0))
        return out


def resize_to(size, keep_ratio=False):
    """The evaluation transform resizing every sample to ``size`` (H, W); see ``ResizeTo``."""
    return ResizeTo(size, keep_ratio)


class PairCollate:
    """DataLoader ``collate_fn`` for samples of one HxW (after ``TrainAugment`` or ``resize_to``).

    Returns a dict: ``rgb`` float32 (B,3,H,W) and ``thermal`` float32 (B,1,H,W) in [0, 1] (uint16
    thermal mapped from ``thermal_range``), ``targets`` list of ``dict(labels (K,) int64, boxes
    (K,4) float32 xyxy pixels of the network input)``, ``labelled`` bool (B,), ``ids`` list of
    str, ``orig_sizes`` int64 (B,2) (H, W), ``scales`` float32 (B,2) (sx, sy), ``offsets`` float32
    (B,2) (dx, dy), so that ``boxes_to_original`` maps predictions back, and ``dropped`` list.
    """

    def __init__(self, thermal_range=(0.0, 65535.0)):
        self.thermal_range = tuple(thermal_range)

    def __call__(self, samples):
        if not samples:
            raise AugmentError('cannot collate an empty batch')
        sizes = {s['rgb'].shape[:2] for s in samples} | {s['thermal'].shape[:2] for s in samples}
        if len(sizes) != 1:
            raise AugmentError(f'batch images differ in size {sorted(sizes)}: resize them first '
                               '(TrainAugment or resize_to)')
        rgb = np.stack([to_unit(s['rgb']) for s in samples]).transpose(0, 3, 1, 2)
        thermal = np.stack([to_unit(s['thermal'], self.thermal_range) for s in samples])
        targets = [{'labels': torch.as_tensor(np.asarray(s['labels'], np.int64).reshape(-1)),
                    'boxes': torch.as_tensor(np.asarray(s['boxes'], np.float32).reshape(-1, 4))}
                   for s in samples]
        return {
            'rgb': torch.from_numpy(np.ascontiguousarray(rgb)),
            'thermal': torch.from_numpy(thermal[:, None]),
            'targets': targets,
            'labelled': torch.tensor([bool(s.get('labelled', True)) for s in samples]),
            'ids': [s.get('id', '') for s in samples],
            'orig_sizes': torch.tensor([s.get('orig_hw', s['rgb'].shape[:2]) for s in samples],
                                       dtype=torch.int64),
            'scales': torch.tensor([s.get('scale', (1.0, 1.0)) for s in samples],
                                   dtype=torch.float32),
            'offsets': torch.tensor([s.get('offset', (0.0, 0.0)) for s in samples],
                                    dtype=torch.float32),
            'dropped': [s.get('dropped') for s in samples],
        }


collate_pairs = PairCollate()
