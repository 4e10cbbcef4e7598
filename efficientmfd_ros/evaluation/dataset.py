"""Offline evaluation of a FusionDetector on a paired dataset: COCO detection and fusion metrics.

Every pair is run at its own size through ``FusionDetector.infer`` (the deployed pre- and
postprocessing): detections come back as ``xyxy`` pixels of the RGB image and are scored by
``core.metrics_coco`` against the dataset's boxes; the fused uint8 RGB image comes back at the RGB
image's size and is scored against the two inputs by ``core.metrics_fusion.fusion_metrics`` on the
HSV V channel. The reported fusion metrics are means over the pairs (NaN values, undefined cases of
a metric, are left out of the mean and counted).

Baselines, scored by the same code: the pixel ``average`` and ``maximum`` of the visible luminance
(BT.601 Y, the luminance the network fuses) and the thermal image, and the classic ``laplacian``
pyramid fusion (6 levels, detail of larger magnitude per band, averaged bases; Burt & Adelson),
each at the RGB image's full resolution, coloured with the RGB chroma by
``model.color.fused_to_rgb`` and quantized to uint8 as the runtime quantizes the model's output.

Unlabelled datasets (``DatasetSpec.labelled`` false) get the fusion metrics alone.

``EvalSettings.blank`` (``'rgb'`` or ``'thermal'``) feeds the detector zeros for that camera, as
the node does in degraded mode (``allow_single_modality``), to score detection from the other
camera alone; the fused image is still scored against both real inputs.
"""
from collections import defaultdict
from dataclasses import dataclass
import logging
import math
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from efficientmfd_ros.core.image_codec import thermal_to_uint8
from efficientmfd_ros.core.metrics_coco import DetectionEvaluator
from efficientmfd_ros.core.metrics_fusion import ALL_KEYS, fusion_metrics
from efficientmfd_ros.model.color import fused_to_rgb, rgb_to_luma
from efficientmfd_ros.model.pyramid import laplacian_fuse

LOG = logging.getLogger('efficientmfd_ros.evaluation.dataset')
FUSION_KEYS = ALL_KEYS
BASELINES = ('average', 'maximum', 'laplacian')
BLANKABLE = ('rgb', 'thermal')
LAPLACIAN_BASELINE_LEVELS = 6  # the best of 4-6 on both validation sets


class EvaluationError(ValueError):
    """A dataset or setting that cannot be evaluated; the message names the problem."""


@dataclass
class EvalSettings:
    """What to produce besides the metrics dict."""

    out_dir: str | None = None         # ground_truth.json + predictions.json go here (labelled)
    save_fused_dir: str | None = None  # every fused image as <rgb file stem>.png
    baselines: bool = False            # also score the average / maximum baselines
    thermal_range: tuple = (0.0, 65535.0)  # uint16 thermal values mapped to 0..255 for metrics
    progress: bool = True              # tqdm bar on stderr
    blank: str | None = None           # 'rgb' / 'thermal': that camera is fed as zeros


