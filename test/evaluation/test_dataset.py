"""evaluation/dataset.py: baselines, thermal scaling, NaN-aware means, and evaluate_dataset on real
pairs with the tiny random-init network (and, for a known mAP, a detector that returns the
ground truth)."""
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from efficientmfd_ros.core.image_codec import ImageConversionError, thermal_to_uint8
from efficientmfd_ros.core.metrics_fusion import fusion_metrics
from efficientmfd_ros.evaluation.dataset import (
    FUSION_KEYS,
    EvalSettings,
    EvaluationError,
    FusionMeans,
    baseline_fused,
    evaluate_dataset,
)
from efficientmfd_ros.model import ModelConfig, build_model, save_checkpoint
from efficientmfd_ros.runtime import Detections, load_detector
from efficientmfd_ros.train.data.paired import DatasetSpec, PairedDataset


@pytest.fixture(scope='module')
def tiny_detector(project_root, tmp_path_factory):
    cfg = ModelConfig.from_yaml(project_root / 'config' / 'model' / 'efficientmfd_tiny_test.yaml')
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path_factory.mktemp('ckpt') / 'tiny.pt', build_model(cfg), cfg)
    return load_detector(path, device='cpu', score_threshold=0.001)


def _numpy_baseline(rgb, thermal, mode):
    """The baseline written out independently: BT.601 Y, fused, colour moved by the Y change."""
    unit = rgb.astype(np.float64) / 255.0
    luma = unit @ np.array([0.299, 0.587, 0.114])
    t = thermal.astype(np.float64) / 255.0
    fused = (luma + t) / 2.0 if mode == 'average' else np.maximum(luma, t)
    out = np.clip(unit + (fused - luma)[..., None], 0.0, 1.0)
    return np.round(out * 255.0).astype(np.uint8)


@pytest.mark.parametrize('mode', ['average', 'maximum'])
def test_baseline_matches_the_formula(mode, rng):
    rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    thermal = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    got = baseline_fused(rgb, thermal, mode)
    want = _numpy_baseline(rgb, thermal, mode)
    assert got.dtype == np.uint8 and got.shape == (40, 50, 3)
    diff = np.abs(got.astype(int) - want.astype(int))
    # float32 vs float64 may round a value lying on .5 the other way, never further
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99


