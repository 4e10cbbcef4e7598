"""Replay a bag into efficientmfd_node on simulated time: `ros2 bag play --clock` + mfd.launch.py.

ros2 launch efficientmfd_ros replay.launch.py bag:=/path/to/bag [rate:=1.0] [loop:=false]

The bag's /rgb/image_raw and /thermal/image_raw (efficientmfd_make_bag writes these) feed the node;
its outputs carry the bag's stamps. Looping is safe: the node restarts pairing when stamps jump
back (max_backwards_s).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription
from launch.conditions import IfCondition, UnlessCondition
from launch.launch_description import LaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

PACKAGE = 'efficientmfd_ros'
ARGUMENTS = (
    ('bag', None, 'Bag directory to play (required)'),
    ('rate', '1.0', 'Playback rate'),
    ('loop', 'false', 'Play the bag in a loop'),
    ('rgb_topic', '/rgb/image_raw', 'RGB topic in the bag'),
    ('thermal_topic', '/thermal/image_raw', 'Thermal topic in the bag'),
    ('params_file', 'config/mfd.yaml', 'Node parameters (YAML); default in the package share'),
    ('rviz', 'false', 'Start RViz'),
)
SHARE_DEFAULTS = ('params_file',)


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    declared = [DeclareLaunchArgument(
        name, description=text,
        default_value=os.path.join(share, *default.split('/')) if name in SHARE_DEFAULTS
        else default) for name, default, text in ARGUMENTS]
    arg = {name: LaunchConfiguration(name) for name, _, _ in ARGUMENTS}
    play = ['ros2', 'bag', 'play', arg['bag'], '--clock', '--rate', arg['rate']]
    node = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'mfd.launch.py')),
        launch_arguments={
            'use_sim_time': 'true',
            'rgb_topic': arg['rgb_topic'],
            'thermal_topic': arg['thermal_topic'],
            'params_file': arg['params_file'],
            'rviz': arg['rviz'],
        }.items(),
    )
    return LaunchDescription([
        *declared,
        node,
        ExecuteProcess(cmd=play, output='screen', condition=UnlessCondition(arg['loop'])),
        ExecuteProcess(cmd=[*play, '--loop'], output='screen',
                       condition=IfCondition(arg['loop'])),
    ])
