"""The one mapping from ROS units to LeRobot's (a *dataset profile* per robot).

SO-101 / SO-100 (LeRobot `so101_follower`, `use_degrees=True` calibration mode):
- arm joints (shoulder_pan .. wrist_roll): ROS radians -> LeRobot degrees, `deg = rad * 180 / pi`.
  The lerobot_ros URDF uses LeRobot's mid-range zero, so 0 rad is LeRobot's 0 deg.
- gripper: LeRobot reports it as 0..100 (`MotorNormMode.RANGE_0_100`). We map ROS radians linearly
  over the URDF gripper limits: lower limit (closed) -> 0, upper limit (open) -> 100. Values beyond
  the limits map beyond 0..100 (no clipping: the data is kept as measured).
Feature names are `<joint>.pos`, in LeRobot's motor order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from lerobot_ros.core.robots import SO_ARM_JOINTS


@dataclass(frozen=True)
class DatasetProfile:
    robot_type: str
    joint_names: tuple[str, ...]  # ROS joint names, in LeRobot's order
    degree_joints: tuple[str, ...]  # rad -> deg
    range_joints: dict[str, tuple[float, float]]  # joint -> (lower, upper) rad mapped to 0..100
    state_topic: str = "/follower/joint_states"
    command_topic: str = "/follower/command"
    leader_topic: str = "/leader/joint_states"
    camera_prefix: str = "/cameras/"
    camera_suffix: str = "/image_raw"

    @property
    def feature_names(self) -> list[str]:
        return [f"{j}.pos" for j in self.joint_names]

    def joints_to_lerobot(self, names: Sequence[str], positions: np.ndarray) -> np.ndarray:
        """One JointState (names, positions) -> float32 vector in LeRobot units and order."""
        if len(names) == 0:
            if len(positions) != len(self.joint_names):
                raise ValueError(
                    f"JointState without names has {len(positions)} positions, "
                    f"expected {len(self.joint_names)}"
                )
            lookup = dict(zip(self.joint_names, positions, strict=True))
        else:
            lookup = dict(zip(names, positions, strict=False))
        missing = [j for j in self.joint_names if j not in lookup]
        if missing:
            raise ValueError(f"JointState lacks joints {missing} (has {list(names)})")
        return self.to_lerobot(np.array([lookup[j] for j in self.joint_names], dtype=np.float64))

    def to_lerobot(self, rad: np.ndarray) -> np.ndarray:
        """(..., n_joints) ROS positions in profile order -> LeRobot units, float32."""
        out = np.array(rad, dtype=np.float64, copy=True)
        for i, j in enumerate(self.joint_names):
            if j in self.range_joints:
                lo, hi = self.range_joints[j]
                out[..., i] = (out[..., i] - lo) / (hi - lo) * 100.0
            elif j in self.degree_joints:
                out[..., i] = out[..., i] * (180.0 / math.pi)
        return out.astype(np.float32)

    def from_lerobot(self, values: np.ndarray) -> np.ndarray:
        """Inverse of `to_lerobot`: (..., n_joints) LeRobot units in profile order -> ROS
        positions (rad), float64. Policy actions go back to the wire through this, so a round
        trip to_lerobot -> from_lerobot is exact up to float32 rounding."""
        out = np.array(values, dtype=np.float64, copy=True)
        for i, j in enumerate(self.joint_names):
            if j in self.range_joints:
                lo, hi = self.range_joints[j]
                out[..., i] = lo + out[..., i] / 100.0 * (hi - lo)
            elif j in self.degree_joints:
                out[..., i] = out[..., i] * (math.pi / 180.0)
        return out

    def camera_name(self, topic: str) -> str | None:
        """`/cameras/front/image_raw` -> `front`; None for other topics."""
        if topic.startswith(self.camera_prefix) and topic.endswith(self.camera_suffix):
            name = topic[len(self.camera_prefix) : -len(self.camera_suffix)]
            return name.replace("/", "_") or None
        return None


@cache
def _so_gripper_limits() -> tuple[float, float]:
    from lerobot_ros.core.robots import get_robot
    from lerobot_ros.core.urdf import joint_limits, load_urdf

    lo, hi, _ = joint_limits(load_urdf(get_robot("so101").urdf_path()), ["gripper"])
    return float(lo[0]), float(hi[0])


def so101_profile() -> DatasetProfile:
    return DatasetProfile(
        robot_type="so101_follower",
        joint_names=SO_ARM_JOINTS,
        degree_joints=SO_ARM_JOINTS[:5],
        range_joints={"gripper": _so_gripper_limits()},
    )


def get_profile(name: str) -> DatasetProfile:
    """Dataset profile by robot name: so101 (so101_follower), so100 (so100_follower)."""
    if name in ("so101", "so101_follower"):
        return so101_profile()
    if name in ("so100", "so100_follower"):
        p = so101_profile()
        return DatasetProfile("so100_follower", p.joint_names, p.degree_joints, p.range_joints)
    raise ValueError(f"no dataset profile for robot {name!r} (known: so101, so100)")
