"""Live bag evaluation: the real node, fed over DDS, its outputs recorded with arrival times.

This module never imports rclpy: it starts ``efficientmfd_ros.ros.node_main`` (unless a node is
already running) and ``efficientmfd_ros.ros.live_replay`` as subprocesses with this process's
environment (ROS_DOMAIN_ID and friends; DDS discovery is kept on loopback unless the caller set
otherwise), then reads the bag the replayer recorded.

Measured, all on one wall clock:
- ``latency_ms``: arrival of a ``detections`` message in the recorder's callback minus the wall
  time the replayer published the RGB image carrying the same header stamp. The replay publishes
  each image at its recorded time / rate, so this is what a consumer would see from a camera
  whose image is published at capture: transport in, waiting for the thermal partner, queueing,
  inference, transport out.
- ``latency_after_pair_ms``: the same arrival minus the later send of the two paired images
  (no waiting for the partner).
- ``pairs_dropped``: RGB images sent that never got a ``detections`` answer.
- ``output_rate_hz``: answers per second between the first and the last answer.
"""
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading

from efficientmfd_ros.bags.bagio import DETECTIONS, IMAGE, BagError, BagReader

NODE_MODULE = 'efficientmfd_ros.ros.node_main'
REPLAY_MODULE = 'efficientmfd_ros.ros.live_replay'
DIAGNOSTICS = 'diagnostic_msgs/msg/DiagnosticArray'
NODE_NAME = 'efficientmfd_node'
LABEL_INFO = 'vision_msgs/msg/LabelInfo'


class LiveRunError(RuntimeError):
    """The node or the replayer failed; the message quotes their logs."""


@dataclass
class LiveConfig:
    rate: float = 1.0
    # the node's namespace; None: a private one for a node we start (no cross-talk with other
    # nodes on the DDS domain), the root namespace for a running node
    namespace: str | None = None
    use_running_node: bool = False
    node_params: dict = field(default_factory=dict)  # -p name:=value for a node we start
    ready_timeout_s: float = 180.0
    drain_s: float = 5.0


@dataclass
class LiveOutputs:
    """What the replayer recorded: ``detections`` {stamp_ns: (arrival_ns, message)}, ``fused``
    {stamp_ns: message}, ``class_names`` from label_info, ``sent`` {(topic, stamp_ns): send_ns},
    ``diagnostics`` the node's last values (key -> text), ``ready_s``."""

    detections: dict
    fused: dict
    class_names: list
    sent: dict
    diagnostics: dict
    ready_s: float
    output_bag: Path


def ros_env():
    """This environment with DDS discovery kept on this host unless the caller chose otherwise,
    and the project's Fast DDS profile (big shared-memory segments) when it is not set."""
    env = dict(os.environ)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env.setdefault('PYTHONUNBUFFERED', '1')
    profile = Path(__file__).resolve().parents[2] / 'config' / 'fastdds_loopback.xml'
    if 'FASTDDS_DEFAULT_PROFILES_FILE' not in env and profile.is_file():
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(profile)
    return env


def _topic(namespace, name):
    return '/' + '/'.join(p for p in (namespace.strip('/'), name) if p)


def _param_text(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


def resolve_namespace(config):
    if config.namespace is not None:
        return config.namespace
    return '' if config.use_running_node else f'efficientmfd_eval_{os.getpid()}'


def node_command(params, namespace=''):
    """The argv that runs efficientmfd_node in a fresh interpreter with ``params`` ({name:
    value}, booleans as true/false) in ``namespace`` (none when empty): the one way this
    package and its tests start the node as a process."""
    cmd = [sys.executable, '-m', NODE_MODULE, '--ros-args']
    for name, value in params.items():
        cmd += ['-p', f'{name}:={_param_text(value)}']
    if namespace:
        cmd += ['-r', f'__ns:={_topic(namespace, "")}']
    return cmd


def start_node(weights, config, log_path, env):
    cmd = node_command({'model_path': Path(weights).resolve(), **config.node_params},
                       resolve_namespace(config))
    log = open(log_path, 'w')
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True), log


