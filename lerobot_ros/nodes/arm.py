"""Arm driver node (follower or leader): a managed (lifecycle) node around an `ArmBackend`.

Lifecycle with ros2_control's meaning:
- configured (inactive): the device is open, torque OFF, joint states published;
- active: torque ON (goal := measured first, so nothing jumps), commands accepted (follower);
- deactivate: commands ignored, the arm holds where it is (torque stays on);
- cleanup / shutdown / SIGINT / SIGTERM / an unhandled exception: torque OFF (optionally after
  holding `shutdown_hold` seconds).
A fatal device error (port gone, or `max_consecutive_errors` failed cycles in a row) makes the
node attempt torque-off, drop to unconfigured and report ERROR; it then reconnects every
`reconnect_period` s and returns to the state it was in.

Topics: `~/joint_states` (radians) always; follower: `~/command` (only the watchdog publishes
there). A simulated follower with a `sim_task` (SIM_TASKS, e.g. touch_cube) also runs trials of
it: `~/start_trial` (lerobot_msgs/StartTrial) places the task's objects for a seed, as the
gymnasium env's reset(seed) does, and `~/touching` (std_msgs/Bool, latched, on change) says
whether the arm touches the cube, so pipelines and rollouts see success through ROS. The arm
itself is never teleported by a trial: it goes home through the watchdog, so the watchdog's
hold and limits always describe the arm that is really there.
Device I/O runs in its own fixed-rate thread (absolute deadlines: an rclpy timer
jitters ~3 ms p99 here); ROS callbacks only hand data over, under `_io_lock`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.task import Future
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from lerobot_msgs.srv import MoveToPose, StartTrial
from lerobot_ros.core.backends import ARM_BACKENDS, SIM_TASKS, ArmBackend
from lerobot_ros.core.loop import PeriodicThread
from lerobot_ros.core.motion import PoseMove
from lerobot_ros.core.params import (
    ParamSpec,
    file_exists,
    non_negative,
    one_of,
    positive,
)
from lerobot_ros.core.robots import ROBOTS, get_robot
from lerobot_ros.core.stats import PeriodStats
from lerobot_ros.nodes import qos
from lerobot_ros.nodes.base import (
    ERROR,
    OK,
    RT_PRIORITY,
    WARN,
    LeRobotNode,
    call_soon,
    run_node,
)
from lerobot_ros.nodes.convert import joint_state, object_markers, positions_by_name

SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
START_STATES = ("unconfigured", "inactive", "active")


def arm_params(role: str) -> list[ParamSpec]:
    follower = role == "follower"
    return [
        ParamSpec("robot", "so101", "Robot model (robot registry name).", (one_of(ROBOTS.names),)),
        ParamSpec(
            "backend",
            "sim",
            "Device backend: 'sim' (MuJoCo / scripted); hardware backends add their own names.",
            (one_of(ARM_BACKENDS.names),),
        ),
        ParamSpec("urdf", "", "URDF file; empty = the robot's urdf/<robot>.urdf.", (file_exists,)),
        ParamSpec("rate", 100.0, "Hz of the read / write / publish loop.", (positive,)),
        RT_PRIORITY,
        ParamSpec("max_velocity", 3.0, "rad/s, speed limit of a simulated arm.", (positive,)),
        ParamSpec(
            "port",
            "/dev/ttyACM0" if follower else "/dev/ttyACM1",
            "Hardware: serial port of the servo bus (ignored in simulation).",
        ),
        ParamSpec(
            "calibration_file",
            "",
            "Hardware: LeRobot calibration JSON; empty = LeRobot's location for robot_id.",
        ),
        ParamSpec(
            "calibration_dir",
            "",
            "Hardware: directory of <robot_id>.json files; empty = $HF_LEROBOT_CALIBRATION/... .",
        ),
        ParamSpec(
            "robot_id",
            "",
            "Hardware: LeRobot's --robot.id / --teleop.id; empty = '<robot>_<role>'.",
        ),
        ParamSpec(
            "start_state",
            "active" if follower else "inactive",
            "Lifecycle state reached at start-up: unconfigured, inactive (torque off, states "
            "published) or active (torque on, commands accepted).",
            (one_of(START_STATES),),
        ),
        ParamSpec(
            "objects_topic",
            "/sim/objects" if follower else "",
            "Where a simulated arm publishes its scene objects (MarkerArray); empty = nowhere.",
        ),
        ParamSpec(
            "shutdown_hold",
            0.0,
            "s to keep holding the last position before torque goes off at shutdown.",
            (non_negative,),
        ),
        ParamSpec(
            "max_consecutive_errors",
            10,
            "Failed I/O cycles in a row that count as a fatal device error.",
            (positive,),
        ),
        ParamSpec(
            "reconnect_period", 1.0, "s between reconnection attempts after a fault.", (positive,)
        ),
        ParamSpec(
            "sim_task",
            "touch_cube" if follower else "",
            "Simulated follower: the task run by ~/start_trial and reported on ~/touching "
            "(empty = none; ignored by hardware backends and leaders).",
            (one_of(lambda: ["", *SIM_TASKS.names()]),),
        ),
    ]


class ArmNode(LeRobotNode, LifecycleNode):
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
            port=self.p["port"],
            calibration_file=self.p["calibration_file"],
            calibration_dir=self.p["calibration_dir"],
            robot_id=self.p["robot_id"],
        )
        self._lock = threading.Lock()  # the latest command, between callback and I/O thread
        self._io_lock = threading.RLock()  # every backend call: I/O thread vs ROS callbacks
        self._io = PeriodicThread(1.0 / self.p["rate"], self._tick, name=f"{role}-io")
        self._pending: np.ndarray | None = None
        self._accepting = False  # True only while active
        self._connected = False
        self._last_tick: float | None = None
        self._last_position: np.ndarray | None = None
        self._period = PeriodStats()
        self._bad_commands = 0
        self._consecutive_errors = 0
        self._fault = ""  # non-empty: the reason of the last fatal device error
        self._resume_state = "unconfigured"
        self._closed = False

        self._state_pub = self.create_publisher(JointState, "~/joint_states", qos.SENSOR)
        topic = self.p["objects_topic"]
        self._objects_pub = self.create_publisher(MarkerArray, topic, qos.SENSOR) if topic else None
        if role == "follower":
            self.create_subscription(JointState, "~/command", self._on_command, qos.COMMAND)
        else:
            # Only a leader may be moved directly: a follower moves through the watchdog alone.
            self.create_service(MoveToPose, "~/move_to_pose", self._srv_move_to_pose)
        self._move: PoseMove | None = None
        self._move_done: Future | None = None
        self._move_error = 0.0
        self._move_result: tuple[bool, str] | None = None
        # Trials of a simulated task: only a follower whose backend has a physics scene.
        self._trials: Any = None  # SIM_TASKS object of the backend's current scene
        self._touching: bool | None = None
        self._touch_pub = None
        if role == "follower" and self.p["sim_task"] and hasattr(type(self.backend), "scene"):
            self._touch_pub = self.create_publisher(Bool, "~/touching", qos.LATCHED)
            self.create_service(StartTrial, "~/start_trial", self._srv_start_trial)
        if hasattr(self.backend, "begin_calibration"):
            self.create_service(Trigger, "~/calibrate/start", self._srv_calibrate_start)
            self.create_service(Trigger, "~/calibrate/stop", self._srv_calibrate_stop)
        self.create_timer(1.0, self._diagnostics)
        self.create_timer(self.p["reconnect_period"], self._supervise)

        start = self.p["start_state"]
        if start in ("inactive", "active"):
            self.trigger_configure()
        if start == "active" and self._connected:
            self.trigger_activate()

    # --- lifecycle ---------------------------------------------------------------------------
    @property
    def lifecycle_state(self) -> str:
        """'unconfigured', 'inactive', 'active', 'finalized' (or a transition state)."""
        return self._state_machine.current_state[1]

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            with self._io_lock:
                self.backend.connect()  # open the device; torque stays off
        except Exception as exc:
            self._fault = f"configure failed: {exc}"
            self.get_logger().error(self._fault)
            return FAILURE
        self._connected = True
        self._consecutive_errors = 0
        self._last_tick = None
        self._io.start()
        self.get_logger().info(
            f"{self.role} '{self.robot.name}' on '{self.p['backend']}': configured, torque off"
        )
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            with self._io_lock:
                self.backend.enable()  # goal := measured, then torque on
        except Exception as exc:
            self.get_logger().error(f"activate failed: {exc}")
            return FAILURE
        with self._lock:
            self._pending = None
        self._accepting = True
        self.get_logger().info(f"{self.role}: active, torque on")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._accepting = False
        if not self._fault and self._last_position is not None:
            with self._lock:
                self._pending = None
            with self._io_lock:
                self.backend.write(self._last_position)  # hold here; torque stays on
        self.get_logger().info(f"{self.role}: inactive, holding")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return SUCCESS

    def _release(self) -> None:
        """Torque off and close the device (best effort: the port may be gone)."""
        self._accepting = False
        self._io.stop()
        if self._connected:
            self._connected = False
            try:
                with self._io_lock:
                    self.backend.close()
            except Exception as exc:
                self.get_logger().error(f"torque-off / close failed: {exc}")

    # --- I/O ----------------------------------------------------------------------------------
    def _on_command(self, msg: JointState) -> None:
        if not self._accepting:
            return
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
        with self._io_lock:
            self._io_cycle()

    def _io_cycle(self) -> None:
        if self._fault or not self._connected:
            return
        now = time.time()
        dt = 0.0 if self._last_tick is None else now - self._last_tick
        self._last_tick = now
        if dt > 0:
            self._period.add(dt)
        with self._lock:
            goal, self._pending = self._pending, None
        try:
            if self._move is not None:
                goal = self._move_tick(dt)
            if goal is not None and (self._accepting or self._move is not None):
                self.backend.write(goal)
            self.backend.step(dt)
            state = self.backend.read()
        except Exception as exc:
            self._on_io_error(exc)
            self._finish_move(False, f"device error: {exc}")
            return
        self._consecutive_errors = 0
        self._last_position = state.position
        if self._touch_pub is not None:
            self._publish_touching()
        self._state_pub.publish(
            joint_state(self.joint_names, state.position, state.stamp, state.velocity, state.effort)
        )
        if self._objects_pub is not None:
            objects = getattr(self.backend, "objects", list)()
            if objects:
                markers = object_markers(objects, self.robot.base_frame, state.stamp)
                self._objects_pub.publish(markers)

    # --- simulated task trials (follower, sim backend) -----------------------------------------
    def _task(self) -> Any:
        """The SIM_TASKS object on the backend's current scene (a reconnect makes a new scene);
        call with `_io_lock` held."""
        scene = self.backend.scene  # type: ignore[attr-defined]
        if self._trials is None or self._trials.scene is not scene:
            self._trials = SIM_TASKS.create(self.p["sim_task"], scene)
        return self._trials

    def _publish_touching(self) -> None:
        """In the I/O cycle: ~/touching on every change (latched: late joiners get it too)."""
        touching = bool(self._task().touching())
        if touching != self._touching:
            self._touching = touching
            self._touch_pub.publish(Bool(data=touching))  # type: ignore[union-attr]

    def _srv_start_trial(
        self, req: StartTrial.Request, res: StartTrial.Response
    ) -> StartTrial.Response:
        if not self._connected or self._fault:
            res.message = f"the simulated {self.role} is not connected"
            return res
        try:
            with self._io_lock:  # the I/O thread steps the same scene
                position = self._task().start(int(req.seed))
        except Exception as exc:
            res.message = f"trial {req.seed} not started: {exc}"
            return res
        res.success = True
        res.object_position = [float(v) for v in position]
        res.message = f"{self.p['sim_task']} trial {req.seed}: object at {np.round(position, 3)}"
        self.get_logger().info(res.message)
        return res

    # --- leader: move to a pose, then release -------------------------------------------------
    async def _srv_move_to_pose(
        self, req: MoveToPose.Request, res: MoveToPose.Response
    ) -> MoveToPose.Response:
        target = positions_by_name(req.target, self.joint_names)
        if self.lifecycle_state != "inactive" or self._last_position is None:
            res.message = f"the {self.role} must be inactive (configured) and reading its pose"
        elif target is None:
            res.message = (
                f"target must name every joint {self.joint_names}: {list(req.target.name)}"
            )
        elif self._move is not None:
            res.message = "a move is already in progress"
        else:
            try:
                with self._io_lock:
                    self.backend.enable()  # goal := measured, torque on
            except Exception as exc:
                res.message = f"torque on failed: {exc}"
                return res
            self._move_done = Future()
            self._move = PoseMove(
                target=target,
                max_velocity=req.max_velocity or self.p["max_velocity"],
                deadline=time.time() + (req.timeout or 10.0),
                release=req.release,
            )
            res.success, res.message = await self._move_done
            res.final_error = self._move_error
        return res

    def _move_tick(self, dt: float) -> np.ndarray:
        move = self._move
        assert move is not None and self._last_position is not None
        self._move_error = move.error(self._last_position)
        if move.reached(self._last_position):
            self._finish_move(True, f"reached within {self._move_error:.4f} rad")
        elif time.time() > move.deadline:
            self._finish_move(False, f"timed out {self._move_error:.4f} rad from the target")
        return move.next_goal(self._last_position, dt)

    def _finish_move(self, ok: bool, message: str) -> None:
        """In the I/O thread: end the move; the executor then answers the service."""
        move = self._move
        if move is None:
            return
        self._move = None
        if move.release:
            try:
                self.backend.disable()  # torque off: the human's hand takes over
            except Exception as exc:
                message += f"; torque off failed: {exc}"
        self._move_result = (ok, message)
        # The I/O thread finishes moves; the executor completes the service's future.
        call_soon(self, self._complete_move)

    def _complete_move(self) -> None:
        done, result = self._move_done, self._move_result
        if done is not None and result is not None:
            self._move_done, self._move_result = None, None
            done.set_result(result)

    # --- calibration (hardware backends) -------------------------------------------------------
    def _srv_calibrate_start(
        self, _req: Trigger.Request, res: Trigger.Response
    ) -> Trigger.Response:
        if self.lifecycle_state != "inactive":
            res.message = "calibrate with the arm inactive (configured, torque off)"
            return res
        try:
            with self._io_lock:
                res.message = self.backend.begin_calibration()  # type: ignore[attr-defined]
            res.success = True
        except Exception as exc:
            res.message = f"calibration failed to start: {exc}"
        return res

    def _srv_calibrate_stop(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        try:
            with self._io_lock:
                res.message = self.backend.finish_calibration()  # type: ignore[attr-defined]
            res.success = True
        except Exception as exc:
            res.message = f"calibration not saved: {exc}"
        return res

    def _on_io_error(self, exc: Exception) -> None:
        self._consecutive_errors += 1
        fatal = getattr(exc, "fatal", False) or (
            self._consecutive_errors >= self.p["max_consecutive_errors"]
        )
        self.get_logger().warning(f"I/O error: {exc}", throttle_duration_sec=1.0)
        if fatal:
            self._fault = str(exc)  # the supervisor takes it from here (not inside this timer)

    def _supervise(self) -> None:
        """Fault handling outside the I/O timer: torque-off attempt and unconfigure, then
        reconnect and return to the previous state."""
        label = self.lifecycle_state
        if self._fault and self._connected:
            self._resume_state = label
            self.get_logger().error(f"fatal device error, torque-off attempt: {self._fault}")
            if label == "active":
                self.trigger_deactivate()
            self.trigger_cleanup()
        elif self._fault and not self._connected and self._resume_state in ("inactive", "active"):
            self._fault = ""
            self.trigger_configure()
            if self.lifecycle_state != "inactive":
                return  # still gone; on_configure set _fault again
            if self._resume_state == "active":
                self.trigger_activate()
            self.get_logger().info(f"recovered: back to {self._resume_state}")

    def _diagnostics(self) -> None:
        period = self._period.summary(1.0 / self.p["rate"])
        state = self.lifecycle_state
        if self._fault:
            level, message = ERROR, f"fault: {self._fault}"
        elif not self._connected:
            level, message = WARN, f"{state}: not connected"
        else:
            slow = period["p99_error_ms"] > 5.0
            level = WARN if slow else OK
            message = f"{state}: torque {'on' if state == 'active' else 'off'}"
        values: dict[str, Any] = {
            "lifecycle_state": state,
            "io_overruns": self._io.overruns,
            "backend": self.p["backend"],
            "bad_commands": self._bad_commands,
            **period,
        }
        values.update(getattr(self.backend, "diagnostics", dict)())
        if self._touch_pub is not None:
            values["sim_task"] = self.p["sim_task"]
            values["touching"] = self._touching
        self.publish_diagnostics(f"{self.role} arm", level, message, values)

    def shutdown(self) -> None:
        """Exit path (SIGINT, SIGTERM, exception): hold `shutdown_hold` s, then torque off."""
        if self._closed:
            return
        self._closed = True
        self._accepting = False
        if self._connected and self.p["shutdown_hold"] > 0 and self._last_position is not None:
            try:
                with self._io_lock:
                    self.backend.write(self._last_position)
                time.sleep(self.p["shutdown_hold"])
            except Exception as exc:
                self.get_logger().error(f"hold before torque-off failed: {exc}")
        self._release()


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
