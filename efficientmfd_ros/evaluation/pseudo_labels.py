"""Pseudo-labels: a trained detector's confident boxes on unlabelled pairs, written as VOC xml.

Self-training on pairs nobody labelled (other scenes of the same cameras) needs boxes that are
right more often than not. Each pair runs through ``FusionDetector.infer`` at its own size (the
deployed pre- and postprocessing) and, with ``hflip``, once more mirrored left-right; a box is kept
only when the mirrored run found the same object (IoU >= ``agreement_iou`` after mirroring back),
and the two boxes and scores are averaged. The output folder is itself a dataset root:
``Annotations/<id>.xml`` per pair (pairs without confident boxes get an xml with no objects:
background to train on), links named like the source's image folders pointing at them (the images
are not copied), and ``summary.json`` (settings, weights hash, boxes per pair); a dataset entry
``{root: <out>, label_format: voc}`` trains on it.

Boxes are ``xyxy`` pixels of the RGB image throughout.
"""
from dataclasses import asdict, dataclass
import json
from pathlib import Path
from typing import Any
import xml.etree.ElementTree as ET

import numpy as np
from tqdm import tqdm

from efficientmfd_ros.runtime.engine_cache import sha256_file


class PseudoLabelError(ValueError):
    """Settings or a dataset that cannot be pseudo-labelled; the message says why."""


