"""COCO box evaluation of per-image detections with pycocotools' own ``COCOeval``.

Boxes come in as ``xyxy`` float pixels of the original image; labels are 0-based class indices and
COCO category ids are ``index + 1``. Image ids may be any hashable (the dataset's file stems);
the COCO files number them ``1..N`` in the order they were added and keep the original id as
``file_name``. ``ground_truth.json`` and ``predictions.json`` are a standard COCO annotation file
and a standard results list, so ``pycocotools`` (or faster-coco-eval) can re-score them as they
are.

The result dict of ``evaluate_coco``:
- ``map50``, ``map50_95``: mean AP over classes with ground truth, area ``all``, ``max_dets``
  detections per image (COCO's ``stats[1]`` and ``stats[0]``); ``None`` when no class has a box.
- ``per_class``: ``{name: {'ap50', 'ap50_95', 'num_gt', 'num_pred'}}``, AP ``None`` for a class
  without ground truth.
- ``pr_curve_iou50``: ``{name: {'recall': [101], 'precision': [101]}}`` COCO's interpolated
  precision at IoU 0.5 on its 101 recall thresholds (for plots); omitted for classes without boxes.
- ``coco_stats``: the twelve ``COCOeval.stats`` values by name.
- ``num_images``, ``num_gt``, ``num_pred``: counts of images, ground-truth boxes and detections.
"""
import contextlib
import copy
import io
import json
from pathlib import Path
import typing

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

COCO_STAT_NAMES = ('ap50_95', 'ap50', 'ap75', 'ap_small', 'ap_medium', 'ap_large',
                   'ar1', 'ar10', 'ar_max', 'ar_small', 'ar_medium', 'ar_large')


class CocoInputError(ValueError):
    """Detections or ground truth that cannot be turned into COCO records; names the problem."""


def _boxes(array: typing.Any, name: str) -> np.ndarray:
    if not np.size(array):
        return np.zeros((0, 4))
    boxes = np.asarray(array, dtype=np.float64).reshape(-1, 4)
    if not np.isfinite(boxes).all():
        raise CocoInputError(f'{name} contain non-finite values')
    return boxes


def _labels(array: typing.Any, count: int, num_classes: int, name: str) -> np.ndarray:
    labels = np.asarray(array, dtype=np.int64).reshape(-1)
    if labels.shape[0] != count:
        raise CocoInputError(f'{name}: {labels.shape[0]} labels for {count} boxes')
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise CocoInputError(f'{name}: class index outside 0..{num_classes - 1}: '
                             f'{labels.tolist()}')
    return labels


def _xywh(box: typing.Sequence[float]) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


class DetectionEvaluator:
    """Collects ground truth and detections image by image, then runs ``COCOeval`` bbox."""

    def __init__(self, class_names: typing.Sequence[str]):
        if not class_names:
            raise CocoInputError('class_names must name at least one class')
        self.class_names = list(class_names)
        self._images: list[dict] = []
        self._annotations: list[dict] = []
        self._results: list[dict] = []
        self._coco_ids: dict[int, int] = {}

    def add(self, image_id: int, image_hw: tuple[int, int], gt_boxes: typing.Any,
            gt_labels: typing.Any, pred_boxes: typing.Any = (), pred_scores: typing.Any = (),
            pred_labels: typing.Any = ()) -> None:
        """One image: ``image_hw`` (H, W); ``gt_boxes`` (K,4) and ``pred_boxes`` (N,4) ``xyxy``
        pixels, ``gt_labels`` (K,) / ``pred_labels`` (N,) 0-based ints, ``pred_scores`` (N,)."""
        if image_id in self._coco_ids:
            raise CocoInputError(f'image {image_id!r} added twice')
        coco_id = len(self._images) + 1
        self._coco_ids[image_id] = coco_id
        height, width = (int(v) for v in image_hw)
        self._images.append({'id': coco_id, 'file_name': str(image_id),
                             'height': height, 'width': width})
        n_cls = len(self.class_names)
        gt = _boxes(gt_boxes, f'ground-truth boxes of {image_id!r}')
        gl = _labels(gt_labels, len(gt), n_cls, f'ground truth of {image_id!r}')
        for box, label in zip(gt, gl):
            xywh = _xywh(box)
            self._annotations.append({
                'id': len(self._annotations) + 1, 'image_id': coco_id,
                'category_id': int(label) + 1, 'bbox': xywh,
                'area': max(xywh[2], 0.0) * max(xywh[3], 0.0), 'iscrowd': 0})
        pb = _boxes(pred_boxes, f'predicted boxes of {image_id!r}')
        pl = _labels(pred_labels, len(pb), n_cls, f'predictions of {image_id!r}')
        ps = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
        if ps.shape[0] != len(pb):
            raise CocoInputError(f'predictions of {image_id!r}: {ps.shape[0]} scores for '
                                 f'{len(pb)} boxes')
        for box, label, score in zip(pb, pl, ps):
            self._results.append({'image_id': coco_id, 'category_id': int(label) + 1,
                                  'bbox': _xywh(box), 'score': float(score)})

    def ground_truth(self) -> dict:
        """The COCO annotation dict (``images``, ``annotations``, ``categories``)."""
        categories = [{'id': i + 1, 'name': n} for i, n in enumerate(self.class_names)]
        return {'images': list(self._images), 'annotations': list(self._annotations),
                'categories': categories}

    def results(self) -> list[dict]:
        """The COCO results list: ``{image_id, category_id, bbox [x, y, w, h], score}``."""
        return list(self._results)

    def evaluate(self, out_dir: str | Path | None = None, verbose: bool = False,
                 max_dets: int = 100) -> dict:
        """Run COCOeval (see ``evaluate_coco``); with ``out_dir`` also write the two COCO files."""
        gt, results = self.ground_truth(), self.results()
        if out_dir is not None:
            write_coco_files(gt, results, out_dir)
        return evaluate_coco(gt, results, verbose=verbose, max_dets=max_dets)


