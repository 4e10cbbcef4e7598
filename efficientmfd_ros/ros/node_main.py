"""Entry point of the ``efficientmfd_node`` console script (and ``python -m``)."""
import os

# Before torch loads (through the node's imports) and starts OpenMP: idle OpenMP threads sleep
# instead of spinning, which keeps the node fast when other processes share the cores
# (runtime/threads.py). A value already in the environment wins.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

import rclpy  # noqa: E402
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor  # noqa: E402
from rclpy.impl.implementation_singleton import rclpy_implementation  # noqa: E402
from rclpy.utilities import remove_ros_args  # noqa: E402

from efficientmfd_ros.ros.node import MfdNode  # noqa: E402
from efficientmfd_ros.ros.params import ParameterError  # noqa: E402

USAGE = """usage: efficientmfd_node [-h] [--ros-args ...]

The EfficientMFD lifecycle node: pairs an RGB and a thermal camera by timestamp, runs the fusion +
detection network, publishes the fused image and vision_msgs/Detection2DArray.

  ros2 launch efficientmfd_ros mfd.launch.py                   the usual way (remaps, params, RViz)
  efficientmfd_node --ros-args --params-file config/mfd.yaml   parameters from a file
  efficientmfd_node --ros-args -p model_path:=W -r rgb/image_raw:=/cam/image_raw

Every parameter, with its range and whether it can change live, is in config/mfd.yaml.
"""


def main(args=None):
    """Spin the node until Ctrl-C, SIGTERM or an external shutdown; exit 1 on invalid parameters.
    `-h`/`--help` outside the ROS arguments prints the usage and exits 0 without starting ROS.

    SIGINT/SIGTERM only set a flag: Python's default SIGINT handler raises KeyboardInterrupt
    wherever the main thread happens to be (even inside a destructor), which leaves noise and
    half-run cleanups. rclpy's own handlers, installed on top, still shut the context down.
    """
    argv = sys.argv if args is None else list(args)
    if any(a in ('-h', '--help') for a in remove_ros_args(argv)[1:]):
        print(USAGE, end='')
        return 0
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    rclpy.init(args=args)
    node = executor = None
    code = 0
    try:
        node = MfdNode()
        # Single-threaded on purpose: the callbacks are short (inference has its own thread), and
        # rclpy's MultiThreadedExecutor (before ros2/rclpy#1547) yields a callback that waits in
        # its thread pool again and again, re-submitting it in a loop that holds the GIL; on two
        # cores that stalled inference for 0.3-1.6 s at a time and cost the demo up to half its
        # pairs (benchmarks/results/bench_cpu_backends.md).
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while rclpy.ok() and not stop.is_set():
            try:
                executor.spin_once(timeout_sec=0.2)
            except rclpy_implementation.RCLError:
                # rclpy's signal handler may shut the context down between the ok() check and
                # the executor's wait: that is a normal stop, any other RCL failure is not.
                if rclpy.ok():
                    raise
    except ParameterError as exc:
        rclpy.logging.get_logger('efficientmfd_node').fatal(f'invalid parameters: {exc}')
        code = 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=10.0)
        if node is not None:
            node.release()
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == '__main__':
    sys.exit(main())
