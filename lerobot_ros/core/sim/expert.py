"""The scripted expert of the touch-the-cube task, ROS-free: a smooth Cartesian path of the
gripper tip, solved into joint targets with the end-effector IK (placo) one control step at a time.

Why it looks like this:

- Demonstrations must be *consistent* for ACT to learn the task from a few dozen of them: every
  approach has the same timing (`approach_s` to a hover point above the cube, `descend_s` down
  to it), the same tool pitch and the same shape (minimum-jerk in Cartesian space). What varies
  between demos is only what the camera shows: where the cube is.
- The path is sampled by time, `command(t)`, and the IK is solved per call seeded with the
  previous solution (a small step: a few placo iterations, ~0.3 ms), so a ROS node can call it
  from a control timer without ever blocking, and the gymnasium env can call it per step.
- The descent aims `press` below the cube's top: the servo lags its setpoint, so the contact
  (the success criterion) happens before the path ends, not never.
- Homing is a plain joint-space minimum-jerk move (`JointMove`): it is how the arm gets back to
  the start pose between trials *through the watchdog* (see nodes/sim_expert.py).

Joint vectors are radians in the order of `joint_names` (the robot's, i.e. the dataset profile's).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from lerobot_ros.core.ee_teleop import EndEffectorIK
from lerobot_ros.core.sim.arm import min_jerk
from lerobot_ros.core.sim.scene import CUBE_SIZE


@dataclass(frozen=True)
class ExpertConfig:
    """Shape and timing of the expert's motions (the same for every demo)."""

    approach_s: float = 2.0  # s: tip from where it is to the hover point above the cube
    descend_s: float = 1.0  # s: hover point -> touch point
    hover: float = 0.05  # m: hover point height above the cube's top face
    press: float = 0.012  # m: the touch point lies this far below the cube's top face
    pitch: float = 1.0  # rad: tool pitch at the hover and touch points (0 level, pi/2 down)
    home_speed: float = 1.0  # rad/s: peak joint speed of a homing move
    min_home_s: float = 1.0  # s: shortest homing move

    def __post_init__(self) -> None:
        for name in ("approach_s", "descend_s", "home_speed", "min_home_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"expert {name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.pitch <= math.pi / 2:
            raise ValueError(f"expert pitch must be in [0, pi/2], got {self.pitch!r}")

    @property
    def touch_s(self) -> float:
        """Duration of a whole touch motion."""
        return self.approach_s + self.descend_s


class Motion(Protocol):
    """A timed joint-space motion: `command(t)` for t >= 0 s since its start; after `duration`
    it keeps returning its final target (the arm holds there)."""

    name: str
    duration: float

    def command(self, t: float) -> np.ndarray: ...


class JointMove:
    """Minimum-jerk move in joint space from `start` to `goal`, its duration set by the largest
    joint distance at `peak_speed` (rad/s), at least `min_s`."""

    name = "home"

    def __init__(
        self, start: np.ndarray, goal: np.ndarray, peak_speed: float, min_s: float
    ) -> None:
        self.start = np.asarray(start, dtype=float).copy()
        self.goal = np.asarray(goal, dtype=float).copy()
        if self.start.shape != self.goal.shape:
            raise ValueError(f"start {self.start.shape} and goal {self.goal.shape} differ")
        distance = float(np.max(np.abs(self.goal - self.start))) if self.start.size else 0.0
        self.duration = max(min_s, 1.875 * distance / peak_speed)  # 1.875 = min-jerk peak ds

    def command(self, t: float) -> np.ndarray:
        s, _ = min_jerk(t / self.duration)
        return self.start + s * (self.goal - self.start)


class TouchMotion:
    """Tip path: minimum-jerk from the start tip position (and pitch) to the hover point, then
    minimum-jerk straight down to the touch point; each `command(t)` solves the IK for the
    path's point at t from the last solution. Wrist roll and gripper keep their start values.
    An IK solve that misses (outside reach) keeps the last good solution and is counted."""

    name = "touch"

    def __init__(
        self,
        ik: EndEffectorIK,
        joint_names: Sequence[str],
        start: np.ndarray,
        cube: np.ndarray,
        config: ExpertConfig,
    ) -> None:
        self.ik = ik
        self.joint_names = list(joint_names)
        self.config = config
        self.duration = config.touch_s
        self._q: dict[str, float] = dict(zip(self.joint_names, map(float, start), strict=True))
        self.start_tip, self.start_pitch, _ = ik.forward(self._q)
        top = float(cube[2]) + CUBE_SIZE / 2
        self.hover = np.array([cube[0], cube[1], top + config.hover])
        self.touch = np.array([cube[0], cube[1], top - config.press])
        self.ik_failures = 0
        self._last_t = -math.inf
        self._last = np.asarray(start, dtype=float).copy()

    def target(self, t: float) -> tuple[np.ndarray, float]:
        """(tip position, tool pitch) the path asks for at t."""
        c = self.config
        if t < c.approach_s:
            s, _ = min_jerk(t / c.approach_s)
            position = self.start_tip + s * (self.hover - self.start_tip)
            return position, self.start_pitch + s * (c.pitch - self.start_pitch)
        s, _ = min_jerk((t - c.approach_s) / c.descend_s)
        return self.hover + s * (self.touch - self.hover), c.pitch

    def command(self, t: float) -> np.ndarray:
        t = min(max(t, 0.0), self.duration)
        if t == self._last_t:
            return self._last.copy()
        position, pitch = self.target(t)
        result = self.ik.solve(self._q, position, pitch)
        if result.ok:
            self._q.update({n: result.q[n] for n in self.ik.solved_joints})
        else:
            self.ik_failures += 1
        self._last_t = t
        self._last = np.array([self._q[n] for n in self.joint_names])
        return self._last.copy()


class TouchExpert:
    """Makes the expert's motions; owns the IK (loading placo's model takes ~0.1 s, a motion is
    then cheap). Not thread-safe (one placo state): one motion at a time."""

    def __init__(
        self,
        urdf: str | Path,
        joint_names: Sequence[str],
        *,
        tip: str = "gripper_frame_link",
        roll_joint: str = "wrist_roll",
        gripper_joint: str = "gripper",
        home: Sequence[float] | None = None,
        config: ExpertConfig | None = None,
    ) -> None:
        self.joint_names = list(joint_names)
        self.config = config or ExpertConfig()
        # Tolerance: the path moves a few mm per step; a solve that lands 5 mm off is a miss.
        self.ik = EndEffectorIK(urdf, tip, roll_joint, fixed_joints=(gripper_joint,))
        missing = [n for n in self.joint_names if n not in self.ik.joint_names]
        if missing:
            raise ValueError(f"joints {missing} are not in the URDF {urdf}")
        n = len(self.joint_names)
        self.home_position = np.zeros(n) if home is None else np.asarray(home, dtype=float)
        if self.home_position.shape != (n,):
            raise ValueError(f"home needs {n} positions ({self.joint_names})")

    def touch(self, measured: np.ndarray, cube: np.ndarray) -> TouchMotion:
        """The motion from the measured pose to touching the cube at `cube` (its centre, m)."""
        return TouchMotion(self.ik, self.joint_names, measured, np.asarray(cube), self.config)

    def home(self, measured: np.ndarray) -> JointMove:
        """The motion from the measured pose back to the home pose."""
        c = self.config
        return JointMove(measured, self.home_position, c.home_speed, c.min_home_s)

    def tip(self, q: np.ndarray) -> np.ndarray:
        """Tip position (m) for joint positions `q`."""
        position, _, _ = self.ik.forward(dict(zip(self.joint_names, map(float, q), strict=True)))
        return position
