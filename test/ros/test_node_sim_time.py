"""Under use_sim_time with no /clock (a replay not started yet, or one that ended), the node
still starts itself and keeps reporting on /diagnostics: its timers run on the steady clock."""
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]
rclpy = pytest.importorskip('rclpy')
pytest.importorskip('vision_msgs.msg')

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402

WAIT_S = 60.0


def test_diagnostics_keep_publishing_without_clock(start_node, tiny_checkpoint, ros_client):
    node = start_node(model_path=str(tiny_checkpoint), backend='torch', device='cpu',
                      use_sim_time='true', diagnostics_period_s=0.2, modality_timeout_s=0.5)
    assert node.wait_for_output('active: subscribed', 120), node.output()
    ros_client.subscribe(DiagnosticArray, '/diagnostics',
                         QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))

    def silent_cameras(msg):
        return any(s.name.endswith(': inputs') and s.level != DiagnosticStatus.OK
                   and 'no rgb or thermal' in s.message for s in msg.status)
    first = ros_client.wait_for('/diagnostics', silent_cameras, WAIT_S)
    assert first is not None, f'no /diagnostics under use_sim_time\n{node.output()[-2000:]}'
    # The stamps are the node's (simulated, still zero) clock; the reports keep coming anyway.
    assert first.header.stamp.sec == 0 and first.header.stamp.nanosec == 0
    seen = len(ros_client.messages('/diagnostics'))
    assert ros_client.wait_for('/diagnostics', silent_cameras, WAIT_S, since=seen) is not None
    assert node.alive()
