"""COCO evaluation through pycocotools on hand-made cases with known AP."""
import json

import numpy as np
import pytest

from efficientmfd_ros.core.metrics_coco import (
    CocoInputError,
    DetectionEvaluator,
    evaluate_files,
)

CLASSES = ['person', 'car']
# COCO interpolates precision on 101 recall thresholds 0.00, 0.01, ..., 1.00
HALF_RECALL_AP = 51 / 101


def _box(x1, y1, x2, y2):
    return np.array([[x1, y1, x2, y2]], np.float32)


def _two_images():
    return [
        ('010033', (128, 160), _box(10, 20, 50, 100), np.array([0])),
        ('010034', (128, 160), _box(60, 30, 120, 90), np.array([0])),
    ]


def test_ground_truth_against_itself_scores_one(tmp_path):
    ev = DetectionEvaluator(CLASSES)
    ev.add('a', (100, 200), np.array([[0, 0, 40, 50], [100, 10, 180, 90]], np.float32),
           np.array([0, 1]), np.array([[0, 0, 40, 50], [100, 10, 180, 90]], np.float32),
           np.array([0.9, 0.8]), np.array([0, 1]))
    ev.add('empty', (100, 200), np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    res = ev.evaluate(out_dir=tmp_path)
    assert res['map50'] == pytest.approx(1.0)
    assert res['map50_95'] == pytest.approx(1.0)
    assert res['per_class']['car'] == pytest.approx(
        {'ap50': 1.0, 'ap50_95': 1.0, 'num_gt': 1, 'num_pred': 1})
    assert res['coco_stats']['ap50_95'] == pytest.approx(1.0)
    assert res['num_images'] == 2
    curve = res['pr_curve_iou50']['person']
    assert len(curve['recall']) == 101 and min(curve['precision']) == pytest.approx(1.0)
    # the written files are standard COCO and re-score to the same numbers
    gt = json.loads((tmp_path / 'ground_truth.json').read_text())
    assert [im['file_name'] for im in gt['images']] == ['a', 'empty']
    assert gt['annotations'][1]['bbox'] == [100.0, 10.0, 80.0, 80.0]
    again = evaluate_files(tmp_path / 'ground_truth.json', tmp_path / 'predictions.json')
    assert again['map50_95'] == res['map50_95']


def test_one_of_two_boxes_missed_gives_half_recall_ap():
    ev = DetectionEvaluator(CLASSES)
    (i1, hw1, b1, l1), (i2, hw2, b2, l2) = _two_images()
    ev.add(i1, hw1, b1, l1, b1, [0.9], l1)
    ev.add(i2, hw2, b2, l2)
    res = ev.evaluate()
    assert res['map50'] == pytest.approx(HALF_RECALL_AP)
    assert res['per_class']['person']['ap50_95'] == pytest.approx(HALF_RECALL_AP)
    # car has no ground truth: no AP, and it does not enter the mean
    assert res['per_class']['car']['ap50'] is None
    assert 'car' not in res['pr_curve_iou50']


def test_false_positive_ranked_first_halves_precision():
    ev = DetectionEvaluator(CLASSES)
    ev.add('x', (128, 160), _box(10, 10, 50, 50), [1],
           np.array([[100, 100, 150, 120], [10, 10, 50, 50]], np.float32), [0.9, 0.8], [1, 1])
    assert ev.evaluate()['map50'] == pytest.approx(0.5)


def test_loose_box_counts_only_at_low_iou_thresholds():
    ev = DetectionEvaluator(CLASSES)
    # IoU 0.62: a match at thresholds 0.50, 0.55 and 0.60 only, 3 of the 10
    ev.add('x', (128, 160), _box(0, 0, 100, 100), [0], _box(0, 0, 100, 62), [0.7], [0])
    res = ev.evaluate()
    assert res['map50'] == pytest.approx(1.0)
    assert res['map50_95'] == pytest.approx(0.3)


def test_no_predictions_scores_zero(capsys):
    ev = DetectionEvaluator(CLASSES)
    for image_id, hw, boxes, labels in _two_images():
        ev.add(image_id, hw, boxes, labels)
    res = ev.evaluate()
    assert res['map50'] == 0.0 and res['map50_95'] == 0.0
    assert res['num_pred'] == 0
    assert capsys.readouterr().out == ''


def test_verbose_prints_the_coco_table(capsys):
    ev = DetectionEvaluator(CLASSES)
    image_id, hw, boxes, labels = _two_images()[0]
    ev.add(image_id, hw, boxes, labels, boxes, [0.5], labels)
    ev.evaluate(verbose=True)
    assert 'Average Precision' in capsys.readouterr().out


def test_bad_inputs_are_named():
    ev = DetectionEvaluator(CLASSES)
    with pytest.raises(CocoInputError, match='class index'):
        ev.add('a', (10, 10), _box(0, 0, 5, 5), [2])
    with pytest.raises(CocoInputError, match='1 scores for 2 boxes'):
        ev.add('b', (10, 10), _box(0, 0, 5, 5), [0], np.zeros((2, 4)), [0.5], [0, 0])
    ev.add('c', (10, 10), _box(0, 0, 5, 5), [0])
    with pytest.raises(CocoInputError, match='added twice'):
        ev.add('c', (10, 10), _box(0, 0, 5, 5), [0])
    with pytest.raises(CocoInputError, match='class_names'):
        DetectionEvaluator([])
