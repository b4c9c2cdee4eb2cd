"""SO-101 teleoperation: leader -> teleop -> safety watchdog -> follower (or keyboard / gamepad ->
end-effector teleop -> watchdog -> follower), cameras, robot_state_publisher and (optionally)
RViz and rqt with the visualizer (end-effector poses, watchdog text).

    ros2 launch lerobot_ros so101_teleop.launch.py                  # simulated arm and camera
    ros2 launch lerobot_ros so101_teleop.launch.py sim:=false cameras:=front,wrist rviz:=true
    ros2 launch lerobot_ros so101_teleop.launch.py input:=keyboard rviz:=true rqt:=true
    ros2 launch lerobot_ros so101_teleop.launch.py input:=gamepad input_device:=/dev/input/js1

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
    "input": (
        "leader",
        "Who drives the follower: leader (the leader arm), keyboard or gamepad (end-effector "
        "teleop through IK; the watchdog's active source becomes ee_teleop).",
    ),
    "input_device": (
        "",
        "keyboard: a terminal's tty (e.g. /dev/pts/3; empty = a new xterm); gamepad: the "
        "joystick device (empty = /dev/input/js0).",
    ),
    "rqt": ("false", "Start rqt with config/so101.perspective (monitor, plots, e-stop)."),
    "compose": (
        "false",
        "true: the teleop runs in the watchdog's process (one DDS transfer less from leader to "
        "follower; a crash takes both down).",
    ),
}


def generate_launch_description() -> LaunchDescription:
    return graph_launch_description(
        ARGUMENTS, lambda values: teleop_graph(TeleopGraphArgs.from_strings(values))
    )
