"""SO-101 teleoperation: leader -> teleop -> safety watchdog -> follower, cameras,
robot_state_publisher and (optionally) RViz.

    ros2 launch lerobot_ros so101_teleop.launch.py                  # simulated arm and camera
    ros2 launch lerobot_ros so101_teleop.launch.py sim:=false cameras:=front,wrist rviz:=true

The nodes come from lerobot_ros.core.graph, the same description that lerobot_ros.runner uses
in one process, so this file and the runner cannot drift apart.
"""

from launch import LaunchDescription
from lerobot_ros.core.graph import TeleopGraphArgs, teleop_graph
from lerobot_ros.launch_support import graph_launch_description

ARGUMENTS = {
    "robot": ("so101", "Robot model: a name in the robot registry."),
    "sim": ("true", "true: MuJoCo arm, scripted leader and rendered cameras; false: hardware."),
    "cameras": ("front", "Comma-separated camera names, each a node /cameras/<name>."),
    "rviz": ("false", "Start RViz with config/<robot>.rviz."),
    "params_file": ("", "Parameter YAML for every node; empty = config/<robot>.yaml."),
    "follower_port": ("", "Hardware: follower serial port; empty = the parameter file's."),
    "leader_port": ("", "Hardware: leader serial port; empty = the parameter file's."),
}


def generate_launch_description() -> LaunchDescription:
    return graph_launch_description(
        ARGUMENTS, lambda values: teleop_graph(TeleopGraphArgs.from_strings(values))
    )
