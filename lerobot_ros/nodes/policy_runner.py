"""Policy runner node: measured joint states + camera images in, ActionChunks out.

Subscribes the follower's JointState and `/cameras/<name>/image_raw` for each camera (sensor-data
QoS), and publishes `/policy/action_chunk` (lerobot_msgs/ActionChunk, reliable) stamped with the
observation time, plus each chunk's predicted end-effector path on `/policy/predicted_path`
(visualization_msgs/MarkerArray, for RViz). Everything that is not ROS lives in
`lerobot_ros.core.policies.runner`: stamp synchronisation, the one unit mapping, and when to
infer (`mode`: sync | rtc | rate). Subscriptions only store samples; a timer decides; the policy
runs on the core's worker thread, which also publishes, so no callback ever waits for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import Image, JointState
from visualization_msgs.msg import Marker, MarkerArray

from lerobot_msgs.msg import ActionChunk
from lerobot_ros.core.dataset.profile import get_profile
from lerobot_ros.core.kinematics import DEFAULT_TIP, ForwardKinematics
from lerobot_ros.core.params import (
    ParameterError,
    ParamSpec,
    file_exists,
    non_empty,
    non_negative,
    one_of,
    positive,
    unique,
)
from lerobot_ros.core.policies.base import ChunkPolicy, load_policy
from lerobot_ros.core.policies.runner import (
    SCHEDULES,
    ChunkResult,
    FeatureMismatchError,
    PolicyRunner,
    limit_cpu_threads,
)
from lerobot_ros.core.robots import ROBOTS, get_robot
from lerobot_ros.nodes import qos
from lerobot_ros.nodes.base import ERROR, OK, WARN, LeRobotNode, run_node
from lerobot_ros.nodes.convert import from_time, image_array, to_time

CHUNK_TOPIC = "/policy/action_chunk"
PATH_TOPIC = "/policy/predicted_path"

RUNNER_PARAMS = [
    ParamSpec(
        "policy",
        "",
        "Checkpoint: a directory (pretrained_model layout, or a training output directory) or "
        "a Hub repo id (owner/name).",
        (non_empty,),
    ),
    ParamSpec("device", "cpu", "Torch device for inference: cpu, cuda, cuda:1, ...", (non_empty,)),
    ParamSpec(
        "cpu_threads",
        1,
        "Torch CPU threads for inference (0 = one per core). 1 by default: next to other "
        "busy nodes, more threads oversubscribe the cores and inference gets many times slower.",
        (non_negative,),
    ),
    ParamSpec(
        "robot",
        "so101",
        "Robot model: its dataset profile (ROS <-> LeRobot units) and URDF.",
        (one_of(ROBOTS.names),),
    ),
    ParamSpec("state_topic", "/follower/joint_states", "Measured JointState of the follower."),
    ParamSpec(
        "cameras",
        ["front"],
        "Camera names: /cameras/<name>/image_raw feeds the policy's observation.images.<name>.",
        (unique,),
        list_type="str",
    ),
    ParamSpec(
        "max_skew",
        0.05,
        "s: largest |image stamp - joint state stamp| within one observation.",
        (non_negative,),
    ),
    ParamSpec(
        "mode",
        "rtc",
        "When to infer: sync (when the chunk ran out; the arm waits), rtc (ahead of the chunk's "
        "end by the latency + margin), rate (every 1/rate_hz s).",
        (one_of(SCHEDULES.names),),
    ),
    ParamSpec("rate_hz", 5.0, "Mode rate: inferences per second.", (positive,)),
    ParamSpec("margin", 2, "Mode rtc: rows of slack on top of the latency.", (non_negative,)),
    ParamSpec("task", "", "Task text for language-conditioned policies (SmolVLA, pi0, ...)."),
    ParamSpec("publish_markers", True, "Publish the predicted end-effector path for RViz."),
    ParamSpec("ee_frame", DEFAULT_TIP, "URDF link drawn as the end effector.", (non_empty,)),
    ParamSpec("urdf", "", "URDF for the path markers; empty = the robot's URDF.", (file_exists,)),
    ParamSpec("tick_rate", 100.0, "Hz at which the schedule is checked.", (positive,)),
    ParamSpec("diagnostics_period", 1.0, "s between /diagnostics reports.", (positive,)),
]


def to_duration(seconds: float) -> Duration:
    ns = max(0, round(seconds * 1e9))
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def chunk_message(chunk: ChunkResult) -> ActionChunk:
    msg = ActionChunk()
    msg.header.stamp = to_time(chunk.stamp)
    msg.joint_names = list(chunk.joint_names)
    msg.horizon = int(chunk.actions.shape[0])
    msg.period = to_duration(chunk.period)
    msg.start_offset = to_duration(chunk.start_offset)
    msg.data = np.ascontiguousarray(chunk.actions, dtype=np.float32).ravel().tolist()
    msg.chunk_id = int(chunk.chunk_id)
    msg.inference_latency = to_duration(chunk.latency)
    msg.policy_id = chunk.policy_id
    return msg


def path_markers(points: np.ndarray, frame_id: str, stamp: float) -> MarkerArray:
    """(N, 3) end-effector positions -> a line through them plus one sphere per row; fixed ids,
    so each chunk's path replaces the previous one in RViz."""
    out = MarkerArray()
    for marker_id, kind, size, rgba in (
        (0, Marker.LINE_STRIP, 0.004, (0.1, 0.6, 1.0, 0.9)),
        (1, Marker.SPHERE_LIST, 0.010, (1.0, 0.5, 0.1, 0.9)),
    ):
        m = Marker()
        m.header.stamp = to_time(stamp)
        m.header.frame_id = frame_id
        m.ns, m.id, m.type, m.action = "predicted_path", marker_id, kind, Marker.ADD
        m.pose.orientation.w = 1.0
        m.scale.x = m.scale.y = m.scale.z = size
        m.color.r, m.color.g, m.color.b, m.color.a = rgba
        m.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in points]
        out.markers.append(m)
    return out


