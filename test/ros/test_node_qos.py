"""QoS profiles of the node's topics and their start-up overrides (qos_overrides.* parameters)."""
import pytest

pytestmark = pytest.mark.ros
rclpy = pytest.importorskip('rclpy')

from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from efficientmfd_ros.ros import qos  # noqa: E402


@pytest.fixture
def context(ros_domain):
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    yield ctx
    ctx.try_shutdown()


def test_profiles_follow_rep_2003_and_outputs_are_reliable():
    assert qos.sensor_data().reliability == ReliabilityPolicy.BEST_EFFORT
    assert qos.reliable(5).reliability == ReliabilityPolicy.RELIABLE
    latched = qos.latched()
    assert (latched.reliability, latched.durability, latched.depth) == (
        ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL, 1)


def test_overrides_apply_and_survive_recreating_the_entity(context):
    node = rclpy.create_node('qos_override_probe', context=context, parameter_overrides=[
        Parameter('qos_overrides./fused/image.publisher.reliability', value='best_effort'),
        Parameter('qos_overrides./fused/image.publisher.depth', value=2),
        Parameter('qos_overrides./rgb/image_raw.subscription.depth', value=1)])
    try:
        cache = qos.QosCache(node)
        pub = cache.publisher(Image, 'fused/image', qos.reliable(5), lifecycle=False)
        assert pub.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
        assert pub.qos_profile.depth == 2
        assert node.has_parameter('qos_overrides./fused/image.publisher.history')
        node.destroy_publisher(pub)
        again = cache.publisher(Image, 'fused/image', qos.reliable(5), lifecycle=False)
        assert (again.qos_profile.reliability, again.qos_profile.depth) == (
            ReliabilityPolicy.BEST_EFFORT, 2)
        sub = cache.subscription(Image, 'rgb/image_raw', lambda msg: None, qos.sensor_data())
        assert sub.qos_profile.depth == 1
        assert sub.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
    finally:
        node.destroy_node()
