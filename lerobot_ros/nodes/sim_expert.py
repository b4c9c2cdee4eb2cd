"""Scripted expert node: the touch-the-cube expert (lerobot_ros/core/sim/expert.py) as a
watchdog command source, publishing JointState on `~/command` (= /expert/command).

It knows where the cube is (the sim follower's `/sim/objects`): it is the stand-in for a human
demonstrator in the closed-loop pipeline. Motions, started by services that answer at once:

- `~/touch` (std_srvs/Trigger): from the measured pose, the Cartesian approach + descent onto the
  cube's current position (always the same timing: consistent demos).
- `~/home` (std_srvs/Trigger): a minimum-jerk joint move back to `home`. This is how the arm
  returns to its start pose between trials: through the watchdog, ramped, like any command (a
  teleport of the simulated arm would leave the watchdog holding the old pose and pulling the
  arm back there).

`~/state` (std_msgs/String, latched): "idle", "<motion> moving" or "<motion> done" (the motion
ended; its final target keeps being sent). Commands go out at `rate` from a thread of their own
(one IK step each, ~0.3 ms) while the watchdog forwards this source; when the watchdog switches
to another source, the motion is dropped and the node falls silent.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from lerobot_msgs.msg import WatchdogState
from lerobot_ros.core.loop import PeriodicThread
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
from lerobot_ros.core.sim.expert import ExpertConfig, Motion, TouchExpert
from lerobot_ros.nodes import qos
from lerobot_ros.nodes.base import OK, WARN, LeRobotNode, run_node
from lerobot_ros.nodes.convert import joint_state, positions_by_name

_DEFAULTS = ExpertConfig()

EXPERT_PARAMS = [
    ParamSpec("robot", "so101", "Robot model (joints, URDF).", (one_of(ROBOTS.names),)),
    ParamSpec("urdf", "", "URDF for the IK; empty = the robot's URDF.", (file_exists,)),
    ParamSpec("ee_frame", "gripper_frame_link", "URDF link brought onto the cube.", (non_empty,)),
    ParamSpec("roll_joint", "wrist_roll", "Joint the IK leaves alone (tool roll).", (non_empty,)),
    ParamSpec("rate", 30.0, "Hz of ~/command while a motion runs (the dataset fps).", (positive,)),
    ParamSpec("approach_s", _DEFAULTS.approach_s, "s to the hover point.", (positive,)),
    ParamSpec("descend_s", _DEFAULTS.descend_s, "s from hover to touch.", (positive,)),
    ParamSpec("hover", _DEFAULTS.hover, "m above the cube's top: the hover point.", (positive,)),
    ParamSpec(
        "press",
        _DEFAULTS.press,
        "m below the cube's top the descent aims at (the servo lags: contact comes first).",
        (in_range(0.0, 0.03),),
    ),
    ParamSpec("pitch", _DEFAULTS.pitch, "rad: tool pitch over the cube.", (in_range(0.0, 1.5708),)),
    ParamSpec("home_speed", _DEFAULTS.home_speed, "rad/s: peak speed of ~/home.", (positive,)),
    ParamSpec("home", [0.0] * 6, "rad per joint (robot order): where ~/home goes.", (all_finite,)),
    ParamSpec("state_topic", "/follower/joint_states", "Measured JointState: motions start here."),
    ParamSpec("objects_topic", "/sim/objects", "Scene objects (MarkerArray) of the sim follower."),
    ParamSpec("object_name", "cube", "The object to touch (its marker namespace).", (non_empty,)),
    ParamSpec(
        "watchdog_state_topic", "/watchdog/state", "WatchdogState: is this source forwarded?"
    ),
    ParamSpec("diagnostics_period", 1.0, "s between /diagnostics reports.", (positive,)),
]


class SimExpertNode(LeRobotNode):
    PARAMS = EXPERT_PARAMS

    def __init__(self, node_name: str = "expert", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        robot = get_robot(self.p["robot"])
        self.joint_names = list(robot.joint_names)
        if len(self.p["home"]) != len(self.joint_names):
            raise ParameterError("home", self.p["home"], f"needs one value per {self.joint_names}")
        config = ExpertConfig(
            approach_s=self.p["approach_s"],
            descend_s=self.p["descend_s"],
            hover=self.p["hover"],
            press=self.p["press"],
            pitch=self.p["pitch"],
            home_speed=self.p["home_speed"],
        )
        try:
            self.expert = TouchExpert(
                self.p["urdf"] or robot.urdf_path(),
                self.joint_names,
                tip=self.p["ee_frame"],
                roll_joint=self.p["roll_joint"],
                gripper_joint=robot.gripper_joint,
                home=self.p["home"],
                config=config,
            )
        except ValueError as exc:
            raise ParameterError("ee_frame", self.p["ee_frame"], str(exc)) from exc
        self._lock = threading.Lock()  # motion + inputs: services / subscriptions vs the thread
        self._measured: np.ndarray | None = None
        self._object: np.ndarray | None = None
        self._active = False  # the watchdog forwards this source
        self._motion: Motion | None = None
        self._started = 0.0
        self._state = ""
        self.published = 0
        self.motions = 0

        self._pub = self.create_publisher(JointState, "~/command", qos.COMMAND)
        self._state_pub = self.create_publisher(String, "~/state", qos.LATCHED)
        self.create_subscription(JointState, self.p["state_topic"], self._on_state, qos.SENSOR)
        self.create_subscription(MarkerArray, self.p["objects_topic"], self._on_objects, qos.SENSOR)
        self.create_subscription(
            WatchdogState, self.p["watchdog_state_topic"], self._on_watchdog, qos.LATCHED
        )
        self.create_service(Trigger, "~/touch", self._srv_touch)
        self.create_service(Trigger, "~/home", self._srv_home)
        self.create_timer(self.p["diagnostics_period"], self._diagnostics)
        self._set_state("idle")
        self._loop = PeriodicThread(1.0 / self.p["rate"], self._tick, name="expert")
        self._loop.start()
        self.get_logger().info(
            f"expert: touch in {config.touch_s:g} s (hover {config.hover:g} m, pitch "
            f"{config.pitch:g} rad), home {self.p['home']}, {self.p['rate']:g} Hz"
        )

    # --- inputs ---------------------------------------------------------------------------
    def _on_state(self, msg: JointState) -> None:
        q = positions_by_name(msg, self.joint_names)
        if q is not None:
            with self._lock:
                self._measured = q

    def _on_objects(self, msg: MarkerArray) -> None:
        for marker in msg.markers:
            if marker.ns == self.p["object_name"]:
                p = marker.pose.position
                with self._lock:
                    self._object = np.array([p.x, p.y, p.z])

    def _on_watchdog(self, msg: WatchdogState) -> None:
        active = msg.active_source == self.get_name()
        with self._lock:
            if self._active and not active and self._motion is not None:
                self._motion = None  # switched away: a later switch back must not resume it
                self._set_state("idle")
            self._active = active

    def _srv_touch(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        with self._lock:
            if self._measured is None or self._object is None:
                res.message = "no measured pose or no object pose received yet"
                return res
            motion = self.expert.touch(self._measured, self._object)
            res.message = f"touch: {self.p['object_name']} at {np.round(self._object, 3).tolist()}"
            self._start(motion)
        res.success = True
        return res

    def _srv_home(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        with self._lock:
            if self._measured is None:
                res.message = "no measured pose received yet"
                return res
            motion = self.expert.home(self._measured)
            res.message = f"home in {motion.duration:.2f} s"
            self._start(motion)
        res.success = True
        return res

    def _start(self, motion: Motion) -> None:
        """With the lock held: replace the motion; its clock starts now."""
        self._motion = motion
        self._started = time.monotonic()
        self.motions += 1
        self._set_state(f"{motion.name} moving")

    # --- output (control thread) -----------------------------------------------------------
    def _tick(self) -> None:
        with self._lock:
            motion = self._motion
            if motion is None or not self._active:
                return
            # The target for the end of this tick, as a demo step's action is.
            t = time.monotonic() - self._started + self._loop.period
            command = motion.command(t)
            if t >= motion.duration:
                self._set_state(f"{motion.name} done")
        self._pub.publish(joint_state(self.joint_names, command, time.time()))
        self.published += 1

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self._state_pub.publish(String(data=state))

    def _diagnostics(self) -> None:
        with self._lock:
            state, active = self._state, self._active
            failures = getattr(self._motion, "ik_failures", 0)
        level = WARN if failures else OK
        message = f"{state}{'' if active else ' (not the active source)'}"
        values = {
            "state": state,
            "active_source": active,
            "motions": self.motions,
            "published": self.published,
            "ik_failures": failures,
            "overruns": self._loop.overruns,
        }
        self.publish_diagnostics("expert", level, message, values)

    def shutdown(self) -> None:
        self._loop.stop()


def main(args: list[str] | None = None) -> int:
    return run_node(SimExpertNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
