"""Simulated arms: a MuJoCo follower with STS3215-like servos, and a scripted leader.

The follower behaves like the hardware where it matters to the nodes: torque off means it sags
under gravity, enable() holds the measured pose, goals are approached at a bounded speed.
The leader replaces a human moving the leader arm: a deterministic, smooth, looping script.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import mujoco
import numpy as np

from lerobot_ros.core.backends import ARM_BACKENDS, ArmBackend, ArmState, SceneObject
from lerobot_ros.core.robots import RobotProfile, get_robot
from lerobot_ros.core.sim.scene import SimScene, find_data_file
from lerobot_ros.core.urdf import joint_limits, load_urdf

MAX_SUBSTEPS = 100  # per step() call: a stalled caller must not make one call take seconds


def _as_velocity(max_velocity: float | Sequence[float], n: int) -> np.ndarray:
    v = np.broadcast_to(np.asarray(max_velocity, dtype=float), (n,)).copy()
    if np.any(v <= 0) or not np.all(np.isfinite(v)):
        raise ValueError(f"max_velocity must be finite and > 0, got {max_velocity!r}")
    return v


def _check_goal(goal: Sequence[float] | np.ndarray, names: Sequence[str]) -> np.ndarray:
    g = np.asarray(goal, dtype=float)
    if g.shape != (len(names),):
        raise ValueError(f"goal needs {len(names)} positions ({', '.join(names)}), got {g.shape}")
    if not np.all(np.isfinite(g)):
        raise ValueError(f"goal has non-finite values: {g}")
    return g


class SimFollowerArm:
    """ArmBackend on a MuJoCo scene; `step(dt)` advances the physics."""

    def __init__(
        self,
        joint_names: Sequence[str],
        urdf_path: str | Path | None = None,
        max_velocity: float | Sequence[float] = 3.0,
        initial_position: Sequence[float] | None = None,
    ) -> None:
        self.joint_names = list(joint_names)
        self.urdf_path = urdf_path
        self.max_velocity = _as_velocity(max_velocity, len(self.joint_names))
        n = len(self.joint_names)
        self._initial = np.zeros(n) if initial_position is None else np.asarray(initial_position)
        self._scene: SimScene | None = None
        self._enabled = False
        self._goal = np.zeros(n)
        self._setpoint = np.zeros(n)
        self._pending = 0.0  # simulated time owed to step() callers (< one timestep)

    @property
    def scene(self) -> SimScene:
        if self._scene is None:
            raise RuntimeError("sim follower is not connected")
        return self._scene

    @property
    def enabled(self) -> bool:
        return self._enabled

    def connect(self) -> None:
        if self._scene is not None:
            return
        scene = SimScene(self.urdf_path, joint_names=self.joint_names, cameras=())
        scene.set_actuation(False)
        scene.set_arm_positions(self.joint_names, _check_goal(self._initial, self.joint_names))
        scene.forward()
        self._lower, self._upper = scene.joint_range()
        self._scene = scene

    def enable(self) -> None:
        scene = self.scene
        self._goal = np.clip(scene.arm_positions(), self._lower, self._upper)
        self._setpoint = self._goal.copy()
        scene.set_ctrl(self._setpoint)
        scene.set_actuation(True)
        self._enabled = True

    def disable(self) -> None:
        self.scene.set_actuation(False)
        self._enabled = False

    def close(self) -> None:
        if self._scene is not None:
            self._scene.set_actuation(False)
        self._enabled = False
        self._scene = None

    def read(self) -> ArmState:
        scene = self.scene
        return ArmState(
            position=scene.arm_positions(),
            velocity=scene.arm_velocities(),
            effort=scene.actuator_forces(),
            stamp=time.time(),
        )

    def write(self, position: Sequence[float] | np.ndarray) -> None:
        goal = _check_goal(position, self.joint_names)
        if self._enabled:
            self._goal = np.clip(goal, self._lower, self._upper)

    def step(self, dt: float) -> None:
        """Advance the physics by dt; the servo setpoint ramps toward the goal at max_velocity."""
        scene = self.scene
        if dt <= 0:
            return
        ts = scene.timestep
        self._pending += dt
        n = int(self._pending / ts + 1e-9)
        if n > MAX_SUBSTEPS:
            n, self._pending = MAX_SUBSTEPS, 0.0  # fell behind: drop the backlog
        else:
            self._pending -= n * ts
        max_delta = self.max_velocity * ts
        for _ in range(n):
            if self._enabled:
                self._setpoint += np.clip(self._goal - self._setpoint, -max_delta, max_delta)
                scene.set_ctrl(self._setpoint)
            mujoco.mj_step(scene.model, scene.data)

    def objects(self) -> list[SceneObject]:
        return self.scene.objects()


# Leader script: waypoints as fractions f in [-1, 1] of SCRIPT_SPAN of each joint's half-range
# around mid-range. Columns: pan, lift, elbow, wrist_flex, wrist_roll (other non-gripper joints
# reuse them cyclically); the gripper has its own column (-1 closed .. 1 open).
SCRIPT_SPAN = 0.6
SCRIPT_ARM = np.array(
    [
        [0.0, 0.0, 0.0, 0.0, 0.0],
        [0.45, -0.5, 0.5, 0.3, 0.25],
        [0.45, 0.4, -0.3, 0.6, 0.4],
        [0.45, 0.4, -0.3, 0.6, 0.4],
        [-0.45, -0.3, 0.4, -0.4, -0.2],
        [-0.45, 0.3, 0.2, -0.2, -0.2],
    ]
)
SCRIPT_GRIPPER = np.array([-1.0, 1.0, 1.0, -1.0, -1.0, 1.0])
SCRIPT_HOLD = 1.0  # s, pause at each waypoint
SCRIPT_PEAK_SPEED = 1.0  # rad/s, peak joint speed of a move; sets its duration
SCRIPT_MIN_MOVE = 1.5  # s


def min_jerk(tau: float) -> tuple[float, float]:
    """Minimum-jerk profile s(tau) and ds/dtau for tau in [0, 1] (peak ds/dtau = 1.875)."""
    tau = min(max(tau, 0.0), 1.0)
    s = tau**3 * (10.0 - 15.0 * tau + 6.0 * tau**2)
    ds = 30.0 * tau**2 * (1.0 - tau) ** 2
    return s, ds


def _move_duration(a: np.ndarray, b: np.ndarray) -> float:
    return max(SCRIPT_MIN_MOVE, 1.875 * float(np.max(np.abs(b - a))) / SCRIPT_PEAK_SPEED)


def script_waypoints(
    joint_names: Sequence[str], lower: np.ndarray, upper: np.ndarray, gripper: str = "gripper"
) -> np.ndarray:
    """The leader's waypoints in radians (rows), inside SCRIPT_SPAN of each joint's range."""
    mid, half = (upper + lower) / 2, (upper - lower) / 2
    fractions = np.empty((len(SCRIPT_ARM), len(joint_names)))
    arm_col = 0
    for j, name in enumerate(joint_names):
        if name == gripper:
            fractions[:, j] = SCRIPT_GRIPPER
        else:
            fractions[:, j] = SCRIPT_ARM[:, arm_col % SCRIPT_ARM.shape[1]]
            arm_col += 1
    return mid + SCRIPT_SPAN * half * fractions


class LeaderScript:
    """Loop: hold a waypoint, min-jerk move to the next, ..., back to the first."""

    def __init__(self, waypoints: np.ndarray) -> None:
        self.waypoints = np.asarray(waypoints, dtype=float)
        # segments: (start time, duration, from, to); holds have from == to
        self.segments: list[tuple[float, float, np.ndarray, np.ndarray]] = []
        t = 0.0
        count = len(self.waypoints)
        for k in range(count):
            a, b = self.waypoints[k], self.waypoints[(k + 1) % count]
            self.segments.append((t, SCRIPT_HOLD, a, a))
            t += SCRIPT_HOLD
            duration = _move_duration(a, b)
            self.segments.append((t, duration, a, b))
            t += duration
        self.period = t

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(position, velocity) at script time t (periodic)."""
        t = t % self.period
        for start, duration, a, b in self.segments:
            if t < start + duration:
                s, ds = min_jerk((t - start) / duration)
                return a + s * (b - a), (ds / duration) * (b - a)
        start, duration, a, b = self.segments[-1]
        return b.copy(), np.zeros_like(b)


