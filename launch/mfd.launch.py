"""Launch efficientmfd_node (a lifecycle node) with its parameters from a YAML file.

ros2 launch efficientmfd_ros mfd.launch.py rgb_topic:=/camera/rgb/image_raw \
    thermal_topic:=/camera/thermal/image_raw [namespace:=... params_file:=... rviz:=true]

Node parameters live in the YAML (config/mfd.yaml); only what differs between deployments of the
same configuration is an argument here. With autostart (the default) the node configures and
activates itself; otherwise drive it with `ros2 lifecycle set`.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.launch_description import LaunchDescription
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = 'efficientmfd_ros'
ARGUMENTS = (
    ('namespace', '', 'Namespace of the node and of its relative topics'),
    ('params_file', 'config/mfd.yaml', 'Node parameters (YAML); default in the package share'),
    ('rgb_topic', 'rgb/image_raw', 'RGB image topic (sensor_msgs/Image)'),
    ('thermal_topic', 'thermal/image_raw', 'Thermal image topic (sensor_msgs/Image)'),
    ('use_sim_time', 'false', 'Use /clock (true when replaying a bag with --clock)'),
    ('autostart', 'true', 'Configure and activate the node right after start'),
    ('log_level', 'info', 'Node log level: debug, info, warn, error, fatal'),
    ('rviz', 'false', 'Start RViz with rviz_config'),
    ('rviz_config', 'config/mfd.rviz', 'RViz configuration; default in the package share'),
)
# defaults above that name files of this package, relative to its share directory
SHARE_DEFAULTS = ('params_file', 'rviz_config')


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    declared = [DeclareLaunchArgument(
        name, description=text,
        default_value=os.path.join(share, *default.split('/')) if name in SHARE_DEFAULTS
        else default) for name, default, text in ARGUMENTS]
    arg = {name: LaunchConfiguration(name) for name, _, _ in ARGUMENTS}
    rgb, thermal = arg['rgb_topic'], arg['thermal_topic']
    node = LifecycleNode(
        package=PACKAGE,
        executable='efficientmfd_node',
        name='efficientmfd_node',
        namespace=arg['namespace'],
        output='screen',
        parameters=[
            arg['params_file'],
            {'use_sim_time': ParameterValue(arg['use_sim_time'], value_type=bool),
             'autostart': ParameterValue(arg['autostart'], value_type=bool)},
        ],
        remappings=[
            ('rgb/image_raw', rgb),
            ('thermal/image_raw', thermal),
            ('rgb/image_raw/compressed', [rgb, '/compressed']),
            ('thermal/image_raw/compressed', [thermal, '/compressed']),
        ],
        arguments=['--ros-args', '--log-level', arg['log_level']],
    )
    rviz = Node(
        package='rviz2',
        executable='rviz2',
        namespace=arg['namespace'],
        arguments=['-d', arg['rviz_config']],
        parameters=[{'use_sim_time': ParameterValue(arg['use_sim_time'], value_type=bool)}],
        condition=IfCondition(arg['rviz']),
    )
    return LaunchDescription([*declared, node, rviz])

