"""Replay a bag's raw CDR messages over DDS and record what comes back, in one process.

``python -m efficientmfd_ros.ros.live_replay --bag IN --out OUT_BAG --sent-log SENT.json ...``

1. Subscribes to the ``--record`` topics, mirroring the reliability and durability of their
   publishers once discovered (as ``ros2 bag record`` does), and waits until the node is ready:
   a message on ``--wait-for`` (the node latches ``label_info`` when it activates) and every
   replay publisher matched by a subscriber.
2. Publishes the ``--play`` topics' messages unchanged (raw CDR, original header stamps) at their
   bag receive times divided by ``--rate``, like ``ros2 bag play --rate``.
3. Waits for the outputs to drain: every RGB message answered on ``--expect``, or no new output
   for ``--drain-s``; then up to ``--linger-s`` for a first message on ``--linger-for``.
4. Writes every recorded message into ``OUT_BAG`` (rosbags) with its arrival wall-clock time
   (``time.time_ns()`` in the subscription callback) as the bag time, and ``SENT.json``:
   ``{"sent": [[topic, stamp_ns, send_ns], ...], "ready_s", "start_ns", "rate"}`` where
   ``send_ns`` is ``time.time_ns()`` just before each publish. Both clocks are this process's
   system clock, so ``arrival - send`` is a true wall-clock interval.
Exit status: 0 done, 2 bad arguments or bag, 3 the node never became ready.
"""
import argparse
import importlib
import json
import sys
import threading
import time

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from efficientmfd_ros.bags.bagio import BagError, BagReader, BagWriter


def message_class(msgtype):
    """'pkg/msg/Type' -> the generated Python class."""
    package, _, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)


def _mapping(text):
    source, sep, target = text.partition('=')
    if not sep or not source or not target:
        raise argparse.ArgumentTypeError(f'expected A=B, got {text!r}')
    return source, target


def build_parser():
    parser = argparse.ArgumentParser(prog='live_replay', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--bag', required=True)
    parser.add_argument('--out', required=True, help='output bag directory (must not exist)')
    parser.add_argument('--sent-log', required=True, help='JSON file of send times')
    parser.add_argument('--play', type=_mapping, action='append', required=True,
                        metavar='BAG_TOPIC=DDS_TOPIC', help='a bag topic and where to publish it')
    parser.add_argument('--record', type=_mapping, action='append', required=True,
                        metavar='TOPIC=TYPE', help='a topic to record and its message type')
    parser.add_argument('--expect', help='recorded topic answering each message of the first '
                        '--play topic (drain ends when all are answered)')
    parser.add_argument('--wait-for', help='recorded topic whose first message means ready')
    parser.add_argument('--linger-for', help='after draining, wait up to --linger-s for a first '
                        'message on this recorded topic')
    parser.add_argument('--linger-s', type=float, default=5.0)
    parser.add_argument('--rate', type=float, default=1.0)
    parser.add_argument('--ready-timeout-s', type=float, default=120.0)
    parser.add_argument('--drain-s', type=float, default=5.0)
    parser.add_argument('--storage', default='mcap')
    return parser


class Recorder:
    """Subscriptions that keep ``(topic, arrival_ns, raw)`` of every message."""

    def __init__(self, node, topics):
        self.node, self.topics = node, dict(topics)
        self.messages, self.counts = [], {t: 0 for t in self.topics}
        self._subs, self._lock = {}, threading.Lock()

    def _qos(self, topic):
        infos = self.node.get_publishers_info_by_topic(topic)
        if not infos:
            return None
        reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
        latched = all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                      for i in infos)
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=100,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)

    def subscribe_discovered(self, force=False):
        """Subscribe to the topics whose publishers are known (all of them when ``force``)."""
        for topic, msgtype in self.topics.items():
            if topic in self._subs:
                continue
            qos = self._qos(topic)
            if qos is None and not force:
                continue
            self._subs[topic] = self.node.create_subscription(
                message_class(msgtype), topic, lambda raw, t=topic: self._on(t, raw),
                qos or QoSProfile(depth=100), raw=True)
        return len(self._subs) == len(self.topics)

    def matched(self, topic):
        """Whether ``topic`` (None: no requirement) is subscribed and matched to a publisher."""
        if topic is None:
            return True
        sub = self._subs.get(topic)
        return sub is not None and sub.get_publisher_count() > 0

    def _on(self, topic, raw):
        arrival = time.time_ns()
        with self._lock:
            self.messages.append((topic, arrival, bytes(raw)))
            self.counts[topic] += 1


