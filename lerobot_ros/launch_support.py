"""What every lerobot_ros launch file does with a graph description, in one place: declare the
arguments, default the Fast DDS profile, and turn the graph's NodeSpecs into launch_ros Nodes.
Imported only by launch files (it needs `launch` and `launch_ros`, i.e. a ROS 2 install)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import yaml
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import EnvironmentVariable, LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from lerobot_ros.core.graph import NodeSpec, processes
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


def container_action(group: list[NodeSpec]) -> Node:
    """One process for composed nodes: the `container` executable with each node's class and
    name. No `name=` (it would rename every node in the process); parameter files apply per
    node name, and each node's overrides go into a generated file under its own name, since a
    dict given to launch_ros would apply to all of them."""
    files = list(dict.fromkeys(f for spec in group for f in spec.param_files))
    overrides = {
        spec.fqn: {"ros__parameters": _plain(dict(spec.parameters))}
        for spec in group
        if spec.parameters
    }
    if overrides:
        with tempfile.NamedTemporaryFile(
            "w", prefix="lerobot_ros_overrides_", suffix=".yaml", delete=False
        ) as f:
            yaml.safe_dump(overrides, f)
        files.append(f.name)
    return Node(
        package=group[0].package,
        executable="container",
        namespace=group[0].namespace or None,  # '' would still add a __ns remap
        parameters=files,
        arguments=[f"{spec.in_process}={spec.name}" for spec in group],
        output="screen",
        emulate_tty=True,
    )


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively: what yaml.safe_dump and ROS parameter files take."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def process_actions(specs: list[NodeSpec]) -> list[Node]:
    """A launch_ros Node per process of the graph (a composed group is one container)."""
    return [
        node_action(group[0]) if len(group) == 1 else container_action(group)
        for group in processes(specs)
    ]


def graph_launch_description(
    arguments: Arguments, build: Callable[[dict[str, str]], list[NodeSpec]]
) -> LaunchDescription:
    """Declare `arguments`; at launch time call `build(argument values)` and start its nodes."""

    def nodes(context, *_, **__):
        values = {name: LaunchConfiguration(name).perform(context) for name in arguments}
        return process_actions(build(values))

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
