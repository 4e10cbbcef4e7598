"""efficientmfd_node in its own process over real DDS, fed real LLVIP pairs (1280x1024).

One node process serves the whole module (starting it and loading torch takes seconds); the tests
run in file order and each leaves the node active. Stamps only grow across tests, except where a
test makes them jump back on purpose.
"""
import time

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.data, pytest.mark.slow]
rclpy = pytest.importorskip('rclpy')
pytest.importorskip('vision_msgs.msg')

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.qos import (  # noqa: E402
    DurabilityPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from vision_msgs.msg import Detection2DArray, LabelInfo  # noqa: E402

from efficientmfd_ros.core.image_codec import numpy_to_image  # noqa: E402

NODE = '/efficientmfd_node'
FRAME = 'cam_rgb_optical'
PARAMS = dict(backend='torch', device='cpu', score_threshold=0.0, max_detections=10,
              approximate_sync_tolerance_s=0.02, modality_timeout_s=0.6,
              diagnostics_period_s=0.25, fused_image_every_n=2)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
WAIT_S = 30.0


class Clock:
    """Stamps of the pairs sent: 30 Hz steps with a few ms of jitter between the cameras."""

    def __init__(self):
        self.t = 1000.0
        self.rng = np.random.default_rng(3)

    def next(self, step_s=1 / 30):
        self.t += step_s
        return self.t, self.t + float(self.rng.uniform(-0.006, 0.006))


def stamp_of(header):
    return round(header.stamp.sec + header.stamp.nanosec * 1e-9, 6)


def image_msg(array, encoding, stamp_s, frame):
    fields = numpy_to_image(array, encoding)
    msg = Image(height=fields.height, width=fields.width, encoding=fields.encoding,
                is_bigendian=fields.is_bigendian, step=fields.step, data=fields.data)
    msg.header.stamp.sec = int(stamp_s)
    msg.header.stamp.nanosec = int(round((stamp_s - int(stamp_s)) * 1e9))
    msg.header.frame_id = frame
    return msg


@pytest.fixture(scope='module')
def pairs(llvip_person):
    """Four LLVIP pairs: rgb (1024,1280,3) uint8 RGB, thermal (1024,1280) uint8."""
    import cv2
    out = []
    for path in sorted((llvip_person / 'visible').glob('*.jpg'))[:4]:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        thermal = cv2.imread(str(llvip_person / 'infrared' / path.name), cv2.IMREAD_GRAYSCALE)
        assert rgb.shape == (1024, 1280, 3) and thermal.shape == (1024, 1280)
        out.append((rgb, thermal))
    return out


@pytest.fixture(scope='module')
def node(start_node, tiny_checkpoint):
    proc = start_node(model_path=str(tiny_checkpoint), **PARAMS)
    assert proc.wait_for_output('active: subscribed', 120), proc.output()
    return proc


@pytest.fixture(scope='module')
def rig(node, ros_client):
    """The client with its publishers and the subscriptions every test reads."""
    client = ros_client
    client.node_log = node.output
    client.rgb_pub = client.node.create_publisher(Image, 'rgb/image_raw', qos_profile_sensor_data)
    client.thermal_pub = client.node.create_publisher(
        Image, 'thermal/image_raw', qos_profile_sensor_data)
    client.subscribe(Detection2DArray, 'detections', RELIABLE)
    client.subscribe(DiagnosticArray, '/diagnostics', RELIABLE)
    client.clock = Clock()
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and (client.rgb_pub.get_subscription_count() < 1 or
                                           client.thermal_pub.get_subscription_count() < 1):
        time.sleep(0.05)
    return client


def send(client, rgb, thermal, stamps, rgb_encoding='rgb8', thermal_encoding='mono8'):
    client.rgb_pub.publish(image_msg(rgb, rgb_encoding, stamps[0], FRAME))
    client.thermal_pub.publish(image_msg(thermal, thermal_encoding, stamps[1], 'cam_thermal'))


def detections_at(client, stamp_s, timeout_s=WAIT_S):
    return client.wait_for('detections', lambda m: stamp_of(m.header) == round(stamp_s, 6),
                           timeout_s)


def answered(client, rgb, thermal, next_stamps=None, timeout_s=WAIT_S, **encodings):
    """``(detections, stamps)`` of the first pair the node answers: images are best effort, so
    the pair is sent again, with new stamps from ``next_stamps`` (default the rig's clock),
    every 2 s until an answer comes or ``timeout_s`` passes (then detections is None)."""
    next_stamps = next_stamps or client.clock.next
    deadline = time.monotonic() + timeout_s
    while True:
        stamps = next_stamps()
        send(client, rgb, thermal, stamps, **encodings)
        msg = detections_at(client, stamps[0], min(2.0, max(0.1, deadline - time.monotonic())))
        if msg is not None or time.monotonic() >= deadline:
            return msg, stamps


def diagnostics(client, suffix, predicate=lambda status: True, timeout_s=WAIT_S):
    """(status, values) of the first ``...: suffix`` report from now on matching predicate."""
    found = {}

    def match(msg):
        for status in msg.status:
            if status.name.endswith(f': {suffix}') and predicate(status):
                found['status'] = status
                return True
        return False
    since = len(client.messages('/diagnostics'))
    assert client.wait_for('/diagnostics', match, timeout_s, since), f'no matching {suffix}'
    status = found['status']
    return status, {kv.key: kv.value for kv in status.values}


def set_params(client, **values):
    request = SetParameters.Request()
    for name, value in values.items():
        pv = ParameterValue()
        if isinstance(value, bool):
            pv.type, pv.bool_value = ParameterType.PARAMETER_BOOL, value
        elif isinstance(value, int):
            pv.type, pv.integer_value = ParameterType.PARAMETER_INTEGER, value
        elif isinstance(value, float):
            pv.type, pv.double_value = ParameterType.PARAMETER_DOUBLE, value
        elif isinstance(value, str):
            pv.type, pv.string_value = ParameterType.PARAMETER_STRING, value
        else:
            pv.type, pv.integer_array_value = ParameterType.PARAMETER_INTEGER_ARRAY, value
        request.parameters.append(Parameter(name=name, value=pv))
    return client.call(SetParameters, f'{NODE}/set_parameters', request).results


def lifecycle(client, transition_id):
    request = ChangeState.Request()
    request.transition = Transition(id=transition_id)
    return client.call(ChangeState, f'{NODE}/change_state', request, timeout_s=60).success


def state(client):
    return client.call(GetState, f'{NODE}/get_state', GetState.Request()).current_state.label


def test_detections_carry_the_rgb_header_and_match_the_inference_core(rig, pairs,
                                                                       tiny_checkpoint):
    from efficientmfd_ros.runtime import load_detector
    core = load_detector(str(tiny_checkpoint), backend='torch', device='cpu', precision='fp32',
                         score_threshold=0.0, nms_iou=0.5, max_detections=10)
    for rgb, thermal in pairs[:3]:
        msg, stamps = answered(rig, rgb, thermal)
        assert msg is not None, f'no detections for the pair\n{rig.node_log()[-3000:]}'
        assert msg.header.frame_id == FRAME
        expected = core.infer(rgb, thermal, fuse=False)
        assert len(msg.detections) == len(expected.boxes) > 0
        for det, box, score, label in zip(msg.detections, expected.boxes, expected.scores,
                                          expected.labels):
            assert stamp_of(det.header) == round(stamps[0], 6) and det.header.frame_id == FRAME
            c, w, h = det.bbox.center.position, det.bbox.size_x, det.bbox.size_y
            got = [c.x - w / 2, c.y - h / 2, c.x + w / 2, c.y + h / 2]
            # float32 sums may differ in their last bits between two processes' thread pools
            # (~2e-6 relative, 0.002 px at 1280 px); a hundredth of a pixel is still exact here
            np.testing.assert_allclose(got, box, atol=1e-2)
            assert det.results[0].hypothesis.class_id == str(int(label))
            assert det.results[0].hypothesis.score == pytest.approx(float(score), abs=1e-5)


def test_label_info_reaches_a_late_subscriber(rig):
    rig.subscribe(LabelInfo, 'label_info', LATCHED)
    msg = rig.wait_for('label_info', lambda m: True, WAIT_S)
    assert msg is not None, 'label_info is not latched'
    assert [(c.class_id, c.class_name) for c in msg.class_map] == [(0, 'person'), (1, 'car')]
    assert msg.threshold == pytest.approx(0.0)


def test_fused_and_debug_images_only_while_subscribed(rig, pairs):
    _, before = diagnostics(rig, 'inference')
    assert before['fused_published'] == '0' and before['debug_published'] == '0'
    fused_sub = rig.subscribe(Image, 'fused/image', RELIABLE)
    debug_sub = rig.subscribe(Image, f'{NODE}/debug/image', RELIABLE)
    sent = []
    deadline = time.monotonic() + WAIT_S
    while len(rig.messages('fused/image')) < 2 and time.monotonic() < deadline:
        rgb, thermal = pairs[len(sent) % len(pairs)]
        stamps = rig.clock.next()
        send(rig, rgb, thermal, stamps)
        detections_at(rig, stamps[0], 2.0)  # a lost pair is just not counted among those sent
        sent.append(round(stamps[0], 6))
    fused, debug = rig.messages('fused/image'), rig.messages(f'{NODE}/debug/image')
    assert len(fused) >= 2 and len(debug) >= 2
    for msg in fused + debug:
        assert stamp_of(msg.header) in sent and msg.header.frame_id == FRAME
        assert (msg.width, msg.height, msg.encoding) == (1280, 1024, 'rgb8')
    fused_stamps = [stamp_of(m.header) for m in fused]
    gaps = np.diff([sent.index(s) for s in fused_stamps])
    assert (gaps >= 2).all(), 'fused/image published more often than every 2nd pair'
    rig.node.destroy_subscription(fused_sub)
    rig.node.destroy_subscription(debug_sub)
    time.sleep(1.0)  # let the node see the subscribers leave
    _, middle = diagnostics(rig, 'inference')
    for rgb, thermal in pairs[:2]:
        assert answered(rig, rgb, thermal)[0] is not None
    _, after = diagnostics(rig, 'inference')
    assert after['fused_published'] == middle['fused_published']
    assert after['debug_published'] == middle['debug_published']


def _camera_info(width, height):
    info = CameraInfo(width=width, height=height, distortion_model='plumb_bob')
    info.header.frame_id = FRAME
    info.k = [900.0, 0.0, 640.0, 0.0, 900.0, 512.0, 0.0, 0.0, 1.0]
    info.d = [0.1, -0.05, 0.0, 0.0, 0.0]
    return info


def test_fused_camera_info_is_the_rgb_one_with_the_fused_header(rig, pairs):
    info_pub = rig.node.create_publisher(CameraInfo, 'rgb/camera_info', RELIABLE)
    fused_sub = rig.subscribe(Image, 'fused/image', RELIABLE)
    info_sub = rig.subscribe(CameraInfo, 'fused/camera_info', RELIABLE)
    deadline = time.monotonic() + WAIT_S
    while not rig.messages('fused/camera_info') and time.monotonic() < deadline:
        info_pub.publish(_camera_info(1280, 1024))  # resent: the node reads it best effort
        rgb, thermal = pairs[0]
        stamps = rig.clock.next()
        send(rig, rgb, thermal, stamps)
        detections_at(rig, stamps[0])
    infos = rig.messages('fused/camera_info')
    assert infos, 'no fused/camera_info'
    fused_stamps = {stamp_of(m.header) for m in rig.messages('fused/image')}
    for info in infos:
        assert stamp_of(info.header) in fused_stamps and info.header.frame_id == FRAME
        assert (info.width, info.height) == (1280, 1024)
        assert list(info.k) == list(_camera_info(1280, 1024).k)
        assert list(info.d) == [0.1, -0.05, 0.0, 0.0, 0.0] and info.distortion_model == 'plumb_bob'
    _, before = diagnostics(rig, 'inference')
    mismatched = 0
    deadline = time.monotonic() + WAIT_S
    while mismatched == int(before['camera_info_mismatch']) and time.monotonic() < deadline:
        info_pub.publish(_camera_info(640, 512))
        for rgb, thermal in pairs[:2]:
            stamps = rig.clock.next()
            send(rig, rgb, thermal, stamps)
            detections_at(rig, stamps[0])
        _, now = diagnostics(rig, 'inference')
        mismatched = int(now['camera_info_mismatch'])
    assert mismatched > int(before['camera_info_mismatch'])
    assert all(m.width == 1280 for m in rig.messages('fused/camera_info'))
    for sub in (fused_sub, info_sub):
        rig.node.destroy_subscription(sub)
    rig.node.destroy_publisher(info_pub)


def test_thresholds_change_live_and_bad_values_are_rejected_with_a_reason(rig, pairs):
    out_of_range, = set_params(rig, score_threshold=1.5)
    assert not out_of_range.successful and 'score_threshold' in out_of_range.reason
    configure_only, = set_params(rig, model_path='/tmp/other.pt')
    assert not configure_only.successful and 'unconfigured' in configure_only.reason
    bad_size, = set_params(rig, input_size=[100, 64])
    assert not bad_size.successful and 'multiples of 32' in bad_size.reason
    read_only, = set_params(rig, autostart=False)
    assert not read_only.successful
    ok, capped = set_params(rig, score_threshold=0.25, max_detections=3)
    assert ok.successful and capped.successful
    latched = rig.wait_for('label_info', lambda m: m.threshold == pytest.approx(0.25), WAIT_S)
    assert latched is not None, 'label_info not republished with the new threshold'
    rgb, thermal = pairs[0]
    msg, _ = answered(rig, rgb, thermal)
    assert msg is not None and len(msg.detections) <= 3
    assert all(d.results[0].hypothesis.score >= 0.25 for d in msg.detections)
    assert all(r.successful for r in set_params(rig, score_threshold=0.0, max_detections=10))
    wide, = set_params(rig, approximate_sync_tolerance_s=0.04)  # rebuilds the pairer live
    assert wide.successful
    def beyond_default():
        stamp = rig.clock.next()[0]
        return stamp, stamp + 0.03  # beyond the default 0.02 s
    assert answered(rig, rgb, thermal, beyond_default)[0] is not None, \
        'new sync tolerance not applied'
    assert set_params(rig, approximate_sync_tolerance_s=0.02)[0].successful


def test_bad_inputs_are_counted_and_never_stop_the_node(rig, pairs, node):
    rgb, thermal = pairs[1]
    assert answered(rig, rgb, thermal, rgb_encoding='rgb8')[0] is not None
    reported = ('dropping rgb image', 'dropping thermal image',
                'thermal_to_rgb_homography is the identity')
    deadline = time.monotonic() + WAIT_S
    while not all(text in node.output() for text in reported) and time.monotonic() < deadline:
        # best effort: the bad messages are sent again until the node has reported each
        bad = image_msg(rgb, 'rgb8', rig.clock.next()[0], FRAME)
        bad.encoding = 'yuv422_yuy2'
        rig.rgb_pub.publish(bad)
        short = image_msg(thermal, 'mono8', rig.clock.next()[1], 'cam_thermal')
        short.data = short.data[:-100]
        rig.thermal_pub.publish(short)
        send(rig, rgb, thermal[::2, ::2].copy(), rig.clock.next())  # 640x512 thermal, identity H
        # a newer pair would supersede this one if it still waited (latest wins): give it time
        node.wait_for_output(reported[2], 2.0)
    assert all(text in node.output() for text in reported), node.output()[-3000:]
    rig.clock.t = 10.0  # a bag loop: stamps jump back by ~1000 s
    assert answered(rig, rgb, thermal)[0] is not None, 'no output after stamps went back'
    _, values = diagnostics(rig, 'inputs', lambda s: s.values and any(
        kv.key == 'stamp_resets' and kv.value != '0' for kv in s.values))
    assert int(values['rgb_bad_input']) >= 1 and int(values['thermal_bad_input']) >= 1
    assert int(values['size_mismatch']) >= 1 and int(values['stamp_resets']) >= 1
    assert node.alive()
    log = node.output()
    for text in ("unsupported encoding 'yuv422_yuy2'", 'does not match height*step',
                 'thermal_to_rgb_homography is the identity', 'stamp went back'):
        assert text in log, text


def test_silent_thermal_warns_and_single_modality_detects_on_rgb(rig, pairs, node):
    rgb, _ = pairs[2]

    def rgb_only(seconds):
        stamps = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            stamp = rig.clock.next(0.1)[0]
            rig.rgb_pub.publish(image_msg(rgb, 'rgb8', stamp, FRAME))
            stamps.append(round(stamp, 6))
            time.sleep(0.1)
        return stamps

    rgb_only(1.2)
    status, values = diagnostics(rig, 'inputs', lambda s: 'thermal silent' in s.message)
    assert status.level == DiagnosticStatus.WARN and 'no pairs' in status.message
    assert int(values['thermal_silent_episodes']) >= 1
    assert all(r.successful for r in set_params(rig, allow_single_modality=True))
    stamps = rgb_only(1.0)
    hits = [s for s in stamps if any(stamp_of(m.header) == s for m in rig.messages('detections'))]
    deadline = time.monotonic() + WAIT_S
    while not hits and time.monotonic() < deadline:
        time.sleep(0.1)
        hits = [s for s in stamps
                if any(stamp_of(m.header) == s for m in rig.messages('detections'))]
    assert hits, 'no detections from rgb alone with allow_single_modality'
    status, values = diagnostics(rig, 'inputs', lambda s: 'rgb only' in s.message)
    assert status.level == DiagnosticStatus.WARN and int(values['single_modality_frames']) > 0
    assert 'inputs: thermal silent' in node.output()
    assert all(r.successful for r in set_params(rig, allow_single_modality=False))


def test_lifecycle_transitions(rig, pairs, node):
    rgb, thermal = pairs[3]
    assert state(rig) == 'active'
    assert lifecycle(rig, Transition.TRANSITION_DEACTIVATE) and state(rig) == 'inactive'
    stamps = rig.clock.next()
    send(rig, rgb, thermal, stamps)
    assert detections_at(rig, stamps[0], timeout_s=1.5) is None, 'inactive node published'
    assert lifecycle(rig, Transition.TRANSITION_CLEANUP) and state(rig) == 'unconfigured'
    assert lifecycle(rig, Transition.TRANSITION_CONFIGURE) and state(rig) == 'inactive'
    assert lifecycle(rig, Transition.TRANSITION_ACTIVATE) and state(rig) == 'active'
    deadline = time.monotonic() + WAIT_S
    msg = None
    while msg is None and time.monotonic() < deadline:  # until the new subscriptions match
        stamps = rig.clock.next()
        send(rig, rgb, thermal, stamps)
        msg = detections_at(rig, stamps[0], timeout_s=1.0)
    assert msg is not None, 'no detections after cleanup + configure + activate'
    code = node.stop()
    assert code == 0, f'node exit status {code} after SIGINT; its output:\n{node.output()[-3000:]}'
    assert 'Traceback' not in node.output()
