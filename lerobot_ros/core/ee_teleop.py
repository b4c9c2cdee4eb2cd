"""End-effector teleoperation, ROS-free: input motions -> a target tip pose -> placo inverse
kinematics on the URDF -> joint positions for the watchdog.

Why these pieces:

- `Jog` sits between an input device's reader thread and the control loop: devices add discrete
  steps (a key press) or set velocities (a stick), and the control loop takes one bounded motion
  per tick. Keys pressed faster than the arm may move queue up to a cap instead of jumping.
- `Workspace` is a box plus a sphere around the shoulder: targets outside it are refused per
  axis (the other axes still move), so a user holding "forward" against the boundary can still
  go sideways. A target that starts outside (an arm parked folded) may move back towards it.
- `EndEffectorIK` solves position (3) + tool pitch (1) for the arm joints with placo, with the
  URDF joint limits as hard constraints; wrist roll and gripper are set directly (they barely
  move the tip, and a user wants them to do exactly what the key says). A solve that does not
  reach the target within `tolerance` is a failure: the caller holds the last good solution.
- `EndEffectorTeleop` ties them together and reports every hold (workspace or IK) with a reason.

Tool pitch is the angle of the tool's pointing axis (the wrist-roll axis, oriented towards the
tip) below the horizontal: 0 = level, +pi/2 = pointing straight down.
"""

from __future__ import annotations

import itertools
import math
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lerobot_ros.core.urdf import UrdfJoint, UrdfModel, joint_limits, load_urdf

# Components of every motion, in this order: metres for x/y/z (root frame), radians for the rest.
AXES: tuple[str, ...] = ("x", "y", "z", "pitch", "roll", "gripper")
_LINEAR = slice(0, 3)
PITCH, ROLL, GRIPPER = 3, 4, 5


def motion(**components: float) -> np.ndarray:
    """A 6-vector over AXES from keyword components, e.g. motion(x=0.01, gripper=-0.2)."""
    unknown = sorted(set(components) - set(AXES))
    if unknown:
        raise ValueError(f"unknown motion axes {unknown}; known: {list(AXES)}")
    return np.array([float(components.get(a, 0.0)) for a in AXES])


class Jog:
    """Thread-safe hand-over from an input device's thread to the control loop.

    `max_rate` (per axis of AXES, per second) bounds the motion `take(dt)` returns; queued steps
    beyond `max_queue` (per axis) are dropped, so a burst of key repeats cannot leave the arm
    moving for seconds after the key is released.
    """

    def __init__(self, max_rate: Sequence[float], max_queue: Sequence[float]) -> None:
        self.max_rate = np.asarray(max_rate, dtype=float)
        self.max_queue = np.asarray(max_queue, dtype=float)
        if self.max_rate.shape != (len(AXES),) or self.max_queue.shape != (len(AXES),):
            raise ValueError(f"max_rate and max_queue need {len(AXES)} values ({AXES})")
        self._lock = threading.Lock()
        self._queued = np.zeros(len(AXES))
        self._velocity = np.zeros(len(AXES))  # fraction of max_rate, -1..1

    def step(self, delta: np.ndarray) -> None:
        """Queue a discrete motion (a key press)."""
        with self._lock:
            self._queued = np.clip(self._queued + delta, -self.max_queue, self.max_queue)

    def set_velocity(self, fraction: np.ndarray) -> None:
        """Move continuously at `fraction` (-1..1 per axis) of max_rate until changed."""
        with self._lock:
            self._velocity = np.clip(np.asarray(fraction, dtype=float), -1.0, 1.0)

    def clear(self) -> None:
        """Stop: drop queued steps and zero the velocity."""
        with self._lock:
            self._queued[:] = 0.0
            self._velocity[:] = 0.0

    def take(self, dt: float) -> np.ndarray:
        """The motion for a control tick of `dt` seconds (queued steps first, rate-limited)."""
        limit = self.max_rate * dt
        with self._lock:
            queued = np.clip(self._queued, -limit, limit)
            self._queued -= queued
            moving = self._velocity * limit
        return np.clip(queued + moving, -limit, limit)


