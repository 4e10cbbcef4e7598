"""`ros2 bag play` for tests where rosbag2 is not installed (it is not on PyPI).

    ros2 bag play BAG [--clock [HZ]] [--rate R] [--delay S] [--loop]

Publishes every message of BAG (raw CDR, read with `bags.bagio`) on its recorded topic at its
bag time divided by --rate, after --delay seconds, with reliable QoS (rosbag2's default when a bag
records no offered QoS) and, with --clock, rosgraph_msgs/Clock on /clock carrying the bag time.
Unlike rosbag2 it also waits (up to 20 s) for each image topic to have a subscriber, then the
--delay, before the first message, so a test on a busy machine does not lose the first frame to
discovery.
"""
import argparse
import sys
import time

import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from efficientmfd_ros.bags.bagio import BagReader
from efficientmfd_ros.ros.live_replay import message_class


def parse(argv):
    parser = argparse.ArgumentParser(prog='ros2 bag play')
    parser.add_argument('verb', choices=['bag'])
    parser.add_argument('action', choices=['play'])
    parser.add_argument('bag')
    parser.add_argument('--clock', type=float, nargs='?', const=40.0, default=0.0)
    parser.add_argument('-r', '--rate', type=float, default=1.0)
    parser.add_argument('-d', '--delay', type=float, default=0.0)
    parser.add_argument('-l', '--loop', action='store_true')
    return parser.parse_args(argv)


def main(argv):
    args = parse(argv)
    rclpy.init()
    node = rclpy.create_node('rosbag2_player_standin')
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    with BagReader(args.bag) as reader:
        topics = dict(reader.topics)
        pubs = {topic: node.create_publisher(message_class(info.msgtype), topic, reliable)
                for topic, info in topics.items()}
        clock = node.create_publisher(Clock, '/clock', reliable) if args.clock else None
        deadline = time.monotonic() + 60.0
        images = [p for t, p in pubs.items() if topics[t].msgtype == 'sensor_msgs/msg/Image']
        while time.monotonic() < deadline and any(p.get_subscription_count() == 0
                                                  for p in images):
            time.sleep(0.05)
        # after the match, as rosbag2 sleeps after creating its publishers: this side counts a
        # subscriber before the subscriber's side has matched us, and best-effort readers drop
        # what arrives from a writer they have not matched yet
        time.sleep(args.delay)
        while True:
            start, first = time.monotonic(), None
            for message in reader.messages(list(topics)):
                first = message.log_time_ns if first is None else first
                due = start + (message.log_time_ns - first) * 1e-9 / args.rate
                time.sleep(max(0.0, due - time.monotonic()))
                if clock is not None:
                    stamp = Clock()
                    stamp.clock.sec, stamp.clock.nanosec = divmod(message.log_time_ns, 10**9)
                    clock.publish(stamp)
                pubs[message.topic].publish(message.raw)
            if not args.loop:
                break
    time.sleep(0.5)  # let reliable messages leave before the participant goes
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:  # Ctrl-C ends playback, as it does rosbag2's
        sys.exit(0)
