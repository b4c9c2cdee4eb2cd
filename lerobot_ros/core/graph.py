"""The node graph, described once as data.

`launch/*.launch.py` turns it into launch_ros `Node` actions for a real ROS 2 install, and
`lerobot_ros.runner` instantiates the same nodes in one process (demo, tests, machines without
`launch`). Both read this module, so the two cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from lerobot_ros.core.params import ParameterError
from lerobot_ros.core.paths import resolve
from lerobot_ros.core.robots import ROBOTS, get_robot

PACKAGE = "lerobot_ros"
_ROS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a valid ROS node name token


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph, in the terms of launch_ros.actions.Node."""

    name: str
    executable: str
    package: str = PACKAGE
    namespace: str = ""
    param_files: tuple[str, ...] = ()  # absolute paths of ROS parameter YAML files
    parameters: Mapping[str, Any] = field(default_factory=dict)  # applied after the files
    remappings: tuple[tuple[str, str], ...] = ()
    arguments: tuple[str, ...] = ()
    # Launch only: a command line put before the executable (e.g. "xterm -e" gives a node a
    # terminal of its own); the in-process runner ignores it.
    prefix: str = ""
    # "module:Class" for the in-process runner; None for nodes that only exist in a ROS 2
    # install (robot_state_publisher, rviz2), which the runner skips.
    in_process: str | None = None
    # Nodes with the same non-empty `process` run composed in one process on one executor
    # (the `container` executable; nodes/base.py `compose`); a group of one runs on its own.
    process: str = ""

    @property
    def fqn(self) -> str:
        ns = self.namespace.strip("/")
        return f"/{ns}/{self.name}" if ns else f"/{self.name}"


