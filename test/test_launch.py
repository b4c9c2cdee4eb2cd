"""launch/so101_teleop.launch.py through launch and launch_ros themselves: the Node actions it
produces for several argument sets match `teleop_graph`, launch_ros turns their parameters into
the files rcl reads, bad arguments stop the launch with a message naming the argument, and the
simulated graph started by `launch.LaunchService` streams joint states and images. The same
checks of launch/rollout.launch.py against `rollout_graph`, one argument set per strategy.

Skipped where launch_ros is not importable (it is on no package registry: a ROS 2 install or a
source build provides it). test_graph.py checks the same graph without launch.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("launch")
pytest.importorskip("launch_ros")

pytestmark = pytest.mark.launch

from ament_index_python.packages import (  # noqa: E402
    PackageNotFoundError,
    get_package_prefix,
)
from launch.actions import (  # noqa: E402
    DeclareLaunchArgument,
    IncludeLaunchDescription,
    OpaqueFunction,
    RegisterEventHandler,
    Shutdown,
    TimerAction,
)
from launch.event_handlers import OnProcessExit, OnProcessStart  # noqa: E402
from launch.launch_description_sources import (  # noqa: E402
    PythonLaunchDescriptionSource,
    get_launch_description_from_python_launch_file,
)
from launch.substitutions import LocalSubstitution  # noqa: E402
from launch.utilities import perform_substitutions  # noqa: E402
from launch_ros.actions import Node  # noqa: E402

from launch import LaunchContext, LaunchDescription, LaunchService  # noqa: E402
from lerobot_ros.core.graph import NodeSpec, TeleopGraphArgs, teleop_graph  # noqa: E402
from lerobot_ros.core.params import ParameterError  # noqa: E402
from lerobot_ros.core.paths import share_dir  # noqa: E402

LAUNCH_FILE = Path(__file__).resolve().parents[1] / "launch" / "so101_teleop.launch.py"
DEFAULTS = {
    "robot": "so101",
    "sim": "true",
    "cameras": "front",
    "rviz": "false",
    "params_file": "",
    "follower_port": "",
    "leader_port": "",
    "input": "leader",
    "input_device": "",
    "rqt": "false",
    "compose": "false",
}


def installed(package: str) -> bool:
    try:
        get_package_prefix(package)
    except PackageNotFoundError:
        return False
    return True


def expand(
    arguments: dict[str, str], launch_file: Path = LAUNCH_FILE
) -> tuple[LaunchContext, LaunchDescription, list[Node]]:
    """Visit the launch description like `ros2 launch ... k:=v` does, up to the Node actions,
    and let launch_ros expand their names, parameters and remappings (no process starts)."""
    ld = get_launch_description_from_python_launch_file(str(launch_file))
    context = LaunchContext()
    context.launch_configurations.update(arguments)
    todo, nodes = list(ld.entities), []
    while todo:
        entity = todo.pop(0)
        if isinstance(entity, Node):
            entity._perform_substitutions(context)  # what Node.execute does before starting
            nodes.append(entity)
        else:
            todo[:0] = list(entity.visit(context) or [])
    return context, ld, nodes


@pytest.fixture
def fastdds_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset the Fast DDS profile; the launch file's SetEnvironmentVariable writes os.environ,
    and monkeypatch puts the original value back after the test."""
    monkeypatch.delenv("FASTDDS_DEFAULT_PROFILES_FILE", raising=False)