class ScriptedLeaderArm:
    """ArmBackend without physics: replays LeaderScript; with torque on it goes to written goals."""

    def __init__(
        self,
        joint_names: Sequence[str],
        lower: np.ndarray,
        upper: np.ndarray,
        max_velocity: float | Sequence[float] = 3.0,
        gripper_joint: str = "gripper",
    ) -> None:
        self.joint_names = list(joint_names)
        self.max_velocity = _as_velocity(max_velocity, len(self.joint_names))
        self._lower, self._upper = np.asarray(lower, float), np.asarray(upper, float)
        self.script = LeaderScript(
            script_waypoints(self.joint_names, self._lower, self._upper, gripper_joint)
        )
        self.script_time = 0.0
        self._connected = False
        self._enabled = False
        self._position, self._velocity = self.script.sample(0.0)
        self._goal = self._position.copy()
        # after torque off: min-jerk from the held pose back into the script (script paused)
        self._rejoin: tuple[np.ndarray, float, float] | None = None  # (start, duration, elapsed)

    @property
    def enabled(self) -> bool:
        return self._enabled

    def connect(self) -> None:
        self._connected = True

    def enable(self) -> None:
        self._check()
        self._goal = self._position.copy()
        self._velocity = np.zeros_like(self._position)
        self._rejoin = None
        self._enabled = True

    def disable(self) -> None:
        if self._enabled:
            target, _ = self.script.sample(self.script_time)
            self._rejoin = (self._position.copy(), _move_duration(self._position, target), 0.0)
        self._enabled = False

    def close(self) -> None:
        self._enabled = False
        self._connected = False

    def _check(self) -> None:
        if not self._connected:
            raise RuntimeError("sim leader is not connected")

    def read(self) -> ArmState:
        self._check()
        return ArmState(
            position=self._position.copy(),
            velocity=self._velocity.copy(),
            effort=np.zeros_like(self._position),
            stamp=time.time(),
        )

    def write(self, position: Sequence[float] | np.ndarray) -> None:
        goal = _check_goal(position, self.joint_names)
        if self._enabled:
            self._goal = np.clip(goal, self._lower, self._upper)

    def step(self, dt: float) -> None:
        if dt <= 0:
            return
        if self._enabled:
            max_delta = self.max_velocity * dt
            delta = np.clip(self._goal - self._position, -max_delta, max_delta)
            self._position = self._position + delta
            self._velocity = delta / dt
        elif self._rejoin is not None:
            start, duration, elapsed = self._rejoin
            elapsed += dt
            target, _ = self.script.sample(self.script_time)
            s, ds = min_jerk(elapsed / duration)
            self._position = start + s * (target - start)
            self._velocity = (ds / duration) * (target - start)
            self._rejoin = None if elapsed >= duration else (start, duration, elapsed)
        else:
            self.script_time += dt
            self._position, self._velocity = self.script.sample(self.script_time)

    def objects(self) -> list[SceneObject]:
        return []