def _flag(name: str, value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    v = value.strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise ParameterError(name, value, "must be true or false")


@dataclass(frozen=True)
class TeleopGraphArgs:
    """Launch arguments of so101_teleop.launch.py (and the runner's equivalent)."""

    robot: str = "so101"
    sim: bool = True
    cameras: tuple[str, ...] = ("front",)
    rviz: bool = False
    params_file: str = ""  # empty = the robot's own config/<robot>.yaml
    follower_port: str = ""  # hardware: serial port; empty = the params file's
    leader_port: str = ""
    # Who drives the follower: the leader arm, or end-effector teleop (ee_teleop) from a
    # keyboard or gamepad; input_device is that device (empty = stdin / /dev/input/js0).
    input: str = "leader"
    input_device: str = ""
    rqt: bool = False  # rqt with config/<robot>.perspective
    # Teleop composed into the watchdog's process: one DDS transfer less on the leader ->
    # follower path, at the price of isolation (a crash takes both down).
    compose: bool = False

    @classmethod
    def from_strings(cls, values: Mapping[str, str]) -> TeleopGraphArgs:
        """Parse launch-argument strings; errors name the argument and value."""
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                raise ParameterError(key, values[key], f"unknown argument; known: {sorted(known)}")
        robot = values.get("robot", cls.robot)
        if robot not in ROBOTS:
            raise ParameterError("robot", robot, f"must be one of {ROBOTS.names()}")
        cams = values.get("cameras", ",".join(cls.cameras))
        names = tuple(c.strip() for c in cams.split(",") if c.strip())
        for c in names:
            if not _ROS_NAME.fullmatch(c):
                raise ParameterError("cameras", cams, f"camera name {c!r} is not a valid ROS name")
        if len(set(names)) != len(names):
            raise ParameterError("cameras", cams, "camera names must be unique")
        source = values.get("input", cls.input)
        if source not in teleop_inputs():
            raise ParameterError("input", source, f"must be one of {teleop_inputs()}")
        return cls(
            robot=robot,
            sim=_flag("sim", values.get("sim", "true")),
            cameras=names,
            rviz=_flag("rviz", values.get("rviz", "false")),
            params_file=values.get("params_file", ""),
            follower_port=values.get("follower_port", ""),
            leader_port=values.get("leader_port", ""),
            input=source,
            input_device=values.get("input_device", ""),
            rqt=_flag("rqt", values.get("rqt", "false")),
            compose=_flag("compose", values.get("compose", "false")),
        )


def teleop_inputs() -> list[str]:
    """Valid `input` arguments: the leader arm, or an end-effector teleop input device."""
    from lerobot_ros.core.input_devices import INPUT_DEVICES

    return ["leader", *INPUT_DEVICES.names()]


EE_TELEOP_SOURCE = "ee_teleop"  # the end-effector teleop node's name = its watchdog source
CONTROL_PROCESS = "control"  # with compose: the process of the teleop and the watchdog


def processes(specs: Iterable[NodeSpec]) -> list[list[NodeSpec]]:
    """The OS processes of a graph, in start order: one spec each, or a composed group of the
    specs that share a `process` (a group of one is a plain node)."""
    groups: dict[str, list[NodeSpec]] = {}
    out: list[list[NodeSpec]] = []
    for spec in specs:
        if not spec.process:
            out.append([spec])
        elif spec.process in groups:
            groups[spec.process].append(spec)
        else:
            groups[spec.process] = [spec]
            out.append(groups[spec.process])
    for group in groups.values():
        for spec in group:
            if len(group) > 1 and (spec.remappings or spec.prefix or spec.arguments):
                raise ParameterError(
                    "process",
                    spec.process,
                    f"composed node '{spec.name}' cannot have "
                    "remappings, a prefix or arguments of its own (they would apply to all)",
                )
    return out


def teleop_graph(args: TeleopGraphArgs) -> list[NodeSpec]:
    """Leader -> teleop -> watchdog -> follower (or, with input keyboard / gamepad, ee_teleop ->
    watchdog -> follower), cameras, robot_state_publisher; with rviz or rqt also the visualizer
    (end-effector poses, watchdog text) and RViz / rqt."""
    robot = get_robot(args.robot)
    params = str(resolve(args.params_file or robot.params_file).absolute())
    if not resolve(params).is_file():
        raise ParameterError("params_file", params, "file does not exist")
    files = (params,)
    arm_backend = "sim" if args.sim else robot.hardware_backend
    cam_backend = "sim" if args.sim else "opencv"
    urdf_path = robot.urdf_path()
    if not urdf_path.is_file():
        raise ParameterError("urdf", str(urdf_path), "file does not exist")

    def arm(port: str) -> dict[str, str]:
        return {"robot": robot.name, "backend": arm_backend, **({"port": port} if port else {})}

    specs = [
        NodeSpec(
            "follower",
            "follower",
            param_files=files,
            parameters=arm(args.follower_port),
            in_process="lerobot_ros.nodes.arm:FollowerNode",
        )
    ]
    watchdog: dict[str, Any] = {"robot": robot.name}
    if args.input == "leader":
        specs += [
            NodeSpec(
                "leader",
                "leader",
                param_files=files,
                parameters=arm(args.leader_port),
                in_process="lerobot_ros.nodes.arm:LeaderNode",
            ),
            NodeSpec(
                "teleop",
                "teleop",
                param_files=files,
                in_process="lerobot_ros.nodes.teleop:TeleopNode",
                process=CONTROL_PROCESS if args.compose else "",
            ),
        ]
    else:
        specs.append(ee_teleop_spec(args, robot.name, files))
        watchdog["active_source"] = EE_TELEOP_SOURCE
    specs.append(
        NodeSpec(
            "watchdog",
            "watchdog",
            param_files=files,
            parameters=watchdog,
            in_process="lerobot_ros.nodes.watchdog:WatchdogNode",
            process=CONTROL_PROCESS if args.compose else "",
        )
    )
    specs += [
        NodeSpec(
            cam,
            "camera",
            namespace="cameras",
            param_files=files,
            parameters={"backend": cam_backend, "camera_name": cam},
            in_process="lerobot_ros.nodes.camera:CameraNode",
        )
        for cam in args.cameras
    ]
    specs.append(
        NodeSpec(
            "robot_state_publisher",
            "robot_state_publisher",
            package="robot_state_publisher",
            parameters={"robot_description": urdf_path.read_text()},
            remappings=(("joint_states", "/follower/joint_states"),),
        )
    )
    if args.rviz or args.rqt:  # what only they show: end-effector poses, watchdog text
        arms = ["follower", "leader"] if args.input == "leader" else ["follower"]
        specs.append(
            NodeSpec(
                "visualizer",
                "visualizer",
                param_files=files,
                parameters={"robot": robot.name, "arms": arms},
                in_process="lerobot_ros.nodes.visualizer:VisualizerNode",
            )
        )
    if args.rviz:
        specs.append(
            NodeSpec(
                "rviz2",
                "rviz2",
                package="rviz2",
                arguments=("-d", str(resolve(robot.rviz_config))),
            )
        )
    if args.rqt:
        specs.append(
            NodeSpec(
                "rqt",
                "rqt_gui",
                package="rqt_gui",
                arguments=("--perspective-file", str(resolve(robot.rqt_perspective))),
                # rqt_robot_monitor reads the aggregator's /diagnostics_agg; without an
                # aggregator the raw /diagnostics (every node's status) is shown instead.
                remappings=(("/diagnostics_agg", "/diagnostics"),),
            )
        )
    return specs


def ee_teleop_spec(args: TeleopGraphArgs, robot: str, files: tuple[str, ...]) -> NodeSpec:
    """The end-effector teleop node for `args.input` (keyboard or gamepad).

    A node started by ros2 launch has no terminal (its stdin is a pipe), so a keyboard without
    an `input_device` gets one of its own: launch starts it in an xterm. The in-process runner
    ignores the prefix and reads the keys from its own terminal.
    """
    parameters: dict[str, Any] = {"robot": robot, "input": args.input}
    if args.input_device:
        parameters["device"] = args.input_device
    return NodeSpec(
        EE_TELEOP_SOURCE,
        "ee_teleop",
        param_files=files,
        parameters=parameters,
        prefix="xterm -e" if args.input == "keyboard" and not args.input_device else "",
        in_process="lerobot_ros.nodes.ee_teleop:EeTeleopNode",
    )


def yaml_parameters(data: Mapping[str, Any], fqn: str) -> dict[str, Any]:
    """Parameters that a ROS parameter file `data` gives the node `fqn` (e.g. /cameras/front).

    Keys are matched the way rcl does: '/**' (every node), a node name, or a fully qualified
    name where '*' matches one path token and '**' any number. Later, more specific keys win.
    """
    out: dict[str, Any] = {}
    for key, section in data.items():
        if isinstance(section, Mapping) and _matches(str(key), fqn):
            out.update(_flatten(section.get("ros__parameters", {})))
    return out


def _matches(pattern: str, fqn: str) -> bool:
    if not pattern.startswith("/"):
        pattern = "/" + pattern  # a bare node name means the node in the root namespace
    p_tokens, n_tokens = pattern.strip("/").split("/"), fqn.strip("/").split("/")

    def match(p: list[str], n: list[str]) -> bool:
        if not p:
            return not n
        if p[0] == "**":
            return any(match(p[1:], n[i:]) for i in range(len(n) + 1))
        return bool(n) and (p[0] == "*" or p[0] == n[0]) and match(p[1:], n[1:])

    return match(p_tokens, n_tokens)


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested YAML dicts become dotted parameter names, as ROS does."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, name + "."))
        else:
            out[name] = v
    return out


# --- recording: the teleop graph + the recorder ------------------------------------------------


def recorded_topics(cameras: tuple[str, ...] | list[str] = ("front",)) -> list[str]:
    """What the recorder records by default: measured states, the commanded follower position,
    each camera's image and calibration, and the episode events of the watchdog, the recorder
    and the rollout (its interventions become the dataset's `intervention` flag; the recorder
    lists /rollout/events in `optional_topics`, as it exists only while a rollout runs)."""
    topics = ["/follower/joint_states", "/leader/joint_states", "/follower/command"]
    for cam in cameras:
        topics += [f"/cameras/{cam}/image_raw", f"/cameras/{cam}/camera_info"]
    return [*topics, "/watchdog/events", "/rollout/events", "/recorder/events"]


@dataclass(frozen=True)
class RecordGraphArgs(TeleopGraphArgs):
    """Launch arguments of record.launch.py: the teleop graph's, plus where bags go."""

    output_dir: str = ""  # empty = the params file's recorder.output_dir

    @classmethod
    def from_strings(cls, values: Mapping[str, str]) -> RecordGraphArgs:
        rest = {k: v for k, v in values.items() if k != "output_dir"}
        base = TeleopGraphArgs.from_strings(rest)
        return cls(
            **{f.name: getattr(base, f.name) for f in fields(TeleopGraphArgs)},
            output_dir=values.get("output_dir", ""),
        )


def record_graph(args: RecordGraphArgs) -> list[NodeSpec]:
    """teleop_graph + /recorder, which records the graph's topics (one topic pair per camera)."""
    specs = teleop_graph(args)
    files = specs[0].param_files  # the follower's: the robot's (or the given) parameter file
    topics = recorded_topics(args.cameras)
    if args.input != "leader":
        topics.remove("/leader/joint_states")  # end-effector teleop: no leader arm
    parameters: dict[str, Any] = {"topics": topics}
    if args.output_dir:
        parameters["output_dir"] = args.output_dir
    specs.append(
        NodeSpec(
            "recorder",
            "recorder",
            param_files=files,
            parameters=parameters,
            in_process="lerobot_ros.nodes.recorder:RecorderNode",
        )
    )
    return specs


# --- policy rollout: follower, cameras, watchdog + policy runner and chunk player --------------


@dataclass(frozen=True)
class PolicyGraphArgs(TeleopGraphArgs):
    """The teleop graph's arguments, plus the policy runner's main ones (empty = params file)."""

    policy: str = ""  # checkpoint directory or Hub repo id
    mode: str = ""  # sync | rtc | rate
    device: str = ""
    task: str = ""

    @classmethod
    def from_strings(cls, values: Mapping[str, str]) -> PolicyGraphArgs:
        own = ("policy", "mode", "device", "task")
        base = TeleopGraphArgs.from_strings({k: v for k, v in values.items() if k not in own})
        return cls(
            **{f.name: getattr(base, f.name) for f in fields(TeleopGraphArgs)},
            **{k: values.get(k, "") for k in own},
        )


def policy_graph(args: PolicyGraphArgs) -> list[NodeSpec]:
    """A policy drives the follower: cameras and follower state -> /policy_runner ->
    /policy/action_chunk -> /chunk_player -> watchdog (source chunk_player) -> follower.
    The leader and teleop are left out; a takeover (DAgger) graph adds them back."""
    specs = [s for s in teleop_graph(args) if s.name not in ("leader", "teleop")]
    files = specs[0].param_files
    specs = [
        replace(s, parameters={**s.parameters, "active_source": "chunk_player"})
        if s.name == "watchdog"
        else s
        for s in specs
    ]
    runner: dict[str, Any] = {"robot": args.robot, "cameras": list(args.cameras)}
    runner.update({k: getattr(args, k) for k in ("policy", "mode", "device", "task")})
    runner = {k: v for k, v in runner.items() if v != ""}
    specs += [
        NodeSpec(
            "policy_runner",
            "policy_runner",
            param_files=files,
            parameters=runner,
            in_process="lerobot_ros.nodes.policy_runner:PolicyRunnerNode",
        ),
        NodeSpec(
            "chunk_player",
            "chunk_player",
            param_files=files,
            in_process="lerobot_ros.nodes.chunk_player:ChunkPlayerNode",
        ),
    ]
    return specs


# --- rollout: the policy graph + a strategy (recorder, leader and teleop as it needs) ----------

# The teleop mapping that the rollout node needs to drive the leader to the follower's pose
# (leader = (follower - offset) / scale); copied from the parameter file's /teleop section.
TELEOP_MAPPING = ("leader_joints", "follower_joints", "scale", "offset")
# A watchdog source that nobody publishes: DAgger switches to it to hold the follower at once
# while the leader is aligned (the rollout node's `hold_source`).
HOLD_SOURCE = "hold"
WATCHDOG_SOURCES = ["teleop", "chunk_player", "ee_teleop"]  # the watchdog's default `sources`


@dataclass(frozen=True)
class RolloutGraphArgs(PolicyGraphArgs):
    """Launch arguments of rollout.launch.py: the policy graph's (its `mode` is the launch
    argument `inference`), plus the strategy, where bags go and the highlight ring's length."""

    strategy: str = "base"
    output_dir: str = ""  # empty = the params file's recorder.output_dir
    highlight_s: float = 20.0  # strategy highlight: seconds the recorder's ring buffer keeps

    @classmethod
    def from_strings(cls, values: Mapping[str, str]) -> RolloutGraphArgs:
        from lerobot_ros.core.policies.runner import SCHEDULES
        from lerobot_ros.core.rollout import STRATEGIES

        own = ("strategy", "output_dir", "highlight_s", "inference")
        if "mode" in values:
            raise ParameterError("mode", values["mode"], "use the argument 'inference'")
        base = PolicyGraphArgs.from_strings({k: v for k, v in values.items() if k not in own})
        strategy = values.get("strategy", cls.strategy)
        if strategy not in STRATEGIES:
            raise ParameterError("strategy", strategy, f"must be one of {STRATEGIES.names()}")
        inference = values.get("inference", "")
        if inference and inference not in SCHEDULES:
            raise ParameterError(
                "inference", inference, f"must be one of {SCHEDULES.names()} (or empty)"
            )
        text = values.get("highlight_s", str(cls.highlight_s))
        try:
            highlight_s = float(text)
        except ValueError:
            highlight_s = float("nan")
        if not highlight_s > 0 or highlight_s == float("inf"):
            raise ParameterError("highlight_s", text, "must be a finite number of seconds > 0")
        return cls(
            **{f.name: getattr(base, f.name) for f in fields(PolicyGraphArgs) if f.name != "mode"},
            mode=inference,
            strategy=strategy,
            output_dir=values.get("output_dir", ""),
            highlight_s=highlight_s,
        )


def _file_parameters(params_file: str, fqn: str) -> dict[str, Any]:
    import yaml

    with open(params_file) as f:
        return yaml_parameters(yaml.safe_load(f) or {}, fqn)


def rollout_graph(args: RolloutGraphArgs) -> list[NodeSpec]:
    """policy_graph + /rollout running `args.strategy`, plus what the strategy's flags ask for:
    /recorder (episodes or a highlight ring buffer) and, for interventions (DAgger), the leader
    arm and /teleop, which the watchdog forwards only while a human corrects, and the silent
    watchdog source `hold` that holds the follower while the leader is aligned."""
    from lerobot_ros.core.rollout import STRATEGIES

    strategy = STRATEGIES.get(args.strategy)
    human = getattr(args, "input", "leader")  # who else could drive: only the leader takes over
    if strategy.interventions and human != "leader":
        raise ParameterError("input", human, f"strategy {args.strategy} needs input:=leader")
    specs = policy_graph(args)
    files = specs[0].param_files
    rollout: dict[str, Any] = {"strategy": args.strategy}
    if args.task:
        rollout["task"] = args.task
    if strategy.interventions:
        teleop = {s.name: s for s in teleop_graph(args)}
        at = [s.name for s in specs].index("follower") + 1
        specs[at:at] = [teleop["leader"], teleop["teleop"]]
        mapping = _file_parameters(files[0], "/teleop")
        rollout.update({k: mapping[k] for k in TELEOP_MAPPING if k in mapping})
        sources = list(_file_parameters(files[0], "/watchdog").get("sources", WATCHDOG_SOURCES))
        specs = [
            replace(s, parameters={**s.parameters, "sources": [*sources, HOLD_SOURCE]})
            if s.name == "watchdog" and HOLD_SOURCE not in sources
            else s
            for s in specs
        ]
        rollout["hold_source"] = HOLD_SOURCE
        if args.sim:
            rollout["takeover_motion"] = 0.0  # the scripted leader moves by itself
    if strategy.records_episodes or strategy.ring_buffer:
        topics = recorded_topics(args.cameras)
        if not strategy.interventions:
            topics.remove("/leader/joint_states")  # no leader arm in this graph
        if "/rollout/events" not in topics:
            topics.insert(topics.index("/recorder/events"), "/rollout/events")
        # Ctrl-C ends a rollout: what it recorded up to then is kept as an episode.
        recorder: dict[str, Any] = {"topics": topics, "shutdown_episode": "save"}
        if args.output_dir:
            recorder["output_dir"] = args.output_dir
        if strategy.ring_buffer:
            recorder["ring_seconds"] = float(args.highlight_s)
        specs.append(
            NodeSpec(
                "recorder",
                "recorder",
                param_files=files,
                parameters=recorder,
                in_process="lerobot_ros.nodes.recorder:RecorderNode",
            )
        )
    specs.append(
        NodeSpec(
            "rollout",
            "rollout",
            param_files=files,
            parameters=rollout,
            in_process="lerobot_ros.nodes.rollout:RolloutNode",
        )
    )
    return specs


# --- closed loop in simulation: the scripted expert as a watchdog source -----------------------

EXPERT_SOURCE = "expert"  # the sim expert node's name = its watchdog source


def expert_spec(files: tuple[str, ...]) -> NodeSpec:
    """The scripted touch-the-cube expert (nodes/sim_expert.py), publishing /expert/command."""
    return NodeSpec(
        EXPERT_SOURCE,
        "sim_expert",
        param_files=files,
        in_process="lerobot_ros.nodes.sim_expert:SimExpertNode",
    )


def _with_watchdog_source(
    specs: list[NodeSpec], source: str, active: str | None = None
) -> list[NodeSpec]:
    """`specs` with `source` added to the watchdog's sources (and made active when `active`)."""
    out = []
    for s in specs:
        if s.name == "watchdog":
            sources = list(
                s.parameters.get("sources")
                or _file_parameters(s.param_files[0], "/watchdog").get("sources", WATCHDOG_SOURCES)
            )
            if source not in sources:
                sources.append(source)
            parameters = {**s.parameters, "sources": sources}
            if active:
                parameters["active_source"] = active
            s = replace(s, parameters=parameters)
        out.append(s)
    return out


def expert_record_graph(args: RecordGraphArgs) -> list[NodeSpec]:
    """Demos by the scripted expert: the simulated follower, cameras, the watchdog (its active
    source the expert) and the recorder, plus /expert; no leader arm or teleop. The demos are
    recorded exactly like teleoperated ones (the action is /follower/command, what the watchdog
    forwarded)."""
    if not args.sim:
        raise ParameterError("sim", "false", "the scripted expert needs the simulated follower")
    specs = [s for s in record_graph(args) if s.name not in ("leader", "teleop", EE_TELEOP_SOURCE)]
    files = specs[0].param_files
    specs = [
        replace(
            s,
            parameters={
                **s.parameters,
                "topics": [t for t in s.parameters["topics"] if t != "/leader/joint_states"],
            },
        )
        if s.name == "recorder"
        else s
        for s in specs
    ]
    specs = _with_watchdog_source(specs, EXPERT_SOURCE, active=EXPERT_SOURCE)
    return [*specs, expert_spec(files)]


def expert_rollout_graph(args: RolloutGraphArgs) -> list[NodeSpec]:
    """rollout_graph, plus /expert as a second watchdog source that only brings the arm home
    between trials (the policy's chunk player stays the active source otherwise)."""
    if not args.sim:
        raise ParameterError("sim", "false", "the scripted expert needs the simulated follower")
    specs = _with_watchdog_source(rollout_graph(args), EXPERT_SOURCE)
    return [*specs, expert_spec(specs[0].param_files)]