@dataclass(frozen=True)
class Workspace:
    """Allowed tip positions: inside the box AND within `radius` of `center` (root frame, m)."""

    box_min: np.ndarray
    box_max: np.ndarray
    center: np.ndarray
    radius: float

    def __post_init__(self) -> None:
        for name in ("box_min", "box_max", "center"):
            value = np.asarray(getattr(self, name), dtype=float)
            if value.shape != (3,) or not np.all(np.isfinite(value)):
                raise ValueError(f"workspace {name} must be 3 finite numbers, got {value}")
            object.__setattr__(self, name, value)
        if np.any(self.box_min >= self.box_max):
            raise ValueError(f"workspace box_min {self.box_min} must be < box_max {self.box_max}")
        if not (math.isfinite(self.radius) and self.radius > 0):
            raise ValueError(f"workspace radius must be > 0, got {self.radius}")

    def excess(self, p: np.ndarray) -> float:
        """How far (m) `p` lies outside: 0 inside, else the box and sphere overshoots summed."""
        p = np.asarray(p, dtype=float)
        box = np.maximum(self.box_min - p, 0.0) + np.maximum(p - self.box_max, 0.0)
        sphere = max(float(np.linalg.norm(p - self.center)) - self.radius, 0.0)
        return float(box.sum()) + sphere

    def violation(self, p: np.ndarray) -> str | None:
        """A readable reason why `p` is outside, or None."""
        p = np.asarray(p, dtype=float)
        reasons = []
        for i, axis in enumerate("xyz"):
            if p[i] < self.box_min[i]:
                reasons.append(f"{axis} {p[i]:.3f} < {self.box_min[i]:.3f}")
            if p[i] > self.box_max[i]:
                reasons.append(f"{axis} {p[i]:.3f} > {self.box_max[i]:.3f}")
        distance = float(np.linalg.norm(p - self.center))
        if distance > self.radius:
            reasons.append(f"{distance:.3f} m from the shoulder > radius {self.radius:.3f}")
        return ", ".join(reasons) or None

    def contains(self, p: np.ndarray) -> bool:
        return self.excess(p) == 0.0


def arm_chain(model: UrdfModel, tip: str) -> list[UrdfJoint]:
    """Movable joints from the root link to `tip`, root first."""
    by_child = {j.child: j for j in model.joints.values()}
    if tip not in model.links:
        raise ValueError(f"tip frame {tip!r} is not a link of the URDF ({sorted(model.links)})")
    chain, link = [], tip
    while link in by_child:
        joint = by_child[link]
        if joint.type != "fixed":
            chain.append(joint)
        link = joint.parent
    return chain[::-1]


def default_workspace(
    model: UrdfModel,
    tip: str,
    box_min: Sequence[float],
    box_max: Sequence[float],
    radius: float = 0.0,
    reach_fraction: float = 0.95,
) -> Workspace:
    """A Workspace whose sphere is centred on the shoulder (the second joint of the chain: the
    first one after the base's yaw) and, with radius 0, whose radius is `reach_fraction` of the
    arm's reach there: the sum of the joint-to-joint distances out to the tip, an upper bound
    that stays clear of the stretched-out (singular) pose."""
    chain = arm_chain(model, tip)
    if len(chain) < 2:
        raise ValueError(f"tip {tip!r}: need at least 2 movable joints, got {len(chain)}")
    poses = model.link_poses()
    points = [poses[j.child][:3, 3] for j in chain[1:]] + [poses[tip][:3, 3]]
    center = points[0]
    if radius <= 0.0:
        reach = sum(float(np.linalg.norm(b - a)) for a, b in itertools.pairwise(points))
        radius = reach_fraction * reach
    return Workspace(np.asarray(box_min, float), np.asarray(box_max, float), center, radius)


