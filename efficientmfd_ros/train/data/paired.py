"""Paired RGB-thermal datasets in the layouts users have, and the mixing of several of them.

A dataset is ``<root>/<rgb_dir>/<id>.<ext>`` + ``<root>/<thermal_dir>/<id>.<ext>`` (any image
extension, matched by file stem) with labels as VOC xml (``<label_dir>/<id>.xml``), YOLO txt
(``<label_dir>/<id>.txt``, normalized ``cxcywh``) or one COCO json, or no labels. Known layouts are
found without configuration: LLVIP (``visible/``, ``infrared/``, ``Annotations/``; the official
release's ``visible/train`` also works as ``rgb_dir``), M3FD (``Vis/``, ``Ir/``, ``Annotation*/``).

Bad data is reported, not fatal (see ``data_report.REASONS``): pairs without a partner, unreadable
images or label files are skipped; boxes outside the image are clipped; degenerate boxes and
unknown classes are dropped; thermal images of another size than their RGB partner are resized to
it. Each case is logged once with its path; ``summary()`` gives the counts, for printing before
training. A bad configuration (missing root or folder, unknown label format, a split that is
neither a file nor a range) raises ``DatasetError``.
"""
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
import zlib

import numpy as np
from PIL import Image
import torch
from torch.utils.data import ConcatDataset, Dataset, WeightedRandomSampler

from efficientmfd_ros.train.data.annotations import AnnotationReader
from efficientmfd_ros.train.data.files import load_pair
from efficientmfd_ros.train.data.report import DataReport
from efficientmfd_ros.train.data.spec import (
    IMAGE_EXTS,
    LABEL_FORMATS,
    RGB_DIR_NAMES,
    THERMAL_DIR_NAMES,
    DatasetError,
    DatasetSpec,
    resolve_dir,
)
from efficientmfd_ros.train.data.split import select_ids

__all__ = ['DatasetError', 'DatasetSpec', 'MixedDataset', 'PairedDataset', 'PairRecord',
           'build_datasets', 'make_sampler']

@dataclass
class PairRecord:
    """One usable pair: ``boxes`` (K,4) float32 ``xyxy`` pixels of the RGB image, ``labels`` (K,),
    ``hw`` (H, W) of the RGB image."""

    id: str
    rgb_path: Path
    thermal_path: Path
    hw: tuple
    boxes: np.ndarray
    labels: np.ndarray


def _list_images(folder, report):
    found = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_EXTS or not path.is_file():
            continue
        if path.stem in found:
            report.event('duplicate_file', path, f'{found[path.stem].name} is used')
            continue
        found[path.stem] = path
    return found


def _image_hw(path):
    """(H, W) from the file header, or None when the file is not a readable image."""
    try:
        with Image.open(path) as image:
            width, height = image.size
        return height, width
    except (OSError, ValueError, SyntaxError):
        return None


