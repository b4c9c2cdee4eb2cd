"""What every lerobot_ros launch file does with a graph description, in one place: declare the
arguments, default the Fast DDS profile, and turn the graph's NodeSpecs into launch_ros Nodes.
Imported only by launch files (it needs `launch` and `launch_ros`, i.e. a ROS 2 install)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import EnvironmentVariable, LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from lerobot_ros.core.graph import NodeSpec
from lerobot_ros.core.paths import share_dir

Arguments = Mapping[str, tuple[str, str]]  # name -> (default, description)


def node_action(spec: NodeSpec) -> Node:
    return Node(
        package=spec.package,
        executable=spec.executable,
        name=spec.name,
        namespace=spec.namespace,
        parameters=[*spec.param_files, dict(spec.parameters)],
        remappings=list(spec.remappings),
        arguments=list(spec.arguments),
        prefix=spec.prefix or None,
        output="screen",
        emulate_tty=True,
    )


def graph_launch_description(
    arguments: Arguments, build: Callable[[dict[str, str]], list[NodeSpec]]
) -> LaunchDescription:
    """Declare `arguments`; at launch time call `build(argument values)` and start its nodes."""

    def nodes(context, *_, **__):
        values = {name: LaunchConfiguration(name).perform(context) for name in arguments}
        return [node_action(spec) for spec in build(values)]

    profile = str(share_dir() / "config" / "fastdds_shm.xml")
    return LaunchDescription(
        [
            *(
                DeclareLaunchArgument(name, default_value=default, description=doc)
                for name, (default, doc) in arguments.items()
            ),
            # Large images through a 16 MiB shared-memory segment, unless the user set a profile.
            SetEnvironmentVariable(
                "FASTDDS_DEFAULT_PROFILES_FILE",
                EnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", default_value=profile),
            ),
            OpaqueFunction(function=nodes),
        ]
    )
