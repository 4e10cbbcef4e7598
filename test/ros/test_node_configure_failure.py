"""Configure failing cleanly (missing, then corrupt model), recovering once model_path is fixed
while unconfigured, and the compressed input transport, in one node process."""
import time

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]
rclpy = pytest.importorskip('rclpy')
pytest.importorskip('vision_msgs.msg')

from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from efficientmfd_ros.core.image_codec import numpy_to_compressed  # noqa: E402

NODE = '/efficientmfd_node'


def set_model_path(client, path):
    value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(path))
    request = SetParameters.Request(parameters=[Parameter(name='model_path', value=value)])
    return client.call(SetParameters, f'{NODE}/set_parameters', request).results[0]


def change(client, transition_id):
    request = ChangeState.Request(transition=Transition(id=transition_id))
    return client.call(ChangeState, f'{NODE}/change_state', request, timeout_s=60).success


def state(client):
    return client.call(GetState, f'{NODE}/get_state', GetState.Request()).current_state.label


def compressed(array, encoding, fmt, stamp, frame):
    text, data = numpy_to_compressed(array, encoding, fmt)
    msg = CompressedImage(format=text, data=data)
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    msg.header.frame_id = frame
    return msg


def test_bad_models_fail_configure_then_a_fixed_path_recovers(start_node, ros_client,
                                                              tiny_checkpoint, tmp_path):
    missing = tmp_path / 'no_such_model.pt'
    node = start_node(model_path=str(missing), input_transport='compressed', backend='torch',
                      device='cpu', score_threshold=0.0)
    assert node.wait_for_output('configure failed', 120), node.output()
    assert 'model file not found' in node.output() and str(missing) in node.output()
    assert state(ros_client) == 'unconfigured'

    corrupt = tmp_path / 'corrupt.pt'
    corrupt.write_bytes(b'\x80\x02 this is not a checkpoint' * 10)
    assert set_model_path(ros_client, corrupt).successful
    assert not change(ros_client, Transition.TRANSITION_CONFIGURE)
    assert state(ros_client) == 'unconfigured'
    assert 'cannot load model' in node.output() and str(corrupt) in node.output()

    assert set_model_path(ros_client, tiny_checkpoint).successful
    assert change(ros_client, Transition.TRANSITION_CONFIGURE)
    rejected = set_model_path(ros_client, corrupt)
    assert not rejected.successful and 'unconfigured' in rejected.reason
    assert change(ros_client, Transition.TRANSITION_ACTIVATE) and state(ros_client) == 'active'
    assert node.alive() and 'Traceback' not in node.output()


def test_compressed_inputs_with_a_16_bit_thermal(ros_client, rng):
    client = ros_client
    rgb_pub = client.node.create_publisher(CompressedImage, 'rgb/image_raw/compressed',
                                           qos_profile_sensor_data)
    th_pub = client.node.create_publisher(CompressedImage, 'thermal/image_raw/compressed',
                                          qos_profile_sensor_data)
    client.subscribe(Detection2DArray, 'detections',
                     QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    rgb = rng.integers(0, 256, (256, 320, 3), dtype=np.uint8)
    thermal = rng.integers(20000, 30000, (256, 320), dtype=np.uint16)
    deadline = time.monotonic() + 30
    sec, found = 500, None
    while found is None and time.monotonic() < deadline:
        sec += 1
        rgb_pub.publish(compressed(rgb, 'rgb8', 'jpeg', (sec, 0), 'cam_rgb'))
        th_pub.publish(compressed(thermal, 'mono16', 'png', (sec, 3_000_000), 'cam_thermal'))
        found = client.wait_for('detections', lambda m, s=sec: m.header.stamp.sec == s, 1.0)
    assert found is not None, 'no detections from compressed inputs'
    assert found.header.frame_id == 'cam_rgb' and found.header.stamp.nanosec == 0
    assert len(found.detections) > 0


@pytest.mark.parametrize('override, fragment', [
    ('score_threshold:=1.5', 'out of range'),
    ('score_threshold:=1', "expecting type 'DOUBLE'"),
    ('thermal_counts_min:=5.0', 'thermal_counts_max (0.0) must be greater'),
    ('thermal_float_max:=-1.0', 'thermal_float_max (-1.0) must be greater'),
])
def test_invalid_start_parameters_exit_with_one_clear_line(ros_env, override, fragment):
    import subprocess

    from efficientmfd_ros.evaluation.live import node_command
    done = subprocess.run(
        ['timeout', '-k', '5', '60', *node_command({'model_path': 'unused.pt'}), '-p', override],
        env=ros_env, capture_output=True, text=True)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert 'invalid parameters' in output and fragment in output
    assert 'Traceback' not in output
