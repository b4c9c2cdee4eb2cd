"""Arm driver node (follower or leader) around an `ArmBackend` chosen by the `backend` parameter.

Follower: listens to `~/command` (only the watchdog publishes there) and publishes
`~/joint_states`. Leader: publishes `~/joint_states` only. Both in radians.
Device I/O runs in one timer of its own callback group; the command callback only stores the
latest command, so no callback ever blocks on hardware.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import JointState
from visualization_msgs.msg import MarkerArray

from lerobot_ros.core.backends import ARM_BACKENDS, ArmBackend
from lerobot_ros.core.params import ParamSpec, file_exists, one_of, positive
from lerobot_ros.core.robots import ROBOTS, get_robot
from lerobot_ros.core.stats import PeriodStats
from lerobot_ros.nodes import qos
from lerobot_ros.nodes.base import ERROR, OK, WARN, LeRobotNode, run_node
from lerobot_ros.nodes.convert import joint_state, object_markers, positions_by_name


def arm_params(role: str) -> list[ParamSpec]:
    return [
        ParamSpec(
            "robot", "so101", "Robot model, a name in the robot registry.", (one_of(ROBOTS.names),)
        ),
        ParamSpec(
            "backend",
            "sim",
            "Device backend: 'sim' (MuJoCo / scripted); hardware backends add their own names.",
            (one_of(ARM_BACKENDS.names),),
        ),
        ParamSpec("urdf", "", "URDF file; empty = the robot's urdf/<robot>.urdf.", (file_exists,)),
        ParamSpec("rate", 100.0, "Hz of the read / write / publish loop.", (positive,)),
        ParamSpec(
            "max_velocity", 3.0, "rad/s, servo speed limit of the simulated arm.", (positive,)
        ),
        ParamSpec(
            "enable_on_start",
            role == "follower",
            "Torque on at start-up (active). false = configured only: talking, torque off.",
        ),
        ParamSpec(
            "objects_topic",
            "/sim/objects" if role == "follower" else "",
            "Where a simulated arm publishes its scene objects (MarkerArray); empty = nowhere.",
        ),
    ]


class ArmNode(LeRobotNode):
    """One arm. `role` is 'follower' (accepts ~/command) or 'leader' (publishes only)."""

    def __init__(self, role: str, node_name: str | None = None, **kwargs: Any) -> None:
        self.PARAMS = arm_params(role)
        super().__init__(node_name or role, **kwargs)
        self.role = role
        self.robot = get_robot(self.p["robot"])
        self.joint_names = list(self.robot.joint_names)
        self.backend: ArmBackend = ARM_BACKENDS.create(
            self.p["backend"],
            self.robot,
            role,
            urdf_path=self.p["urdf"] or None,
            max_velocity=self.p["max_velocity"],
        )
        self.backend.connect()
        self._enabled = False
        if self.p["enable_on_start"]:
            self.backend.enable()
            self._enabled = True

        self._pending: np.ndarray | None = None
        self._lock = threading.Lock()
        self._bad_commands = 0
        self._period = PeriodStats()
        self._last_tick: float | None = None
        self._closed = False

        self._state_pub = self.create_publisher(JointState, "~/joint_states", qos.SENSOR)
        self._objects_pub = (
            self.create_publisher(MarkerArray, self.p["objects_topic"], qos.SENSOR)
            if self.p["objects_topic"]
            else None
        )
        if role == "follower":
            self.create_subscription(JointState, "~/command", self._on_command, qos.COMMAND)
        io_group = MutuallyExclusiveCallbackGroup()
        self.create_timer(1.0 / self.p["rate"], self._tick, callback_group=io_group)
        self.create_timer(1.0, self._diagnostics, callback_group=MutuallyExclusiveCallbackGroup())
        self.get_logger().info(
            f"{role} arm '{self.robot.name}' on backend '{self.p['backend']}' at "
            f"{self.p['rate']:.0f} Hz, torque {'on' if self._enabled else 'off'}"
        )

    def _on_command(self, msg: JointState) -> None:
        q = positions_by_name(msg, self.joint_names)
        if q is None:
            self._bad_commands += 1
            self.get_logger().warning(
                f"command does not name every joint {self.joint_names}: {list(msg.name)}",
                throttle_duration_sec=2.0,
            )
            return
        with self._lock:
            self._pending = q

    def _tick(self) -> None:
        now = time.time()
        dt = 0.0 if self._last_tick is None else now - self._last_tick
        self._last_tick = now
        if dt > 0:
            self._period.add(dt)
        with self._lock:
            goal, self._pending = self._pending, None
        if goal is not None and self._enabled:
            self.backend.write(goal)
        self.backend.step(dt)
        state = self.backend.read()
        self._state_pub.publish(
            joint_state(self.joint_names, state.position, state.stamp, state.velocity, state.effort)
        )
        if self._objects_pub is not None:
            objects = getattr(self.backend, "objects", list)()
            if objects:
                self._objects_pub.publish(
                    object_markers(objects, self.robot.base_frame, state.stamp)
                )

    def _diagnostics(self) -> None:
        period = self._period.summary(1.0 / self.p["rate"])
        level = OK if period["p99_error_ms"] < 5.0 else WARN
        self.publish_diagnostics(
            f"{self.role} arm",
            level if not self._closed else ERROR,
            "torque on" if self._enabled else "torque off",
            {"backend": self.p["backend"], "bad_commands": self._bad_commands, **period},
        )

    def shutdown(self) -> None:
        """Torque off (the backend decides how: off, or hold briefly then off)."""
        if not self._closed:
            self._closed = True
            self.backend.close()


class FollowerNode(ArmNode):
    def __init__(self, node_name: str = "follower", **kwargs: Any) -> None:
        super().__init__("follower", node_name, **kwargs)


class LeaderNode(ArmNode):
    def __init__(self, node_name: str = "leader", **kwargs: Any) -> None:
        super().__init__("leader", node_name, **kwargs)


def main_follower(args: list[str] | None = None) -> int:
    return run_node(FollowerNode, args)


def main_leader(args: list[str] | None = None) -> int:
    return run_node(LeaderNode, args)


if __name__ == "__main__":
    import sys

    role = sys.argv.pop(1) if len(sys.argv) > 1 and sys.argv[1] in ("follower", "leader") else ""
    sys.exit(main_leader() if role == "leader" else main_follower())
