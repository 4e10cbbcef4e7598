"""Fixtures for the node's tests: a private DDS domain, a tiny checkpoint, the node in its own
process, and an in-process client (own rclpy context, executor on a thread).

Every process started here gets this test process's ROS_DOMAIN_ID (derived from its pid) and
discovery limited to localhost; the node runs under ``timeout -k`` so nothing outlives the tests.
"""
import os
from pathlib import Path
import signal
import subprocess
import threading
import time

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NODE_LIMIT_S = 600
# This process's own DDS participants (the test clients) too: loopback only, and the shipped
# profile whose shared-memory segment holds full-size images (`./dev test` sets the same; a plain
# `pytest` run would otherwise drop 1280x1024 best-effort images silently).
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_LOCALHOST_ONLY', '1')
os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE',
                      str(PROJECT_ROOT / 'config' / 'fastdds_loopback.xml'))


def ros_domain_id():
    """A domain of its own for this pytest process (others use 10..99 and 150..199)."""
    return 100 + os.getpid() % 50


@pytest.fixture(scope='session')
def ros_domain():
    return ros_domain_id()


@pytest.fixture(scope='session')
def ros_env():
    """Environment for child ROS processes: this process's own domain, loopback only."""
    pytest.importorskip('rclpy')
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(ros_domain_id()), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               ROS_LOCALHOST_ONLY='1', PYTHONUNBUFFERED='1')
    profile = PROJECT_ROOT / 'config' / 'fastdds_loopback.xml'
    env.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', str(profile))
    return env


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory):
    """A random-weight checkpoint of config/model/efficientmfd_tiny_test.yaml (seed 0)."""
    torch = pytest.importorskip('torch')
    from efficientmfd_ros.model import ModelConfig, build_model, save_checkpoint
    cfg = ModelConfig.from_yaml(PROJECT_ROOT / 'config' / 'model' / 'efficientmfd_tiny_test.yaml')
    torch.manual_seed(0)
    model = build_model(cfg, load_backbone_weights=False)
    return save_checkpoint(tmp_path_factory.mktemp('model') / 'tiny.pt', model, cfg)


class NodeProcess:
    """``python -m efficientmfd_ros.ros.node_main`` in a child process, output to a log file."""

    def __init__(self, env, log_path, params):
        from efficientmfd_ros.evaluation.live import node_command
        self.log_path = Path(log_path)
        self._log = open(self.log_path, 'wb')
        self.proc = subprocess.Popen(
            ['timeout', '-k', '5', str(NODE_LIMIT_S), *node_command(params)],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)

    def output(self):
        return self.log_path.read_text(errors='replace')

    def alive(self):
        return self.proc.poll() is None

    def wait_for_output(self, text, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.output():
                return True
            if not self.alive():
                return False
            time.sleep(0.1)
        return False

    def stop(self):
        """SIGINT (the graceful path of main()), then the timeout's own kill."""
        if self.alive():
            # timeout forwards the signal to the node
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


@pytest.fixture(scope='module')
def start_node(ros_env, tmp_path_factory):
    """``start_node(**params)`` -> NodeProcess; every node started is stopped at module end."""
    started = []

    def start(**params):
        log = tmp_path_factory.mktemp('node') / 'node.log'
        node = NodeProcess(ros_env, log, params)
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


class RosClient:
    """A test-side node with its own context on the test domain, spun on a background thread."""

    def __init__(self, name):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=ros_domain_id())
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._lock = threading.Condition()
        self.received = {}
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        from rclpy.executors import ExternalShutdownException
        try:
            while self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except (ExternalShutdownException, Exception):
            pass

    def subscribe(self, msg_type, topic, qos):
        """Collect every message on ``topic`` into ``received[topic]``; return the subscription."""
        with self._lock:
            self.received.setdefault(topic, [])

        def callback(msg):
            with self._lock:
                self.received[topic].append(msg)
                self._lock.notify_all()
        return self.node.create_subscription(msg_type, topic, callback, qos)

    def messages(self, topic):
        with self._lock:
            return list(self.received.get(topic, []))

    def wait_for(self, topic, predicate, timeout_s, since=0):
        """The first message on ``topic`` (from the ``since``-th received on) satisfying
        ``predicate``, or None on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                for msg in self.received.get(topic, [])[since:]:
                    if predicate(msg):
                        return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(min(left, 0.1))

    def call(self, srv_type, name, request, timeout_s=10.0):
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout_s):
                raise TimeoutError(f'service {name} not available')
            future = client.call_async(request)
            deadline = time.monotonic() + timeout_s
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.02)
            if not future.done():
                raise TimeoutError(f'service {name} did not answer in {timeout_s} s')
            return future.result()
        finally:
            self.node.destroy_client(client)

    def close(self):
        self.context.try_shutdown()
        self._thread.join(5)
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture(scope='module')
def ros_client(request, ros_env):
    client = RosClient(f'test_client_{os.getpid()}')
    yield client
    client.close()
