"""The node's entry point answers --help with its usage, without starting ROS."""
import subprocess
import sys

import pytest

pytest.importorskip('rclpy')

from efficientmfd_ros.ros.node_main import USAGE, main  # noqa: E402


@pytest.mark.parametrize('argv', [['efficientmfd_node', '--help'], ['efficientmfd_node', '-h'],
                                  ['efficientmfd_node', '--ros-args', '-p', 'a:=1', '--',
                                   '--help']])
def test_help_prints_usage_and_exits_0(argv, capsys):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out == USAGE and 'config/mfd.yaml' in out


def test_console_module_help_exits_0_quickly():
    done = subprocess.run([sys.executable, '-m', 'efficientmfd_ros.ros.node_main', '--help'],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('usage: efficientmfd_node')
