"""Validation during training: COCO mAP of the detections and mean fusion metrics.

Everything is scored at the network input size (validation pairs are resized to it, boxes with
them): detections are decoded as the runtime decodes them (`runtime.postprocess.decode`), the
fused luminance is coloured with the RGB chroma (`model.color.fused_to_rgb`) and scored against
the two inputs by `core.metrics_fusion` on the HSV V channel.
"""
from collections import defaultdict
import math

import numpy as np
import torch

from efficientmfd_ros.core import metrics_fusion
from efficientmfd_ros.core.metrics_coco import DetectionEvaluator
from efficientmfd_ros.model.color import fused_to_rgb
from efficientmfd_ros.runtime.postprocess import PostprocessConfig, decode
from efficientmfd_ros.runtime.preprocess import compute_transform
from efficientmfd_ros.train.config import EvalConfig

_ONE_IMAGE_METRICS = ('en', 'sd', 'sf')


def _uint8(image: torch.Tensor) -> np.ndarray:
    """`(C,H,W)` float in [0,1] -> uint8 `HxWxC` (or `HxW` for one channel)."""
    array = image.float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def _nanmean(values) -> float:
    valid = [v for v in values if not math.isnan(v)]
    return float(np.mean(valid)) if valid else math.nan


def fusion_scores(rgb, thermal, fused_y, names) -> list[dict]:
    """Per-image metric dicts for `rgb (B,3,H,W)`, `thermal (B,1,H,W)`, `fused_y (B,1,H,W)`."""
    fused_rgb = fused_to_rgb(fused_y.float(), rgb.float())
    out = []
    for i in range(rgb.shape[0]):
        x = metrics_fusion.luminance(_uint8(rgb[i]))
        y = metrics_fusion.luminance(_uint8(thermal[i]))
        u = metrics_fusion.luminance(_uint8(fused_rgb[i]))
        scores = {}
        for name in names:
            fn = getattr(metrics_fusion, name)
            scores[name] = float(fn(u) if name in _ONE_IMAGE_METRICS else fn(x, y, u))
        out.append(scores)
    return out


@torch.no_grad()
def evaluate(model, loader, class_names, cfg: EvalConfig, device, autocast) -> dict:
    """`{'map50', 'map50_95', 'per_class_ap50', 'fusion': {name: mean}, 'num_images'}`.

    `model` is the (unwrapped) EfficientMFD; `loader` yields `PairCollate` batches; `autocast`
    is a context-manager factory. The model is left in the mode it came in. With `cfg.noise_seeds`,
    the detection metrics are means over one COCO evaluation per noise draw, and
    `map50_per_seed` lists each draw's map50.
    """
    was_training = model.training
    model.eval()
    post = PostprocessConfig(cfg.score_threshold, cfg.nms_iou, cfg.max_detections)
    seeds = cfg.noise_seeds or (None,)  # None: the model's own head.noise_seed
    evaluators = [DetectionEvaluator(class_names) for _ in seeds]
    fusion = defaultdict(list)
    seen = 0
    try:
        for batch in loader:
            rgb = batch['rgb'].to(device, non_blocking=True)
            thermal = batch['thermal'].to(device, non_blocking=True)
            hw = tuple(rgb.shape[-2:])
            transform = compute_transform(hw, hw, letterbox=False)
            with autocast():
                feats = model.extract(rgb, thermal)
                fused = model.fuse(rgb, thermal, feats) if cfg.fusion_metrics else None
            for evaluator, seed in zip(evaluators, seeds):
                noise = model.make_noise_boxes(rgb.shape[0], device=device, seed=seed,
                                               num=cfg.num_proposals or None)
                with autocast():
                    det = model.detect(feats, hw, noise)
                for i, target in enumerate(batch['targets']):
                    boxes, scores, labels = decode(det['pred_logits'][i], det['pred_boxes'][i],
                                                   transform, post)
                    evaluator.add(f'{seen + i}:{batch["ids"][i]}', hw, target['boxes'].numpy(),
                                  target['labels'].numpy(), boxes, scores, labels)
            seen += len(batch['targets'])
            if fused is not None:
                for scores in fusion_scores(rgb, thermal, fused, cfg.fusion_metrics):
                    for name, value in scores.items():
                        fusion[name].append(value)
            if cfg.max_images and seen >= cfg.max_images:
                break
    finally:
        model.train(was_training)
    results = [evaluator.evaluate() for evaluator in evaluators]
    names = list(results[0].get('per_class', {}))
    per_class = {name: _mean_or_none([r['per_class'][name]['ap50'] for r in results])
                 for name in names}
    means = {name: _nanmean(vals) for name, vals in fusion.items()}
    out = {'map50': _mean_or_none([r['map50'] for r in results]),
           'map50_95': _mean_or_none([r['map50_95'] for r in results]),
           'per_class_ap50': per_class, 'fusion': means, 'num_images': seen}
    if cfg.noise_seeds:
        out['map50_per_seed'] = [r['map50'] for r in results]
    return out


def _mean_or_none(values):
    """Mean of `values`, or None when any is None (no ground truth to score)."""
    return None if any(v is None for v in values) else float(np.mean(values))