def write_coco_files(ground_truth: dict, results: list[dict],
                     out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``ground_truth.json`` and ``predictions.json`` under ``out_dir`` (created)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'ground_truth.json').write_text(json.dumps(ground_truth))
    (out / 'predictions.json').write_text(json.dumps(results))
    return out / 'ground_truth.json', out / 'predictions.json'


def evaluate_files(gt_json: str | Path, pred_json: str | Path, verbose: bool = False,
                   max_dets: int = 100) -> dict:
    """Re-score a ``ground_truth.json`` / ``predictions.json`` pair (as written above)."""
    with open(gt_json) as f:
        gt = json.load(f)
    with open(pred_json) as f:
        results = json.load(f)
    return evaluate_coco(gt, results, verbose=verbose, max_dets=max_dets)


def _mean_valid(values: typing.Any) -> float | None:
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else None


def evaluate_coco(ground_truth: dict, results: list[dict], verbose: bool = False,
                  max_dets: int = 100) -> dict:
    """COCOeval bbox of a COCO annotation dict and a results list; see the module docstring."""
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    categories = sorted(ground_truth['categories'], key=lambda c: c['id'])
    with quiet:
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(ground_truth)
        coco_gt.createIndex()
        if results:
            coco_dt = coco_gt.loadRes(copy.deepcopy(list(results)))
        else:
            # loadRes cannot take an empty list; no detections is an empty result set
            coco_dt = COCO()
            coco_dt.dataset = {'images': copy.deepcopy(ground_truth['images']),
                               'categories': copy.deepcopy(categories), 'annotations': []}
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iouType='bbox')
        evaluator.params.maxDets = [1, 10, max_dets]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    # precision: [IoU thresholds T, recall thresholds R, categories K, areas A, max dets M]
    precision = evaluator.eval['precision'][:, :, :, 0, -1]
    cat_index = {cid: k for k, cid in enumerate(evaluator.params.catIds)}
    per_class, curves = {}, {}
    for cat in categories:
        k = cat_index[cat['id']]
        num_gt = sum(1 for a in ground_truth['annotations'] if a['category_id'] == cat['id'])
        per_class[cat['name']] = {
            'ap50': _mean_valid(precision[0, :, k]),
            'ap50_95': _mean_valid(precision[:, :, k]),
            'num_gt': num_gt,
            'num_pred': sum(1 for r in results if r['category_id'] == cat['id']),
        }
        if num_gt:
            curves[cat['name']] = {'recall': [float(r) for r in evaluator.params.recThrs],
                                   'precision': [float(p) for p in precision[0, :, k]]}
    return {
        'map50': _mean_valid(precision[0]),
        'map50_95': _mean_valid(precision),
        'per_class': per_class,
        'pr_curve_iou50': curves,
        'coco_stats': {n: float(v) for n, v in zip(COCO_STAT_NAMES, evaluator.stats)},
        'num_images': len(ground_truth['images']),
        'num_gt': len(ground_truth['annotations']),
        'num_pred': len(results),
    }
