"""Entry point of ``efficientmfd_wait_active``: wait until a lifecycle node is active, then run a
command in this process's place.

    efficientmfd_wait_active --node /ns/efficientmfd_node -- ros2 bag play BAG --clock

`replay.launch.py` starts playback with it. Polling the node's `get_state` service (reliable,
answered whenever asked) replaces launch_ros's `OnStateTransition`, which learns of transitions
from the volatile `transition_event` topic: a node that activates before launch's subscription
has matched (a small model loads in a fraction of a second) is never seen active, and the bag
never plays. The command replaces this process (exec), so launch's signals reach it directly.
"""
import argparse
import os
import sys
import time

from lifecycle_msgs.msg import State
from lifecycle_msgs.srv import GetState
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation

RCLError = rclpy_implementation.RCLError

USAGE = 'efficientmfd_wait_active [--node NAME] [--poll-s S] [--timeout-s S] -- COMMAND [ARG ...]'


def node_path(namespace: str, name: str) -> str:
    """('', 'n') -> '/n'; ('robot', 'n') and ('/robot/', 'n') -> '/robot/n'."""
    namespace = namespace.strip('/')
    return f'/{namespace}/{name}' if namespace else f'/{name}'


def parse(argv: list[str]) -> argparse.Namespace:
    """Options before `--`, the command after it (required)."""
    if '--' not in argv:
        raise SystemExit(f'usage: {USAGE}\n(no command after --)')
    split = argv.index('--')
    parser = argparse.ArgumentParser(prog='efficientmfd_wait_active', usage=USAGE,
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--node', default='/efficientmfd_node',
                        help='fully qualified name of the lifecycle node (default: %(default)s)')
    parser.add_argument('--node-namespace', default=None,
                        help='namespace joined to the basename of --node (launch files pass it)')
    parser.add_argument('--poll-s', type=float, default=0.5, help='seconds between queries')
    parser.add_argument('--timeout-s', type=float, default=0.0,
                        help='give up (exit 1) after this many seconds; 0: wait for ever')
    args = parser.parse_args(argv[:split])
    args.command = argv[split + 1:]
    if not args.command:
        parser.error('no command after --')
    if args.node_namespace is not None:
        args.node = node_path(args.node_namespace, args.node.rstrip('/').rpartition('/')[2])
    return args


def wait_active(node_name: str, poll_s: float, timeout_s: float) -> str:
    """'active' once `node_name/get_state` reports PRIMARY_STATE_ACTIVE, 'timeout' when
    `timeout_s` (> 0) passes first, 'stopped' on shutdown (Ctrl-C, SIGTERM)."""
    rclpy.init(args=[])
    node = rclpy.create_node(f'efficientmfd_wait_active_{os.getpid()}')
    client = node.create_client(GetState, f'{node_name}/get_state')
    deadline = time.monotonic() + timeout_s if timeout_s > 0 else float('inf')
    try:
        print(f'efficientmfd_wait_active: waiting for {node_name} to be active', flush=True)
        while rclpy.ok() and time.monotonic() < deadline:
            if client.wait_for_service(timeout_sec=poll_s):
                future = client.call_async(GetState.Request())
                rclpy.spin_until_future_complete(node, future, timeout_sec=4 * poll_s)
                reply = future.result() if future.done() else None
                if reply is not None and reply.current_state.id == State.PRIMARY_STATE_ACTIVE:
                    return 'active'
                time.sleep(poll_s)
        return 'timeout' if rclpy.ok() else 'stopped'
    except (KeyboardInterrupt, ExternalShutdownException):
        return 'stopped'
    except RCLError:
        # Ctrl-C shuts the context down from rclpy's signal handler, possibly in the middle of a
        # service query, which then fails on the invalid context instead of returning.
        if rclpy.ok():
            raise
        return 'stopped'
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def main(argv: list[str] | None = None) -> int:
    """Exit 0 without running the command on Ctrl-C, 1 at the timeout; otherwise exec it."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (['-h'], ['--help']):
        print(f'usage: {USAGE}\n\n{__doc__}', end='')
        return 0
    args = parse(argv)
    outcome = wait_active(args.node, args.poll_s, args.timeout_s)
    if outcome == 'stopped':
        return 0
    if outcome == 'timeout':
        print(f'efficientmfd_wait_active: {args.node} not active after {args.timeout_s:g} s',
              file=sys.stderr)
        return 1
    print(f'efficientmfd_wait_active: {args.node} is active; running: {" ".join(args.command)}',
          flush=True)
    os.execvp(args.command[0], args.command)


if __name__ == '__main__':
    sys.exit(main())