def stop_process(proc, grace_s=15.0):
    """SIGINT (rclpy shuts down cleanly), then SIGTERM, then SIGKILL, to this process only."""
    for sig, wait in ((signal.SIGINT, grace_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return proc.returncode
        proc.send_signal(sig)
        try:
            return proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


def _tail(path, lines=25):
    try:
        return '\n'.join(Path(path).read_text(errors='replace').splitlines()[-lines:])
    except OSError:
        return '(no log)'


def run_replay(bag, work_dir, rgb_topic, thermal_topic, config, env, timeout_s, on_line=None):
    """Run the replayer; return the paths of its output bag and send log."""
    ns = resolve_namespace(config)
    out_bag, sent_log = work_dir / 'live_outputs', work_dir / 'live_sent.json'
    cmd = [sys.executable, '-m', REPLAY_MODULE, '--bag', str(bag), '--out', str(out_bag),
           '--sent-log', str(sent_log), '--rate', str(config.rate),
           '--play', f'{rgb_topic}={_topic(ns, "rgb/image_raw")}',
           '--play', f'{thermal_topic}={_topic(ns, "thermal/image_raw")}',
           '--record', f'{_topic(ns, "detections")}={DETECTIONS}',
           '--record', f'{_topic(ns, "fused/image")}={IMAGE}',
           '--record', f'{_topic(ns, "label_info")}={LABEL_INFO}',
           '--record', f'/diagnostics={DIAGNOSTICS}',
           '--expect', _topic(ns, 'detections'), '--wait-for', _topic(ns, 'label_info'),
           '--linger-for', '/diagnostics',
           '--ready-timeout-s', str(config.ready_timeout_s), '--drain-s', str(config.drain_s)]
    with open(work_dir / 'live_replay.log', 'w') as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=env, text=True,
                                start_new_session=True)
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        try:
            for line in proc.stdout:
                if on_line is not None:
                    on_line(line.strip())
            code = proc.wait()
        finally:
            timer.cancel()
            stop_process(proc, 5.0)
    if code != 0:
        raise LiveRunError(f'live replay failed (exit {code}); its log:\n'
                           f'{_tail(work_dir / "live_replay.log")}')
    return out_bag, sent_log


def read_outputs(out_bag, sent_log, namespace=''):
    """Parse what the replayer recorded into ``LiveOutputs``."""
    log = json.loads(Path(sent_log).read_text())
    detections, fused, class_names, diagnostics, others = {}, {}, [], {}, {}
    with BagReader(out_bag) as reader:
        topics = {_topic(namespace, 'detections'), _topic(namespace, 'fused/image'),
                  _topic(namespace, 'label_info'), '/diagnostics'}
        for message in reader.messages([t for t in topics if t in reader.topics]):
            msg = reader.decode(message)
            if message.msgtype == DETECTIONS:
                stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
                detections.setdefault(stamp, (message.log_time_ns, msg))
            elif message.msgtype == IMAGE:
                stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
                fused.setdefault(stamp, msg)
            elif message.msgtype == LABEL_INFO:
                ordered = sorted(msg.class_map, key=lambda c: c.class_id)
                class_names = [c.class_name for c in ordered]
            else:  # /diagnostics is shared: prefer the statuses of the node in our namespace
                for status in msg.status:
                    values = {kv.key: kv.value for kv in status.values}
                    ours = status.name.startswith(_topic(namespace, NODE_NAME)[1:] + ':')
                    (diagnostics if ours else others).update(values)
    sent = {(topic, int(stamp)): int(send) for topic, stamp, send in log['sent']}
    return LiveOutputs(detections, fused, class_names, sent, diagnostics or others, log['ready_s'],
                       Path(out_bag))


def run_live(bag, weights, work_dir, rgb_topic, thermal_topic, config, progress=None):
    """Start the node (unless ``use_running_node``), replay ``bag``, return ``LiveOutputs``.

    ``progress(line)`` receives the replayer's stdout lines ('ready ...', 'sent k n').
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    for stale in ('live_outputs', 'live_sent.json'):
        if (work_dir / stale).exists():
            raise BagError(f'{work_dir / stale} exists from an earlier run; use a new --out')
    with BagReader(bag) as reader:
        reader.require(rgb_topic, IMAGE)
        reader.require(thermal_topic, IMAGE)
        duration_s = reader.duration_ns / 1e9
    env = ros_env()
    timeout_s = config.ready_timeout_s + duration_s / config.rate + config.drain_s + 120
    node, node_log = None, None
    try:
        if not config.use_running_node:
            if not Path(weights).is_file():
                raise BagError(f'weights {weights} not found')
            node, node_log = start_node(weights, config, work_dir / 'node.log', env)
        try:
            out_bag, sent_log = run_replay(bag, work_dir, rgb_topic, thermal_topic, config,
                                           env, timeout_s, progress)
        except LiveRunError as exc:
            if node is not None:
                raise LiveRunError(f'{exc}\nnode log ({work_dir / "node.log"}):\n'
                                   f'{_tail(work_dir / "node.log")}') from exc
            raise
    finally:
        if node is not None:
            stop_process(node)
            node_log.close()
    return read_outputs(out_bag, sent_log, resolve_namespace(config))

