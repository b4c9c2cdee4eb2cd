"""The node graph as data (lerobot_ros.core.graph), without `launch`: argument parsing, the node
set, parameter-file matching, config/so101.yaml against the nodes' declared parameters, and that
the launch file and the in-process runner both build on `teleop_graph`.

test_launch.py checks the same graph through launch_ros where that is installed.
"""

from __future__ import annotations

import ast
import contextlib
import re
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from lerobot_ros.core.graph import (
    PACKAGE,
    NodeSpec,
    RecordGraphArgs,
    TeleopGraphArgs,
    expert_record_graph,
    teleop_graph,
    yaml_parameters,
)
from lerobot_ros.core.params import ParameterError, ParamSpec, validate
from lerobot_ros.core.paths import resolve
from lerobot_ros.core.robots import get_robot

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = ROOT / "launch" / "so101_teleop.launch.py"
CONFIG = ROOT / "config" / "so101.yaml"
ARG_NAMES = {f.name for f in fields(TeleopGraphArgs)}
# The strings `ros2 launch` passes when no argument is given (the launch file's defaults).
LAUNCH_DEFAULTS = {"robot": "so101", "sim": "true", "cameras": "front", "rviz": "false"}


def by_name(specs: list[NodeSpec]) -> dict[str, NodeSpec]:
    return {s.fqn: s for s in specs}


# --- TeleopGraphArgs.from_strings ------------------------------------------------------------


def test_from_strings_defaults_match_the_dataclass() -> None:
    assert TeleopGraphArgs.from_strings({}) == TeleopGraphArgs()
    assert TeleopGraphArgs.from_strings({**LAUNCH_DEFAULTS, "params_file": ""}) == (
        TeleopGraphArgs()
    )


def test_from_strings_parses_hardware_cameras_and_rviz() -> None:
    args = TeleopGraphArgs.from_strings(
        {"sim": "false", "cameras": " front , wrist,, ", "rviz": "true", "params_file": "x.yaml"}
    )
    assert args == TeleopGraphArgs(
        robot="so101", sim=False, cameras=("front", "wrist"), rviz=True, params_file="x.yaml"
    )
    assert TeleopGraphArgs.from_strings({"cameras": ""}).cameras == ()
    assert TeleopGraphArgs.from_strings({"cameras": "top_2"}).cameras == ("top_2",)


@pytest.mark.parametrize("text", ["true", "True", "TRUE", "1", "yes", "on", " true "])
def test_true_flags(text: str) -> None:
    args = TeleopGraphArgs.from_strings({"sim": text, "rviz": text})
    assert args.sim is True and args.rviz is True


@pytest.mark.parametrize("text", ["false", "False", "0", "no", "off", " off "])
def test_false_flags(text: str) -> None:
    args = TeleopGraphArgs.from_strings({"sim": text, "rviz": text})
    assert args.sim is False and args.rviz is False


@pytest.mark.parametrize(
    ("values", "name", "value", "words"),
    [
        ({"sim": "maybe"}, "sim", "maybe", ["true or false"]),
        ({"rviz": ""}, "rviz", "", ["true or false"]),
        ({"robot": "ur5"}, "robot", "ur5", ["so101", "koch"]),
        ({"cameras": "front,wr-ist"}, "cameras", "front,wr-ist", ["'wr-ist'", "ROS name"]),
        ({"cameras": "front/x"}, "cameras", "front/x", ["'front/x'"]),
        ({"gui": "true"}, "gui", "true", ["unknown argument", "sim", "cameras"]),
    ],
)
def test_from_strings_errors_name_the_argument_and_value(
    values: dict[str, str], name: str, value: str, words: list[str]
) -> None:
    with pytest.raises(ParameterError) as info:
        TeleopGraphArgs.from_strings(values)
    err = info.value
    assert (err.name, err.value) == (name, value)
    text = str(err)
    assert f"'{name}'" in text and repr(value) in text
    for word in words:
        assert word in text


