"""End-effector teleop node: keyboard or gamepad -> target tip pose -> placo IK -> joint
commands on `~/command` (= /ee_teleop/command, a source of the watchdog).

The input device (`input`: a name in INPUT_DEVICES) runs its own reader thread and only hands
motions to a `Jog`; a timer at `rate` takes one motion per tick, moves the target (inside the
workspace), solves IK and publishes. Nothing here ever waits for a key.

It starts from the measured pose (`state_topic`) and keeps re-starting from it while the
watchdog does not forward this source (another source active, or the e-stop latched): when it
becomes active again, its first command is where the arm is, never a stale target. Without a
watchdog state (no watchdog yet), it assumes it is active.

Also publishes `~/target` (PoseStamped, the tip target; RViz) and /diagnostics.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import JointState

from lerobot_msgs.msg import WatchdogState
from lerobot_ros.core.ee_teleop import (
    EndEffectorIK,
    EndEffectorTeleop,
    Jog,
    default_workspace,
)
from lerobot_ros.core.input_devices import (
    INPUT_DEVICES,
    DeviceError,
    InputDevice,
    InputSettings,
    make_device,
)
from lerobot_ros.core.kinematics import DEFAULT_TIP
from lerobot_ros.core.params import (
    ParameterError,
    ParamSpec,
    all_finite,
    file_exists,
    in_range,
    non_empty,
    one_of,
    positive,
)
from lerobot_ros.core.robots import ROBOTS, get_robot
from lerobot_ros.nodes import qos
from lerobot_ros.nodes.base import ERROR, OK, WARN, LeRobotNode, run_node
from lerobot_ros.nodes.convert import joint_state, to_time


def _three(v: Any) -> str | None:
    return None if len(v) == 3 else "needs 3 values (x, y, z)"


def _five(v: Any) -> str | None:
    return None if len(v) == 5 else "needs 5 values (x, y, z, pitch, roll)"


def _two(v: Any) -> str | None:
    return None if len(v) == 2 else "needs 2 values (close, open)"


EE_TELEOP_PARAMS = [
    ParamSpec("robot", "so101", "Robot model (joints, URDF).", (one_of(ROBOTS.names),)),
    ParamSpec("urdf", "", "URDF for the IK; empty = the robot's URDF.", (file_exists,)),
    ParamSpec("ee_frame", DEFAULT_TIP, "URDF link moved by the teleop (the tip).", (non_empty,)),
    ParamSpec("roll_joint", "wrist_roll", "Joint turned by the roll keys / stick.", (non_empty,)),
    ParamSpec(
        "input", "keyboard", "Input device: keyboard or gamepad.", (one_of(INPUT_DEVICES.names),)
    ),
    ParamSpec(
        "device",
        "",
        "keyboard: a tty path (empty = stdin); gamepad: a joystick device (empty = "
        "/dev/input/js0).",
    ),
    ParamSpec("rate", 50.0, "Hz: commands on ~/command (the control tick).", (positive,)),
    ParamSpec("linear_speed", 0.1, "m/s: fastest tip motion (full stick, held key).", (positive,)),
    ParamSpec("angular_speed", 1.0, "rad/s: fastest pitch and roll.", (positive,)),
    ParamSpec("gripper_speed", 2.0, "rad/s: fastest gripper motion.", (positive,)),
    ParamSpec("key_linear_step", 0.01, "m per key press (x, y, z).", (positive,)),
    ParamSpec("key_angular_step", 0.1, "rad per key press (pitch, roll).", (positive,)),
    ParamSpec("key_gripper_step", 0.2, "rad per key press (gripper).", (positive,)),
    ParamSpec(
        "workspace_min",
        [-0.45, -0.45, 0.02],
        "m: lower corner of the allowed tip box (base frame).",
        (all_finite, _three),
    ),
    ParamSpec(
        "workspace_max",
        [0.45, 0.45, 0.45],
        "m: upper corner of the allowed tip box (base frame).",
        (all_finite, _three),
    ),
    ParamSpec(
        "workspace_radius",
        0.0,
        "m: allowed distance of the tip from the shoulder; 0 = 95 % of the arm's reach.",
        (in_range(0.0, 10.0),),
    ),
    ParamSpec(
        "pitch_weight", 0.1, "IK weight of the tool pitch relative to the position.", (positive,)
    ),
    ParamSpec(
        "ik_tolerance",
        0.005,
        "m: IK solutions further than this from the target hold.",
        (positive,),
    ),
    ParamSpec(
        "gamepad_axes",
        [1, 0, 4, 7, 3],
        "Gamepad axis numbers driving x, y, z, pitch, roll (Xbox layout: left stick x/y, right "
        "stick up/down = z, d-pad up/down = pitch, right stick left/right = roll).",
        (_five,),
    ),
    ParamSpec(
        "gamepad_axis_signs",
        [-1.0, -1.0, -1.0, 1.0, 1.0],
        "Sign per gamepad axis (stick up reads negative).",
        (all_finite, _five),
    ),
    ParamSpec("gamepad_gripper_buttons", [4, 5], "Buttons closing / opening the gripper.", (_two,)),
    ParamSpec("gamepad_enable_button", -1, "Dead-man button held for any motion; -1 = none."),
    ParamSpec(
        "deadzone", 0.1, "Fraction of stick travel ignored at the centre.", (in_range(0.0, 0.9),)
    ),
    ParamSpec(
        "reconnect_period", 1.0, "s between attempts to open a missing gamepad.", (positive,)
    ),
    ParamSpec("state_topic", "/follower/joint_states", "Measured JointState to start from."),
    ParamSpec(
        "watchdog_state_topic", "/watchdog/state", "WatchdogState: is this source forwarded?"
    ),
    ParamSpec("diagnostics_period", 1.0, "s between /diagnostics reports.", (positive,)),
]


class EeTeleopNode(LeRobotNode):
    PARAMS = EE_TELEOP_PARAMS

    def __init__(self, node_name: str = "ee_teleop", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        robot = get_robot(self.p["robot"])
        self.joint_names = list(robot.joint_names)
        self.teleop = self._make_teleop(robot.urdf_path(), robot.gripper_joint)
        self.frame_id = self.teleop.ik.model.root_link
        speeds = [self.p["linear_speed"]] * 3 + [self.p["angular_speed"]] * 2
        steps = [self.p["key_linear_step"]] * 3 + [self.p["key_angular_step"]] * 2
        self.jog = Jog(
            max_rate=[*speeds, self.p["gripper_speed"]],
            # At most ~3 key presses queued per axis: released keys stop the arm promptly.
            max_queue=[3.0 * s for s in [*steps, self.p["key_gripper_step"]]],
        )

        self._measured: dict[str, float] | None = None
        self._watchdog: WatchdogState | None = None
        self._was_active = False
        self._last_tick: float | None = None
        self._status, self._message = "waiting", "waiting for the measured pose"

        group = MutuallyExclusiveCallbackGroup()  # the teleop core is not thread-safe
        self._pub = self.create_publisher(JointState, "~/command", qos.COMMAND)
        self._target_pub = self.create_publisher(PoseStamped, "~/target", qos.SENSOR)
        self.create_subscription(
            JointState, self.p["state_topic"], self._on_measured, qos.SENSOR, callback_group=group
        )
        self.create_subscription(
            WatchdogState,
            self.p["watchdog_state_topic"],
            self._on_watchdog,
            qos.LATCHED,
            callback_group=group,
        )
        self.create_timer(1.0 / self.p["rate"], self._tick, callback_group=group)
        self.create_timer(self.p["diagnostics_period"], self._diagnostics, callback_group=group)
        # Last: a keyboard switches its terminal's mode on open, which only shutdown() undoes.
        self.device = self._make_device()
        self.device.start()
        self.get_logger().info(
            f"ee_teleop: {self.p['input']} on {self.device.path}, tip '{self.p['ee_frame']}', "
            f"workspace box {self.p['workspace_min']}..{self.p['workspace_max']} m, radius "
            f"{self.teleop.workspace.radius:.3f} m around the shoulder"
        )

    # --- configuration ------------------------------------------------------------------
    def _make_teleop(self, robot_urdf: Any, gripper_joint: str) -> EndEffectorTeleop:
        urdf = self.p["urdf"] or str(robot_urdf)
        try:
            ik = EndEffectorIK(
                urdf,
                self.p["ee_frame"],
                self.p["roll_joint"],
                fixed_joints=(gripper_joint,),
                pitch_weight=self.p["pitch_weight"],
                tolerance=self.p["ik_tolerance"],
            )
        except (OSError, ValueError) as exc:
            text = str(exc)
            name = "urdf"
            if text.startswith("roll joint"):
                name = "roll_joint"
            elif text.startswith("tip frame"):
                name = "ee_frame"
            raise ParameterError(name, self.p[name] or urdf, text) from exc
        try:
            workspace = default_workspace(
                ik.model,
                self.p["ee_frame"],
                self.p["workspace_min"],
                self.p["workspace_max"],
                self.p["workspace_radius"],
            )
        except ValueError as exc:
            raise ParameterError("workspace_min", self.p["workspace_min"], str(exc)) from exc
        try:
            return EndEffectorTeleop(ik, workspace, self.joint_names, gripper_joint)
        except ValueError as exc:
            raise ParameterError("robot", self.p["robot"], str(exc)) from exc

    def _make_device(self) -> InputDevice:
        p = self.p
        settings = InputSettings(
            device=p["device"],
            linear_step=p["key_linear_step"],
            angular_step=p["key_angular_step"],
            gripper_step=p["key_gripper_step"],
            axes=tuple(p["gamepad_axes"]),
            axis_signs=tuple(p["gamepad_axis_signs"]),
            gripper_buttons=(p["gamepad_gripper_buttons"][0], p["gamepad_gripper_buttons"][1]),
            enable_button=p["gamepad_enable_button"],
            deadzone=p["deadzone"],
            reconnect_period=p["reconnect_period"],
        )

        def log(text: str) -> None:  # called from the reader thread: the logger is thread-safe
            self.get_logger().warning(f"{p['input']}: {text} (parameter 'device')")

        try:
            return make_device(p["input"], settings, self.jog, log)
        except DeviceError as exc:
            raise ParameterError("device", p["device"], str(exc)) from exc

    # --- inputs -------------------------------------------------------------------------
    def _on_measured(self, msg: JointState) -> None:
        self._measured = dict(zip(msg.name, msg.position, strict=False))

    def _on_watchdog(self, msg: WatchdogState) -> None:
        self._watchdog = msg

    def _active(self) -> bool:
        w = self._watchdog
        return w is None or (w.active_source == self.get_name() and not w.estop_active)

    # --- the control tick ---------------------------------------------------------------
    def _tick(self) -> None:
        now = time.monotonic()
        dt = 0.0 if self._last_tick is None else min(now - self._last_tick, 0.1)
        self._last_tick = now
        if self._measured is None or not all(n in self._measured for n in self.joint_names):
            return
        active = self._active()
        if not active or not self._was_active or not self.teleop.started:
            # Not forwarded (or just became forwarded): follow the arm, drop pending input.
            self.teleop.reset(self._measured)
            self.jog.clear()
            self._was_active = active
            self._status, self._message = (
                ("ok", "holding the measured pose")
                if active
                else ("inactive", "not the watchdog's active source (or e-stop): following the arm")
            )
            if active:
                self._publish(self.teleop.command())
            return
        step = self.teleop.step(self.jog.take(dt))
        self._status, self._message = step.status, step.message
        if step.status != "ok":
            self.get_logger().warning(step.message, throttle_duration_sec=2.0)
        self._publish(step.command)

    def _publish(self, command: np.ndarray) -> None:
        stamp = time.time()
        self._pub.publish(joint_state(self.joint_names, command, stamp))
        target = PoseStamped()
        target.header.stamp = to_time(stamp)
        target.header.frame_id = self.frame_id
        x, y, z = (float(v) for v in self.teleop.position)
        target.pose.position.x, target.pose.position.y, target.pose.position.z = x, y, z
        # Orientation: the tool axis at the target pitch, heading along the arm (yaw about z).
        yaw = math.atan2(y - self.teleop.workspace.center[1], x - self.teleop.workspace.center[0])
        qw, qx, qy, qz = _quat_yaw_pitch(yaw, self.teleop.pitch)
        target.pose.orientation.w, target.pose.orientation.x = qw, qx
        target.pose.orientation.y, target.pose.orientation.z = qy, qz
        self._target_pub.publish(target)

    def _diagnostics(self) -> None:
        c = self.teleop.counters
        values: dict[str, Any] = {
            "input": self.p["input"],
            "device": self.device.path,
            "device_status": self.device.status(),
            "status": self._status,
            "target_xyz_m": np.round(self.teleop.position, 4).tolist(),
            "target_pitch_rad": round(self.teleop.pitch, 4),
            "steps": c.steps,
            "workspace_refusals": c.workspace_refusals,
            "ik_failures": c.ik_failures,
            "last_problem": c.last_problem,
        }
        if not self.device.connected():
            level, message = ERROR, f"no input: {self.device.status()}"
        elif self._status in ("workspace", "ik_failed"):
            level, message = WARN, self._message
        else:
            level, message = OK, f"{self._status}: {self._message or 'following the input'}"
        self.publish_diagnostics("end-effector teleop", level, message, values)

    def shutdown(self) -> None:
        self.device.stop()  # restores the terminal's mode


def _quat_yaw_pitch(yaw: float, pitch: float) -> tuple[float, float, float, float]:
    """(w, x, y, z) of Rz(yaw) @ Ry(pitch): x axis = a tool pointing along the heading, tipped
    down by `pitch` (RViz draws a Pose's arrow along its x axis)."""
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    return cy * cp, -sy * sp, cy * sp, sy * cp


def main(args: list[str] | None = None) -> int:
    return run_node(EeTeleopNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
