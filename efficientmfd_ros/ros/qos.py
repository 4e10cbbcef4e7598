"""QoS of every topic, overridable at start-up through ``qos_overrides.<topic>.<entity>.<policy>``.

Inputs use the sensor-data profile of REP 2003 (best effort, keep last 5); outputs are reliable
so RViz and ``ros2 bag record`` get every message; label_info is reliable + transient local, so a
late subscriber still receives the class map. Overrides are declared the first time an entity is
created; the resolved profile is kept and reused when the lifecycle recreates the entity, because
some rclpy releases refuse to declare the same override parameters twice.
"""
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from rclpy.qos_overriding_options import QoSOverridingOptions


def sensor_data():
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                      reliability=ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


def reliable(depth):
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def latched():
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


class QosCache:
    """Creates publishers/subscriptions with overridable QoS, remembering resolved profiles."""

    def __init__(self, node):
        self._node = node
        self._resolved = {}

    def _create(self, kind, factory, msg_type, topic, qos, **kwargs):
        key = (kind, topic)
        if key in self._resolved:
            return factory(msg_type, topic, self._resolved[key], **kwargs)
        # rclpy writes the overrides into the profile object it is given
        entity = factory(msg_type, topic, qos,
                         qos_overriding_options=QoSOverridingOptions.with_default_policies(),
                         **kwargs)
        self._resolved[key] = qos
        return entity

    def publisher(self, msg_type, topic, qos, lifecycle=True):
        factory = (self._node.create_lifecycle_publisher if lifecycle
                   else self._node.create_publisher)
        return self._create('publisher', factory, msg_type, topic, qos)

    def subscription(self, msg_type, topic, callback, qos, **kwargs):
        def factory(msg, name, profile, **options):
            return self._node.create_subscription(msg, name, callback, profile, **options)
        return self._create('subscription', factory, msg_type, topic, qos, **kwargs)