@pytest.mark.parametrize("cams", ["1cam", "front,front", "kamera_\u00e4"])
def test_from_strings_rejects_invalid_or_duplicate_camera_names(cams: str) -> None:
    with pytest.raises(ParameterError) as info:
        TeleopGraphArgs.from_strings({"cameras": cams})
    assert info.value.name == "cameras"


# --- teleop_graph ------------------------------------------------------------------------------


def test_sim_graph_nodes() -> None:
    specs = teleop_graph(TeleopGraphArgs())
    params = str(resolve("config/so101.yaml"))
    assert Path(params).is_file()
    assert [s.fqn for s in specs] == [
        "/follower",
        "/leader",
        "/teleop",
        "/watchdog",
        "/cameras/front",
        "/robot_state_publisher",
    ]
    nodes = by_name(specs)
    for fqn, executable, cls in [
        ("/follower", "follower", "lerobot_ros.nodes.arm:FollowerNode"),
        ("/leader", "leader", "lerobot_ros.nodes.arm:LeaderNode"),
        ("/teleop", "teleop", "lerobot_ros.nodes.teleop:TeleopNode"),
        ("/watchdog", "watchdog", "lerobot_ros.nodes.watchdog:WatchdogNode"),
        ("/cameras/front", "camera", "lerobot_ros.nodes.camera:CameraNode"),
    ]:
        s = nodes[fqn]
        assert (s.package, s.executable, s.in_process) == (PACKAGE, executable, cls)
        assert s.param_files == (params,)
        assert s.remappings == () and s.arguments == ()
    assert dict(nodes["/follower"].parameters) == {"robot": "so101", "backend": "sim"}
    assert dict(nodes["/leader"].parameters) == {"robot": "so101", "backend": "sim"}
    assert dict(nodes["/teleop"].parameters) == {}
    assert dict(nodes["/watchdog"].parameters) == {"robot": "so101"}
    cam = nodes["/cameras/front"]
    assert (cam.name, cam.namespace) == ("front", "cameras")
    assert dict(cam.parameters) == {"backend": "sim", "camera_name": "front"}

    rsp = nodes["/robot_state_publisher"]
    assert (rsp.package, rsp.executable, rsp.in_process) == (
        "robot_state_publisher",
        "robot_state_publisher",
        None,
    )
    assert rsp.param_files == ()
    assert rsp.parameters["robot_description"] == get_robot("so101").urdf_path().read_text()
    assert rsp.remappings == (("joint_states", "/follower/joint_states"),)


def test_hardware_graph_uses_the_robots_backends() -> None:
    robot = get_robot("so101")
    nodes = by_name(teleop_graph(TeleopGraphArgs(sim=False, cameras=("front", "wrist"))))
    assert nodes["/follower"].parameters["backend"] == robot.hardware_backend
    assert nodes["/leader"].parameters["backend"] == robot.hardware_backend
    for cam in ("front", "wrist"):
        assert dict(nodes[f"/cameras/{cam}"].parameters) == {
            "backend": "opencv",
            "camera_name": cam,
        }
    assert "/rviz2" not in nodes


def test_camera_list_sets_the_camera_nodes() -> None:
    assert not [s for s in teleop_graph(TeleopGraphArgs(cameras=())) if s.namespace == "cameras"]
    specs = teleop_graph(TeleopGraphArgs(cameras=("wrist", "top", "front")))
    assert [s.fqn for s in specs if s.executable == "camera"] == [
        "/cameras/wrist",
        "/cameras/top",
        "/cameras/front",
    ]


