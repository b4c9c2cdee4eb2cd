"""SO-101 teleoperation: leader -> teleop -> safety watchdog -> follower, cameras,
robot_state_publisher and (optionally) RViz.

    ros2 launch lerobot_ros so101_teleop.launch.py                  # simulated arm and camera
    ros2 launch lerobot_ros so101_teleop.launch.py sim:=false cameras:=front,wrist rviz:=true

The nodes come from lerobot_ros.core.graph, the same description that lerobot_ros.runner uses
in one process, so this file and the runner cannot drift apart.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import EnvironmentVariable, LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from lerobot_ros.core.graph import TeleopGraphArgs, teleop_graph
from lerobot_ros.core.paths import share_dir

ARGUMENTS = {
    "robot": ("so101", "Robot model: a name in the robot registry."),
    "sim": ("true", "true: MuJoCo arm, scripted leader and rendered cameras; false: hardware."),
    "cameras": ("front", "Comma-separated camera names, each a node /cameras/<name>."),
    "rviz": ("false", "Start RViz with config/<robot>.rviz."),
    "params_file": ("", "Parameter YAML for every node; empty = config/<robot>.yaml."),
    "follower_port": ("", "Hardware: follower serial port; empty = the parameter file's."),
    "leader_port": ("", "Hardware: leader serial port; empty = the parameter file's."),
}


def _nodes(context, *_, **__):
    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    graph = teleop_graph(TeleopGraphArgs.from_strings(values))
    return [
        Node(
            package=spec.package,
            executable=spec.executable,
            name=spec.name,
            namespace=spec.namespace,
            parameters=[*spec.param_files, dict(spec.parameters)],
            remappings=list(spec.remappings),
            arguments=list(spec.arguments),
            output="screen",
            emulate_tty=True,
        )
        for spec in graph
    ]


def generate_launch_description() -> LaunchDescription:
    profile = str(share_dir() / "config" / "fastdds_shm.xml")
    return LaunchDescription(
        [
            *(
                DeclareLaunchArgument(name, default_value=default, description=doc)
                for name, (default, doc) in ARGUMENTS.items()
            ),
            # Large images through a 16 MiB shared-memory segment, unless the user set a profile.
            SetEnvironmentVariable(
                "FASTDDS_DEFAULT_PROFILES_FILE",
                EnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", default_value=profile),
            ),
            OpaqueFunction(function=_nodes),
        ]
    )
