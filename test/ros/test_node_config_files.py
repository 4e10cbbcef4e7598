"""The parameter table against config/mfd.yaml, the RViz config and the launch files.

launch/launch_ros are not installable here, so the launch files are checked as Python source:
they must parse, declare the documented arguments, and point at files that exist.
"""
import ast
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.ros
pytest.importorskip('rclpy')

from efficientmfd_ros.ros.node import OUTPUT_TOPICS  # noqa: E402
from efficientmfd_ros.ros.params import BY_NAME, PARAMETERS, NodeConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MFD_ARGS = {'namespace', 'params_file', 'rgb_topic', 'thermal_topic', 'rgb_camera_info_topic',
            'input_transport', 'use_sim_time', 'autostart', 'log_level', 'rviz', 'rviz_config',
            'rviz_fixed_frame'}


def _node_params(path):
    data = yaml.safe_load(path.read_text())
    assert list(data) == ['/**/efficientmfd_node']
    return data['/**/efficientmfd_node']['ros__parameters']


def test_yaml_has_exactly_the_table_with_matching_types_and_a_comment_each():
    params = _node_params(ROOT / 'config' / 'mfd.yaml')
    assert set(params) == set(BY_NAME)
    for name, value in params.items():
        default = BY_NAME[name].default
        assert type(value) is type(default), name
        if isinstance(default, list):
            assert all(type(v) is type(default[0]) for v in value), name
    lines = (ROOT / 'config' / 'mfd.yaml').read_text().splitlines()
    for index, line in enumerate(lines):
        key = line.strip().split(':')[0]
        if key in BY_NAME and line.startswith('    '):
            assert lines[index - 1].strip().startswith('#'), f'{key} has no comment above it'


def test_yaml_values_pass_the_table_validation_and_default_model_is_relative():
    params = _node_params(ROOT / 'config' / 'mfd.yaml')
    for name, value in params.items():
        spec = BY_NAME[name]
        assert spec.validate(value) is None, name
        if spec.low is not None:
            assert spec.low <= value <= spec.high, name
    assert params['model_path'] == 'efficientmfd_lite_llvip.pt'
    assert NodeConfig().model_path == params['model_path']


def test_table_descriptors_types_ranges_and_read_only():
    from rcl_interfaces.msg import ParameterType
    names = [p.name for p in PARAMETERS]
    assert len(names) == len(set(names))
    for param in PARAMETERS:
        desc = param.descriptor()
        assert desc.description, param.name
        assert desc.read_only == (param.applies == 'startup')
        if param.low is not None:
            assert desc.floating_point_range or desc.integer_range, param.name
    score = BY_NAME['score_threshold'].descriptor()
    assert score.type == ParameterType.PARAMETER_DOUBLE
    assert (score.floating_point_range[0].from_value, score.floating_point_range[0].to_value) == (
        0.0, 1.0)
    assert BY_NAME['score_threshold'].applies == 'live'
    assert BY_NAME['model_path'].applies == 'configure'
    assert BY_NAME['thermal_to_rgb_homography'].descriptor().type == (
        ParameterType.PARAMETER_DOUBLE_ARRAY)


@pytest.mark.parametrize('name, value, fragment', [
    ('backend', 'tflite', 'one of'),
    ('device', 'gpu0', 'device'),
    ('input_size', [100, 64], 'multiples of 32'),
    ('input_size', [64], '2 integers'),
    ('thermal_to_rgb_homography', [1.0, 0.0, 0.0] * 3, 'singular'),
    ('thermal_to_rgb_homography', [1.0] * 8, '9 values'),
    ('model_path', ' ', 'empty'),
])
def test_table_rejects_bad_values_with_a_reason(name, value, fragment):
    assert fragment in BY_NAME[name].validate(value)


def test_rviz_fixed_frame_is_the_frame_the_project_bags_carry():
    from efficientmfd_ros.bags.make import RGB_FRAME
    config = yaml.safe_load((ROOT / 'config' / 'mfd.rviz').read_text())
    assert config['Visualization Manager']['Global Options']['Fixed Frame'] == RGB_FRAME


def test_rviz_names_only_topics_the_node_publishes():
    config = yaml.safe_load((ROOT / 'config' / 'mfd.rviz').read_text())
    manager = config['Visualization Manager']
    topics = [d['Topic']['Value'] for d in manager['Displays'] if 'Topic' in d]
    # relative to the namespace RViz shares with the node; '~' is the node's own name
    published = {t.replace('~', 'efficientmfd_node') for t in OUTPUT_TOPICS}
    assert set(topics) == {'fused/image', 'efficientmfd_node/debug/image'}
    assert set(topics) <= published
    for display in manager['Displays']:
        assert display['Class'] == 'rviz_default_plugins/Image'
        assert display['Topic']['Reliability Policy'] == 'Reliable'
    assert manager['Global Options']['Fixed Frame']


def _launch_arguments(path):
    """The ARGUMENTS table of a launch file: {name: default}, read without importing launch."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == 'ARGUMENTS':
            return {name: default for name, default, _ in ast.literal_eval(node.value)}
    raise AssertionError(f'{path} has no ARGUMENTS table')


def _function_names(path):
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_mfd_launch_declares_the_arguments_and_its_default_files_exist():
    path = ROOT / 'launch' / 'mfd.launch.py'
    args = _launch_arguments(path)
    assert set(args) == MFD_ARGS
    assert args['rviz'] == 'false' and args['autostart'] == 'true'
    for name in ('params_file', 'rviz_config'):
        assert (ROOT / args[name]).is_file(), name
    assert 'generate_launch_description' in _function_names(path)
    source = path.read_text()
    assert 'LifecycleNode' in source and "executable='efficientmfd_node'" in source
    for topic in ('rgb/image_raw', 'thermal/image_raw'):
        assert f"('{topic}'," in source, f'{topic} is not remapped'


def test_replay_launch_includes_mfd_launch_on_sim_time():
    path = ROOT / 'launch' / 'replay.launch.py'
    args = _launch_arguments(path)
    assert args['bag'] is None  # required
    assert (ROOT / args['params_file']).is_file()
    assert 'generate_launch_description' in _function_names(path)
    source = path.read_text()
    assert "'mfd.launch.py'" in source and "'use_sim_time': 'true'" in source
    assert "'--clock'" in source and "'efficientmfd_wait_active'" in source
    # every argument of mfd.launch.py but use_sim_time (always true here) can be given to replay
    assert MFD_ARGS - {'use_sim_time'} <= set(args)
