"""The live replayer's own failures: a topic the bag lacks, and a node that never gets ready.

(Replaying to the real node and recording it is covered by test/tools/test_eval_live.py.)
"""
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.ros
pytest.importorskip('rclpy')


@pytest.fixture(scope='module')
def small_bag(tmp_path_factory):
    from efficientmfd_ros.bags.frame_source import synthetic_frames
    from efficientmfd_ros.bags.make import write_bag
    path = tmp_path_factory.mktemp('replay') / 'bag'
    write_bag(synthetic_frames(2, (64, 48), seed=0), path, progress=False)
    return path


def _replay(bag, tmp_path, *extra):
    env = dict(os.environ, ROS_DOMAIN_ID=str(230 + os.getpid() % 2),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    ns = f'/replay_test_{os.getpid()}'
    cmd = [sys.executable, '-m', 'efficientmfd_ros.ros.live_replay', '--bag', str(bag),
           '--out', str(tmp_path / 'out'), '--sent-log', str(tmp_path / 'sent.json'),
           '--record', f'{ns}/detections=vision_msgs/msg/Detection2DArray',
           '--record', f'{ns}/label_info=vision_msgs/msg/LabelInfo',
           '--wait-for', f'{ns}/label_info', *extra]
    return subprocess.run(['timeout', '-k', '5', '60', *cmd], env=env, capture_output=True,
                          text=True)


def test_missing_bag_topic(small_bag, tmp_path):
    result = _replay(small_bag, tmp_path, '--play', '/camera/left=/x/rgb/image_raw')
    assert result.returncode == 2
    assert "no topic '/camera/left'" in result.stderr and '/rgb/image_raw' in result.stderr
    assert not (tmp_path / 'out').exists()


def test_no_node_means_not_ready(small_bag, tmp_path):
    result = _replay(small_bag, tmp_path, '--play', f'/rgb/image_raw=/nobody_{os.getpid()}/rgb',
                     '--ready-timeout-s', '2')
    assert result.returncode == 3
    assert 'not ready after 2 s' in result.stderr and 'received 0 messages' in result.stderr
    assert not (tmp_path / 'sent.json').exists()