@dataclass(frozen=True)
class PseudoLabelSettings:
    """score_threshold: keep boxes scoring at least this (both runs, with hflip); agreement_iou:
    the IoU a box and its mirrored-run partner must reach; hflip: run the mirrored pair too."""

    score_threshold: float = 0.5
    agreement_iou: float = 0.5
    hflip: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.score_threshold <= 1.0:
            raise PseudoLabelError(f'score_threshold must be in (0, 1], got '
                                   f'{self.score_threshold}')
        if not 0.0 < self.agreement_iou <= 1.0:
            raise PseudoLabelError(f'agreement_iou must be in (0, 1], got {self.agreement_iou}')


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(K, M)`` IoU of xyxy boxes ``a (K, 4)`` and ``b (M, 4)``."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0.0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0.0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0.0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def mirror_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    """``(K, 4)`` xyxy boxes of a ``width``-pixel-wide image mirrored left-right, still xyxy."""
    out = np.array(boxes, dtype=np.float32, copy=True).reshape(-1, 4)
    out[:, [0, 2]] = float(width) - out[:, [2, 0]]
    return out


def agreed_boxes(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                 other_boxes: np.ndarray, other_scores: np.ndarray, other_labels: np.ndarray,
                 min_iou: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes found by both runs: greedy one-to-one matching of same-class boxes, highest scores
    first, at IoU >= ``min_iou``; each match gives the mean box and mean score.

    Inputs: ``(K, 4)`` / ``(M, 4)`` float xyxy, scores ``(K,)`` / ``(M,)``, labels int
    ``(K,)`` / ``(M,)``. Returns ``(boxes (J, 4) float32, scores (J,) float32, labels (J,) int64)``
    sorted by score, J <= min(K, M).
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    other_boxes = np.asarray(other_boxes, np.float32).reshape(-1, 4)
    out_boxes, out_scores, out_labels = [], [], []
    if len(boxes) and len(other_boxes):
        iou = box_iou(boxes, other_boxes)
        iou[np.asarray(labels)[:, None] != np.asarray(other_labels)[None, :]] = 0.0
        taken = np.zeros(len(other_boxes), bool)
        for i in np.argsort(-np.asarray(scores), kind='stable'):
            candidates = np.where(~taken & (iou[i] >= min_iou))[0]
            if not len(candidates):
                continue
            j = candidates[np.argmax(iou[i, candidates])]
            taken[j] = True
            out_boxes.append((boxes[i] + other_boxes[j]) / 2.0)
            out_scores.append((float(scores[i]) + float(other_scores[j])) / 2.0)
            out_labels.append(int(labels[i]))
    order = np.argsort(-np.asarray(out_scores, np.float32), kind='stable')
    return (np.asarray(out_boxes, np.float32).reshape(-1, 4)[order],
            np.asarray(out_scores, np.float32)[order], np.asarray(out_labels, np.int64)[order])


def voc_xml(filename: str, image_hw: tuple[int, int], names: list[str], boxes: np.ndarray,
            scores: np.ndarray) -> str:
    """A Pascal VOC annotation: ``object/name`` and integer-rounded ``bndbox`` per box, the score
    kept in a ``pseudo_score`` element (readers of plain VOC ignore it)."""
    root = ET.Element('annotation')
    ET.SubElement(root, 'filename').text = filename
    size = ET.SubElement(root, 'size')
    for key, value in (('width', image_hw[1]), ('height', image_hw[0]), ('depth', 3)):
        ET.SubElement(size, key).text = str(int(value))
    for name, box, score in zip(names, boxes, scores):
        obj = ET.SubElement(root, 'object')
        ET.SubElement(obj, 'name').text = name
        ET.SubElement(obj, 'difficult').text = '0'
        ET.SubElement(obj, 'pseudo_score').text = f'{float(score):.4f}'
        bndbox = ET.SubElement(obj, 'bndbox')
        for key, value in zip(('xmin', 'ymin', 'xmax', 'ymax'), box):
            ET.SubElement(bndbox, key).text = str(int(round(float(value))))
    ET.indent(root)
    return ET.tostring(root, encoding='unicode') + '\n'


def _link(link: Path, target: Path) -> None:
    target = target.resolve()
    if link.is_symlink() and link.resolve() == target:
        return
    if link.exists() or link.is_symlink():
        raise PseudoLabelError(f'{link} exists and is not a link to {target}')
    link.symlink_to(target, target_is_directory=True)


def _confident(result: Any, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keep = result.scores >= threshold
    return result.boxes[keep], result.scores[keep], result.labels[keep]


def pseudo_label_dataset(detector: Any, dataset: Any, out_dir: str | Path, weights: str | Path,
                         settings: PseudoLabelSettings | None = None) -> dict:
    """Label every pair of ``dataset`` (a PairedDataset, labels unread) with ``detector`` (a
    FusionDetector whose own score threshold is at most ``settings.score_threshold``); writes
    ``out_dir/Annotations/<id>.xml``, links to the image folders and ``out_dir/summary.json``;
    returns the summary dict. PseudoLabelError if ``out_dir`` holds other folders of those
    names."""
    settings = settings or PseudoLabelSettings()
    if len(dataset) == 0:
        raise PseudoLabelError(f'dataset {dataset.name} has no usable pairs under {dataset.root}')
    if detector.thresholds.score_threshold > settings.score_threshold:
        raise PseudoLabelError(f'the detector drops boxes below '
                               f'{detector.thresholds.score_threshold}, above the pseudo-label '
                               f'threshold {settings.score_threshold}')
    out = Path(out_dir)
    labels_dir = out / 'Annotations'
    labels_dir.mkdir(parents=True, exist_ok=True)
    for source in (dataset.rgb_dir, dataset.thermal_dir):
        _link(out / source.name, source)
    names = list(detector.class_names)
    per_pair, skipped = {}, []
    bar = tqdm(range(len(dataset)), desc=f'pseudo-label {dataset.name}', unit='pair',
               disable=not settings.progress, dynamic_ncols=True)
    for index in bar:
        sample = dataset.load(index)
        if sample is None:
            skipped.append(dataset.records[index].rgb_path.name)
            continue
        rgb, thermal = sample['rgb'], sample['thermal']
        boxes, scores, labels = _confident(detector.infer(rgb, thermal, fuse=False),
                                           settings.score_threshold)
        if settings.hflip:
            m_boxes, m_scores, m_labels = _confident(
                detector.infer(np.ascontiguousarray(rgb[:, ::-1]),
                               np.ascontiguousarray(thermal[:, ::-1]), fuse=False),
                settings.score_threshold)
            boxes, scores, labels = agreed_boxes(boxes, scores, labels,
                                                 mirror_boxes(m_boxes, rgb.shape[1]), m_scores,
                                                 m_labels, settings.agreement_iou)
        record = dataset.records[index]
        text = voc_xml(record.rgb_path.name, rgb.shape[:2], [names[i] for i in labels], boxes,
                       scores)
        (labels_dir / f'{sample["id"]}.xml').write_text(text)
        per_pair[str(sample['id'])] = len(boxes)
    summary = {'weights': str(weights), 'weights_sha256': sha256_file(weights),
               'detector': detector.describe(), 'noise_seed': detector.noise_seed,
               'settings': asdict(settings), 'num_pairs': len(per_pair),
               'num_boxes': int(sum(per_pair.values())), 'boxes_per_pair': per_pair,
               'skipped_pairs': skipped}
    (out / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
    return summary