def test_rviz_node_only_with_rviz(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # resolve() falls back to the cwd when the install lacks a file
    assert all(s.package != "rviz2" for s in teleop_graph(TeleopGraphArgs()))
    rviz = teleop_graph(TeleopGraphArgs(rviz=True))[-1]
    assert (rviz.package, rviz.executable, rviz.name, rviz.in_process) == (
        "rviz2",
        "rviz2",
        "rviz2",
        None,
    )
    assert rviz.arguments[0] == "-d"
    config = Path(rviz.arguments[1])
    assert config.is_absolute() and config.parts[-2:] == ("config", "so101.rviz")
    assert (ROOT / "config" / "so101.rviz").is_file()  # installed by setup.py's config/*


@pytest.mark.parametrize("device", ["", "/dev/pts/7"])
@pytest.mark.parametrize("source", ["keyboard", "gamepad"])
def test_ee_input_replaces_leader_and_teleop_with_ee_teleop(source: str, device: str) -> None:
    args = TeleopGraphArgs.from_strings({"input": source, "input_device": device})
    assert (args.input, args.input_device) == (source, device)
    nodes = by_name(teleop_graph(args))
    assert list(nodes) == ["/follower", "/ee_teleop", "/watchdog", "/cameras/front",
                           "/robot_state_publisher"]  # fmt: skip
    ee = nodes["/ee_teleop"]
    assert (ee.executable, ee.in_process) == (
        "ee_teleop",
        "lerobot_ros.nodes.ee_teleop:EeTeleopNode",
    )
    assert dict(ee.parameters) == {
        "robot": "so101",
        "input": source,
        **({"device": device} if device else {}),
    }
    # ros2 launch gives a node no terminal: a keyboard without a device gets an xterm.
    assert ee.prefix == ("xterm -e" if source == "keyboard" and not device else "")
    assert nodes["/watchdog"].parameters["active_source"] == "ee_teleop"
    assert "leader" not in teleop_graph(replace(args, rviz=True))[-2].parameters["arms"]


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ParameterError) as info:
        TeleopGraphArgs.from_strings({"input": "joystick"})
    assert info.value.name == "input" and "['leader', 'gamepad', 'keyboard']" in str(info.value)


def test_visualizer_and_rqt_only_with_rviz_or_rqt() -> None:
    assert "/visualizer" not in by_name(teleop_graph(TeleopGraphArgs()))
    nodes = by_name(teleop_graph(TeleopGraphArgs.from_strings({"rqt": "true"})))
    vis = nodes["/visualizer"]
    assert dict(vis.parameters) == {"robot": "so101", "arms": ["follower", "leader"]}
    assert vis.in_process == "lerobot_ros.nodes.visualizer:VisualizerNode"
    rqt = nodes["/rqt"]
    assert (rqt.package, rqt.executable, rqt.in_process) == ("rqt_gui", "rqt_gui", None)
    assert rqt.arguments[0] == "--perspective-file"
    assert Path(rqt.arguments[1]).parts[-2:] == ("config", "so101.perspective")
    assert rqt.remappings == (("/diagnostics_agg", "/diagnostics"),)
    koch = by_name(teleop_graph(TeleopGraphArgs(robot="koch", rviz=True)))
    assert Path(koch["/rviz2"].arguments[1]).name == "koch.rviz"


def test_params_file_argument(tmp_path: Path) -> None:
    custom = tmp_path / "mine.yaml"
    custom.write_text("/**:\n  ros__parameters: {}\n")
    specs = teleop_graph(TeleopGraphArgs(params_file=str(custom)))
    assert {s.param_files for s in specs if s.in_process} == {(str(custom),)}
    with pytest.raises(ParameterError) as info:
        teleop_graph(TeleopGraphArgs(params_file=str(tmp_path / "missing.yaml")))
    assert info.value.name == "params_file"
    assert "missing.yaml" in str(info.value)


def test_node_spec_fqn() -> None:
    assert NodeSpec("a", "a").fqn == "/a"
    assert NodeSpec("front", "camera", namespace="cameras").fqn == "/cameras/front"
    assert NodeSpec("front", "camera", namespace="/robot/cameras/").fqn == "/robot/cameras/front"


# --- yaml_parameters: the rules rcl applies to a parameter file --------------------------------


def section(**params: Any) -> dict[str, Any]:
    return {"ros__parameters": params}


