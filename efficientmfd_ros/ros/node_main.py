"""Entry point of the ``efficientmfd_node`` console script (and ``python -m``)."""
import signal
import sys
import threading

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

from efficientmfd_ros.ros.node import MfdNode
from efficientmfd_ros.ros.params import ParameterError


def main(args=None):
    """Spin the node until Ctrl-C, SIGTERM or an external shutdown; exit 1 on invalid parameters.

    SIGINT/SIGTERM only set a flag: Python's default SIGINT handler raises KeyboardInterrupt
    wherever the main thread happens to be (even inside a destructor), which leaves noise and
    half-run cleanups. rclpy's own handlers, installed on top, still shut the context down.
    """
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    rclpy.init(args=args)
    node = executor = None
    code = 0
    try:
        node = MfdNode()
        executor = MultiThreadedExecutor()
        executor.add_node(node)
        while rclpy.ok() and not stop.is_set():
            executor.spin_once(timeout_sec=0.2)
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