@pytest.fixture(autouse=True)
def _launch_param_files_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """launch_ros writes each Node's parameter dict to a temporary file: keep those here."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def parameter_arguments(node: Node) -> list[tuple[str, bool]]:
    return [(str(p), is_file) for p, is_file in node._Node__expanded_parameter_arguments or []]


def cmd_text(context: LaunchContext, node: Node) -> list[str]:
    """The command line after the executable, '<ros>' for the name / namespace placeholders
    that Node.execute fills in."""
    out = []
    for part in node.cmd[1:]:
        if any(isinstance(s, LocalSubstitution) for s in part):
            out.append("<ros>")
        else:
            out.append(perform_substitutions(context, part))
    return out


class _LaunchParamsLoader(yaml.SafeLoader):
    """launch_ros evaluates list parameters to tuples and writes them with yaml.dump, i.e. as
    `!!python/tuple` sequences; ROS's own parameter parser reads those as arrays (checked with
    rclpy here), so the test reads them as lists too."""


_LaunchParamsLoader.add_constructor(
    "tag:yaml.org,2002:python/tuple", lambda loader, node: loader.construct_sequence(node)
)


def _lists(value: object) -> object:
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_lists(v) for v in value]
    return value


def check_node(context: LaunchContext, node: Node, spec: NodeSpec) -> None:
    assert (node.node_package, node.node_executable) == (spec.package, spec.executable)
    assert node.node_name == spec.fqn
    assert node.expanded_node_namespace == ("/" + spec.namespace if spec.namespace else "/")
    assert node.expanded_remapping_rules == (list(spec.remappings) or None)

    # The parameter files first, then the overrides, which launch_ros writes to a file of its
    # own keyed by the node's full name (so the overrides win, as in the runner).
    args = parameter_arguments(node)
    assert args[:-1] == [(f, True) for f in spec.param_files]
    overrides, is_file = args[-1]
    assert is_file
    written = yaml.load(Path(overrides).read_text(), Loader=_LaunchParamsLoader)
    assert written == {spec.fqn: {"ros__parameters": _lists(dict(spec.parameters))}}

    cmd = cmd_text(context, node)
    assert cmd[: len(spec.arguments)] == list(spec.arguments)
    rest = cmd[len(spec.arguments) :]
    assert rest[0] == "--ros-args"
    files = [rest[i + 1] for i, a in enumerate(rest) if a == "--params-file"]
    assert files == [f for f, _ in args]
    remaps = [rest[i + 1] for i, a in enumerate(rest) if a == "-r" and rest[i + 1] != "<ros>"]
    assert remaps == [f"{src}:={dst}" for src, dst in spec.remappings]
    if spec.package == "lerobot_ros" and installed("lerobot_ros"):
        exe = Path(perform_substitutions(context, node.cmd[0]))
        assert exe.parts[-3:] == ("lib", "lerobot_ros", spec.executable)
        assert os.access(exe, os.X_OK)


ARGUMENT_SETS = [
    {},
    {"sim": "false", "cameras": "front,wrist", "rviz": "true"},
    {"cameras": ""},
    {"cameras": "top,front", "rviz": "1", "sim": "no"},
    {"input": "keyboard", "input_device": "/dev/pts/3", "rqt": "true", "rviz": "true"},
    {"input": "gamepad", "cameras": ""},
]


@pytest.mark.parametrize(
    "arguments",
    ARGUMENT_SETS,
    ids=lambda a: " ".join(f"{k}:={v}" for k, v in a.items()) or "defaults",
)
def test_nodes_match_the_graph(arguments: dict[str, str], fastdds_env: None) -> None:
    context, _, nodes = expand(arguments)
    specs = teleop_graph(TeleopGraphArgs.from_strings({**DEFAULTS, **arguments}))
    assert [n.node_name for n in nodes] == [s.fqn for s in specs]
    for node, spec in zip(nodes, specs, strict=True):
        check_node(context, node, spec)


@pytest.mark.parametrize("launch_file", ["so101", "rollout"])
def test_compose_starts_teleop_and_watchdog_in_one_container(
    launch_file: str, fastdds_env: None
) -> None:
    """compose:=true: one `container` process for both nodes, no node-name remap (it would rename
    both), the parameter file plus each node's overrides under its own name."""
    from lerobot_ros.core.graph import RolloutGraphArgs, processes, rollout_graph

    if launch_file == "so101":
        arguments = {"compose": "true"}
        context, _, nodes = expand(arguments)
        specs = teleop_graph(TeleopGraphArgs.from_strings({**DEFAULTS, **arguments}))
    else:
        arguments = {"compose": "true", "strategy": "dagger"}
        context, _, nodes = expand(arguments, ROLLOUT_LAUNCH)
        specs = rollout_graph(RolloutGraphArgs.from_strings({**rollout_defaults(), **arguments}))
    groups = processes(specs)
    assert len(nodes) == len(groups) == len(specs) - 1
    (container,) = [n for n in nodes if n.node_executable == "container"]
    (group,) = [g for g in groups if len(g) > 1]
    assert [s.name for s in group] == ["teleop", "watchdog"]
    cmd = cmd_text(context, container)
    assert cmd[:2] == [f"{s.in_process}={s.name}" for s in group]
    assert "<ros>" not in cmd  # no __node / __ns remap
    args = parameter_arguments(container)
    assert args[:-1] == [(f, True) for f in group[0].param_files]
    written = yaml.safe_load(Path(args[-1][0]).read_text())
    assert written == {
        s.fqn: {"ros__parameters": _lists(dict(s.parameters))} for s in group if s.parameters
    }
    for node, g in zip(nodes, groups, strict=True):
        if len(g) == 1:
            check_node(context, node, g[0])


