"""FusionDetector on the torch backend (CPU): output contract, determinism, fusion switch,
run-time thresholds, bad inputs and bad checkpoints."""
import numpy as np
import pytest
import torch

from efficientmfd_ros.model import CheckpointError, load_checkpoint
from efficientmfd_ros.runtime import InputError, load_detector
from efficientmfd_ros.runtime.backend_base import make_noise_boxes


@pytest.fixture
def detector(tiny_weights):
    return load_detector(tiny_weights, score_threshold=0.0, max_detections=20)


def test_output_contract(detector, frame_pair):
    rgb, thermal = frame_pair
    result = detector.infer(rgb, thermal)
    k = len(result)
    assert 0 < k <= 20
    assert result.boxes.dtype == np.float32 and result.boxes.shape == (k, 4)
    assert result.scores.dtype == np.float32 and result.labels.dtype == np.int64
    assert np.all(np.diff(result.scores) <= 0)
    assert set(result.labels.tolist()) <= {0, 1}
    b = result.boxes
    assert np.all(b[:, 0] >= 0) and np.all(b[:, 2] <= 200) and np.all(b[:, 1] >= 0)
    assert np.all(b[:, 3] <= 120) and np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])
    assert result.fused.dtype == np.uint8 and result.fused.shape == (120, 200, 3)
    assert {'preprocess', 'backbone', 'fusion', 'head', 'postprocess', 'total'} <= set(
        result.timings_ms)
    assert detector.timings_ms == result.timings_ms
    assert detector.class_names == ('person', 'car') and detector.input_size == (64, 96)
    assert detector.backend_name == 'torch' and detector.device == torch.device('cpu')


def test_same_input_gives_identical_outputs(detector, tiny_weights, frame_pair):
    first = detector.infer(*frame_pair)
    second = detector.infer(*frame_pair)
    np.testing.assert_array_equal(first.boxes, second.boxes)
    np.testing.assert_array_equal(first.scores, second.scores)
    np.testing.assert_array_equal(first.labels, second.labels)
    np.testing.assert_array_equal(first.fused, second.fused)
    # A second detector from the same file starts from the same noise boxes.
    other = load_detector(tiny_weights, score_threshold=0.0, max_detections=20)
    np.testing.assert_array_equal(other.infer(*frame_pair).boxes, first.boxes)


def test_noise_boxes_match_the_models_own_draw(tiny_weights):
    model, cfg, _ = load_checkpoint(tiny_weights)
    expected = model.make_noise_boxes(1)  # the model's default seeded draw
    torch.testing.assert_close(make_noise_boxes(cfg.head.num_proposals, cfg.head.noise_seed),
                               expected, rtol=0, atol=0)
    det = load_detector(tiny_weights)
    torch.testing.assert_close(det._noise, expected, rtol=0, atol=0)


def test_another_noise_seed_changes_the_proposals(tiny_weights, frame_pair):
    a = load_detector(tiny_weights, score_threshold=0.0).infer(*frame_pair, fuse=False)
    b = load_detector(tiny_weights, score_threshold=0.0, noise_seed=5).infer(*frame_pair,
                                                                             fuse=False)
    assert a.boxes.shape != b.boxes.shape or not np.allclose(a.boxes, b.boxes)


def test_fuse_false_skips_the_fusion_stage(detector, frame_pair):
    with_fusion = detector.infer(*frame_pair)
    result = detector.infer(*frame_pair, fuse=False)
    assert result.fused is None and 'fusion' not in result.timings_ms
    np.testing.assert_array_equal(result.boxes, with_fusion.boxes)


def test_warmup_runs_the_fused_and_the_fusion_free_path(detector, monkeypatch):
    calls = []
    real_infer = detector.infer

    def infer(rgb, thermal, fuse=True):
        calls.append(fuse)
        return real_infer(rgb, thermal, fuse=fuse)
    monkeypatch.setattr(detector, 'infer', infer)
    detector.warmup(2)
    assert calls == [True, False, True, False]


def test_thresholds_change_at_run_time_and_bad_values_change_nothing(detector, frame_pair):
    many = detector.infer(*frame_pair)
    detector.set_thresholds(max_detections=2)
    assert len(detector.infer(*frame_pair)) == 2
    detector.set_thresholds(score_threshold=float(many.scores[0]) + 1e-6, max_detections=20)
    assert len(detector.infer(*frame_pair)) == 0
    with pytest.raises(ValueError, match='nms_iou'):
        detector.set_thresholds(score=0.0, nms_iou=0.0)
    assert detector.thresholds.score_threshold == pytest.approx(float(many.scores[0]) + 1e-6)


def test_thermal_of_another_size_with_a_homography(tiny_weights, frame_pair):
    rgb, _ = frame_pair
    thermal = np.zeros((60, 100), np.uint8)
    thermal[20:30, 40:50] = 255
    hom = ((2.0, 0.0, 0.0), (0.0, 2.0, 0.0), (0.0, 0.0, 1.0))
    det = load_detector(tiny_weights, homography=hom, score_threshold=0.0)
    result = det.infer(rgb, thermal)
    assert result.fused.shape == rgb.shape
    _, thermal_in, _ = det._pre(rgb, thermal)
    ys, xs = np.nonzero(thermal_in[0, 0].numpy() > 0.5)
    # RGB blob at x 80..99, y 40..59 of 200x120 -> network input 96x64.
    assert 35 < xs.mean() * 200 / 96 < 95 and 40 < ys.mean() * 120 / 64 < 60


@pytest.mark.parametrize('rgb, thermal, message', [
    (np.zeros((32, 32, 3), np.uint16), np.zeros((32, 32), np.uint8), 'dtype'),
    (np.zeros((32, 32, 4), np.uint8), np.zeros((32, 32), np.uint8), 'shape'),
    (np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 3), np.uint8), 'one channel'),
    (np.zeros((32, 0, 3), np.uint8), np.zeros((32, 32), np.uint8), 'empty'),
    (np.zeros((32, 32, 3), np.uint8), np.zeros((0, 32), np.uint16), 'empty'),
])
def test_bad_images_raise_input_error(detector, rgb, thermal, message):
    with pytest.raises(InputError, match=message):
        detector.infer(rgb, thermal)


def test_corrupt_checkpoint_is_a_clear_error(tiny_weights):
    data = tiny_weights.read_bytes()
    tiny_weights.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match='corrupt'):
        load_detector(tiny_weights)


def test_checkpoint_with_mismatching_weights_is_a_clear_error(tiny_weights):
    ckpt = torch.load(tiny_weights, weights_only=True)
    ckpt['model_config']['fpn']['channels'] = 32
    ckpt['model_config']['head']['hidden_dim'] = 32
    torch.save(ckpt, tiny_weights)
    with pytest.raises(CheckpointError, match='do not match'):
        load_detector(tiny_weights)


def test_input_size_override_and_invalid_options(tiny_weights, frame_pair):
    det = load_detector(tiny_weights, input_size=(96, 128))
    assert det.input_size == (96, 128)
    assert det.infer(*frame_pair).fused.shape == (120, 200, 3)
    with pytest.raises(ValueError, match='multiples of 32'):
        load_detector(tiny_weights, input_size=(100, 128))
    with pytest.raises(ValueError, match='thermal_range'):
        load_detector(tiny_weights, thermal_range=(5, 1))
    with pytest.raises(ValueError, match='backend must be one of'):
        load_detector(tiny_weights, backend='tflite')
    with pytest.raises(FileNotFoundError):
        load_detector(tiny_weights.with_name('missing.pt'))
