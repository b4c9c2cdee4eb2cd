"""Visualizer node: what RViz, rqt_plot and rosbag cannot compute for themselves.

- `/<arm>/ee_pose` (geometry_msgs/PoseStamped, frame = the URDF root, base_link) for each of
  `arms` (follower, leader): forward kinematics (placo) of `/<arm>/joint_states`, stamped with
  the joint state's capture time. TF has the same pose for the follower only (one
  robot_state_publisher), and not as a topic that rqt_plot can plot or a bag can keep per arm.
- `~/watchdog_text` (visualization_msgs/Marker, text above the arm, latched): the watchdog's
  state (forwarding / holding / E-STOP) in green / yellow / red, since RViz has no display for
  lerobot_msgs/WatchdogState.

Poses go out at most at `rate` Hz (the arms publish at 100 Hz; a display needs far fewer), from
a timer that uses the newest joint state of each arm; subscriptions only store samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import JointState
from visualization_msgs.msg import Marker

from lerobot_msgs.msg import WatchdogState
from lerobot_ros.core.kinematics import DEFAULT_TIP, ForwardKinematics
from lerobot_ros.core.params import (
    ParameterError,
    ParamSpec,
    all_finite,
    file_exists,
    non_empty,
    one_of,
    positive,
    unique,
)
from lerobot_ros.core.robots import ROBOTS, get_robot
from lerobot_ros.nodes import qos
from lerobot_ros.nodes.base import OK, WARN, LeRobotNode, run_node


def _three(v: Any) -> str | None:
    return None if len(v) == 3 else "needs 3 values (x, y, z)"


VISUALIZER_PARAMS = [
    ParamSpec("robot", "so101", "Robot model (URDF for the kinematics).", (one_of(ROBOTS.names),)),
    ParamSpec("urdf", "", "URDF; empty = the robot's URDF.", (file_exists,)),
    ParamSpec("ee_frame", DEFAULT_TIP, "URDF link whose pose is published.", (non_empty,)),
    ParamSpec(
        "arms",
        ["follower", "leader"],
        "Arms: /<arm>/joint_states in, /<arm>/ee_pose out.",
        (unique,),
        list_type="str",
    ),
    ParamSpec("rate", 30.0, "Hz: at most this many poses per arm per second.", (positive,)),
    ParamSpec("watchdog_state_topic", "/watchdog/state", "WatchdogState shown as text."),
    ParamSpec(
        "text_position",
        [0.0, 0.0, 0.5],
        "m: where the watchdog text floats (root frame).",
        (all_finite, _three),
    ),
    ParamSpec("diagnostics_period", 1.0, "s between /diagnostics reports.", (positive,)),
]


def rotation_to_quat(r: np.ndarray) -> tuple[float, float, float, float]:
    """(w, x, y, z) of a 3x3 rotation matrix (Shepperd's method: stable for every angle)."""
    m = np.asarray(r, dtype=float)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        w, x, y, z = (
            0.25 * s,
            (m[2, 1] - m[1, 2]) / s,
            (m[0, 2] - m[2, 0]) / s,
            (m[1, 0] - m[0, 1]) / s,
        )
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        w, x, y, z = (
            (m[2, 1] - m[1, 2]) / s,
            0.25 * s,
            (m[0, 1] + m[1, 0]) / s,
            (m[0, 2] + m[2, 0]) / s,
        )
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        w, x, y, z = (
            (m[0, 2] - m[2, 0]) / s,
            (m[0, 1] + m[1, 0]) / s,
            0.25 * s,
            (m[1, 2] + m[2, 1]) / s,
        )
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        w, x, y, z = (
            (m[1, 0] - m[0, 1]) / s,
            (m[0, 2] + m[2, 0]) / s,
            (m[1, 2] + m[2, 1]) / s,
            0.25 * s,
        )
    n = float(np.sqrt(w * w + x * x + y * y + z * z))
    return float(w / n), float(x / n), float(y / n), float(z / n)


def pose_message(pose: np.ndarray, frame_id: str, stamp: Any) -> PoseStamped:
    """4x4 pose -> PoseStamped."""
    msg = PoseStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    p = msg.pose.position
    p.x, p.y, p.z = (float(v) for v in pose[:3, 3])
    o = msg.pose.orientation
    o.w, o.x, o.y, o.z = rotation_to_quat(pose[:3, :3])
    return msg


def watchdog_text(state: WatchdogState, frame_id: str, position: list[float]) -> Marker:
    """The watchdog's state as a camera-facing text marker: red e-stop, yellow hold, green."""
    m = Marker()
    m.header.stamp = state.header.stamp
    m.header.frame_id = frame_id
    m.ns, m.id, m.type, m.action = "watchdog", 0, Marker.TEXT_VIEW_FACING, Marker.ADD
    m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in position)
    m.pose.orientation.w = 1.0
    m.scale.z = 0.03  # text height, m
    if state.estop_active:
        m.text, rgb = f"E-STOP: {state.estop_reason}", (1.0, 0.15, 0.1)
    elif state.holding:
        m.text, rgb = (
            f"holding ({state.hold_reason}), source '{state.active_source}'",
            (1.0, 0.8, 0.1),
        )
    else:
        m.text, rgb = f"forwarding '{state.active_source}'", (0.2, 0.9, 0.3)
    m.color.r, m.color.g, m.color.b, m.color.a = (*rgb, 1.0)
    return m