class PolicyRunnerNode(LeRobotNode):
    PARAMS = RUNNER_PARAMS

    def __init__(self, node_name: str = "policy_runner", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        robot = get_robot(self.p["robot"])
        try:
            profile = get_profile(robot.name)
        except ValueError as exc:
            raise ParameterError("robot", robot.name, str(exc)) from exc
        limit_cpu_threads(self.p["cpu_threads"])
        self.policy = self._load_policy()
        self.fk: ForwardKinematics | None = None
        if self.p["publish_markers"]:
            urdf = self.p["urdf"] or str(robot.urdf_path())
            try:
                self.fk = ForwardKinematics(urdf, self.p["ee_frame"])
            except ValueError as exc:
                raise ParameterError("ee_frame", self.p["ee_frame"], str(exc)) from exc
        try:
            self.runner = PolicyRunner(
                self.policy,
                profile,
                self.p["cameras"],
                self._publish,
                mode=self.p["mode"],
                max_skew=self.p["max_skew"],
                clock=self._now,
                on_error=self._on_error,
                rate_hz=self.p["rate_hz"],
                margin=self.p["margin"],
            )
        except FeatureMismatchError as exc:
            raise ParameterError(exc.parameter, self.p[exc.parameter], str(exc)) from exc
        self._bad_states = 0

        self._chunk_pub = self.create_publisher(ActionChunk, CHUNK_TOPIC, qos.COMMAND)
        self._path_pub = self.create_publisher(MarkerArray, PATH_TOPIC, qos.COMMAND)
        inputs = MutuallyExclusiveCallbackGroup()  # only store samples: short callbacks
        self.create_subscription(
            JointState, self.p["state_topic"], self._on_state, qos.SENSOR, callback_group=inputs
        )
        for cam in self.p["cameras"]:
            self.create_subscription(
                Image,
                f"/cameras/{cam}/image_raw",
                lambda msg, c=cam: self._on_image(c, msg),
                qos.SENSOR,
                callback_group=inputs,
            )
        self.create_timer(
            1.0 / self.p["tick_rate"],
            lambda: self.runner.tick(),  # no argument: the EventsExecutor would pass a TimerInfo
            callback_group=MutuallyExclusiveCallbackGroup(),
        )
        self.create_timer(
            self.p["diagnostics_period"],
            self._diagnostics,
            callback_group=MutuallyExclusiveCallbackGroup(),
        )
        self.get_logger().info(
            f"policy '{self.policy.policy_id}': {self.policy.chunk_size} rows at "
            f"{self.policy.fps:g} fps, state {self.policy.state_names}, images "
            f"{self.policy.image_keys}; mode {self.p['mode']}, device {self.p['device']}"
        )

    def _load_policy(self) -> ChunkPolicy:
        source = self.p["policy"]
        try:
            policy = load_policy(source, device=self.p["device"])
        except ParameterError:
            raise
        except Exception as exc:  # CheckpointError, a Hub or torch error: all mean "this policy"
            raise ParameterError("policy", source, str(exc) or type(exc).__name__) from exc
        if self.p["task"]:
            if hasattr(policy, "task"):
                policy.task = self.p["task"]
            else:
                self.get_logger().warning(f"policy '{source}' takes no task text; ignoring it")
        policy.reset()
        return policy

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- inputs ---------------------------------------------------------------------------
    def _on_state(self, msg: JointState) -> None:
        if not self.runner.add_state(from_time(msg.header.stamp), msg.name, msg.position):
            self._bad_states += 1
            self.get_logger().warning(
                f"JointState on {self.p['state_topic']} lacks joints of the robot "
                f"(has {list(msg.name)}): ignored",
                throttle_duration_sec=5.0,
            )

    def _on_image(self, camera: str, msg: Image) -> None:
        try:
            rgb = image_array(msg)
        except ValueError as exc:
            self.get_logger().warning(f"camera {camera}: {exc}", throttle_duration_sec=5.0)
            return
        self.runner.add_image(camera, from_time(msg.header.stamp), rgb)

    # --- outputs (worker thread) ----------------------------------------------------------
    def _publish(self, chunk: ChunkResult) -> None:
        self._chunk_pub.publish(chunk_message(chunk))
        if self.fk is not None:  # after the chunk: drawing it never delays the robot
            points = self.fk.path(chunk.joint_names, chunk.actions)
            self._path_pub.publish(path_markers(points, self.fk.root_link, chunk.stamp))

    def _on_error(self, exc: Exception) -> None:
        self.get_logger().error(
            f"inference failed: {type(exc).__name__}: {exc}", throttle_duration_sec=5.0
        )

    def _diagnostics(self) -> None:
        s = self.runner.stats
        lat = self.runner.latency
        values: dict[str, Any] = {
            "mode": self.p["mode"],
            "policy_id": self.policy.policy_id,
            "inferences": s.inferences,
            "in_flight": self.runner.in_flight,
            "latency_last_ms": round(lat.last * 1e3, 1),
            "latency_mean_ms": round(lat.mean * 1e3, 1),
            "latency_max_ms": round(lat.max * 1e3, 1),
            "inference_mean_ms": round(s.inference_time.mean * 1e3, 1),
            "skew_last_ms": round(s.skew_last * 1e3, 1),
            "skew_max_ms": round(s.skew_max * 1e3, 1),
            "dropped_observations": s.dropped_observations,
            "last_drop_reason": s.last_drop_reason,
            "bad_joint_states": self._bad_states,
            "errors": s.errors,
            "last_error": s.last_error,
        }
        if s.errors and s.inferences == 0:
            level, message = ERROR, f"inference failing: {s.last_error}"
        elif s.inferences == 0:
            level, message = WARN, f"no chunk yet: {s.last_drop_reason or 'waiting for data'}"
        elif s.errors:
            level, message = WARN, f"{s.errors} failed inferences: {s.last_error}"
        else:
            level = OK
            message = f"{s.inferences} chunks, latency {lat.mean * 1e3:.0f} ms mean"
        self.publish_diagnostics("inference", level, message, values)

    def shutdown(self) -> None:
        if not self.runner.close(timeout=5.0):
            self.get_logger().warning("inference still running at shutdown; its chunk is dropped")


def main(args: list[str] | None = None) -> int:
    return run_node(PolicyRunnerNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
