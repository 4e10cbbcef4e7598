"""Message building (vision_msgs, images, diagnostics), the debug overlay and the reporter."""
from dataclasses import dataclass

import numpy as np
import pytest

pytestmark = pytest.mark.ros
pytest.importorskip('rclpy')
pytest.importorskip('vision_msgs.msg')

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from efficientmfd_ros.core.image_codec import ImageConversionError  # noqa: E402
from efficientmfd_ros.ros.conversions import (  # noqa: E402
    detections_to_msg,
    diagnostic_status,
    image_msg_to_numpy,
    label_info_msg,
    numpy_to_image_msg,
)
from efficientmfd_ros.ros.diagnostics import (  # noqa: E402
    DiagnosticsReporter,
    NodeStats,
    ProblemLog,
)
from efficientmfd_ros.ros.inference_worker import WorkerCounts  # noqa: E402
from efficientmfd_ros.ros.overlay import draw_detections  # noqa: E402


@dataclass
class Dets:
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray


def _header():
    header = Header(frame_id='cam_rgb')
    header.stamp.sec, header.stamp.nanosec = 1700000000, 123456789
    return header


def test_detections_become_centre_size_boxes_with_the_input_header():
    dets = Dets(np.array([[10.0, 20.0, 50.0, 100.0], [0.5, 1.5, 2.5, 4.5]], np.float32),
                np.array([0.9, 0.4], np.float32), np.array([0, 1]))
    msg = detections_to_msg(dets, _header(), ('person', 'car'))
    msg = deserialize_message(serialize_message(msg), Detection2DArray)  # survives the wire
    assert msg.header.frame_id == 'cam_rgb' and msg.header.stamp.nanosec == 123456789
    assert len(msg.detections) == 2
    first, second = msg.detections
    assert first.header.stamp.sec == 1700000000 and first.header.frame_id == 'cam_rgb'
    assert (first.bbox.center.position.x, first.bbox.center.position.y) == (30.0, 60.0)
    assert (first.bbox.size_x, first.bbox.size_y) == (40.0, 80.0)
    assert first.results[0].hypothesis.class_id == '0'
    assert first.results[0].hypothesis.score == pytest.approx(0.9)
    assert (second.bbox.center.position.x, second.bbox.size_y) == (1.5, 3.0)
    named = detections_to_msg(dets, _header(), ('person', 'car'), class_id_as_name=True)
    assert [d.results[0].hypothesis.class_id for d in named.detections] == ['person', 'car']


