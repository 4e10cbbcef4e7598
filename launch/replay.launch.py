"""Replay a bag into efficientmfd_node on simulated time: mfd.launch.py + `ros2 bag play --clock`.

ros2 launch efficientmfd_ros replay.launch.py bag:=/path/to/bag [rate:=1.0] [loop:=false]

The bag's /rgb/image_raw and /thermal/image_raw (efficientmfd_make_bag writes these) feed the node;
its outputs carry the bag's stamps. Playback starts once the node is active (loading the model
takes seconds, and a bag played from launch time would be half over by then):
efficientmfd_wait_active polls the node's lifecycle state and then runs `ros2 bag play`; with
autostart:=false it starts when you activate the node. Looping is safe: the node restarts pairing
when stamps jump back (max_backwards_s). Every argument of mfd.launch.py is passed on.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription
from launch.conditions import IfCondition, UnlessCondition
from launch.launch_description import LaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.substitutions import ExecutableInPackage

PACKAGE = 'efficientmfd_ros'
ARGUMENTS = (
    ('bag', None, 'Bag directory to play (required)'),
    ('rate', '1.0', 'Playback rate'),
    ('loop', 'false', 'Play the bag in a loop'),
    ('delay_s', '1.0', 'Seconds from the node becoming active to playback (DDS discovery of the '
                       'player; ros2 bag play --delay)'),
    ('rgb_topic', '/rgb/image_raw', 'RGB topic in the bag'),
    ('thermal_topic', '/thermal/image_raw', 'Thermal topic in the bag'),
    ('rgb_camera_info_topic', '', 'RGB camera_info topic; empty: camera_info beside rgb_topic'),
    ('input_transport', '', 'raw or compressed; empty: the YAML value'),
    ('namespace', '', 'Namespace of the node and of its relative topics'),
    ('params_file', 'config/mfd.yaml', 'Node parameters (YAML); default in the package share'),
    ('autostart', 'true', 'Configure and activate the node right after start'),
    ('log_level', 'info', 'Node log level: debug, info, warn, error, fatal'),
    ('rviz', 'false', 'Start RViz'),
    ('rviz_config', 'config/mfd.rviz', 'RViz configuration; default in the package share'),
    ('rviz_fixed_frame', '', "RViz fixed frame (the RGB images' frame_id); empty: the config's"),
)
SHARE_DEFAULTS = ('params_file', 'rviz_config')
PASSED_ON = ('rgb_topic', 'thermal_topic', 'rgb_camera_info_topic', 'input_transport',
             'namespace', 'params_file', 'autostart', 'log_level', 'rviz', 'rviz_config',
             'rviz_fixed_frame')


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    declared = [DeclareLaunchArgument(
        name, description=text,
        default_value=os.path.join(share, *default.split('/')) if name in SHARE_DEFAULTS
        else default) for name, default, text in ARGUMENTS]
    arg = {name: LaunchConfiguration(name) for name, _, _ in ARGUMENTS}
    # the lifecycle state is polled, not taken from transition_event: a node that activates
    # before launch's subscription matches would never start playback (ros/wait_active.py)
    play = [ExecutableInPackage('efficientmfd_wait_active', PACKAGE),
            ['--node-namespace=', arg['namespace']], '--node', 'efficientmfd_node', '--',
            'ros2', 'bag', 'play', arg['bag'], '--clock', '--rate', arg['rate'], '--delay',
            arg['delay_s']]
    node = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'mfd.launch.py')),
        launch_arguments={'use_sim_time': 'true',
                          **{name: arg[name] for name in PASSED_ON}}.items(),
    )
    playback = [
        ExecuteProcess(cmd=play, output='screen', condition=UnlessCondition(arg['loop'])),
        ExecuteProcess(cmd=[*play, '--loop'], output='screen', condition=IfCondition(arg['loop'])),
    ]
    return LaunchDescription([*declared, node, *playback])
