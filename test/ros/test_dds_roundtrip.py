"""Real DDS between two processes: camera-sized images with sensor-data QoS, and detections.

The publisher runs in a child process on this test's own ROS_DOMAIN_ID; the subscriber is this
process. Images above ~0.5 MB only arrive with the project's Fast DDS profile (64 MiB SHM segment).
"""
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip('rclpy')
pytest.importorskip('vision_msgs.msg')

PUBLISHER = textwrap.dedent("""
    import sys, time
    import numpy as np
    import rclpy
    from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray, Detection2D, ObjectHypothesisWithPose
    from efficientmfd_ros.core.image_codec import numpy_to_image

    rclpy.init()
    node = rclpy.create_node('dds_roundtrip_publisher')
    rgb_pub = node.create_publisher(Image, 'rgb/image_raw', qos_profile_sensor_data)
    th_pub = node.create_publisher(Image, 'thermal/image_raw', qos_profile_sensor_data)
    det_pub = node.create_publisher(Detection2DArray, 'detections', QoSProfile(
        depth=10, reliability=ReliabilityPolicy.RELIABLE))
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (1024, 1280, 3), dtype=np.uint8)
    thermal = rng.integers(0, 65536, (1024, 1280), dtype=np.uint16)

    def to_msg(array, encoding, sec):
        f = numpy_to_image(array, encoding)
        msg = Image(height=f.height, width=f.width, encoding=f.encoding,
                    is_bigendian=bool(f.is_bigendian), step=f.step, data=f.data)
        msg.header.stamp.sec = sec
        msg.header.frame_id = 'camera'
        return msg

    dets = Detection2DArray()
    dets.header.frame_id = 'camera'
    for i in range(3):
        d = Detection2D()
        d.bbox.center.position.x = 10.5 + i
        d.bbox.center.position.y = 20.25
        d.bbox.size_x, d.bbox.size_y = 30.0, 40.0
        h = ObjectHypothesisWithPose()
        h.hypothesis.class_id = str(i)
        h.hypothesis.score = 0.5 + 0.1 * i
        d.results.append(h)
        dets.detections.append(d)
    deadline = time.monotonic() + float(sys.argv[1])
    sec = 0
    while time.monotonic() < deadline:
        sec += 1
        rgb_pub.publish(to_msg(rgb, 'rgb8', sec))
        th_pub.publish(to_msg(thermal, 'mono16', sec))
        det_pub.publish(dets)
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.try_shutdown()
""")


@pytest.fixture
def domain_env():
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = str(150 + os.getpid() % 50)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    return env


def test_big_images_and_detections_cross_dds(domain_env):
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from efficientmfd_ros.core.image_codec import image_to_numpy

    old_domain = os.environ.get('ROS_DOMAIN_ID')
    os.environ['ROS_DOMAIN_ID'] = domain_env['ROS_DOMAIN_ID']
    context = rclpy.Context()
    rclpy.init(context=context)
    child = subprocess.Popen(
        ['timeout', '-k', '5', '60', sys.executable, '-c', PUBLISHER, '20'], env=domain_env)
    got = {}
    try:
        node = rclpy.create_node('dds_roundtrip_subscriber', context=context)
        node.create_subscription(Image, 'rgb/image_raw',
                                 lambda m: got.setdefault('rgb', m), qos_profile_sensor_data)
        node.create_subscription(Image, 'thermal/image_raw',
                                 lambda m: got.setdefault('thermal', m), qos_profile_sensor_data)
        node.create_subscription(Detection2DArray, 'detections',
                                 lambda m: got.setdefault('det', m),
                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        deadline = time.monotonic() + 40
        while len(got) < 3 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        node.destroy_node()
    finally:
        child.terminate()
        child.wait(timeout=30)
        rclpy.try_shutdown(context=context)
        if old_domain is None:
            os.environ.pop('ROS_DOMAIN_ID', None)
        else:
            os.environ['ROS_DOMAIN_ID'] = old_domain

    assert set(got) == {'rgb', 'thermal', 'det'}, f'only received {sorted(got)}'
    rng = np.random.default_rng(7)
    want_rgb = rng.integers(0, 256, (1024, 1280, 3), dtype=np.uint8)
    want_thermal = rng.integers(0, 65536, (1024, 1280), dtype=np.uint16)
    rgb, thermal = got['rgb'], got['thermal']
    assert (rgb.height, rgb.width, rgb.encoding) == (1024, 1280, 'rgb8')
    assert rgb.header.frame_id == 'camera'
    np.testing.assert_array_equal(image_to_numpy(
        rgb.height, rgb.width, rgb.encoding, rgb.is_bigendian, rgb.step, rgb.data), want_rgb)
    np.testing.assert_array_equal(image_to_numpy(
        thermal.height, thermal.width, thermal.encoding, thermal.is_bigendian, thermal.step,
        thermal.data), want_thermal)
    det = got['det']
    assert len(det.detections) == 3
    assert [d.results[0].hypothesis.class_id for d in det.detections] == ['0', '1', '2']
    assert det.detections[2].bbox.center.position.x == pytest.approx(12.5)
    assert det.detections[1].results[0].hypothesis.score == pytest.approx(0.6)
    assert det.detections[0].bbox.size_y == pytest.approx(40.0)
