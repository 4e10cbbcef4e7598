"""Launch efficientmfd_node (a lifecycle node) with its parameters from a YAML file.

ros2 launch efficientmfd_ros mfd.launch.py rgb_topic:=/camera/rgb/image_raw \
    thermal_topic:=/camera/thermal/image_raw [namespace:=... params_file:=... rviz:=true]

Node parameters live in the YAML (config/mfd.yaml); only what differs between deployments of the
same configuration is an argument here. With autostart (the default) the node configures and
activates itself; otherwise drive it with `ros2 lifecycle set`. The RGB camera_info is read from
the sibling of rgb_topic (`/camera/rgb/camera_info` above) unless rgb_camera_info_topic says
otherwise; input_transport, when given, overrides the YAML's.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.launch_description import LaunchDescription
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node

PACKAGE = 'efficientmfd_ros'
ARGUMENTS = (
    ('namespace', '', 'Namespace of the node and of its relative topics'),
    ('params_file', 'config/mfd.yaml', 'Node parameters (YAML); default in the package share'),
    ('rgb_topic', 'rgb/image_raw', 'RGB image topic (sensor_msgs/Image)'),
    ('thermal_topic', 'thermal/image_raw', 'Thermal image topic (sensor_msgs/Image)'),
    ('rgb_camera_info_topic', '', 'RGB camera_info topic; empty: camera_info beside rgb_topic'),
    ('input_transport', '', 'raw or compressed (subscribe to <topic>/compressed); empty: the '
                            'YAML value'),
    ('use_sim_time', 'false', 'Use /clock (true when replaying a bag with --clock)'),
    ('autostart', 'true', 'Configure and activate the node right after start'),
    ('log_level', 'info', 'Node log level: debug, info, warn, error, fatal'),
    ('rviz', 'false', 'Start RViz with rviz_config'),
    ('rviz_config', 'config/mfd.rviz', 'RViz configuration; default in the package share'),
    ('rviz_fixed_frame', '', "RViz fixed frame (the RGB images' frame_id); empty: the config's"),
)
# defaults above that name files of this package, relative to its share directory
SHARE_DEFAULTS = ('params_file', 'rviz_config')
TRUE = ('true', '1', 'yes', 'on')


def camera_info_beside(image_topic: str) -> str:
    """`/camera/rgb/image_raw` -> `/camera/rgb/camera_info` (the image_transport convention)."""
    head, _, _ = image_topic.rstrip('/').rpartition('/')
    return f'{head}/camera_info' if head or image_topic.startswith('/') else 'camera_info'


def _actions(context):
    value = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    rgb, thermal = value['rgb_topic'], value['thermal_topic']
    sim_time = value['use_sim_time'].lower() in TRUE
    overrides = {'use_sim_time': sim_time, 'autostart': value['autostart'].lower() in TRUE}
    if value['input_transport']:
        overrides['input_transport'] = value['input_transport']
    node = LifecycleNode(
        package=PACKAGE,
        executable='efficientmfd_node',
        name='efficientmfd_node',
        namespace=value['namespace'],
        output='screen',
        parameters=[value['params_file'], overrides],
        remappings=[
            ('rgb/image_raw', rgb),
            ('thermal/image_raw', thermal),
            ('rgb/image_raw/compressed', f'{rgb}/compressed'),
            ('thermal/image_raw/compressed', f'{thermal}/compressed'),
            ('rgb/camera_info', value['rgb_camera_info_topic'] or camera_info_beside(rgb)),
        ],
        arguments=['--ros-args', '--log-level', value['log_level']],
    )
    rviz = Node(
        package='rviz2',
        executable='rviz2',
        namespace=value['namespace'],
        arguments=['-d', value['rviz_config'], *(
            ['--fixed-frame', value['rviz_fixed_frame']] if value['rviz_fixed_frame'] else [])],
        parameters=[{'use_sim_time': sim_time}],
        condition=IfCondition(value['rviz']),
    )
    return [node, rviz]


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    declared = [DeclareLaunchArgument(
        name, description=text,
        default_value=os.path.join(share, *default.split('/')) if name in SHARE_DEFAULTS
        else default) for name, default, text in ARGUMENTS]
    return LaunchDescription([*declared, OpaqueFunction(function=_actions)])