def baseline_fused(rgb: np.ndarray, thermal: np.ndarray, mode: str) -> np.ndarray:
    """A baseline fused image, uint8 ``HxWx3`` RGB.

    ``rgb`` uint8 ``HxWx3``; ``thermal`` uint8 ``HxW`` of the same size. ``mode`` ``'average'``:
    ``(Y + T) / 2``, ``'maximum'``: ``max(Y, T)``, with Y the BT.601 luminance of ``rgb`` and T the
    thermal image, both in [0, 1]; ``'laplacian'``: ``laplacian_fuse(Y, T,
    LAPLACIAN_BASELINE_LEVELS, base='mean')``. The result is coloured with the chroma of ``rgb``.
    """
    if mode not in BASELINES:
        raise EvaluationError(f'baseline must be one of {BASELINES}, got {mode!r}')
    if rgb.shape[:2] != thermal.shape[:2]:
        raise EvaluationError(f'rgb {rgb.shape[:2]} and thermal {thermal.shape[:2]} differ in '
                              'size')
    rgb_t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255.0
    thermal_t = torch.from_numpy(np.ascontiguousarray(thermal))[None, None].float() / 255.0
    luma = rgb_to_luma(rgb_t)
    if mode == 'average':
        fused_y = (luma + thermal_t) / 2.0
    elif mode == 'maximum':
        fused_y = torch.maximum(luma, thermal_t)
    else:
        fused_y = laplacian_fuse(luma, thermal_t, LAPLACIAN_BASELINE_LEVELS, base='mean')
    coloured = fused_to_rgb(fused_y, rgb_t)
    return coloured[0].mul(255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


class FusionMeans:
    """Per-pair fusion metric dicts of one or more methods, averaged ignoring NaN."""

    def __init__(self):
        self._values = defaultdict(lambda: defaultdict(list))

    def add(self, method: str, scores: dict):
        for key, value in scores.items():
            self._values[method][key].append(float(value))

    def means(self) -> dict:
        """``{method: {metric: mean or None}}``; None when every value of a metric was NaN."""
        out = {}
        for method, metrics in self._values.items():
            out[method] = {}
            for key, values in metrics.items():
                valid = [v for v in values if not math.isnan(v)]
                out[method][key] = float(np.mean(valid)) if valid else None
        return out

    def nan_counts(self) -> dict:
        """``{method: {metric: number of NaN values}}``, only non-zero counts."""
        counts = {}
        for method, metrics in self._values.items():
            bad = {k: sum(math.isnan(v) for v in vals) for k, vals in metrics.items()}
            bad = {k: n for k, n in bad.items() if n}
            if bad:
                counts[method] = bad
        return counts


def _write_png(path: Path, rgb: np.ndarray):
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise EvaluationError(f'cannot write {path}')


def _detection_summary(coco: dict) -> dict:
    keep = ('map50', 'map50_95', 'per_class', 'coco_stats', 'num_images', 'num_gt', 'num_pred')
    return {k: coco[k] for k in keep}


def evaluate_dataset(detector, dataset, settings: EvalSettings | None = None) -> dict:
    """Run ``detector`` over every pair of ``dataset`` (a PairedDataset without transform).

    Returns ``{'num_pairs', 'labelled', 'fusion': {metric: mean}, 'timings_ms': {stage: mean},
    'skipped_pairs'}``, plus ``'baselines': {mode: {...}}`` for each of ``BASELINES`` with
    ``settings.baselines``, ``'fusion_nan_counts'`` when a metric was undefined on some pairs and,
    for a labelled dataset, the COCO results ``map50``, ``map50_95``, ``per_class``
    (``{name: {ap50, ap50_95, num_gt, num_pred}}``), ``coco_stats``, ``num_images``, ``num_gt``,
    ``num_pred`` (see ``core.metrics_coco``). Means of a metric that was NaN everywhere are None.
    Raises EvaluationError for an empty dataset or one whose pairs all fail to decode.
    """
    settings = settings or EvalSettings()
    if settings.blank not in (None, *BLANKABLE):
        raise EvaluationError(f'blank must be one of {BLANKABLE}, got {settings.blank!r}')
    if len(dataset) == 0:
        skipped = ', '.join(f'{r} {n}' for r, n in dataset.report.skipped().items())
        raise EvaluationError(f'dataset {dataset.name} has no usable pairs '
                              f'({dataset.num_selected} selected under {dataset.root}'
                              f'{"; skipped: " + skipped if skipped else ""})')
    if not detector.has_fusion:
        raise EvaluationError(f'{detector.describe()} has no fusion output to score')
    labelled = bool(dataset.spec.labelled)
    evaluator = DetectionEvaluator(detector.class_names) if labelled else None
    fused_dir = Path(settings.save_fused_dir) if settings.save_fused_dir else None
    if fused_dir is not None:
        fused_dir.mkdir(parents=True, exist_ok=True)
    fusion = FusionMeans()
    timings = defaultdict(list)
    skipped = 0
    bar = tqdm(range(len(dataset)), desc=f'eval {dataset.name}', unit='pair',
               disable=not settings.progress, dynamic_ncols=True)
    for index in bar:
        sample = dataset.load(index)
        if sample is None:
            skipped += 1
            continue
        rgb = sample['rgb']
        thermal = thermal_to_uint8(sample['thermal'], settings.thermal_range)
        fed_rgb, fed_thermal = rgb, sample['thermal']
        if settings.blank == 'rgb':
            fed_rgb = np.zeros_like(rgb)
        elif settings.blank == 'thermal':
            fed_thermal = np.zeros_like(fed_thermal)
        result = detector.infer(fed_rgb, fed_thermal, fuse=True)
        for stage, ms in result.timings_ms.items():
            timings[stage].append(ms)
        if evaluator is not None:
            evaluator.add(sample['id'], rgb.shape[:2], sample['boxes'], sample['labels'],
                          result.boxes, result.scores, result.labels)
        fusion.add('model', fusion_metrics(rgb, thermal, result.fused))
        if settings.baselines:
            for mode in BASELINES:
                fusion.add(mode, fusion_metrics(rgb, thermal, baseline_fused(rgb, thermal, mode)))
        if fused_dir is not None:
            _write_png(fused_dir / f'{dataset.records[index].rgb_path.stem}.png', result.fused)
    num_pairs = len(dataset) - skipped
    if num_pairs == 0:
        raise EvaluationError(f'dataset {dataset.name}: none of its {len(dataset)} pairs could '
                              'be decoded')
    if skipped:
        LOG.warning('%s: %d pairs could not be decoded and were skipped', dataset.name, skipped)
    means = fusion.means()
    out = {'num_pairs': num_pairs, 'labelled': labelled, 'skipped_pairs': skipped,
           'fusion': means['model'],
           'timings_ms': {k: float(np.mean(v)) for k, v in timings.items()}}
    if settings.baselines:
        out['baselines'] = {mode: means[mode] for mode in BASELINES}
    nan_counts = fusion.nan_counts()
    if nan_counts:
        out['fusion_nan_counts'] = nan_counts
    if evaluator is not None:
        out.update(_detection_summary(evaluator.evaluate(settings.out_dir)))
    return out
