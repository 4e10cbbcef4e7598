"""The two layers and their one import direction, the subsystem order, and thin CLIs
(docs/architecture.md)."""
import ast
from pathlib import Path
import xml.etree.ElementTree as ET

PKG = Path(__file__).resolve().parents[1] / 'efficientmfd_ros'
ROS_ONLY = ('rclpy', 'sensor_msgs', 'std_msgs', 'vision_msgs', 'diagnostic_msgs', 'lifecycle_msgs',
            'builtin_interfaces', 'rcl_interfaces', 'geometry_msgs', 'launch', 'launch_ros',
            'message_filters', 'cv_bridge', 'ament_index_python', 'efficientmfd_ros.ros')
ROS_FREE_LAYERS = ('core', 'model', 'train', 'runtime', 'bags', 'evaluation', 'tools')
# each subsystem imports only those before it; ros and tools share a rank and never meet
ORDER = {'core': 0, 'model': 1, 'runtime': 2, 'train': 3, 'bags': 4, 'evaluation': 5, 'ros': 6,
         'tools': 6}


def _imports(path, source=None):
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            yield '.' * node.level + (node.module or '')


def test_core_layers_import_no_ros():
    offenders = []
    for layer in ROS_FREE_LAYERS:
        for path in sorted((PKG / layer).rglob('*.py')):
            for name in _imports(path):
                relative = name.lstrip('.')
                if name.startswith(ROS_ONLY) or (name.startswith('.') and (
                        relative == 'ros' or relative.startswith('ros.'))):
                    offenders.append(f'{path.relative_to(PKG.parent)} imports {name}')
    assert not offenders, '\n'.join(offenders)


def order_violations(path, source=None):
    """'<module> imports <name>' for each import of ``path`` (a file under PKG) that reaches a
    subsystem of the same or a higher rank than its own (its own subsystem excepted)."""
    layer = path.relative_to(PKG).parts[0]
    found = []
    for name in _imports(path, source):
        parts = name.split('.')
        if parts[0] != 'efficientmfd_ros' or len(parts) < 2 or parts[1] not in ORDER:
            continue
        if parts[1] != layer and ORDER[parts[1]] >= ORDER[layer]:
            found.append(f'{path.relative_to(PKG.parent)} imports {name}')
    return found


def test_subsystems_import_only_those_below_them():
    offenders = [v for layer in ORDER for path in sorted((PKG / layer).rglob('*.py'))
                 for v in order_violations(path)]
    assert not offenders, '\n'.join(offenders)


def test_the_order_check_catches_an_upward_import():
    fake = PKG / 'runtime' / 'not_a_module.py'
    assert order_violations(fake, 'from efficientmfd_ros.train.trainer import Trainer\n')
    assert order_violations(PKG / 'tools' / 'x.py', 'import efficientmfd_ros.ros.node\n')
    assert order_violations(PKG / 'ros' / 'x.py', 'from efficientmfd_ros.tools import demo\n')
    assert order_violations(PKG / 'core' / 'x.py', 'from efficientmfd_ros.model import fpn\n')
    assert not order_violations(PKG / 'evaluation' / 'x.py',
                                'from efficientmfd_ros.bags.bagio import BagReader\n'
                                'from efficientmfd_ros.evaluation.drawing import annotate\n')


def test_every_tools_module_is_a_cli_with_main():
    for path in sorted((PKG / 'tools').glob('*.py')):
        if path.name == '__init__.py':
            continue
        tree = ast.parse(path.read_text())
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert 'main' in names, f'{path.name} has no main()'


def test_package_metadata_is_ament_python_format3():
    root = ET.parse(PKG.parent / 'package.xml').getroot()
    assert root.get('format') == '3'
    assert root.findtext('name') == 'efficientmfd_ros'
    assert root.find('export/build_type').text == 'ament_python'
    assert (PKG.parent / 'resource' / 'efficientmfd_ros').is_file()
    setup_py = (PKG.parent / 'setup.py').read_text()
    assert f"version='{root.findtext('version')}'" in setup_py


def test_vision_msgs_definitions_are_hidden_from_colcon():
    assert (PKG.parent / 'interfaces' / 'COLCON_IGNORE').is_file()


def _declared(kind):
    root = ET.parse(PKG.parent / 'package.xml').getroot()
    return {element.text.strip() for element in root.iter(kind)}


def test_package_xml_declares_every_ros_package_the_node_and_launch_files_use():
    """rosdep installs what package.xml names: every ROS package imported by ros/ or a launch
    file, and what the launch files run (ros2 bag with mcap, rviz2), must be there."""
    ros_packages = {name.split('.')[0] for name in ROS_ONLY if not name.startswith('efficientmfd')}
    sources = [*sorted((PKG / 'ros').rglob('*.py')),
               *sorted((PKG.parent / 'launch').glob('*.py'))]
    used = {name.split('.')[0] for path in sources for name in _imports(path)} & ros_packages
    launch_text = ''.join(p.read_text() for p in (PKG.parent / 'launch').glob('*.py'))
    if "'bag'" in launch_text or 'ros2 bag' in launch_text:
        used |= {'ros2bag', 'rosbag2_storage_mcap'}
    if 'rviz2' in launch_text:
        used.add('rviz2')
    missing = sorted(used - _declared('exec_depend') - _declared('depend'))
    assert 'rclpy' in used and 'launch_ros' in used
    assert not missing, f'package.xml lacks exec_depend {missing}'


def test_package_xml_declares_the_test_runner_plugins_pytest_ini_uses():
    ini = (PKG.parent / 'pytest.ini').read_text()
    needed = {'python3-pytest'} | ({'python3-pytest-timeout'} if '--timeout' in ini else set())
    assert needed <= _declared('test_depend')
