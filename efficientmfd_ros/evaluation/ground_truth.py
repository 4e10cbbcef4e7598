"""Ground truth for bag evaluation, keyed by the RGB image stamp (integer nanoseconds).

From a Detection2DArray topic (``make_bag`` writes class names as ``class_id``; numeric ids are
taken as class indices), or from a COCO annotation file whose images are named by that stamp:
``file_name`` ``"<stamp_ns>"`` (any extension), or an image field ``stamp_ns`` — the
``ground_truth.json`` that ``efficientmfd_eval_bag`` writes has that form. Boxes whose class the
model does not know are left out and counted in ``ignored``.
"""
from collections import Counter
from dataclasses import dataclass, field
import json
from pathlib import Path

import numpy as np

from efficientmfd_ros.bags.bagio import DETECTIONS, BagError
from efficientmfd_ros.bags.messages import detections_boxes


@dataclass
class GroundTruth:
    """``frames``: stamp_ns -> (boxes (K,4) float32 xyxy pixels, labels (K,) int64 indices into
    the model's class names); ``ignored``: class id/name -> boxes left out; ``source``."""

    frames: dict
    source: str
    ignored: Counter = field(default_factory=Counter)

    @property
    def num_boxes(self):
        return sum(len(labels) for _, labels in self.frames.values())


def class_index(class_id, class_names):
    """Index of ``class_id`` (a name, or an index as text) in ``class_names``; None if unknown."""
    text = str(class_id).strip()
    if text in class_names:
        return list(class_names).index(text)
    if text.isdigit() and int(text) < len(class_names):
        return int(text)
    return None


def _keep_known(boxes, class_ids, class_names, ignored):
    keep, labels = [], []
    for k, class_id in enumerate(class_ids):
        index = class_index(class_id, class_names)
        if index is None:
            ignored[str(class_id)] += 1
        else:
            keep.append(k)
            labels.append(index)
    return (np.asarray(boxes, np.float32).reshape(-1, 4)[keep],
            np.asarray(labels, np.int64))


def gt_from_bag(reader, topic, class_names):
    """Ground truth from the Detection2DArray ``topic`` of an open ``BagReader``."""
    reader.require(topic, DETECTIONS)
    gt = GroundTruth({}, f'{reader.path} {topic}')
    for message in reader.messages([topic]):
        boxes = detections_boxes(reader.decode(message))
        gt.frames[boxes.stamp_ns] = _keep_known(boxes.boxes, boxes.class_ids, class_names,
                                                gt.ignored)
    return gt


def gt_from_coco(path, class_names):
    """Ground truth from a COCO annotation file (see the module docstring for image naming)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        categories = {c['id']: c['name'] for c in data['categories']}
        images = {}
        for image in data['images']:
            stamp = image.get('stamp_ns', Path(str(image.get('file_name', ''))).stem)
            images[image['id']] = int(stamp)
        per_image = {iid: ([], []) for iid in images}
        for ann in data.get('annotations', []):
            x, y, w, h = (float(v) for v in ann['bbox'])
            per_image[ann['image_id']][0].append((x, y, x + w, y + h))
            per_image[ann['image_id']][1].append(categories[ann['category_id']])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BagError(f'cannot use {path} as COCO ground truth keyed by stamp_ns '
                       f'({type(exc).__name__}: {exc})') from exc
    gt = GroundTruth({}, str(path))
    for iid, (boxes, names) in per_image.items():
        gt.frames[images[iid]] = _keep_known(boxes, names, class_names, gt.ignored)
    return gt
