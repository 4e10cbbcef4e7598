"""Shared by the node benchmarks: start efficientmfd_node in its own process on a private DDS
domain, feed it RGB + thermal pairs at a fixed rate, and collect what comes back.

Run the benchmarks through ``./dev run`` (it sets AMENT_PREFIX_PATH, localhost-only discovery and
the Fast DDS profile); this module picks a domain of its own before rclpy starts.
"""
from dataclasses import dataclass, field
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / 'shared' / 'data' / 'llvip_person'
DOMAIN_ID = 200 + os.getpid() % 30
os.environ['ROS_DOMAIN_ID'] = str(DOMAIN_ID)
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')


def default_model(tmp_dir):
    """The committed lite weights if present, else a random-init lite checkpoint (same cost)."""
    committed = ROOT / 'models' / 'efficientmfd_lite_llvip.pt'
    if committed.is_file():
        return committed, 'efficientmfd_lite_llvip.pt (trained)'
    import torch

    from efficientmfd_ros.model import ModelConfig, build_model, save_checkpoint
    cfg = ModelConfig.from_yaml(ROOT / 'config' / 'model' / 'efficientmfd_lite.yaml')
    torch.manual_seed(0)
    model = build_model(cfg, load_backbone_weights=False)
    path = save_checkpoint(Path(tmp_dir) / 'lite_random.pt', model, cfg)
    return path, 'efficientmfd_lite.yaml, random weights (same compute as trained)'


def frames(size_wh, count=8):
    """``count`` (rgb HxWx3 uint8, thermal HxW uint8) pairs: LLVIP resized, else noise."""
    import cv2
    out = []
    paths = sorted((DATA / 'visible').glob('*.jpg'))[:count] if DATA.is_dir() else []
    for path in paths:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        thermal = cv2.imread(str(DATA / 'infrared' / path.name), cv2.IMREAD_GRAYSCALE)
        out.append((cv2.resize(rgb, size_wh, interpolation=cv2.INTER_AREA),
                    cv2.resize(thermal, size_wh, interpolation=cv2.INTER_AREA)))
    rng = np.random.default_rng(0)
    while len(out) < count:
        out.append((rng.integers(0, 256, (size_wh[1], size_wh[0], 3), dtype=np.uint8),
                    rng.integers(0, 256, (size_wh[1], size_wh[0]), dtype=np.uint8)))
    return out


def rss_mib(pid):
    """Resident memory of ``pid`` in MiB (from /proc)."""
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024.0
    return float('nan')


class NodeProcess:
    """The node under ``timeout -k``; ``pid`` is the Python process itself (for RSS)."""

    def __init__(self, params, limit_s, log_path):
        args = []
        for key, value in params.items():
            args += ['-p', f'{key}:={value}']
        env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN_ID), PYTHONUNBUFFERED='1')
        self._log = open(log_path, 'wb')
        self.log_path = Path(log_path)
        self.proc = subprocess.Popen(
            ['timeout', '-k', '5', str(int(limit_s)), sys.executable, '-m',
             'efficientmfd_ros.ros.node_main', '--ros-args', *args],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)

    @property
    def pid(self):
        children = Path(f'/proc/{self.proc.pid}/task/{self.proc.pid}/children').read_text()
        return int(children.split()[0])

    def wait_active(self, timeout_s=180):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            if 'active: subscribed' in self.log_path.read_text(errors='replace'):
                return
            time.sleep(0.2)
        raise RuntimeError('node did not become active:\n' + self.log_path.read_text())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


@dataclass
class Feed:
    """What the feeder sent and got back, keyed by the RGB stamp (rounded to the microsecond)."""

    sent_at: dict = field(default_factory=dict)
    latency_s: dict = field(default_factory=dict)
    diagnostics: list = field(default_factory=list)


class Client:
    """Publishes pairs and collects detections and diagnostics on its own rclpy context."""

    def __init__(self, subscribe_fused=False):
        from diagnostic_msgs.msg import DiagnosticArray
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import Image
        from vision_msgs.msg import Detection2DArray

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID)
        self.node = rclpy.create_node('efficientmfd_bench_feeder', context=self.context)
        self.feed = Feed()
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.rgb_pub = self.node.create_publisher(Image, 'rgb/image_raw', qos_profile_sensor_data)
        self.thermal_pub = self.node.create_publisher(
            Image, 'thermal/image_raw', qos_profile_sensor_data)
        self.node.create_subscription(Detection2DArray, 'detections', self._on_detections,
                                      reliable)
        self.node.create_subscription(DiagnosticArray, '/diagnostics',
                                      self.feed.diagnostics.append, reliable)
        self.fused_stamps = []
        if subscribe_fused:
            self.node.create_subscription(Image, 'fused/image', self._on_fused, reliable)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        try:
            while self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except Exception:  # the context was shut down under the spin
            pass

    def _on_fused(self, msg):
        self.fused_stamps.append(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)

    def _on_detections(self, msg):
        now = time.perf_counter()
        key = round(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, 6)
        sent = self.feed.sent_at.get(key)
        if sent is not None:
            self.feed.latency_s[key] = now - sent

    def wait_matched(self, timeout_s=30):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if min(self.rgb_pub.get_subscription_count(),
                   self.thermal_pub.get_subscription_count()) > 0:
                return
            time.sleep(0.05)
        raise RuntimeError('the node never subscribed')

    def run(self, pairs, rate_hz, duration_s, t0=1000.0, jitter_s=0.004, tick=None):
        """Publish ``pairs`` cyclically at ``rate_hz`` for ``duration_s``; returns pairs sent."""
        from std_msgs.msg import Header

        from efficientmfd_ros.ros.conversions import numpy_to_image_msg
        rng = np.random.default_rng(1)
        period = 1.0 / rate_hz
        start = time.perf_counter()
        count = 0
        while True:
            due = start + count * period
            now = time.perf_counter()
            if now - start >= duration_s:
                return count
            if due > now:
                time.sleep(due - now)
            rgb, thermal = pairs[count % len(pairs)]
            stamp = t0 + count * period
            rgb_msg = numpy_to_image_msg(rgb, 'rgb8', _header(Header, stamp, 'camera_rgb'))
            th_msg = numpy_to_image_msg(thermal, 'mono8', _header(
                Header, stamp + float(rng.uniform(-jitter_s, jitter_s)), 'camera_thermal'))
            self.rgb_pub.publish(rgb_msg)
            self.thermal_pub.publish(th_msg)
            self.feed.sent_at[round(stamp, 6)] = time.perf_counter()
            count += 1
            if tick is not None:
                tick(count)

    def latest_status(self, suffix):
        """Values of the newest diagnostics status named ``...: suffix`` as a dict."""
        for msg in reversed(self.feed.diagnostics):
            for status in msg.status:
                if status.name.endswith(f': {suffix}'):
                    return {kv.key: kv.value for kv in status.values}
        return {}

    def close(self):
        self.context.try_shutdown()
        self._thread.join(5)
        self.executor.shutdown()
        self.node.destroy_node()


def _header(header_type, stamp_s, frame):
    header = header_type(frame_id=frame)
    header.stamp.sec = int(stamp_s)
    header.stamp.nanosec = int(round((stamp_s - int(stamp_s)) * 1e9)) % 1_000_000_000
    return header


def percentiles_ms(values_s):
    values = np.asarray(list(values_s), dtype=np.float64) * 1e3
    if not len(values):
        return float('nan'), float('nan')
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def temp_dir():
    return tempfile.TemporaryDirectory(prefix='efficientmfd_bench_')
