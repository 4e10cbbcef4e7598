"""Labelled RGB-thermal frames for bag making: a dataset folder or the synthetic scene.

A frame has ``name``, ``rgb`` (H,W,3) uint8 RGB, ``thermal`` (H,W) uint8|uint16, ``boxes`` (K,4)
float32 xyxy pixels of the RGB image and ``labels`` (K class names). Datasets are read with the
training loader (``train.data.PairedDataset``): the same layouts, label formats and split files.
"""
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from efficientmfd_ros.bags.synthetic_scene import SyntheticFrame, render_sequence
from efficientmfd_ros.train.data.labels import LabelFileError, parse_voc
from efficientmfd_ros.train.data.paired import DatasetError, DatasetSpec, PairedDataset


class FrameSourceError(ValueError):
    """A dataset folder or split that cannot supply frames; the message says why."""


@dataclass
class FrameSet:
    """Frames (an iterable, read lazily), how many, the class names and where they came from."""

    frames: object
    count: int
    class_names: list
    source: str


def voc_class_names(root):
    """Class names of a VOC-labelled dataset in first-seen order (file name order)."""
    names = []
    folders = [root / 'Annotations'] + sorted(root.glob('Annotation*'))
    for folder in (f for f in folders if f.is_dir()):
        for path in sorted(folder.glob('*.xml')):
            try:
                entries = parse_voc(path).entries
            except LabelFileError:
                continue  # the loader reports it when it reads that pair
            for name, _ in entries:
                if name not in names:
                    names.append(name)
        break
    return names


def _resized(frame, size):
    if size is None:
        return frame
    width, height = size
    sx, sy = width / frame.rgb.shape[1], height / frame.rgb.shape[0]
    return SyntheticFrame(
        frame.name, cv2.resize(frame.rgb, (width, height), interpolation=cv2.INTER_AREA),
        cv2.resize(frame.thermal, (width, height), interpolation=cv2.INTER_AREA),
        frame.boxes * np.array([sx, sy, sx, sy], np.float32), frame.labels)


def dataset_frames(data_dir, split=None, max_frames=None, size=None, class_names=None,
                   label_format='voc'):
    """Frames of a paired dataset folder in id order; unlabelled when ``label_format`` is
    'none'. ``class_names`` default to those found in VOC files. ``size`` (width, height)
    resizes both images and scales the boxes."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FrameSourceError(f'no dataset folder at {root}')
    if class_names is None:
        class_names = voc_class_names(root) if label_format == 'voc' else []
    labelled = label_format != 'none' and bool(class_names)
    spec = DatasetSpec(root=str(root), label_format=label_format if labelled else 'none',
                       split=split, class_names=list(class_names), labelled=labelled)
    try:
        dataset = PairedDataset(spec)
    except DatasetError as exc:
        raise FrameSourceError(str(exc)) from exc
    count = min(len(dataset), max_frames) if max_frames else len(dataset)
    if count == 0:
        raise FrameSourceError(f'no usable pair in {root}:\n{dataset.summary()}')

    def frames():
        for index in range(count):
            sample = dataset.load(index)
            if sample is None:
                continue  # undecodable pair: counted in the loader's summary
            yield _resized(SyntheticFrame(
                sample['id'], sample['rgb'], sample['thermal'], sample['boxes'],
                [class_names[i] for i in sample['labels']]), size)

    return FrameSet(frames(), count, list(class_names), str(root))


def synthetic_frames(num_frames, size=(320, 256), seed=0, class_names=('person',)):
    """The synthetic street scene (see ``synthetic_scene``), labelled with ``class_names``."""
    width, height = size or (320, 256)
    frames = render_sequence(num_frames, width, height, seed=seed, class_names=class_names)
    return FrameSet(iter(frames), len(frames), list(class_names),
                    f'synthetic scene, seed {seed}, {width}x{height}')
