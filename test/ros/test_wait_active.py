"""efficientmfd_wait_active (ros/wait_active.py) over real DDS: the command runs only once the
lifecycle node it watches is active, including a node that was already active when the waiter
started (the case launch's OnStateTransition misses); a timeout exits 1 and Ctrl-C exits 0, both
without running the command."""
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip('rclpy')

from rclpy.lifecycle import LifecycleNode  # noqa: E402

from efficientmfd_ros.ros.wait_active import node_path, parse  # noqa: E402

RAN = 'the command ran'


def test_node_path_joins_namespace_and_name():
    assert node_path('', 'n') == '/n'
    assert node_path('robot', 'n') == node_path('/robot/', 'n') == '/robot/n'
    assert node_path('/a/b', 'n') == '/a/b/n'


def test_parse_takes_the_command_after_the_separator():
    args = parse(['--node-namespace=/ns', '--node', 'efficientmfd_node', '--', 'ros2', '--x'])
    assert args.node == '/ns/efficientmfd_node' and args.command == ['ros2', '--x']
    assert parse(['--node', '/a/b', '--', 'c']).node == '/a/b'
    assert parse(['--node-namespace=', '--node', 'b', '--', 'c']).node == '/b'
    for argv in (['--node', 'x'], ['--node', 'x', '--']):
        with pytest.raises(SystemExit):
            parse(argv)


def _waiter(ros_env, node, *options):
    return subprocess.Popen(
        ['timeout', '-k', '5', '120', sys.executable, '-m', 'efficientmfd_ros.ros.wait_active',
         '--node', node, '--poll-s', '0.2', *options, '--', sys.executable, '-c',
         f'print({RAN!r})'],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture
def lifecycle_target(ros_client):
    """An unconfigured rclpy lifecycle node on the client's context and executor."""
    node = LifecycleNode('wait_target', namespace='/wait_test', context=ros_client.context)
    ros_client.executor.add_node(node)
    yield node
    ros_client.executor.remove_node(node)
    node.destroy_node()


def _finish(proc, timeout_s=90):
    out, _ = proc.communicate(timeout=timeout_s)
    return proc.returncode, out


def test_runs_the_command_only_after_the_node_activates(ros_env, lifecycle_target):
    proc = _waiter(ros_env, '/wait_test/wait_target')
    # several polls on an inactive node (service discovery included) leave the command unrun
    time.sleep(3.0)
    assert proc.poll() is None, proc.communicate()[0]
    lifecycle_target.trigger_configure()
    time.sleep(1.0)
    assert proc.poll() is None, proc.communicate()[0]
    lifecycle_target.trigger_activate()
    code, out = _finish(proc)
    assert code == 0, out
    assert out.index('/wait_test/wait_target is active') < out.index(RAN)


def test_a_node_active_before_the_waiter_starts_is_seen(ros_env, lifecycle_target):
    lifecycle_target.trigger_configure()
    lifecycle_target.trigger_activate()
    code, out = _finish(_waiter(ros_env, 'wait_target', '--node-namespace=wait_test'))
    assert code == 0 and RAN in out, out


def test_timeout_exits_1_without_running_the_command(ros_env):
    code, out = _finish(_waiter(ros_env, '/no_such_node', '--timeout-s', '1'))
    assert code == 1 and 'not active after 1 s' in out and RAN not in out, out


def test_ctrl_c_while_waiting_exits_0_without_running_the_command(ros_env):
    proc = subprocess.Popen(
        [sys.executable, '-m', 'efficientmfd_ros.ros.wait_active', '--node', '/no_such_node',
         '--', sys.executable, '-c', f'print({RAN!r})'],
        env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert 'waiting for /no_such_node' in proc.stdout.readline()  # rclpy's handlers are set
    proc.send_signal(signal.SIGINT)
    code, out = _finish(proc, 30)
    assert code == 0 and RAN not in out and 'Traceback' not in out, out
