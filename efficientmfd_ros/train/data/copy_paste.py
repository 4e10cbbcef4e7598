"""Copy-paste of an image's own objects, to make crowds and more instances out of few frames.

A box's patch (both cameras, the same pixels) is pasted elsewhere in the same image with
feathered edges: beside another object, partly overlapping it, or anywhere along the source's
own row, so the pasted object keeps a plausible size and ground line. The same image is the only
source, so the two cameras stay registered and no pixels from other scenes are mixed in. Objects
a paste hides are dropped. LLVIP's main miss is a group of overlapping pedestrians seen as one
box (models/README.md), and 32 labelled frames hold few groups.

Boxes are ``xyxy`` pixels of the image given; images are ``rgb`` HxWx3 and ``thermal`` HxW of any
dtype the augmentation takes (uint8, uint16, float).
"""
import numpy as np

_BESIDE_P = 0.5           # share of pastes placed next to another object (the rest: same row)
_SHIFT = (0.3, 0.9)       # horizontal distance from that object's centre, in pasted widths
_GROUND_JITTER = 0.1      # vertical jitter of the pasted object's bottom, in its heights
_FEATHER = 0.1            # edge ramp of the paste, as a share of its shorter side
_HIDDEN = 0.7             # objects losing this share of their area under a paste are dropped


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


def _destination(source, boxes, size_hw, rng):
    """Top-left `(x, y)` of a paste of the `source (4,)` box; None if it would leave the image."""
    height, width = size_hw
    w, h = source[2] - source[0], source[3] - source[1]
    if rng.random() < _BESIDE_P:
        anchor = boxes[int(rng.integers(len(boxes)))]
        side = 1.0 if rng.random() < 0.5 else -1.0
        centre = (anchor[0] + anchor[2]) / 2 + side * rng.uniform(*_SHIFT) * w
        left, bottom = centre - w / 2, anchor[3]
    else:
        left, bottom = rng.uniform(0, max(width - w, 0)), source[3]
    bottom += rng.uniform(-_GROUND_JITTER, _GROUND_JITTER) * h
    x, y = int(round(left)), int(round(bottom - h))
    if x < 0 or y < 0 or x + w > width or y + h > height:
        return None
    return x, y


def paste_copies(rgb, thermal, boxes, labels, rng, max_copies: int):
    """Paste 1..`max_copies` copies of the image's objects; returns `(rgb, thermal, boxes,
    labels)`, new arrays, with the pasted boxes appended and the objects they hide removed.

    `boxes (K,4)` float32 `xyxy` pixels, `labels (K,)` int64; `rng` an `np.random.Generator`.
    Copies are cut from the image as given (not from earlier pastes); a paste that would leave
    the image, or a box under 2 px, is skipped. With no boxes the inputs come back unchanged.
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
        i = int(rng.integers(len(sources)))
        x1, y1, x2, y2 = (int(v) for v in sources[i])
        w, h = x2 - x1, y2 - y1
        if w < 2 or h < 2:
            continue
        place = _destination(sources[i], boxes, (height, width), rng)
        if place is None:
            continue
        x, y = place
        patch_rgb, patch_thermal = rgb[y1:y2, x1:x2], thermal[y1:y2, x1:x2]
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
        labels = np.concatenate([labels[keep], source_labels[i:i + 1]])
    return out_rgb, out_thermal, boxes, labels