def test_baseline_on_grey_is_the_plain_average_and_maximum():
    grey = np.array([[0, 100], [200, 255]], np.uint8)
    thermal = np.array([[50, 100], [0, 255]], np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    avg = baseline_fused(rgb, thermal, 'average')
    mx = baseline_fused(rgb, thermal, 'maximum')
    np.testing.assert_array_equal(avg[..., 0], [[25, 100], [100, 255]])
    np.testing.assert_array_equal(mx[..., 1], [[50, 100], [200, 255]])
    assert (avg == avg[..., :1]).all() and (mx == mx[..., :1]).all()


def test_baseline_rejects_bad_input():
    rgb = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(EvaluationError, match='baseline'):
        baseline_fused(rgb, np.zeros((4, 4), np.uint8), 'median')
    with pytest.raises(EvaluationError, match='differ in size'):
        baseline_fused(rgb, np.zeros((4, 5), np.uint8), 'average')


def test_thermal_to_uint8():
    eight = np.array([[0, 7, 255]], np.uint8)
    assert thermal_to_uint8(eight) is eight
    wide = np.array([[1000, 2000, 3000, 5000]], np.uint16)
    np.testing.assert_array_equal(thermal_to_uint8(wide, (2000, 4000)), [[0, 0, 128, 255]])
    with pytest.raises(ImageConversionError, match='uint8 or uint16'):
        thermal_to_uint8(np.zeros((2, 2), np.float32))


def test_fusion_means_skip_nan_and_count_it():
    means = FusionMeans()
    means.add('model', {'en': 1.0, 'qabf': math.nan})
    means.add('model', {'en': 3.0, 'qabf': math.nan})
    means.add('average', {'en': 2.0, 'qabf': 0.5})
    assert means.means() == {'model': {'en': 2.0, 'qabf': None},
                             'average': {'en': 2.0, 'qabf': 0.5}}
    assert means.nan_counts() == {'model': {'qabf': 2}}


class _GroundTruthDetector:
    """Stands in for the network: returns the ground-truth boxes of each pair in turn (read from
    the VOC files here, independently of the dataset code) with score 0.9, and the RGB image as
    the fused image."""

    class_names = ('person',)
    has_fusion = True

    def __init__(self, boxes_in_order):
        self._queue = list(boxes_in_order)

    def infer(self, rgb, thermal, fuse=True):
        boxes = self._queue.pop(0)
        n = len(boxes)
        return Detections(boxes, np.full(n, 0.9, np.float32), np.zeros(n, np.int64), rgb.copy(),
                          {'total': 1.0})


def _voc_boxes(path):
    root = ET.parse(path).getroot()
    boxes = [[float(o.find(f'bndbox/{k}').text) for k in ('xmin', 'ymin', 'xmax', 'ymax')]
             for o in root.iter('object')]
    return np.asarray(boxes, np.float32)


@pytest.mark.data
def test_perfect_detections_score_map_one(llvip_person, tmp_path):
    ids = ['010003', '010004']
    annotations = [_voc_boxes(llvip_person / 'Annotations' / f'{i}.xml') for i in ids]
    spec = DatasetSpec(root=str(llvip_person), split=ids, class_names=['person'])
    result = evaluate_dataset(_GroundTruthDetector(annotations), PairedDataset(spec),
                              EvalSettings(out_dir=str(tmp_path), progress=False))
    assert result['map50'] == pytest.approx(1.0) and result['map50_95'] == pytest.approx(1.0)
    assert result['num_gt'] == result['num_pred'] == sum(len(b) for b in annotations)
    assert (tmp_path / 'ground_truth.json').is_file()
    assert (tmp_path / 'predictions.json').is_file()
    # fused == RGB: ssim is SSIM(x,x) + SSIM(y,x) = 1 + SSIM(y,x)
    assert 1.0 < result['fusion']['ssim'] < 2.0


@pytest.mark.data
def test_unlabelled_pairs_give_fusion_metrics_only(tiny_detector, roadscene, tmp_path):
    spec = DatasetSpec(root=str(roadscene), split='FLIR_00006..FLIR_00018', labelled=False,
                       label_format='none')
    dataset = PairedDataset(spec)
    assert len(dataset) == 2
    result = evaluate_dataset(tiny_detector, dataset,
                              EvalSettings(out_dir=str(tmp_path), baselines=True, progress=False))
    assert result['num_pairs'] == 2 and result['labelled'] is False
    assert 'map50' not in result and not (tmp_path / 'predictions.json').exists()
    assert set(result['fusion']) == set(FUSION_KEYS)
    assert set(result['baselines']) == {'average', 'maximum', 'laplacian'}
    # the mean over pairs of fusion_metrics on the maximum baseline, computed here directly
    direct = []
    for index in range(2):
        sample = dataset.load(index)
        fused = _numpy_baseline(sample['rgb'], sample['thermal'], 'maximum')
        direct.append(fusion_metrics(sample['rgb'], sample['thermal'], fused))
    for key in FUSION_KEYS:
        want = np.mean([d[key] for d in direct])
        assert result['baselines']['maximum'][key] == pytest.approx(want, rel=2e-3, abs=1e-3)


@pytest.mark.data
def test_empty_dataset_is_an_error(tiny_detector, llvip_person):
    spec = DatasetSpec(root=str(llvip_person), split='090001..090009', class_names=['person'])
    with pytest.raises(EvaluationError, match='no usable pairs'):
        evaluate_dataset(tiny_detector, PairedDataset(spec), EvalSettings(progress=False))
