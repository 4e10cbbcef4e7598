"""Pseudo-labels: mirroring, agreement between the two runs, VOC files the trainer reads back, and
the CLI on real LLVIP pairs with a tiny random checkpoint."""
import json

import numpy as np
import pytest

from efficientmfd_ros.evaluation.pseudo_labels import (
    PseudoLabelError,
    PseudoLabelSettings,
    agreed_boxes,
    box_iou,
    mirror_boxes,
    voc_xml,
)
from efficientmfd_ros.tools.pseudo_label import main
from efficientmfd_ros.train.data.labels import parse_voc
from efficientmfd_ros.train.data.paired import PairedDataset
from efficientmfd_ros.train.data.spec import DatasetSpec


def test_mirror_boxes_twice_is_identity_and_keeps_xyxy():
    boxes = np.array([[10, 5, 30, 25], [0, 0, 100, 50]], np.float32)
    once = mirror_boxes(boxes, 100)
    np.testing.assert_allclose(once, [[70, 5, 90, 25], [0, 0, 100, 50]])
    assert np.all(once[:, 2] >= once[:, 0])
    np.testing.assert_allclose(mirror_boxes(once, 100), boxes)


def test_box_iou_known_values():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0]], atol=1e-6)


def test_agreed_boxes_keeps_only_boxes_both_runs_found():
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [80, 0, 90, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    labels = np.array([0, 0, 1])
    other = np.array([[1, 1, 11, 11], [80, 0, 90, 10]], np.float32)
    out_b, out_s, out_l = agreed_boxes(boxes, scores, labels, other,
                                       np.array([0.7, 0.9], np.float32), np.array([0, 0]), 0.5)
    # the box at (50, 50) has no partner; the one at (80, 0) has one of another class
    np.testing.assert_allclose(out_b, [[0.5, 0.5, 10.5, 10.5]])
    np.testing.assert_allclose(out_s, [0.8])
    assert out_l.tolist() == [0] and out_l.dtype == np.int64


def test_agreed_boxes_matches_one_to_one_and_handles_empty_runs():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 11]], np.float32)
    one = np.array([[0, 0, 10, 10]], np.float32)
    out_b, _, _ = agreed_boxes(boxes, np.array([0.6, 0.9]), np.array([0, 0]), one,
                               np.array([0.8]), np.array([0]), 0.5)
    np.testing.assert_allclose(out_b, [[0, 0, 10, 10.5]])  # the higher-scored box took it
    empty = np.zeros((0, 4), np.float32)
    for args in ((empty, [], [], one, [0.8], [0]), (one, [0.8], [0], empty, [], [])):
        b, s, lab = agreed_boxes(*[np.asarray(a) for a in args], 0.5)
        assert b.shape == (0, 4) and s.shape == (0,) and lab.shape == (0,)


def test_voc_xml_reads_back_with_the_trainers_parser(tmp_path):
    path = tmp_path / 'a.xml'
    path.write_text(voc_xml('a.jpg', (1024, 1280), ['person', 'car'],
                            np.array([[10.4, 20.6, 30, 40], [1, 2, 3, 4]]), np.array([0.9, 0.6])))
    parsed = parse_voc(path)
    assert parsed.entries == [('person', [10.0, 21.0, 30.0, 40.0]), ('car', [1.0, 2.0, 3.0, 4.0])]
    assert not parsed.bad_entries
    path.write_text(voc_xml('b.jpg', (8, 8), [], np.zeros((0, 4)), np.zeros(0)))
    assert parse_voc(path).entries == []


@pytest.mark.parametrize('kwargs', [{'score_threshold': 0.0}, {'score_threshold': 1.5},
                                    {'agreement_iou': 0.0}])
def test_settings_reject_out_of_range_values(kwargs):
    with pytest.raises(PseudoLabelError):
        PseudoLabelSettings(**kwargs)


@pytest.mark.data
def test_cli_writes_labels_the_trainer_loads(tiny_weights, llvip_person, tmp_path, capsys):
    out = tmp_path / 'labels'
    # a random-init head scores near its prior (0.01): a low threshold makes boxes to check
    code = main(['--weights', str(tiny_weights), '--data', str(llvip_person), '--range',
                 '010001..010002', '--out', str(out), '--score-threshold', '0.005',
                 '--device', 'cpu', '--no-progress'])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['num_pairs'] == 2 and sorted(summary['boxes_per_pair']) == ['010001', '010002']
    assert len(summary['weights_sha256']) == 64 and summary['settings']['hflip'] is True
    assert (out / 'visible').resolve() == (llvip_person / 'visible').resolve()
    spec = DatasetSpec(root=str(out), label_format='voc', class_names=['person', 'car'])
    dataset = PairedDataset(spec)
    assert len(dataset) == 2
    assert sum(len(r.boxes) for r in dataset.records) == summary['num_boxes']
    assert dataset.load(0)['boxes'].shape[1] == 4
    # a second run into the same folder reuses the links
    assert main(['--weights', str(tiny_weights), '--data', str(llvip_person), '--range',
                 '010001..010001', '--out', str(out), '--device', 'cpu', '--no-progress']) == 0
    # a real folder where a link would go is refused, not overwritten
    (tmp_path / 'taken' / 'visible').mkdir(parents=True)
    assert main(['--weights', str(tiny_weights), '--data', str(llvip_person), '--range',
                 '010001..010001', '--out', str(tmp_path / 'taken'), '--device', 'cpu',
                 '--no-progress']) == 2
    assert 'is not a link' in capsys.readouterr().err


@pytest.mark.data
def test_cli_refuses_bad_settings_and_missing_data(tiny_weights, tmp_path, capsys):
    assert main(['--weights', str(tiny_weights), '--data', str(tmp_path / 'none'), '--out',
                 str(tmp_path / 'o'), '--device', 'cpu', '--no-progress']) == 2
    assert main(['--weights', str(tiny_weights), '--data', str(tmp_path), '--out',
                 str(tmp_path / 'o'), '--score-threshold', '2', '--device', 'cpu']) == 2
    assert 'score_threshold' in capsys.readouterr().err
