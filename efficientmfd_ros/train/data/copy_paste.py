"""Copy-paste of objects, to make crowds and more instances out of few frames.

A box's patch (both cameras, the same pixels) is pasted elsewhere in the image with feathered
edges: beside another object, partly overlapping it, or anywhere along the source's own row, so
the pasted object keeps a plausible size and ground line. By default the image itself is the
only source. With donors (``donors_of``: the objects of the other training frames of the same
dataset, so the same camera pair and registration) a share of the pastes brings people the frame
never had; a donor pasted beside an object is scaled to that object's height, one pasted along
its own row keeps its size. Objects a paste hides are dropped. LLVIP's main miss is a group of
overlapping pedestrians seen as one box (models/README.md), and 32 labelled frames hold few
groups and few distinct people.

Boxes are ``xyxy`` pixels of the image given; images are ``rgb`` HxWx3 and ``thermal`` HxW of any
dtype the augmentation takes (uint8, uint16, float).
"""
from typing import NamedTuple

import cv2
import numpy as np

_BESIDE_P = 0.5           # share of pastes placed next to another object (the rest: same row)
_SHIFT = (0.3, 0.9)       # horizontal distance from that object's centre, in pasted widths
_GROUND_JITTER = 0.1      # vertical jitter of the pasted object's bottom, in its heights
_FEATHER = 0.1            # edge ramp of the paste, as a share of its shorter side
_HIDDEN = 0.7             # objects losing this share of their area under a paste are dropped
_DONOR_HEIGHT = 0.1       # a donor beside an object gets its height times 1 +- this


class Donor(NamedTuple):
    """One object of a training frame: its patch in both cameras (copies), where it stood."""

    rgb: np.ndarray       # hxwx3, the frame's dtype
    thermal: np.ndarray   # hxw, the frame's dtype
    label: int
    box: np.ndarray       # (4,) int64 xyxy pixels in its frame
    frame: str            # the frame's id, so a frame is never its own donor


def donors_of(sample, min_size: int = 8):
    """The objects of an untransformed ``sample`` as ``Donor``s (boxes under `min_size` px
    on a side are left out: too small to paste as a person)."""
    thermal = sample['thermal']
    height, width = thermal.shape[:2]
    boxes = np.asarray(sample['boxes'], np.float32).reshape(-1, 4)
    labels = np.asarray(sample['labels'], np.int64).reshape(-1)
    out = []
    for box, label in zip(np.clip(np.rint(boxes), 0, [width, height, width, height]), labels):
        x1, y1, x2, y2 = (int(v) for v in box)
        if x2 - x1 >= min_size and y2 - y1 >= min_size:
            out.append(Donor(sample['rgb'][y1:y2, x1:x2].copy(), thermal[y1:y2, x1:x2].copy(),
                             int(label), np.array([x1, y1, x2, y2], np.int64), str(sample['id'])))
    return out


def _ramp(length: int, width: float) -> np.ndarray:
    """`(length,)` float32 weights rising from the ends to 1 over `width` pixels."""
    idx = np.arange(length, dtype=np.float32) + 0.5
    return np.clip(np.minimum(idx, length - idx) / width, 0.0, 1.0)


