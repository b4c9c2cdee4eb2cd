"""SO-101 teleoperation + recording: the so101_teleop.launch.py graph plus /recorder, which
writes one rosbag2 bag per episode under <output_dir>/<session stamp>/episode_<NNNNNN>/.

    ros2 launch lerobot_ros record.launch.py output_dir:=~/bags
    ros2 service call /recorder/start_episode lerobot_msgs/srv/StartEpisode "{task: 'pick it'}"
    ros2 service call /recorder/stop_episode lerobot_msgs/srv/StopEpisode       # save
    ros2 service call /recorder/discard_episode lerobot_msgs/srv/DiscardEpisode # re-record

The nodes come from lerobot_ros.core.graph.record_graph, the same description that
lerobot_ros.runner uses in one process, so this file and the runner cannot drift apart.
"""

from launch import LaunchDescription
from lerobot_ros.core.graph import RecordGraphArgs, record_graph
from lerobot_ros.launch_support import graph_launch_description

ARGUMENTS = {
    "robot": ("so101", "Robot model: a name in the robot registry."),
    "sim": ("true", "true: MuJoCo arm, scripted leader and rendered cameras; false: hardware."),
    "cameras": ("front", "Comma-separated camera names, each a node /cameras/<name>; recorded."),
    "rviz": ("false", "Start RViz with config/<robot>.rviz."),
    "params_file": ("", "Parameter YAML for every node; empty = config/<robot>.yaml."),
    "follower_port": ("", "Hardware: follower serial port; empty = the parameter file's."),
    "leader_port": ("", "Hardware: leader serial port; empty = the parameter file's."),
    "output_dir": ("", "Where the bags go; empty = the parameter file's recorder.output_dir."),
    "input": ("leader", "Who drives the follower: leader, keyboard or gamepad (end-effector)."),
    "input_device": ("", "keyboard: a tty (empty = a new xterm); gamepad: a joystick device."),
    "rqt": ("false", "Start rqt with config/so101.perspective (monitor, plots, e-stop)."),
    "compose": (
        "false",
        "true: the teleop runs in the watchdog's process (one DDS transfer less from leader to "
        "follower; a crash takes both down).",
    ),
}


def generate_launch_description() -> LaunchDescription:
    return graph_launch_description(
        ARGUMENTS, lambda values: record_graph(RecordGraphArgs.from_strings(values))
    )