def test_params_file_argument(tmp_path: Path, fastdds_env: None) -> None:
    custom = tmp_path / "custom.yaml"
    custom.write_text("/cameras/*:\n  ros__parameters:\n    fps: 15.0\n")
    context, _, nodes = expand({"params_file": str(custom)})
    specs = teleop_graph(TeleopGraphArgs(params_file=str(custom)))
    for node, spec in zip(nodes, specs, strict=True):
        check_node(context, node, spec)
    ours = [n for n in nodes if n.node_package == "lerobot_ros"]
    assert ours and all(parameter_arguments(n)[0] == (str(custom), True) for n in ours)


def test_robot_description_survives_launch_ros_parameter_evaluation(fastdds_env: None) -> None:
    """The URDF text goes through launch_ros' YAML round trip as one string."""
    _, _, nodes = expand({})
    (rsp,) = [n for n in nodes if n.node_package == "robot_state_publisher"]
    overrides = parameter_arguments(rsp)[-1][0]
    data = yaml.safe_load(Path(overrides).read_text())
    urdf = data["/robot_state_publisher"]["ros__parameters"]["robot_description"]
    assert urdf == (share_dir() / "urdf" / "so101.urdf").read_text()


def test_declared_arguments_are_the_graph_arguments(fastdds_env: None) -> None:
    ld = get_launch_description_from_python_launch_file(str(LAUNCH_FILE))
    declared = ld.get_launch_arguments()
    assert all(isinstance(a, DeclareLaunchArgument) for a in declared)
    assert {a.name for a in declared} == set(DEFAULTS)
    context = LaunchContext()
    defaults = {a.name: perform_substitutions(context, a.default_value) for a in declared}
    assert defaults == DEFAULTS
    assert TeleopGraphArgs.from_strings(defaults) == TeleopGraphArgs()
    assert all(a.description.strip() for a in declared)


def test_fastdds_profile_defaults_to_the_shipped_one(
    fastdds_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    expand({})
    profile = os.environ["FASTDDS_DEFAULT_PROFILES_FILE"]
    assert profile == str(share_dir() / "config" / "fastdds_shm.xml")
    assert Path(profile).is_file()
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", "/etc/mine.xml")
    expand({})
    assert os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] == "/etc/mine.xml"


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("sim", "maybe", ["true or false"]),
        ("rviz", "yes please", ["true or false"]),
        ("robot", "ur5", ["so101", "koch"]),
        ("cameras", "front,wr-ist", ["'wr-ist'"]),
        ("params_file", "/nonexistent/params.yaml", ["does not exist"]),
    ],
)
def test_bad_argument_names_argument_and_value(
    name: str, value: str, words: list[str], fastdds_env: None
) -> None:
    with pytest.raises(ParameterError) as info:
        expand({name: value})
    assert (info.value.name, info.value.value) == (name, value)
    text = str(info.value)
    assert f"parameter '{name}' = {value!r}" in text
    for word in words:
        assert word in text


