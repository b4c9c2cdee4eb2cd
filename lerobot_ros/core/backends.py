"""Device backends behind the arm and camera nodes.

A backend does the I/O (a simulation, a servo bus, a camera); the node around it does ROS.
Lifecycle follows ros2_control: `connect()` = talking, torque off; `enable()` = torque on and
commands accepted; `disable()` = torque off (or a safe hold); `close()` = disconnected.
Units are SI: radians for every joint (the gripper included), seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from lerobot_ros.core.registry import Registry


class DeviceDisconnectedError(RuntimeError):
    """The device is gone (USB unplugged, port closed). Fatal for the node: it attempts
    torque-off, drops to unconfigured and reconnects when the device is back."""

    fatal = True


@dataclass
class ArmState:
    """One measurement of an arm. Arrays are ordered like `ArmBackend.joint_names`."""

    position: np.ndarray  # rad
    velocity: np.ndarray | None = None  # rad/s
    effort: np.ndarray | None = None  # N*m (or the backend's best estimate)
    stamp: float = 0.0  # seconds, time.monotonic()-free: the wall clock (time.time()) at capture


class ArmBackend(Protocol):
    """What an arm node drives. Implementations register in `ARM_BACKENDS`."""

    joint_names: list[str]

    def connect(self) -> None:
        """Open the device; torque stays off."""

    def enable(self) -> None:
        """Torque on; the current goal is set to the measured position first (no jump)."""

    def disable(self) -> None:
        """Torque off (or the configured safe hold)."""

    def close(self) -> None:
        """Torque off and release the device. Safe to call twice."""

    def read(self) -> ArmState:
        """Measure the arm; called from the node's timer."""

    def write(self, position: np.ndarray) -> None:
        """Set goal positions (rad, ordered like joint_names); only while enabled."""

    def step(self, dt: float) -> None:
        """Advance time by dt seconds (simulation); hardware backends do nothing."""


@dataclass
class CameraIntrinsics:
    """Pinhole model for sensor_msgs/CameraInfo (plumb_bob, no distortion by default)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion: list[float] = field(default_factory=lambda: [0.0] * 5)


@dataclass
class Frame:
    """One captured image: HxWx3 uint8 RGB, stamped with the wall-clock capture time."""

    image: np.ndarray
    stamp: float


class CameraBackend(Protocol):
    """What a camera node reads. Implementations register in `CAMERA_BACKENDS`."""

    intrinsics: CameraIntrinsics

    def open(self) -> None: ...

    def grab(self) -> Frame:
        """Capture one frame (blocking for at most one frame period)."""

    def close(self) -> None: ...


# name -> factory(**params) for arm backends ("sim", later "feetech", "dynamixel").
ARM_BACKENDS: Registry[ArmBackend] = Registry("arm backend")
# name -> factory(**params) for camera backends ("sim", later "opencv", "realsense").
CAMERA_BACKENDS: Registry[CameraBackend] = Registry("camera backend")
ARM_BACKENDS.lazy("sim", "lerobot_ros.core.sim")
ARM_BACKENDS.lazy("feetech", "lerobot_ros.core.hardware.arm")
ARM_BACKENDS.lazy("dynamixel", "lerobot_ros.core.hardware.arm")
CAMERA_BACKENDS.lazy("sim", "lerobot_ros.core.sim")
CAMERA_BACKENDS.lazy("opencv", "lerobot_ros.core.cameras.opencv")
CAMERA_BACKENDS.lazy("realsense", "lerobot_ros.core.cameras.realsense")
# name -> factory(scene) of a task whose trials a simulated follower runs (its `sim_task`):
# `start(seed)` places the task's objects, `touching()` says whether it is solved.
SIM_TASKS: Registry[Any] = Registry("sim task")
SIM_TASKS.lazy("touch_cube", "lerobot_ros.core.sim.task")


@dataclass
class SceneObject:
    """A free object of a simulated scene (e.g. the cube), in the robot's base frame.

    Published by the simulated follower (visualization_msgs/Marker) so that a simulated camera
    in another process renders the same scene, and RViz shows it.
    """

    name: str
    position: np.ndarray  # m, xyz
    quaternion: np.ndarray  # w, x, y, z
    size: np.ndarray  # m, full box extents xyz
    rgba: np.ndarray  # 0..1