def _blend(dest: np.ndarray, patch: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """`patch` over `dest` (same HxW[xC]) with `alpha` HxW, in `dest`'s dtype."""
    a = alpha if dest.ndim == 2 else alpha[..., None]
    mixed = a * patch.astype(np.float32) + (1.0 - a) * dest.astype(np.float32)
    if np.issubdtype(dest.dtype, np.integer):
        mixed = np.rint(mixed)
    return mixed.astype(dest.dtype)


def hidden_share(boxes: np.ndarray, cover: np.ndarray) -> np.ndarray:
    """`(K,)` share of each `boxes (K,4)` area that the box `cover (4,)` overlaps."""
    x1 = np.maximum(boxes[:, 0], cover[0])
    y1 = np.maximum(boxes[:, 1], cover[1])
    x2 = np.minimum(boxes[:, 2], cover[2])
    y2 = np.minimum(boxes[:, 3], cover[3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area, 1e-6)


def _destination(size, bottom, boxes, size_hw, rng, fit_anchor=False):
    """`(x, y, w, h)` of a paste of an object of `size (w, h)` standing on row `bottom`: beside a
    random one of `boxes` (with `fit_anchor`, scaled to that object's height times 1 +-
    `_DONOR_HEIGHT`) or anywhere along its own row at its own size; None if it would leave the
    image."""
    height, width = size_hw
    w, h = size
    if rng.random() < _BESIDE_P:
        anchor = boxes[int(rng.integers(len(boxes)))]
        if fit_anchor:
            scale = (anchor[3] - anchor[1]) * rng.uniform(1 - _DONOR_HEIGHT, 1 + _DONOR_HEIGHT) / h
            w, h = max(2, int(round(w * scale))), max(2, int(round(h * scale)))
        side = 1.0 if rng.random() < 0.5 else -1.0
        centre = (anchor[0] + anchor[2]) / 2 + side * rng.uniform(*_SHIFT) * w
        left, bottom = centre - w / 2, anchor[3]
    else:
        left = rng.uniform(0, max(width - w, 0))
    bottom += rng.uniform(-_GROUND_JITTER, _GROUND_JITTER) * h
    x, y = int(round(left)), int(round(bottom - h))
    if x < 0 or y < 0 or x + w > width or y + h > height:
        return None
    return x, y, w, h


def paste_copies(rgb, thermal, boxes, labels, rng, max_copies: int, donors=(),
                 donor_p: float = 0.0):
    """Paste 1..`max_copies` copies of objects; returns `(rgb, thermal, boxes, labels)`, new
    arrays, with the pasted boxes appended and the objects they hide removed.

    `boxes (K,4)` float32 `xyxy` pixels, `labels (K,)` int64; `rng` an `np.random.Generator`.
    Each copy comes from `donors` (``Donor``s of other frames with this image's dtypes and
    camera) with probability `donor_p` when there are any, else from the image as given (not
    from earlier pastes); a paste that would leave the image, or a box under 2 px, is skipped.
    With no boxes the inputs come back unchanged. With `donor_p` 0 the draws are those of a
    call without donors.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    labels = np.asarray(labels, np.int64).reshape(-1)
    if len(boxes) == 0:
        return rgb, thermal, boxes, labels
    height, width = thermal.shape[:2]
    sources = np.clip(np.rint(boxes), 0, [width, height, width, height]).astype(np.int64)
    source_labels = labels
    out_rgb, out_thermal = rgb.copy(), thermal.copy()
    for _ in range(int(rng.integers(1, max_copies + 1))):
        if donor_p and len(donors) and rng.random() < donor_p:
            donor = donors[int(rng.integers(len(donors)))]
            patch_rgb, patch_thermal = donor.rgb, donor.thermal
            size, bottom = patch_thermal.shape[1::-1], donor.box[3]
            label, fit_anchor = np.array([donor.label], np.int64), True
        else:
            i = int(rng.integers(len(sources)))
            x1, y1, x2, y2 = (int(v) for v in sources[i])
            if x2 - x1 < 2 or y2 - y1 < 2:
                continue
            patch_rgb, patch_thermal = rgb[y1:y2, x1:x2], thermal[y1:y2, x1:x2]
            size, bottom = (x2 - x1, y2 - y1), y2
            label, fit_anchor = source_labels[i:i + 1], False
        place = _destination(size, bottom, boxes, (height, width), rng, fit_anchor)
        if place is None:
            continue
        x, y, w, h = place
        if (w, h) != tuple(size):
            patch_rgb = cv2.resize(patch_rgb, (w, h), interpolation=cv2.INTER_LINEAR)
            patch_thermal = cv2.resize(patch_thermal, (w, h), interpolation=cv2.INTER_LINEAR)
        if rng.random() < 0.5:
            patch_rgb, patch_thermal = patch_rgb[:, ::-1], patch_thermal[:, ::-1]
        feather = max(1.0, _FEATHER * min(w, h))
        alpha = np.outer(_ramp(h, feather), _ramp(w, feather))
        window = (slice(y, y + h), slice(x, x + w))
        out_rgb[window] = _blend(out_rgb[window], patch_rgb, alpha)
        out_thermal[window] = _blend(out_thermal[window], patch_thermal, alpha)
        pasted = np.array([x, y, x + w, y + h], np.float32)
        keep = hidden_share(boxes, pasted) < _HIDDEN
        boxes = np.concatenate([boxes[keep], pasted[None]])
        labels = np.concatenate([labels[keep], label])
    return out_rgb, out_thermal, boxes, labels
