"""The node's parameters -> load_detector arguments: 0 / [0, 0] leave the checkpoint's values."""
import pytest

pytestmark = pytest.mark.ros
pytest.importorskip('rclpy')

from efficientmfd_ros.ros.model_loader import detector_kwargs, load_model  # noqa: E402
from efficientmfd_ros.ros.params import BY_NAME, NodeConfig  # noqa: E402


def test_zero_keeps_the_checkpoints_box_count_and_input_size():
    kwargs = detector_kwargs(NodeConfig())
    assert 'num_proposals' not in kwargs and 'input_size' not in kwargs


def test_a_box_count_reaches_the_detector(tiny_weights):
    config = NodeConfig(model_path=str(tiny_weights), backend='torch', device='cpu',
                        num_proposals=13)
    assert detector_kwargs(config)['num_proposals'] == 13
    detector, _ = load_model(config)
    assert detector.num_proposals == 13
    spec = BY_NAME['num_proposals']
    assert (spec.low, spec.high, spec.applies) == (0, 1000, 'configure')