def test_yaml_wildcard_for_every_node() -> None:
    data = {"/**": section(use_sim_time=True)}
    for fqn in ("/follower", "/cameras/front", "/a/b/c"):
        assert yaml_parameters(data, fqn) == {"use_sim_time": True}


def test_yaml_bare_name_is_the_node_in_the_root_namespace() -> None:
    data = {"follower": section(rate=50.0)}
    assert yaml_parameters(data, "/follower") == {"rate": 50.0}
    assert yaml_parameters(data, "/cameras/follower") == {}
    assert yaml_parameters(data, "/leader") == {}
    assert yaml_parameters({"/follower": section(rate=50.0)}, "/follower") == {"rate": 50.0}


def test_yaml_single_star_matches_one_token() -> None:
    data = {"/cameras/*": section(fps=15.0)}
    assert yaml_parameters(data, "/cameras/front") == {"fps": 15.0}
    assert yaml_parameters(data, "/cameras/wrist") == {"fps": 15.0}
    assert yaml_parameters(data, "/follower") == {}
    assert yaml_parameters(data, "/cameras") == {}
    assert yaml_parameters(data, "/cameras/a/b") == {}
    assert yaml_parameters({"/*/front": section(fps=1.0)}, "/cameras/front") == {"fps": 1.0}


def test_yaml_double_star_matches_any_number_of_tokens() -> None:
    data = {"/cameras/**": section(fps=15.0)}
    assert yaml_parameters(data, "/cameras/front") == {"fps": 15.0}
    assert yaml_parameters(data, "/cameras/a/b") == {"fps": 15.0}
    assert yaml_parameters(data, "/follower") == {}
    assert yaml_parameters({"/**/front": section(fps=2.0)}, "/cameras/front") == {"fps": 2.0}


def test_yaml_later_sections_override_earlier_ones() -> None:
    # rcl applies the sections in file order (checked against a launched graph): a specific
    # section before a wildcard one loses to it.
    data = {
        "/cameras/wrist": section(fps=5.0, width=160),
        "/cameras/*": section(fps=10.0, width=320),
        "/cameras/front": section(fps=15.0),
    }
    assert yaml_parameters(data, "/cameras/front") == {"fps": 15.0, "width": 320}
    assert yaml_parameters(data, "/cameras/wrist") == {"fps": 10.0, "width": 320}


def test_yaml_nested_dicts_become_dotted_names() -> None:
    data = {"/follower": section(gains={"p": 1.0, "pid": {"i": 0.1, "d": [0.0, 1.0]}}, rate=2.0)}
    assert yaml_parameters(data, "/follower") == {
        "gains.p": 1.0,
        "gains.pid.i": 0.1,
        "gains.pid.d": [0.0, 1.0],
        "rate": 2.0,
    }


def test_yaml_ignores_other_sections_and_keys() -> None:
    data = {"/follower": {"not_ros_parameters": {"a": 1}}, "comment": "text", "/leader": None}
    assert yaml_parameters(data, "/follower") == {}
    assert yaml_parameters(data, "/leader") == {}
    assert yaml_parameters({}, "/follower") == {}


# --- config/so101.yaml against what each node declares -----------------------------------------


def node_param_specs() -> dict[str, list[ParamSpec]]:
    """Declared parameters per executable (the node modules import rclpy)."""
    pytest.importorskip("rclpy")
    from lerobot_ros.nodes.arm import arm_params
    from lerobot_ros.nodes.camera import CAMERA_PARAMS
    from lerobot_ros.nodes.ee_teleop import EE_TELEOP_PARAMS
    from lerobot_ros.nodes.sim_expert import EXPERT_PARAMS
    from lerobot_ros.nodes.teleop import TELEOP_PARAMS
    from lerobot_ros.nodes.visualizer import VISUALIZER_PARAMS
    from lerobot_ros.nodes.watchdog import WATCHDOG_PARAMS

    return {
        "follower": arm_params("follower"),
        "leader": arm_params("leader"),
        "teleop": list(TELEOP_PARAMS),
        "watchdog": list(WATCHDOG_PARAMS),
        "camera": list(CAMERA_PARAMS),
        "ee_teleop": list(EE_TELEOP_PARAMS),
        "visualizer": list(VISUALIZER_PARAMS),
        "sim_expert": list(EXPERT_PARAMS),
    }


