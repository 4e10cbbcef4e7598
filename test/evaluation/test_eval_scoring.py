"""The bag evaluator's scoring path: ground truth against itself, a perturbed copy against
pycocotools run independently on the same boxes, dropped frames, COCO ground truth files."""
import contextlib
import io
import json

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
import pytest

from efficientmfd_ros.bags.bagio import BagError, BagReader
from efficientmfd_ros.bags.frame_source import synthetic_frames
from efficientmfd_ros.bags.make import GT_TOPIC, write_bag
from efficientmfd_ros.core.metrics_coco import evaluate_files
from efficientmfd_ros.core.metrics_fusion import fusion_metrics
from efficientmfd_ros.evaluation.collect import RunCollector, frame_f1
from efficientmfd_ros.evaluation.ground_truth import gt_from_bag, gt_from_coco

CLASSES = ['person', 'car']


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp('scene')
    frames = list(synthetic_frames(6, (160, 128), seed=4, class_names=CLASSES).frames)
    records = write_bag(synthetic_frames(6, (160, 128), seed=4, class_names=CLASSES),
                        root / 'bag', progress=False)
    with BagReader(root / 'bag') as reader:
        gt = gt_from_bag(reader, GT_TOPIC, CLASSES)
    return frames, [r[1] for r in records], gt


def _collect(scene, predict, skip=()):
    frames, stamps, gt = scene
    collector = RunCollector(CLASSES, gt)
    for frame, stamp in zip(frames, stamps):
        if stamp in skip:
            continue
        boxes, scores, labels = predict(stamp)
        collector.add(stamp, frame.rgb, frame.thermal, boxes, scores, labels, frame.rgb, 1.0)
    return collector


def test_ground_truth_against_itself_is_perfect(scene, tmp_path):
    gt = scene[2]
    assert gt.num_boxes > 6 and not gt.ignored
    collector = _collect(scene, lambda s: (gt.frames[s][0], np.ones(len(gt.frames[s][1])),
                                           gt.frames[s][1]))
    coco, fusion = collector.scores(out_dir=tmp_path)
    assert coco['map50'] == pytest.approx(1.0)
    assert coco['map50_95'] == pytest.approx(1.0)
    assert all(c['ap50'] == pytest.approx(1.0) for c in coco['per_class'].values())
    assert all(r.f1 == 1.0 for r in collector.records.values())
    direct = [fusion_metrics(f.rgb, f.thermal, f.rgb) for f in scene[0]]
    for key in ('en', 'mi', 'vif', 'qabf', 'ssim'):
        assert fusion[key] == pytest.approx(np.mean([d[key] for d in direct]))
    again = evaluate_files(tmp_path / 'ground_truth.json', tmp_path / 'predictions.json')
    assert again['map50_95'] == pytest.approx(1.0)


def _pycocotools_map(gt, predictions):
    """mAP computed straight from pycocotools on hand-built COCO records."""
    images, annotations, results = [], [], []
    for k, stamp in enumerate(sorted(gt.frames), start=1):
        images.append({'id': k, 'height': 128, 'width': 160})
        for box, label in zip(*gt.frames[stamp]):
            x1, y1, x2, y2 = box.tolist()
            annotations.append({'id': len(annotations) + 1, 'image_id': k, 'iscrowd': 0,
                                'category_id': int(label) + 1, 'bbox': [x1, y1, x2 - x1, y2 - y1],
                                'area': (x2 - x1) * (y2 - y1)})
        for box, score, label in zip(*predictions.get(stamp, ([], [], []))):
            x1, y1, x2, y2 = np.asarray(box, float).tolist()
            results.append({'image_id': k, 'category_id': int(label) + 1, 'score': float(score),
                            'bbox': [x1, y1, x2 - x1, y2 - y1]})
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {'images': images, 'annotations': annotations,
                        'categories': [{'id': i + 1, 'name': n} for i, n in enumerate(CLASSES)]}
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(results), 'bbox')
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats[1], evaluator.stats[0]


def test_perturbed_copy_matches_pycocotools(scene):
    gt = scene[2]
    rng = np.random.default_rng(11)
    predictions = {}
    for stamp, (boxes, labels) in gt.frames.items():
        noisy = boxes + rng.normal(0, 4.0, boxes.shape).astype(np.float32)
        keep = rng.random(len(labels)) > 0.2
        extra = np.array([[5, 5, 40, 60]], np.float32)
        predictions[stamp] = (np.concatenate([noisy[keep], extra]),
                              rng.uniform(0.05, 1.0, keep.sum() + 1),
                              np.concatenate([labels[keep], [0]]))
    collector = _collect(scene, lambda s: predictions[s])
    coco, _ = collector.scores()
    map50, map50_95 = _pycocotools_map(gt, predictions)
    assert 0.05 < coco['map50'] < 0.999
    assert coco['map50'] == pytest.approx(map50, abs=1e-9)
    assert coco['map50_95'] == pytest.approx(map50_95, abs=1e-9)


def test_a_dropped_frame_counts_as_misses(scene):
    frames, stamps, gt = scene
    busy = max(stamps, key=lambda s: len(gt.frames[s][1]))
    collector = _collect(scene, lambda s: (gt.frames[s][0], np.ones(len(gt.frames[s][1])),
                                           gt.frames[s][1]), skip={busy})
    coco, _ = collector.scores()
    assert len(collector.records) == len(stamps) - 1
    missing = len(gt.frames[busy][1])
    assert coco['map50'] < 1.0
    map50, _ = _pycocotools_map(gt, {s: (gt.frames[s][0], np.ones(len(gt.frames[s][1])),
                                         gt.frames[s][1]) for s in stamps if s != busy})
    assert coco['map50'] == pytest.approx(map50, abs=1e-9) and missing > 0


def test_coco_ground_truth_file_round_trips(scene, tmp_path):
    gt = scene[2]
    collector = _collect(scene, lambda s: (gt.frames[s][0], np.ones(len(gt.frames[s][1])),
                                           gt.frames[s][1]))
    collector.scores(out_dir=tmp_path)
    again = gt_from_coco(tmp_path / 'ground_truth.json', CLASSES)
    assert sorted(again.frames) == sorted(gt.frames)
    for stamp, (boxes, labels) in gt.frames.items():
        np.testing.assert_allclose(again.frames[stamp][0], boxes, atol=1e-3)
        np.testing.assert_array_equal(again.frames[stamp][1], labels)
    only_person = gt_from_coco(tmp_path / 'ground_truth.json', ['person'])
    cars = sum(int((lab == 1).sum()) for _, lab in gt.frames.values())
    assert cars > 0 and only_person.ignored['car'] == cars
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps({'images': [{'id': 1, 'file_name': 'frame.jpg'}],
                               'categories': [], 'annotations': []}))
    with pytest.raises(BagError, match='keyed by stamp_ns'):
        gt_from_coco(bad, CLASSES)


def test_frame_f1():
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    assert frame_f1(gt, [0, 0], gt, [0.9, 0.8], [0, 0]) == 1.0
    assert frame_f1(gt, [0, 0], gt[:1], [0.9], [0]) == pytest.approx(2 / 3)
    assert frame_f1(gt, [0, 0], gt, [0.9, 0.8], [1, 1]) == 0.0
    assert frame_f1(np.zeros((0, 4)), [], np.zeros((0, 4)), [], []) == 1.0
