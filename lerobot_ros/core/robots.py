"""Robot profiles: joint names and URDF of each supported arm, chosen by name via `ROBOTS`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lerobot_ros.core.paths import resolve
from lerobot_ros.core.registry import Registry

# LeRobot's motor order for SO-100/SO-101 and Koch (ids 1..6).
SO_ARM_JOINTS: tuple[str, ...] = (
    "shoulder_pan",
    "shoulder_lift",
    "elbow_flex",
    "wrist_flex",
    "wrist_roll",
    "gripper",
)


@dataclass(frozen=True)
class RobotProfile:
    """What the ROS side needs to know about an arm model."""

    name: str
    urdf: str  # share-relative path or package:// URL
    joint_names: tuple[str, ...]
    gripper_joint: str = "gripper"
    base_frame: str = "base_link"
    # Arm backend used with sim:=false (registered by the hardware driver module).
    hardware_backend: str = "feetech"
    # Parameter file with every node's settings for this robot.
    params_file: str = "config/so101.yaml"
    rviz_config: str = "config/so101.rviz"
    # rqt perspective (robot monitor, joint plots, camera, e-stop / highlight services); the
    # arms share joint names and topics, so one file serves them all.
    rqt_perspective: str = "config/so101.perspective"

    def urdf_path(self) -> Path:
        return resolve(self.urdf)


ROBOTS: Registry[RobotProfile] = Registry("robot")


@ROBOTS.register("so101")
def _so101() -> RobotProfile:
    return RobotProfile(name="so101", urdf="urdf/so101.urdf", joint_names=SO_ARM_JOINTS)


@ROBOTS.register("so100")
def _so100() -> RobotProfile:
    # Same joints, motors and link offsets as the SO-101; its own URDF's zero pose differs from
    # LeRobot's mid-range zero, so the SO-101 model (mid-range zero) is used for both.
    return RobotProfile(name="so100", urdf="urdf/so101.urdf", joint_names=SO_ARM_JOINTS)


@ROBOTS.register("koch")
def _koch() -> RobotProfile:
    return RobotProfile(
        name="koch",
        urdf="urdf/koch.urdf",
        joint_names=SO_ARM_JOINTS,
        hardware_backend="dynamixel",
        rviz_config="config/koch.rviz",
    )


def get_robot(name: str) -> RobotProfile:
    """The profile registered under `name` (UnknownNameError lists the valid names)."""
    return ROBOTS.create(name)
