"""Label-file parsers for the paired datasets: Pascal VOC xml, YOLO txt and one COCO json.

Every parser returns raw entries ``(class_key, xyxy)``: ``class_key`` is the class name as written
(VOC, COCO) or the integer class index (YOLO); ``xyxy`` is a float list in pixels of the image,
not yet clipped. The dataset maps keys to class indices, clips and reports. VOC coordinates are
taken as written (no 1-based shift), which is what LLVIP's and M3FD's boxes mean in practice.
"""
from dataclasses import dataclass, field
import json
from pathlib import Path
import xml.etree.ElementTree as ET


class LabelFileError(ValueError):
    """A label file that cannot be read at all (missing, empty xml, malformed json)."""

    def __init__(self, path, reason):
        super().__init__(f'label file {path} {reason}')
        self.path = path
        self.reason = reason


@dataclass
class ParsedLabels:
    """Entries of one image plus the problems met while reading them.

    ``entries``: list of ``(class_key, [x1, y1, x2, y2])`` in pixels; ``bad_entries``: texts naming
    entries that could not be parsed (skipped); ``crowd``: COCO ``iscrowd`` boxes skipped.
    """

    entries: list = field(default_factory=list)
    bad_entries: list = field(default_factory=list)
    crowd: int = 0


def parse_voc(path):
    """Objects of a VOC xml: ``object/name`` and ``object/bndbox/{xmin,ymin,xmax,ymax}``."""
    path = Path(path)
    if not path.is_file():
        raise LabelFileError(path, 'does not exist')
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise LabelFileError(path, f'is not valid xml: {exc}') from exc
    parsed = ParsedLabels()
    for i, obj in enumerate(root.iter('object')):
        name = (obj.findtext('name') or '').strip()
        box = obj.find('bndbox')
        try:
            coords = [float(box.findtext(k)) for k in ('xmin', 'ymin', 'xmax', 'ymax')]
        except (AttributeError, TypeError, ValueError):
            parsed.bad_entries.append(f'object {i} ({name or "no name"}) has no numeric bndbox')
            continue
        if not name:
            parsed.bad_entries.append(f'object {i} has no name')
            continue
        parsed.entries.append((name, coords))
    return parsed


def parse_yolo(path, image_hw):
    """Lines ``class cx cy w h`` (normalized ``cxcywh``) of a YOLO txt, as ``xyxy`` pixels."""
    path = Path(path)
    if not path.is_file():
        raise LabelFileError(path, 'does not exist')
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelFileError(path, f'cannot be read: {exc}') from exc
    height, width = image_hw
    parsed = ParsedLabels()
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) != 5:
                raise ValueError(f'{len(fields)} fields instead of 5')
            cls = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:])
        except ValueError as exc:
            parsed.bad_entries.append(f'line {number} ({line.strip()!r}): {exc}')
            continue
        parsed.entries.append((cls, [(cx - w / 2) * width, (cy - h / 2) * height,
                                     (cx + w / 2) * width, (cy + h / 2) * height]))
    return parsed


class CocoLabels:
    """One COCO annotation json, looked up by image file stem (``file_name`` less folder, ext)."""

    def __init__(self, path):
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            categories = {c['id']: c['name'] for c in data['categories']}
            images = {Path(im['file_name']).stem: im['id'] for im in data['images']}
            annotations = data.get('annotations', [])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LabelFileError(path, f'cannot be read as COCO json: {exc!r}') from exc
        self.path = path
        self._image_ids = images
        self._by_image = {}
        self._bad = {}
        for i, ann in enumerate(annotations):
            try:
                x, y, w, h = (float(v) for v in ann['bbox'])
                entry = (categories[ann['category_id']], [x, y, x + w, y + h],
                         bool(ann.get('iscrowd', 0)))
                self._by_image.setdefault(ann['image_id'], []).append(entry)
            except (KeyError, TypeError, ValueError) as exc:
                self._bad.setdefault(ann.get('image_id'), []).append(
                    f'annotation {i} is malformed: {exc!r}')

    def __contains__(self, stem):
        return stem in self._image_ids

    def get(self, stem):
        """``ParsedLabels`` of the image whose file stem is ``stem``; LabelFileError if absent."""
        if stem not in self._image_ids:
            raise LabelFileError(self.path, f'does not list image {stem}')
        image_id = self._image_ids[stem]
        parsed = ParsedLabels(bad_entries=list(self._bad.get(image_id, [])))
        for name, box, crowd in self._by_image.get(image_id, []):
            if crowd:
                parsed.crowd += 1
            else:
                parsed.entries.append((name, box))
        return parsed