def _follower(robot: RobotProfile, urdf: Path, max_velocity: float) -> ArmBackend:
    return SimFollowerArm(robot.joint_names, urdf, max_velocity)


def _leader(robot: RobotProfile, urdf: Path, max_velocity: float) -> ArmBackend:
    lower, upper, _ = joint_limits(load_urdf(urdf), robot.joint_names)
    return ScriptedLeaderArm(robot.joint_names, lower, upper, max_velocity, robot.gripper_joint)


SIM_ROLES: dict[str, Callable[[RobotProfile, Path, float], ArmBackend]] = {
    "follower": _follower,
    "leader": _leader,
}


@ARM_BACKENDS.register("sim")
def create_sim_arm(
    robot: RobotProfile | str,
    role: str,
    urdf_path: str | Path | None = None,
    max_velocity: float = 3.0,
    **_hardware_options: object,  # port, calibration_file, ...: meaningless in simulation
) -> ArmBackend:
    """The simulated arm for `role` ("follower": MuJoCo physics, "leader": scripted)."""
    factory = SIM_ROLES.get(role)
    if factory is None:
        raise ValueError(f"unknown sim arm role {role!r}; known: {', '.join(sorted(SIM_ROLES))}")
    profile = get_robot(robot) if isinstance(robot, str) else robot
    urdf = Path(urdf_path) if urdf_path is not None else find_data_file(profile.urdf)
    return factory(profile, urdf, max_velocity)
