"""MuJoCo simulation of the workcell; importing this package registers the "sim" backends."""

from lerobot_ros.core.sim import arm, camera  # noqa: F401 - registers ARM/CAMERA_BACKENDS["sim"]
from lerobot_ros.core.sim.arm import ScriptedLeaderArm, SimFollowerArm, create_sim_arm
from lerobot_ros.core.sim.camera import SimCamera
from lerobot_ros.core.sim.scene import SimScene, build_scene_mjcf, default_urdf_path

__all__ = [
    "ScriptedLeaderArm",
    "SimCamera",
    "SimFollowerArm",
    "SimScene",
    "build_scene_mjcf",
    "create_sim_arm",
    "default_urdf_path",
]
