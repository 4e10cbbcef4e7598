"""Per-pair results of a bag evaluation, and their scores.

Offline and live evaluation both hand every processed pair to ``RunCollector.add``; it keeps the
detections, latency and a small JPEG of the annotated-able image per frame, computes fusion
metrics on a regular sample of pairs and feeds the video. ``scores()`` runs pycocotools over
every ground-truth frame of the bag: a frame the system produced nothing for counts with no
predictions (its objects are misses), so dropped pairs cost mAP as they would on a vehicle.
"""
from dataclasses import dataclass
import math

import cv2
import numpy as np

from efficientmfd_ros.core import metrics_fusion
from efficientmfd_ros.core.image_codec import thermal_to_uint8
from efficientmfd_ros.core.metrics_coco import DetectionEvaluator
from efficientmfd_ros.core.metrics_fusion import STANDARD_KEYS, MetricInputError, fusion_metrics
from efficientmfd_ros.evaluation.drawing import annotate, fit_width

FUSION_KEYS = STANDARD_KEYS  # the bag report's: the paper's variants are left out


@dataclass
class FrameRecord:
    """One processed pair: ``boxes`` (K,4) float32 xyxy RGB pixels, ``scores`` (K,), ``labels``
    (K,) int64; ``latency_ms`` as the mode defines it; ``thumb`` a JPEG of the fused (else RGB)
    image scaled by ``thumb_scale``; ``f1`` set by ``scores()``."""

    stamp_ns: int
    image_hw: tuple
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    latency_ms: float
    thumb: bytes
    thumb_scale: float
    arrival_ns: int | None = None
    f1: float | None = None


def _iou(a, b):
    """IoU matrix of (N,4) and (M,4) xyxy boxes."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def frame_f1(gt_boxes, gt_labels, boxes, scores, labels, iou=0.5):
    """F1 of one frame: predictions matched greedily by score to unmatched same-class ground
    truth with IoU >= ``iou``. No ground truth and no predictions is 1."""
    if len(gt_labels) == 0 and len(labels) == 0:
        return 1.0
    matched, tp = set(), 0
    ious = _iou(np.asarray(boxes, np.float64).reshape(-1, 4),
                np.asarray(gt_boxes, np.float64).reshape(-1, 4))
    for k in np.argsort(-np.asarray(scores)):
        options = [(ious[k, g], g) for g in range(len(gt_labels))
                   if g not in matched and gt_labels[g] == labels[k] and ious[k, g] >= iou]
        if options:
            matched.add(max(options)[1])
            tp += 1
    return 2 * tp / (len(gt_labels) + len(labels))


class RunCollector:
    """Collect processed pairs; see the module docstring."""

    def __init__(self, class_names, gt, fusion_every=1, video=None, thumb_width=480):
        self.class_names = list(class_names)
        self.gt = gt
        self.fusion_every = int(fusion_every)  # 0: no fusion metrics
        self.fused_seen = 0  # pairs that came with a fused image (live: every n-th, as asked)
        self.video = video
        self.thumb_width = thumb_width
        self.records = {}
        self.fusion = []

    def names(self, labels):
        return [self.class_names[i] if 0 <= i < len(self.class_names) else str(i)
                for i in np.asarray(labels).tolist()]

    def add(self, stamp_ns, rgb, thermal, boxes, scores, labels, fused, latency_ms,
            arrival_ns=None):
        """One pair: ``rgb`` (H,W,3) uint8, ``thermal`` (h,w) uint8|uint16 or None (unknown
        partner), ``fused`` (H,W,3) uint8 or None; detections in RGB pixels. A second result
        for the same stamp is ignored (the first output is the one a consumer acts on)."""
        if stamp_ns in self.records:
            return
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        labels = np.asarray(labels, np.int64).reshape(-1)
        scores = np.asarray(scores, np.float32).reshape(-1)
        shown = fused if fused is not None else rgb
        if fused is not None and thermal is not None:
            if self.fusion_every > 0 and self.fused_seen % self.fusion_every == 0:
                self.fusion.append(_fusion_sample(rgb, thermal, fused))
            self.fused_seen += 1
        small, factor = fit_width(shown, min(self.thumb_width, shown.shape[1]))
        ok, jpeg = cv2.imencode('.jpg', cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, 88])
        self.records[stamp_ns] = FrameRecord(
            stamp_ns, tuple(rgb.shape[:2]), boxes, scores, labels, float(latency_ms),
            jpeg.tobytes() if ok else b'', factor * shown.shape[1] / rgb.shape[1], arrival_ns)
        if self.video is not None:
            gt = self.gt.frames.get(stamp_ns)
            scale = shown.shape[1] / rgb.shape[1]
            self.video.add(annotate(
                shown, None if gt is None else (gt[0] * scale, self.names(gt[1])),
                (boxes * scale, self.names(labels), scores), caption=f'{stamp_ns / 1e9:.3f} s'))

    def scores(self, out_dir=None):
        """COCO metrics over every ground-truth frame, fusion means, and per-frame F1."""
        evaluator = DetectionEvaluator(self.class_names)
        for stamp in sorted(self.gt.frames):
            gt_boxes, gt_labels = self.gt.frames[stamp]
            rec = self.records.get(stamp)
            hw = rec.image_hw if rec else _hw_guess(gt_boxes)
            if rec is None:
                evaluator.add(stamp, hw, gt_boxes, gt_labels)
                continue
            evaluator.add(stamp, hw, gt_boxes, gt_labels, rec.boxes, rec.scores, rec.labels)
            rec.f1 = frame_f1(gt_boxes, gt_labels, rec.boxes, rec.scores, rec.labels)
        coco = evaluator.evaluate(out_dir=out_dir) if self.gt.frames else None
        fusion = {}
        for key in FUSION_KEYS:
            values = [s[key] for s in self.fusion if s.get(key) is not None
                      and math.isfinite(s[key])]
            fusion[key] = float(np.mean(values)) if values else None
        return coco, fusion


def _hw_guess(gt_boxes):
    """Image size for a frame never processed: only COCO's area ranges use it."""
    if len(gt_boxes) == 0:
        return (1, 1)
    return (int(np.ceil(gt_boxes[:, 3].max())) + 1, int(np.ceil(gt_boxes[:, 2].max())) + 1)


def _fusion_sample(rgb, thermal, fused):
    """fusion_metrics of one pair with the thermal image as 8 bits at the fused size."""
    ir = thermal_to_uint8(thermal)
    height, width = fused.shape[:2]
    if ir.shape[:2] != (height, width):
        ir = cv2.resize(ir, (width, height), interpolation=cv2.INTER_AREA)
    if rgb.shape[:2] != (height, width):
        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    try:
        values = fusion_metrics(rgb, ir, fused)
    except MetricInputError:  # e.g. VIF's multi-scale pyramid needs larger images
        values = {}
        x, y, u = (metrics_fusion.luminance(im) for im in (rgb, ir, fused))
        for key in FUSION_KEYS:
            function = getattr(metrics_fusion, key)
            try:
                values[key] = function(u) if key in ('en', 'sd', 'sf') else function(x, y, u)
            except MetricInputError:
                continue
    return {k: float(values[k]) for k in FUSION_KEYS if k in values}