class PairedDataset(Dataset):
    """The pairs of one dataset; item ``i`` is a sample dict passed to ``transform(sample, rng)``.

    Sample: ``rgb`` uint8 HxWx3 RGB, ``thermal`` uint8 or uint16 HxW (same HxW as ``rgb``),
    ``boxes`` float32 (K,4) ``xyxy`` pixels, ``labels`` int64 (K,) 0-based, ``id`` str,
    ``labelled`` bool, ``dataset`` str. The ``rng`` of item ``i`` is seeded from
    ``(seed, epoch, dataset name, i, n)``, ``n`` counting the earlier draws of ``i`` in this
    process since ``set_epoch``: a pair drawn twice is augmented differently, and the same seed,
    sampler and loader worker count reproduce a run. (Persistent DataLoader workers keep their own
    copy and do not see ``set_epoch``; their draw counts keep the augmentations varied.)
    """

    def __init__(self, spec, transform=None, seed=0):
        self.spec = spec
        self.root = Path(spec.root).expanduser()
        self.name = spec.name or self.root.name
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self._draws = Counter()
        self._salt = zlib.crc32(self.name.encode())
        self.report = DataReport(self.name)
        self._check_spec()
        self.rgb_dir = resolve_dir(self.root, spec.rgb_dir, RGB_DIR_NAMES, 'RGB')
        self.thermal_dir = resolve_dir(self.root, spec.thermal_dir, THERMAL_DIR_NAMES, 'thermal')
        self._labels = AnnotationReader(spec, self.root, self.report) if spec.labelled else None
        self.records, self.num_selected = self._scan()

    def _check_spec(self):
        spec = self.spec
        if not self.root.is_dir():
            raise DatasetError(f'dataset root {self.root} does not exist')
        if spec.label_format not in LABEL_FORMATS:
            raise DatasetError(f'label_format {spec.label_format!r} is not one of {LABEL_FORMATS}')
        if spec.labelled and spec.label_format == 'none':
            raise DatasetError(f'{self.name}: labelled datasets need a label_format')
        if spec.labelled and not spec.class_names:
            raise DatasetError(f'{self.name}: labelled datasets need class_names')
        if not spec.weight > 0:
            raise DatasetError(f'{self.name}: weight must be positive, got {spec.weight}')

    def _scan(self):
        rgb = _list_images(self.rgb_dir, self.report)
        thermal = _list_images(self.thermal_dir, self.report)
        try:
            ids = select_ids(self.spec.split, sorted(set(rgb) | set(thermal)), self.root)
        except ValueError as exc:
            raise DatasetError(f'{self.name}: {exc}') from exc
        records = []
        for pair_id in ids:
            if pair_id not in rgb:
                self.report.event('missing_rgb', thermal.get(pair_id, self.rgb_dir / pair_id))
                continue
            if pair_id not in thermal:
                self.report.event('missing_thermal', rgb[pair_id])
                continue
            record = self._scan_pair(pair_id, rgb[pair_id], thermal[pair_id])
            if record is not None:
                records.append(record)
        return records, len(ids)

    def _scan_pair(self, pair_id, rgb_path, thermal_path):
        hw = _image_hw(rgb_path)
        thermal_hw = _image_hw(thermal_path)
        if hw is None or thermal_hw is None:
            self.report.event('unreadable_image', rgb_path if hw is None else thermal_path)
            return None
        if thermal_hw != hw:
            self.report.event('ir_resized', thermal_path, f'{thermal_hw} -> {hw}')
        boxes, labels = np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)
        if self._labels is not None:
            parsed = self._labels.read(pair_id, hw)
            if parsed is None:
                return None
            boxes, labels = parsed
        return PairRecord(pair_id, rgb_path, thermal_path, hw, boxes, labels)

    def __len__(self):
        return len(self.records)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)
        self._draws.clear()

    def load(self, index):
        """The untransformed sample of record ``index``, or None if its images fail to decode."""
        record = self.records[index]
        images = load_pair(record.rgb_path, record.thermal_path, self.report)
        if images is None:
            return None
        rgb, thermal = images
        return {'rgb': rgb, 'thermal': thermal, 'boxes': record.boxes.copy(),
                'labels': record.labels.copy(), 'id': record.id,
                'labelled': bool(self.spec.labelled), 'dataset': self.name}

    def __getitem__(self, index):
        # a file that passed the header scan can still fail to decode: take the next pair instead
        for attempt in range(len(self.records)):
            i = (index + attempt) % len(self.records)
            sample = self.load(i)
            if sample is not None:
                break
        else:
            raise DatasetError(f'{self.name}: no pair can be decoded')
        if self.transform is None:
            return sample
        draw = self._draws[index]
        self._draws[index] += 1
        rng = np.random.default_rng([self.seed, self.epoch, self._salt, index, draw])
        return self.transform(sample, rng)

    @property
    def num_boxes(self):
        return int(sum(len(r.boxes) for r in self.records))

    def summary(self):
        """Multi-line text: pairs found and used, skipped by reason, boxes, clipped and dropped."""
        spec = self.spec
        split = spec.split
        if isinstance(split, (list, tuple)):
            split = f'{len(split)} listed ids'
        labels = f'labels {spec.label_format}' if spec.labelled else 'unlabelled (fusion only)'
        skipped = self.report.skipped()
        skipped_text = ', '.join(f'{r} {n}' for r, n in skipped.items()) or 'none'
        lines = [f'dataset {self.name}: {self.root} ({self.rgb_dir.name}/ + '
                 f'{self.thermal_dir.name}/, {labels}, split {split or "all"}, '
                 f'weight {spec.weight:g})',
                 f'  pairs: {len(self)} used of {self.num_selected} selected; '
                 f'skipped: {skipped_text}']
        if spec.labelled:
            empty = sum(1 for r in self.records if len(r.boxes) == 0)
            counts = self.report.counts
            lines.append(f'  boxes: {self.num_boxes} ({empty} pairs without boxes); clipped '
                         f'{counts["box_clipped"]}; dropped: degenerate '
                         f'{counts["box_degenerate"]}, unknown class {counts["unknown_class"]}')
        shown = {*skipped, 'box_clipped', 'box_degenerate', 'unknown_class'}
        notes = self.report.lines(exclude=shown)
        lines.append('  notes: ' + ('; '.join(notes) if notes else 'none'))
        return '\n'.join(lines)


class MixedDataset(ConcatDataset):
    """Several PairedDatasets as one; with ``make_sampler`` each dataset gives ``weight /
    sum(weights)`` of the drawn items, however many pairs it has."""

    def __init__(self, datasets):
        if not datasets:
            raise DatasetError('no datasets to mix')
        super().__init__(datasets)
        for ds in datasets:
            if len(ds) == 0:
                raise DatasetError(f'dataset {ds.name} has no usable pairs:\n{ds.summary()}')

    def set_epoch(self, epoch):
        for ds in self.datasets:
            ds.set_epoch(epoch)

    def sample_weights(self):
        """float64 (N,) per-item probabilities giving each dataset its weight share."""
        total = sum(ds.spec.weight for ds in self.datasets)
        return torch.cat([torch.full((len(ds),), ds.spec.weight / total / len(ds),
                                     dtype=torch.float64) for ds in self.datasets])

    def summary(self):
        return '\n'.join(ds.summary() for ds in self.datasets)


def build_datasets(specs, transform=None, seed=0):
    """A MixedDataset of DatasetSpecs (or their dicts), all with ``transform`` and ``seed``."""
    specs = [s if isinstance(s, DatasetSpec) else DatasetSpec.from_dict(s) for s in specs]
    return MixedDataset([PairedDataset(s, transform, seed) for s in specs])


def make_sampler(dataset, num_samples=None, generator=None):
    """WeightedRandomSampler (with replacement) drawing by the datasets' weights."""
    weights = dataset.sample_weights()
    return WeightedRandomSampler(weights, num_samples or len(weights), replacement=True,
                                 generator=generator)