def test_bad_argument_fails_the_launch_before_any_process(fastdds_env: None) -> None:
    started: list[Any] = []
    service = LaunchService()
    service.include_launch_description(
        LaunchDescription(
            [
                RegisterEventHandler(OnProcessStart(on_start=lambda ev, ctx: started.append(ev))),
                IncludeLaunchDescription(
                    PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
                    launch_arguments=[("sim", "maybe")],
                ),
            ]
        )
    )
    assert service.run() != 0
    assert started == []


# --- the simulated graph, started by launch ---------------------------------------------------


def installed_nodes_only(opaque: OpaqueFunction) -> OpaqueFunction:
    """The launch file's OpaqueFunction, less Node actions of packages not installed here."""
    return OpaqueFunction(
        function=lambda ctx: [n for n in opaque.execute(ctx) or [] if installed(n.node_package)]
    )


@pytest.mark.ros
def test_launched_sim_graph_streams(domain_id: int, fastdds_env: None) -> None:
    """`ros2 launch lerobot_ros so101_teleop.launch.py` as launch.LaunchService runs it, less
    the nodes of packages that are not installed (robot_state_publisher on a pip-only setup):
    joint states and images flow, and no node dies before the shutdown."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image, JointState

    from lerobot_ros.nodes import qos

    ld = get_launch_description_from_python_launch_file(str(LAUNCH_FILE))
    entities = [
        installed_nodes_only(e) if isinstance(e, OpaqueFunction) else e for e in ld.entities
    ]

    context = Context()
    rclpy.init(context=context, domain_id=domain_id)
    probe = rclpy.create_node("launch_probe", context=context)
    counts = {"/follower/joint_states": 0, "/cameras/front/image_raw": 0}
    last: dict[str, Any] = {}

    def count(topic: str):
        def on_msg(msg: Any) -> None:
            counts[topic] += 1
            last[topic] = msg

        return on_msg

    probe.create_subscription(
        JointState, "/follower/joint_states", count("/follower/joint_states"), qos.SENSOR
    )
    probe.create_subscription(
        Image, "/cameras/front/image_raw", count("/cameras/front/image_raw"), qos.SENSOR
    )
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()

    started, exits, shutdown_at = [], [], []
    deadline = time.monotonic() + 60.0

    def poll(ctx: LaunchContext) -> list[Any]:
        enough = (
            counts["/follower/joint_states"] >= 200 and counts["/cameras/front/image_raw"] >= 30
        )
        if enough or time.monotonic() > deadline or exits:
            shutdown_at.append(time.monotonic())
            return [Shutdown(reason="test done")]
        return [TimerAction(period=0.5, actions=[OpaqueFunction(function=poll)])]

    service = LaunchService()
    service.include_launch_description(
        LaunchDescription(
            [
                RegisterEventHandler(
                    OnProcessStart(on_start=lambda ev, ctx: started.append(ev.action.name))
                ),
                RegisterEventHandler(
                    OnProcessExit(
                        on_exit=lambda ev, ctx: (
                            None if shutdown_at else exits.append((ev.action.name, ev.returncode))
                        )
                    )
                ),
                *entities,
                TimerAction(period=0.5, actions=[OpaqueFunction(function=poll)]),
            ]
        )
    )
    try:
        rc = service.run()
    finally:
        executor.shutdown(timeout_sec=2.0)
        probe.destroy_node()
        rclpy.try_shutdown(context=context)
        spinner.join(timeout=5.0)

    report = f"rc={rc} started={started} died={exits} counts={counts}"
    assert rc == 0, report
    expected = [s.executable for s in teleop_graph(TeleopGraphArgs()) if installed(s.package)]
    assert sorted(name.rsplit("-", 1)[0] for name in started) == sorted(expected), report
    assert exits == [], f"died before the shutdown: {report}"
    assert counts["/follower/joint_states"] >= 200, report
    assert counts["/cameras/front/image_raw"] >= 30, report
    image = last["/cameras/front/image_raw"]
    assert (image.width, image.height, image.header.frame_id) == (640, 480, "front_optical_frame")
    assert list(last["/follower/joint_states"].name) == [
        "shoulder_pan",
        "shoulder_lift",
        "elbow_flex",
        "wrist_flex",
        "wrist_roll",
        "gripper",
    ]


# --- rollout.launch.py: the same checks against rollout_graph ---------------------------------

ROLLOUT_LAUNCH = LAUNCH_FILE.parent / "rollout.launch.py"
ROLLOUT_SETS = [
    {"policy": "/ckpt"},
    {"policy": "/ckpt", "strategy": "sentry", "output_dir": "/tmp/bags", "inference": "sync"},
    {"policy": "me/act", "strategy": "highlight", "highlight_s": "30", "task": "sort"},
    {"policy": "/ckpt", "strategy": "dagger", "task": "pick it", "cameras": "front,wrist"},
    {"policy": "/ckpt", "strategy": "dagger", "sim": "false", "rviz": "true"},
]


def rollout_defaults() -> dict[str, str]:
    """The declared arguments' defaults, as `ros2 launch` passes them when none is given."""
    ld = get_launch_description_from_python_launch_file(str(ROLLOUT_LAUNCH))
    context = LaunchContext()
    return {
        a.name: perform_substitutions(context, a.default_value) for a in ld.get_launch_arguments()
    }