def _wait(predicate, timeout_s, step_s=0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return predicate()


def replay(node, reader, play, publishers, rate):
    """Publish the bag's ``play`` topics on schedule; return ``[(topic, stamp_ns, send_ns)]``."""
    sent, start_wall, first_log = [], None, None
    for message in reader.messages(list(play)):
        if start_wall is None:
            start_wall, first_log = time.monotonic(), message.log_time_ns
        due = start_wall + (message.log_time_ns - first_log) / 1e9 / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        header = reader.decode(message).header
        stamp = int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
        send_ns = time.time_ns()
        publishers[message.topic].publish(message.raw)
        sent.append((message.topic, stamp, send_ns))
        print(f'sent {message.topic} {len(sent)}', flush=True)
    return sent


def run(args, node):
    play, record = dict(args.play), dict(args.record)
    recorder = Recorder(node, record)
    with BagReader(args.bag) as reader:
        publishers = {}
        for bag_topic, dds_topic in play.items():
            info = reader.topics.get(bag_topic)
            if info is None:
                raise BagError(f'bag {args.bag} has no topic {bag_topic!r}; it contains: '
                               f'{reader.describe()}')
            publishers[bag_topic] = node.create_publisher(
                message_class(info.msgtype), dds_topic, QoSProfile(
                    depth=10, reliability=ReliabilityPolicy.RELIABLE))
        t0 = time.monotonic()

        def is_ready():
            recorder.subscribe_discovered()
            return (recorder.matched(args.expect)
                    and (not args.wait_for or recorder.counts[args.wait_for] > 0)
                    and all(p.get_subscription_count() > 0 for p in publishers.values()))

        ready = _wait(is_ready, args.ready_timeout_s)
        if not ready:
            missing = [t for t, p in publishers.items() if p.get_subscription_count() == 0]
            print(f'live_replay: not ready after {args.ready_timeout_s:.0f} s: no subscriber on '
                  f'{missing or "-"}, {args.wait_for or "-"} received '
                  f'{recorder.counts.get(args.wait_for, 0)} messages', file=sys.stderr)
            return 3, None, None
        ready_s = time.monotonic() - t0
        print(f'ready {ready_s:.2f}', flush=True)
        recorder.subscribe_discovered(force=True)
        start_ns = time.time_ns()
        sent = replay(node, reader, play, publishers, args.rate)
    first = next(iter(play))
    expected = sum(1 for topic, _, _ in sent if topic == first)
    # drain: stop when every image is answered, or when the answers (all recorded topics
    # without --expect) stopped for drain_s; periodic topics such as /diagnostics never stop
    watched = [args.expect] if args.expect else list(recorder.topics)
    last_total, idle_since = -1, time.monotonic()
    while True:
        total = sum(recorder.counts[t] for t in watched)
        if total != last_total:
            last_total, idle_since = total, time.monotonic()
        if args.expect and recorder.counts[args.expect] >= expected:
            break
        if time.monotonic() - idle_since > args.drain_s:
            break
        time.sleep(0.05)
    if args.linger_for:  # e.g. one /diagnostics message naming the backend and device
        _wait(lambda: recorder.counts.get(args.linger_for, 0) > 0, args.linger_s)
    log = {'sent': sent, 'ready_s': ready_s, 'start_ns': start_ns, 'rate': args.rate,
           'play': play, 'record': record}
    return 0, recorder, log


def write_outputs(args, recorder, log):
    with BagWriter(args.out, args.storage) as bag:
        for topic, msgtype in recorder.topics.items():
            bag.add_topic(topic, msgtype)
        for topic, arrival, raw in sorted(recorder.messages, key=lambda m: m[1]):
            bag.write_raw(topic, arrival, raw)
    with open(args.sent_log, 'w') as handle:
        json.dump(log, handle)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.rate > 0:
        print('live_replay: --rate must be > 0', file=sys.stderr)
        return 2
    rclpy.init()
    node = rclpy.create_node('efficientmfd_live_replay')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    code, recorder, log = 2, None, None
    try:
        code, recorder, log = run(args, node)
    except BagError as exc:
        print(f'live_replay: {exc}', file=sys.stderr)
    except (KeyboardInterrupt, ExternalShutdownException):
        code = 130
    finally:
        executor.shutdown()
        spinner.join(5.0)
        node.destroy_node()
        rclpy.try_shutdown()
    if code == 0:
        write_outputs(args, recorder, log)
    return code


if __name__ == '__main__':
    sys.exit(main())