@dataclass
class IkResult:
    """`q`: every joint of the URDF; `ok`: the tip reached the position within tolerance."""

    q: dict[str, float]
    ok: bool
    position_error: float  # m
    pitch_error: float  # rad
    position: np.ndarray  # reached tip position
    pitch: float  # reached tool pitch


class EndEffectorIK:
    """placo IK for position + tool pitch of `tip`; the roll joint, `fixed_joints` (e.g. the
    gripper) and joints off the chain keep the seed's values. Not thread-safe (one placo state).

    Pitch is a task on the height of a virtual point `POINT_DISTANCE` m out along the tool axis
    (a fixed link added to an in-memory copy of the URDF), relative to the tip: that height fixes
    the pitch and says nothing about the heading, so the pitch task never fights the shoulder
    pan that a sideways move needs (an axis-alignment task does, and converges slowly).
    """

    POINT_DISTANCE = 0.1  # m
    POINT_LINK = "ee_teleop_axis_point"

    def __init__(
        self,
        urdf_path: str | Path,
        tip: str,
        roll_joint: str,
        fixed_joints: Sequence[str] = (),
        pitch_weight: float = 0.1,
        tolerance: float = 0.005,
        iterations: int = 10,
    ) -> None:
        with warnings.catch_warnings():  # placo imports pinocchio's deprecated hppfcl alias
            warnings.simplefilter("ignore", DeprecationWarning)
            import placo  # heavy (pinocchio); only paid by users of IK

        path = Path(urdf_path)
        self.model = load_urdf(path)  # clear FileNotFoundError / ValueError naming the file
        self.tip = tip
        chain = arm_chain(self.model, tip)
        if roll_joint not in {j.name for j in chain}:
            raise ValueError(
                f"roll joint {roll_joint!r} is not between the root and {tip!r} "
                f"(chain: {[j.name for j in chain]})"
            )
        self.roll_joint = roll_joint
        self.joint_names: list[str] = [
            j.name for j in self.model.chain_order() if j.type in ("revolute", "continuous")
        ]
        self.lower, self.upper, _ = joint_limits(self.model, self.joint_names)
        fixed = {roll_joint, *fixed_joints}
        self.solved_joints = [j.name for j in chain if j.name not in fixed]
        self.tolerance = tolerance
        self.iterations = iterations
        self.tool_axis = self._tool_axis()

        # Mesh paths in the URDF stay relative to its own directory.
        text = _with_axis_point(
            path.read_text(), tip, self.POINT_LINK, self.POINT_DISTANCE * self.tool_axis
        )
        self._robot = placo.RobotWrapper(str(path.parent), placo.Flags.ignore_collisions, text)
        self._solver = placo.KinematicsSolver(self._robot)
        self._solver.mask_fbase(True)
        self._solver.enable_joint_limits(True)
        self._solver.enable_velocity_limits(False)
        for name in self.joint_names:
            if name not in self.solved_joints:
                self._solver.mask_dof(name)
        self._position = self._solver.add_position_task(tip, np.zeros(3))
        self._position.configure("position", "soft", 1.0)
        self._height = self._solver.add_position_task(self.POINT_LINK, np.zeros(3))
        self._height.configure("pitch", "soft", float(pitch_weight))
        self._height.mask.set_axises("z")
        self._solver.add_regularization_task(1e-6)

    def _tool_axis(self) -> np.ndarray:
        """The roll joint's axis in the tip frame, pointing from the roll joint to the tip."""
        poses = self.model.link_poses()
        roll = self.model.joints[self.roll_joint]
        child = poses[roll.child]
        axis_world = child[:3, :3] @ (roll.axis / np.linalg.norm(roll.axis))
        if float(axis_world @ (poses[self.tip][:3, 3] - child[:3, 3])) < 0.0:
            axis_world = -axis_world
        return poses[self.tip][:3, :3].T @ axis_world

    def _set(self, q: Mapping[str, float]) -> None:
        for name in self.joint_names:
            self._robot.set_joint(name, float(q.get(name, 0.0)))
        self._robot.update_kinematics()

    def _tip(self) -> tuple[np.ndarray, np.ndarray]:
        pose = np.array(self._robot.get_T_world_frame(self.tip), dtype=float)
        return pose[:3, 3], pose[:3, :3] @ self.tool_axis

    def forward(self, q: Mapping[str, float]) -> tuple[np.ndarray, float, np.ndarray]:
        """(tip position, tool pitch, 4x4 tip pose) for joint positions `q` (missing = 0)."""
        self._set(q)
        position, axis = self._tip()
        pose = np.array(self._robot.get_T_world_frame(self.tip), dtype=float)
        return position, _pitch(axis), pose

    def solve(self, seed: Mapping[str, float], position: np.ndarray, pitch: float) -> IkResult:
        """Joint positions putting the tip at `position` with tool pitch `pitch`, from `seed`."""
        target = np.asarray(position, dtype=float)
        self._set(seed)
        self._position.target_world = target
        drop = -self.POINT_DISTANCE * math.sin(pitch)
        self._height.target_world = target + np.array([0.0, 0.0, drop])
        for _ in range(self.iterations):
            self._solver.solve(True)
            self._robot.update_kinematics()
            reached, _ = self._tip()
            if np.linalg.norm(reached - target) < 1e-5:
                break
        q = {name: float(self._robot.get_joint(name)) for name in self.joint_names}
        for i, name in enumerate(self.joint_names):  # the QP keeps limits; rounding may not
            q[name] = float(np.clip(q[name], self.lower[i], self.upper[i]))
        self._set(q)
        reached, axis = self._tip()
        error = float(np.linalg.norm(reached - target))
        reached_pitch = _pitch(axis)
        return IkResult(
            q=q,
            ok=error <= self.tolerance,
            position_error=error,
            pitch_error=abs(reached_pitch - pitch),
            position=reached,
            pitch=reached_pitch,
        )