def test_no_detections_give_an_empty_array_with_the_header():
    empty = Dets(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    msg = detections_to_msg(empty, _header(), ('person',))
    assert msg.detections == [] and msg.header.frame_id == 'cam_rgb'


def test_label_info_maps_indices_to_names():
    msg = label_info_msg(('person', 'car'), 0.35, _header())
    assert [(c.class_id, c.class_name) for c in msg.class_map] == [(0, 'person'), (1, 'car')]
    assert msg.threshold == pytest.approx(0.35)


def test_image_messages_round_trip_and_bad_length_raises():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    msg = numpy_to_image_msg(rgb, 'rgb8', _header())
    msg = deserialize_message(serialize_message(msg), Image)
    back, encoding = image_msg_to_numpy(msg)
    assert encoding == 'rgb8' and np.array_equal(back, rgb)
    assert msg.header.frame_id == 'cam_rgb'
    msg.data = msg.data[:-10]
    with pytest.raises(ImageConversionError, match='height\\*step'):
        image_msg_to_numpy(msg)


def test_diagnostic_status_levels_and_values():
    status = diagnostic_status('n: inputs', 'warn', 'thermal silent', 'cpu',
                               {'rate_hz': 29.97, 'count': 3})
    assert status.level == DiagnosticStatus.WARN
    assert [(v.key, v.value) for v in status.values] == [('rate_hz', '29.970'), ('count', '3')]


def test_overlay_draws_inside_the_boxes_only_and_keeps_the_input():
    image = np.zeros((120, 160, 3), np.uint8)
    dets = Dets(np.array([[40.0, 50.0, 100.0, 110.0]], np.float32), np.array([0.8], np.float32),
                np.array([0]))
    out = draw_detections(image, dets, ('person',))
    assert out.shape == image.shape and not image.any()
    assert out[50:111, 40].any() and out[110, 40:101].any()
    assert not out[:, :30].any() and not out[:, 110:].any()


def test_reporter_levels_for_silence_latency_and_bad_input():
    clock = [0.0]
    stats = NodeStats(now=lambda: clock[0])
    reporter = DiagnosticsReporter(now=lambda: clock[0])
    pairing = {'pairs': 0, 'resets': 0, 'evicted': [0, 0], 'unmatched': [0, 0]}
    context = {'backend': 'torch', 'device': 'cpu', 'active': True, 'modality_timeout_s': 1.0,
               'allow_single_modality': False}
    worker = WorkerCounts()
    inputs, inference = reporter.report(stats, pairing, worker, context)
    assert inputs[1] == 'ok' and inference[1] == 'ok'
    for step in range(30):  # 1 s of 30 Hz rgb + thermal, 40 ms inference
        clock[0] = 0.0 + (step + 1) / 30.0
        stats.arrived(0)
        stats.arrived(1)
        stats.observe(model_ms=40.0, spread_ms=2.0)
    pairing['pairs'] = 30
    inputs, inference = reporter.report(stats, pairing, worker, context)
    assert inputs[1] == 'ok' and inputs[3]['rgb_rate_hz'] == pytest.approx(30.0)
    assert inputs[3]['pair_dt_abs_mean_ms'] == pytest.approx(2.0)
    assert inference[1] == 'warn' and 'exceeds the frame period' in inference[2]
    clock[0] = 2.5  # thermal silent for 1.5 s, rgb fresh
    stats.arrived(0)
    stats.count('bad_input', 0)
    inputs, _ = reporter.report(stats, pairing, worker, context)
    assert inputs[1] == 'warn' and 'thermal silent' in inputs[2]
    assert inputs[3]['rgb_bad_input'] == 1
    clock[0] = 5.0
    inputs, _ = reporter.report(stats, pairing, worker, context)
    assert inputs[1] == 'error'


def test_problem_log_throttles_per_kind_and_counts_what_it_held_back():
    clock = [0.0]
    lines = []
    log = ProblemLog(lines.append, period_s=5.0, now=lambda: clock[0])
    for _ in range(3):
        log.report('a', 'problem a')
    log.report('b', 'problem b')
    clock[0] = 6.0
    log.report('a', 'problem a')
    assert lines == ['problem a', 'problem b',
                     'problem a (2 more like this since the last report)']


class Problems:
    def __init__(self):
        self.reports = []

    def report(self, key, text):
        self.reports.append((key, text))


def _processor(**config):
    from efficientmfd_ros.ros.params import NodeConfig
    from efficientmfd_ros.ros.pipeline import PairProcessor
    stats, problems = NodeStats(), Problems()
    return PairProcessor(None, None, stats, problems, NodeConfig(**config), False), stats, problems


def _image(array, encoding):
    return numpy_to_image_msg(array, encoding, _header())


def test_pair_decoding_maps_float_thermal_and_blanks_a_silent_camera():
    from efficientmfd_ros.ros.intake import PairPayload
    proc, stats, problems = _processor(thermal_float_min=20.0, thermal_float_max=40.0)
    temps = np.full((24, 32), 30.0, np.float32)
    temps[0, 0], temps[0, 1] = 10.0, np.nan
    rgb, thermal = proc.decode(PairPayload(None, _image(temps, '32FC1')))
    assert thermal.dtype == np.uint8 and thermal[5, 5] == 128 and thermal[0, :2].tolist() == [0, 0]
    assert rgb.shape == (24, 32, 3) and not rgb.any()  # the silent rgb, blanked
    colour = np.full((24, 32, 3), 7, np.uint8)
    rgb, thermal = proc.decode(PairPayload(_image(colour, 'bgr8'), None))
    assert thermal.shape == (24, 32) and not thermal.any() and (rgb == 7).all()
    unmapped, _, problems = _processor()
    assert unmapped.decode(PairPayload(None, _image(temps, '32FC1'))) is None
    key, text = problems.reports[0]
    assert key == 'bad_thermal' and 'thermal_float_min' in text


def test_pair_decoding_rejects_a_size_mismatch_only_without_a_homography():
    from efficientmfd_ros.ros.intake import PairPayload
    rgb = _image(np.zeros((48, 64, 3), np.uint8), 'rgb8')
    small = _image(np.zeros((24, 32), np.uint16), 'mono16')
    proc, stats, problems = _processor()
    assert proc.decode(PairPayload(rgb, small)) is None
    assert stats.snapshot()[0]['size_mismatch'] == 1 and problems.reports[0][0] == 'size_mismatch'
    scaled, _, _ = _processor(thermal_to_rgb_homography=[2.0, 0, 0.5, 0, 2.0, 0.5, 0, 0, 1.0])
    out_rgb, out_thermal = scaled.decode(PairPayload(rgb, small))
    assert out_rgb.shape == (48, 64, 3) and out_thermal.shape == (24, 32)
    assert out_thermal.dtype == np.uint16