def our_nodes() -> list[NodeSpec]:
    """Every lerobot_ros node of the graph, hardware variant included (same parameter names)."""
    specs = teleop_graph(TeleopGraphArgs(cameras=("front", "wrist", "top")))
    specs += teleop_graph(TeleopGraphArgs(sim=False, cameras=("front",)))
    # End-effector teleop and the visualizer (rviz / rqt).
    specs += teleop_graph(TeleopGraphArgs(input="gamepad", cameras=(), rviz=True))
    # The scripted expert of the closed loop in simulation (a watchdog source).
    specs += [s for s in expert_record_graph(RecordGraphArgs(cameras=())) if s.name == "expert"]
    return [s for s in specs if s.in_process]


def ros_type(value: Any) -> str | None:
    """The ROS parameter type that rcl gives a YAML value (None: an empty list, untyped)."""
    for t, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str")):
        if isinstance(value, t):
            return name
    if isinstance(value, list) and value:
        types = {ros_type(v) for v in value}
        return f"{types.pop()}[]" if len(types) == 1 else "mixed[]"
    return None


def commented_keys(text: str) -> dict[str, Any]:
    """`# name: value` lines: parameters documented but left out of the file."""
    out: dict[str, Any] = {}
    for m in re.finditer(r"^\s*#\s*([A-Za-z_][A-Za-z0-9_.]*):(.*)$", text, re.MULTILINE):
        with contextlib.suppress(yaml.YAMLError):  # prose that happens to contain a colon
            out.update(yaml.safe_load(f"{m.group(1)}:{m.group(2)}") or {})
    return out


@pytest.mark.ros
def test_config_keys_are_declared_with_their_types() -> None:
    specs = node_param_specs()
    data = yaml.safe_load(CONFIG.read_text())
    sim = {s.fqn for s in teleop_graph(TeleopGraphArgs(cameras=("front", "wrist", "top")))}
    for node in our_nodes():
        declared = {p.name: p for p in specs[node.executable]}
        given = yaml_parameters(data, node.fqn)
        assert given, f"{node.fqn}: no section of {CONFIG.name} applies"
        unknown = sorted(set(given) - set(declared))
        assert not unknown, f"{node.fqn}: {CONFIG.name} sets undeclared parameters {unknown}"
        overrides = sorted(set(node.parameters) - set(declared))
        assert not overrides, f"{node.fqn}: teleop_graph sets undeclared parameters {overrides}"
        for name, value in given.items():
            # A YAML 100 for a float parameter stops the node: rclpy refuses int for double.
            assert ros_type(value) == declared[name].type_name, (
                f"{node.fqn}: {name}: {value!r} is {ros_type(value)}, "
                f"declared {declared[name].type_name}"
            )
        if node.fqn in sim and node.parameters.get("backend", "sim") == "sim":
            validate(declared.values(), {**given, **node.parameters})  # raises ParameterError


@pytest.mark.ros
def test_hardware_graph_backends_are_registered() -> None:
    from lerobot_ros.core.backends import ARM_BACKENDS, CAMERA_BACKENDS

    for node in teleop_graph(TeleopGraphArgs(sim=False)):
        backend = node.parameters.get("backend")
        if backend is not None:
            registry = CAMERA_BACKENDS if node.executable == "camera" else ARM_BACKENDS
            assert backend in registry, f"{node.fqn}: backend {backend!r} not registered"