def _with_axis_point(urdf_text: str, tip: str, link: str, offset: np.ndarray) -> str:
    """The URDF text plus a massless fixed link `link` at `offset` (m) in the `tip` frame."""
    x, y, z = (f"{float(v):.9g}" for v in offset)
    extra = (
        f'<link name="{link}"/><joint name="{link}_joint" type="fixed">'
        f'<parent link="{tip}"/><child link="{link}"/>'
        f'<origin xyz="{x} {y} {z}" rpy="0 0 0"/></joint>'
    )
    head, sep, tail = urdf_text.rpartition("</robot>")
    if not sep:
        raise ValueError("URDF text has no closing </robot>")
    return head + extra + sep + tail


def _pitch(axis: np.ndarray) -> float:
    return float(math.asin(float(np.clip(-axis[2] / np.linalg.norm(axis), -1.0, 1.0))))


@dataclass
class TeleopStep:
    """One control tick's outcome. `status`: ok | workspace | ik_failed (the last two hold)."""

    command: np.ndarray  # joint positions in EndEffectorTeleop.joint_names order, rad
    status: str
    message: str = ""


@dataclass
class TeleopCounters:
    steps: int = 0
    workspace_refusals: int = 0
    ik_failures: int = 0
    last_problem: str = ""


@dataclass
class EndEffectorTeleop:
    """Target tip pose (position, pitch), wrist roll and gripper, moved by motions over AXES.

    `reset(measured)` starts from the arm's measured pose; `step(motion)` returns the joint
    command. The target never leaves the workspace and the command never leaves the URDF
    limits; when IK cannot follow, the last good command is held and the target stays put.
    """

    ik: EndEffectorIK
    workspace: Workspace
    joint_names: Sequence[str]  # the robot's joints, in command order
    gripper_joint: str
    counters: TeleopCounters = field(default_factory=TeleopCounters)

    def __post_init__(self) -> None:
        missing = [
            n for n in (*self.joint_names, self.gripper_joint) if n not in self.ik.joint_names
        ]
        if missing:
            raise ValueError(f"joints {missing} are not in the URDF (has {self.ik.joint_names})")
        self.joint_names = list(self.joint_names)
        index = {n: i for i, n in enumerate(self.ik.joint_names)}
        self._limits = {
            n: (float(self.ik.lower[index[n]]), float(self.ik.upper[index[n]]))
            for n in self.ik.joint_names
        }
        self.q: dict[str, float] = {}
        self.position = np.zeros(3)
        self.pitch = 0.0
        self.started = False

    def reset(self, measured: Mapping[str, float]) -> None:
        """Hold where the arm is: command = measured (clipped into the limits), target = FK."""
        self.q = {n: self._clip(n, float(measured.get(n, 0.0))) for n in self.ik.joint_names}
        self.position, self.pitch, _ = self.ik.forward(self.q)
        self.started = True

    def command(self) -> np.ndarray:
        return np.array([self.q[n] for n in self.joint_names])

    @property
    def roll(self) -> float:
        return self.q[self.ik.roll_joint]

    @property
    def gripper(self) -> float:
        return self.q[self.gripper_joint]

    def _clip(self, name: str, value: float) -> float:
        lo, hi = self._limits[name]
        return float(np.clip(value, lo, hi))

    def step(self, move: np.ndarray) -> TeleopStep:
        """Apply one motion (over AXES); call reset() first."""
        if not self.started:
            raise RuntimeError("EndEffectorTeleop.step() before reset()")
        self.counters.steps += 1
        move = np.asarray(move, dtype=float)
        q = dict(self.q)
        q[self.gripper_joint] = self._clip(
            self.gripper_joint, q[self.gripper_joint] + move[GRIPPER]
        )
        roll = self.ik.roll_joint
        q[roll] = self._clip(roll, q[roll] + move[ROLL])

        position, refused = self._move_within_workspace(move[_LINEAR])
        pitch = float(np.clip(self.pitch + move[PITCH], -math.pi / 2, math.pi / 2))
        status, message = "ok", ""
        if refused:
            status = "workspace"
            message = f"outside the workspace, holding {'/'.join(refused)}: " + (
                self.workspace.violation(self.position + self._axis_move(move, refused)) or ""
            )
            self.counters.workspace_refusals += 1
        if np.any(position != self.position) or pitch != self.pitch or move[ROLL] != 0.0:
            result = self.ik.solve(q, position, pitch)
            if not result.ok:
                self.counters.ik_failures += 1
                self.counters.last_problem = (
                    f"IK failed: target {np.round(position, 3).tolist()} missed by "
                    f"{result.position_error * 1e3:.1f} mm; holding"
                )
                # The gripper still moves: it does not depend on the arm's pose.
                self.q[self.gripper_joint] = q[self.gripper_joint]
                return TeleopStep(self.command(), "ik_failed", self.counters.last_problem)
            q = {**result.q, roll: q[roll], self.gripper_joint: q[self.gripper_joint]}
            self.position, self.pitch = position, pitch
        if message:
            self.counters.last_problem = message
        self.q = q
        return TeleopStep(self.command(), status, message)

    @staticmethod
    def _axis_move(move: np.ndarray, axes: list[str]) -> np.ndarray:
        out = np.zeros(3)
        for a in axes:
            i = "xyz".index(a)
            out[i] = move[i]
        return out

    def _move_within_workspace(self, linear: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Apply the x, y, z components one at a time, each only if the target stays inside
        (or gets less far outside); returns the new target and the refused axes."""
        position = self.position.copy()
        refused = []
        for i, axis in enumerate("xyz"):
            if linear[i] == 0.0:
                continue
            candidate = position.copy()
            candidate[i] += linear[i]
            before, after = self.workspace.excess(position), self.workspace.excess(candidate)
            if after == 0.0 or after < before:
                position = candidate
            else:
                refused.append(axis)
        return position, refused