@pytest.mark.parametrize(
    "arguments",
    ROLLOUT_SETS,
    ids=lambda a: " ".join(f"{k}:={v}" for k, v in a.items()),
)
def test_rollout_nodes_match_the_graph(arguments: dict[str, str], fastdds_env: None) -> None:
    from lerobot_ros.core.graph import RolloutGraphArgs, rollout_graph

    context, _, nodes = expand(arguments, ROLLOUT_LAUNCH)
    specs = rollout_graph(RolloutGraphArgs.from_strings({**rollout_defaults(), **arguments}))
    assert [n.node_name for n in nodes] == [s.fqn for s in specs]
    assert nodes[-1].node_name == "/rollout"
    for node, spec in zip(nodes, specs, strict=True):
        check_node(context, node, spec)


def test_rollout_declared_arguments_are_the_graph_arguments(fastdds_env: None) -> None:
    from lerobot_ros.core.graph import RolloutGraphArgs

    ld = get_launch_description_from_python_launch_file(str(ROLLOUT_LAUNCH))
    declared = ld.get_launch_arguments()
    assert all(isinstance(a, DeclareLaunchArgument) and a.description.strip() for a in declared)
    names = {a.name for a in declared}
    assert {"strategy", "policy", "sim", "inference", "task", "output_dir"} <= names
    assert RolloutGraphArgs.from_strings(rollout_defaults()) == RolloutGraphArgs()


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("strategy", "yolo", ["base", "dagger", "highlight", "sentry"]),
        ("inference", "async", ["rtc", "sync"]),
        ("highlight_s", "-1", ["> 0"]),
    ],
)
def test_rollout_bad_argument_names_argument_and_value(
    name: str, value: str, words: list[str], fastdds_env: None
) -> None:
    with pytest.raises(ParameterError) as info:
        expand({name: value}, ROLLOUT_LAUNCH)
    assert (info.value.name, info.value.value) == (name, value)
    assert all(word in str(info.value) for word in words)
