"""Boxes and class indices of each pair, read from its label source and checked."""
import numpy as np

from efficientmfd_ros.train.data.labels import CocoLabels, LabelFileError, parse_voc, parse_yolo
from efficientmfd_ros.train.data.spec import DatasetError, resolve_dir


def _label_source(spec, root, name):
    """The CocoLabels of a COCO dataset, or the folder of its VOC xml / YOLO txt files."""
    if spec.label_format == 'coco':
        if not spec.coco_json:
            raise DatasetError(f'{name}: label_format coco needs coco_json')
        try:
            return CocoLabels(root / spec.coco_json)
        except LabelFileError as exc:
            raise DatasetError(str(exc)) from exc
    if spec.label_dir is not None:
        return resolve_dir(root, spec.label_dir, (), 'label')
    if spec.label_format == 'yolo':
        return resolve_dir(root, None, ('labels',), 'label')
    candidates = ['Annotations'] + sorted(p.name for p in root.glob('Annotation*'))
    return resolve_dir(root, None, candidates, 'label')


class AnnotationReader:
    """Reads the labels of a DatasetSpec and reports every problem to a DataReport.

    Class names match the spec's ``class_names`` ignoring case and surrounding spaces; YOLO
    indices must be below their count. Boxes are clipped to the image, and boxes smaller than
    ``min_box_size`` after clipping (or non-finite) are dropped.
    """

    def __init__(self, spec, root, report):
        self.format = spec.label_format
        self.class_names = list(spec.class_names)
        self.min_box_size = spec.min_box_size
        self.report = report
        self._class_index = {n.strip().lower(): i for i, n in enumerate(self.class_names)}
        self.source = _label_source(spec, root, report.name)

    def read(self, pair_id, hw):
        """``(boxes (K,4) float32 xyxy pixels, labels (K,) int64)`` of one pair, clipped to
        ``hw`` = (H, W); None (reported) when its label file is missing or unreadable."""
        fmt = self.format
        if fmt == 'coco':
            path = f'{self.source.path}#{pair_id}'
            if pair_id not in self.source:
                self.report.event('missing_label', path, 'image not in the COCO file')
                return None
            parsed = self.source.get(pair_id)
        else:
            path = self.source / f'{pair_id}.{"xml" if fmt == "voc" else "txt"}'
            if not path.is_file():
                self.report.event('missing_label', path)
                return None
            try:
                parsed = parse_voc(path) if fmt == 'voc' else parse_yolo(path, hw)
            except LabelFileError as exc:
                self.report.event('unreadable_label', path, exc.reason)
                return None
            if not parsed.entries and not parsed.bad_entries:
                self.report.event('empty_label', path, 'kept as an image without objects')
        for text in parsed.bad_entries:
            self.report.event('bad_label_entry', path, text)
        if parsed.crowd:
            self.report.event('crowd_box', path, count=parsed.crowd)
        return self._resolve_boxes(parsed.entries, hw, path)

    def _resolve_boxes(self, entries, hw, path):
        height, width = hw
        boxes, labels = [], []
        for key, coords in entries:
            if isinstance(key, int):
                index = key if 0 <= key < len(self.class_names) else None
            else:
                index = self._class_index.get(key.strip().lower())
            if index is None:
                self.report.event('unknown_class', path, f'{key!r} not in {self.class_names}')
                continue
            boxes.append(coords)
            labels.append(index)
        raw = np.asarray(boxes, np.float64).reshape(-1, 4)
        clipped = np.clip(raw, 0.0, [width, height, width, height])
        size = np.stack([clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]], axis=1)
        keep = np.all(size >= self.min_box_size, axis=1) & np.isfinite(raw).all(axis=1)
        if (~keep).any():
            self.report.event('box_degenerate', path, f'{raw[~keep].round(1).tolist()}',
                              count=int((~keep).sum()))
        moved = keep & (np.abs(clipped - raw) > 1e-6).any(axis=1)
        if moved.any():
            self.report.event('box_clipped', path, f'{raw[moved].round(1).tolist()}',
                              count=int(moved.sum()))
        return clipped[keep].astype(np.float32), np.asarray(labels, np.int64)[keep]

