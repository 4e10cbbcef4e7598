"""Run one launch file with a vendored upstream launch / launch_ros, as `ros2 launch` would.

    python test/ros/launch_runner.py LAUNCH_FILE [name:=value ...]

Run with PYTHONPATH naming `../shared/vendor/<distro>/launch` and `.../launch_ros` (test only).
SIGINT shuts the launch down the way Ctrl-C does; the exit status is LaunchService.run()'s,
taken before interpreter teardown (where rclpy's signal-handler thread, started by launch_ros,
now and then aborts the process with `terminate called without an active exception`).
launch_ros imports composition_interfaces for composable nodes, which this package never
launches and which is not on PyPI: a module of that name is registered first whose service types
cannot be instantiated, so any use of composable nodes fails loudly.
"""
import os
import sys
import types


class _Unavailable:
    """A composition_interfaces service type: named in annotations, never usable."""

    class Request:
        def __init__(self, *args, **kwargs):
            raise RuntimeError('composable nodes need composition_interfaces, not installed')

    Response = Request


def _without_composition_interfaces():
    package = types.ModuleType('composition_interfaces')
    package.srv = types.ModuleType('composition_interfaces.srv')
    package.srv.LoadNode = package.srv.UnloadNode = package.srv.ListNodes = _Unavailable
    sys.modules.setdefault('composition_interfaces', package)
    sys.modules.setdefault('composition_interfaces.srv', package.srv)


def main(argv):
    _without_composition_interfaces()
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    from launch import LaunchDescription, LaunchService

    path, *pairs = argv
    arguments = [tuple(pair.split(':=', 1)) for pair in pairs]
    service = LaunchService(argv=pairs)
    service.include_launch_description(LaunchDescription([IncludeLaunchDescription(
        PythonLaunchDescriptionSource(path), launch_arguments=arguments)]))
    return service.run()


if __name__ == '__main__':
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