@pytest.mark.ros
def test_config_documents_every_declared_parameter_with_its_default() -> None:
    specs = node_param_specs()
    text = CONFIG.read_text()
    data = yaml.safe_load(text)
    documented = commented_keys(text)
    for node in our_nodes():
        given = yaml_parameters(data, node.fqn)
        for p in specs[node.executable]:
            if p.name in given:
                default = list(p.default) if isinstance(p.default, tuple) else p.default
                assert given[p.name] == default, (
                    f"{node.fqn}: {CONFIG.name} says {p.name}: {given[p.name]!r}, "
                    f"the node's default is {default!r}"
                )
            else:
                # Left out on purpose (e.g. an empty list, which ROS cannot type): then an
                # example line `# name: value` documents it.
                assert p.name in documented, f"{node.fqn}: {p.name} missing from {CONFIG.name}"
                assert ros_type(documented[p.name]) in (p.type_name, None), (p.name, documented)


@pytest.mark.ros
def test_runner_parameters_are_the_file_then_the_overrides() -> None:
    from lerobot_ros.runner import node_parameters

    data = yaml.safe_load(CONFIG.read_text())
    for node in our_nodes():
        values = {p.name: p.value for p in node_parameters(node)}
        assert values == {**yaml_parameters(data, node.fqn), **node.parameters}
    hw = by_name(teleop_graph(TeleopGraphArgs(sim=False)))
    follower = {p.name: p.value for p in node_parameters(hw["/follower"])}
    assert follower["backend"] == get_robot("so101").hardware_backend  # beats the file's 'sim'
    front = {p.name: p.value for p in node_parameters(hw["/cameras/front"])}
    assert (front["backend"], front["camera_name"], front["width"]) == ("opencv", "front", 640)


@pytest.mark.ros
def test_runner_starts_our_nodes_and_skips_the_rest() -> None:
    from lerobot_ros.runner import InProcessGraph

    graph = InProcessGraph(teleop_graph(TeleopGraphArgs(rviz=True, cameras=("front", "wrist"))))
    assert [s.fqn for s in graph.specs] == [
        "/follower",
        "/leader",
        "/teleop",
        "/watchdog",
        "/cameras/front",
        "/cameras/wrist",
        "/visualizer",
    ]
    assert [s.fqn for s in graph.skipped] == ["/robot_state_publisher", "/rviz2"]


# --- the launch file and the runner both build on teleop_graph ---------------------------------


def module_ast(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def imported_names(tree: ast.Module, module: str) -> set[str]:
    return {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == module
        for alias in node.names
    }


def called_names(tree: ast.Module) -> set[str]:
    return {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }


def launch_arguments() -> dict[str, tuple[str, str]]:
    """The ARGUMENTS literal of the launch file: name -> (default, description)."""
    for node in module_ast(LAUNCH_FILE).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "ARGUMENTS" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{LAUNCH_FILE.name} has no ARGUMENTS dict")


def test_launch_file_builds_on_teleop_graph() -> None:
    tree = module_ast(LAUNCH_FILE)
    assert {"TeleopGraphArgs", "teleop_graph"} <= imported_names(tree, "lerobot_ros.core.graph")
    assert {"teleop_graph", "graph_launch_description"} <= called_names(tree)
    # The shared launch plumbing turns every NodeSpec into a launch_ros Node.
    support = module_ast(ROOT / "lerobot_ros" / "launch_support.py")
    assert {"Node", "DeclareLaunchArgument", "OpaqueFunction"} <= called_names(support)
    assert any(
        isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description"
        for n in tree.body
    )


def test_launch_arguments_are_exactly_the_graph_arguments() -> None:
    arguments = launch_arguments()
    assert set(arguments) == ARG_NAMES
    defaults = {name: default for name, (default, _) in arguments.items()}
    assert TeleopGraphArgs.from_strings(defaults) == TeleopGraphArgs()
    assert all(doc.strip() for _, doc in arguments.values())


def test_runner_and_demo_build_on_the_graph() -> None:
    runner = module_ast(ROOT / "lerobot_ros" / "runner.py")
    assert {"NodeSpec", "yaml_parameters"} <= imported_names(runner, "lerobot_ros.core.graph")
    demo = module_ast(ROOT / "lerobot_ros" / "demo.py")
    assert {"teleop_graph", "InProcessGraph"} <= called_names(demo)