class VisualizerNode(LeRobotNode):
    PARAMS = VISUALIZER_PARAMS

    def __init__(self, node_name: str = "visualizer", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        robot = get_robot(self.p["robot"])
        urdf = self.p["urdf"] or str(robot.urdf_path())
        try:
            self.fk = ForwardKinematics(urdf, self.p["ee_frame"])
        except ValueError as exc:
            raise ParameterError("ee_frame", self.p["ee_frame"], str(exc)) from exc
        self._latest: dict[str, JointState | None] = {arm: None for arm in self.p["arms"]}
        self._published = dict.fromkeys(self.p["arms"], 0)
        self._bad = dict.fromkeys(self.p["arms"], 0)
        self._pose_pubs: dict[str, Any] = {}
        for arm in self.p["arms"]:
            self._pose_pubs[arm] = self.create_publisher(PoseStamped, f"/{arm}/ee_pose", qos.SENSOR)
            self.create_subscription(
                JointState,
                f"/{arm}/joint_states",
                lambda msg, a=arm: self._latest.__setitem__(a, msg),
                qos.SENSOR,
            )
        self._text_pub = self.create_publisher(Marker, "~/watchdog_text", qos.LATCHED)
        self.create_subscription(
            WatchdogState,
            self.p["watchdog_state_topic"],
            self._on_watchdog,
            qos.LATCHED,
        )
        # One single-threaded executor runs every callback: placo's one state is never shared.
        self.create_timer(1.0 / self.p["rate"], self._tick)
        self.create_timer(self.p["diagnostics_period"], self._diagnostics)

    def _on_watchdog(self, state: WatchdogState) -> None:
        self._text_pub.publish(watchdog_text(state, self.fk.root_link, self.p["text_position"]))

    def _tick(self) -> None:
        known = set(self.fk.joint_names)
        for arm, msg in self._latest.items():
            if msg is None:
                continue
            self._latest[arm] = None  # each sample once
            positions = {n: q for n, q in zip(msg.name, msg.position, strict=False) if n in known}
            if len(positions) != len(msg.name):
                self._bad[arm] += 1
                self.get_logger().warning(
                    f"/{arm}/joint_states has joints not in the URDF: "
                    f"{sorted(set(msg.name) - known)}",
                    throttle_duration_sec=5.0,
                )
            pose = self.fk.pose(positions)
            self._pose_pubs[arm].publish(pose_message(pose, self.fk.root_link, msg.header.stamp))
            self._published[arm] += 1

    def _diagnostics(self) -> None:
        values: dict[str, Any] = {f"{arm}.poses": n for arm, n in self._published.items()}
        values.update({f"{arm}.unknown_joints": n for arm, n in self._bad.items()})
        silent = [arm for arm, n in self._published.items() if n == 0]
        level, message = (WARN, f"no joint states yet from {silent}") if silent else (OK, "ok")
        self.publish_diagnostics("end-effector poses", level, message, values)


def main(args: list[str] | None = None) -> int:
    return run_node(VisualizerNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
