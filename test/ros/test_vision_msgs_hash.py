"""The project's vision_msgs definitions must hash exactly like upstream vision_msgs 4.1.

If a field name or type drifts, a real ROS graph would refuse to connect our publishers to RViz or
``ros2 bag`` subscribers; the RIHS01 type hash is what makes that visible here.
"""
import json
from pathlib import Path

import pytest

UPSTREAM_4_1 = {
    'Detection2DArray': 'RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968',
    'LabelInfo': 'RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783',
    'VisionClass': 'RIHS01_1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a',
}

MSG_DIR = Path(__file__).resolve().parents[2] / 'interfaces' / 'vision_msgs' / 'msg'


def _typestore_with_project_msgs():
    typesys = pytest.importorskip('rosbags.typesys')
    store = typesys.get_typestore(typesys.Stores.ROS2_KILTED)
    types = {}
    for path in sorted(MSG_DIR.glob('*.msg')):
        types.update(typesys.get_types_from_msg(path.read_text(), f'vision_msgs/msg/{path.stem}'))
    store.register(types)
    return store


@pytest.mark.parametrize('name', sorted(UPSTREAM_4_1))
def test_definitions_hash_like_upstream(name):
    """Hash computed from the .msg text alone, by an implementation independent of rosidl."""
    store = _typestore_with_project_msgs()
    assert store.hash_rihs01(f'vision_msgs/msg/{name}') == UPSTREAM_4_1[name]


def test_all_needed_messages_are_defined():
    needed = {'Point2D', 'Pose2D', 'BoundingBox2D', 'ObjectHypothesis', 'ObjectHypothesisWithPose',
              'Detection2D', 'Detection2DArray', 'VisionInfo', 'VisionClass', 'LabelInfo'}
    assert needed <= {p.stem for p in MSG_DIR.glob('*.msg')}


@pytest.mark.ros
@pytest.mark.parametrize('name', sorted(UPSTREAM_4_1))
def test_installed_package_hash_like_upstream(name):
    """The vision_msgs the node imports (local build or system package) hashes like 4.1."""
    pytest.importorskip('vision_msgs.msg')
    from ament_index_python.packages import get_package_share_directory
    share = Path(get_package_share_directory('vision_msgs'))
    path = share / 'msg' / f'{name}.json'
    if not path.is_file():
        pytest.skip(f'{path} absent: this ROS distribution predates type hashes')
    description = json.loads(path.read_text())
    hashes = {h['type_name']: h['hash_string'] for h in description['type_hashes']}
    assert hashes[f'vision_msgs/msg/{name}'] == UPSTREAM_4_1[name]
