"""SO-101 teleoperation + recording: the so101_teleop.launch.py graph plus /recorder, which
writes one rosbag2 bag per episode under <output_dir>/<session stamp>/episode_<NNNNNN>/.

    ros2 launch lerobot_ros record.launch.py output_dir:=~/bags
    ros2 service call /recorder/start_episode lerobot_msgs/srv/StartEpisode "{task: 'pick it'}"
    ros2 service call /recorder/stop_episode lerobot_msgs/srv/StopEpisode       # save
    ros2 service call /recorder/discard_episode lerobot_msgs/srv/DiscardEpisode # re-record

The nodes come from lerobot_ros.core.graph.record_graph, the same description that
lerobot_ros.runner uses in one process, so this file and the runner cannot drift apart.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import EnvironmentVariable, LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from lerobot_ros.core.graph import RecordGraphArgs, record_graph
from lerobot_ros.core.paths import share_dir

ARGUMENTS = {
    "robot": ("so101", "Robot model: a name in the robot registry."),
    "sim": ("true", "true: MuJoCo arm, scripted leader and rendered cameras; false: hardware."),
    "cameras": ("front", "Comma-separated camera names, each a node /cameras/<name>; recorded."),
    "rviz": ("false", "Start RViz with config/<robot>.rviz."),
    "params_file": ("", "Parameter YAML for every node; empty = config/<robot>.yaml."),
    "follower_port": ("", "Hardware: follower serial port; empty = the parameter file's."),
    "leader_port": ("", "Hardware: leader serial port; empty = the parameter file's."),
    "output_dir": ("", "Where the bags go; empty = the parameter file's recorder.output_dir."),
}


def _nodes(context, *_, **__):
    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    graph = record_graph(RecordGraphArgs.from_strings(values))
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
