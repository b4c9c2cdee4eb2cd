"""The simulated workcell: the arm's URDF turned into MJCF, on a table, with a cube and cameras.

The conversion is done here (not by MuJoCo's URDF importer) so that the scene needs no meshes,
gets the servo model of the real STS3215 and the extras (table, cube, cameras) in one string.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco: offscreen rendering without X

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import mujoco
import numpy as np

from lerobot_ros.core.backends import SceneObject
from lerobot_ros.core.paths import _SOURCE_ROOT, resolve
from lerobot_ros.core.urdf import UrdfLink, UrdfModel, load_urdf, rpy_to_matrix, rpy_to_quat

TIMESTEP = 0.002  # s
# STS3215 in MuJoCo (SO-ARM100 joints_properties.xml), except the gains: their kp (17.8) sags
# ~2 deg under gravity, a real STS3215 holds a pose to about one encoder step. kp 150 keeps the
# static error < 0.35 deg in any pose; kv (servo-side damping, off with the torque) makes the
# response to the ramped setpoint nearly overshoot-free at the cost of ~30 ms of lag.
SERVO_KP = 150.0  # N*m/rad
SERVO_KV = 4.0  # N*m*s/rad
SERVO_FORCE = 3.35  # N*m, stall torque
JOINT_DAMPING = 0.60  # N*m*s/rad
JOINT_ARMATURE = 0.028  # kg*m^2, reflected rotor inertia
JOINT_FRICTIONLOSS = 0.052  # N*m

CUBE_NAME = "cube"
CUBE_SIZE = 0.03  # m, edge
CUBE_POSITION = (0.22, 0.0, CUBE_SIZE / 2)
CUBE_RGBA = (0.85, 0.08, 0.08, 1.0)
TABLE_TOP_Z = 0.0

# Contact filtering: arm geoms touch the table and the cube but not each other (the coarse
# boxes of neighbouring links overlap at many poses, which the real meshes do not).
_ARM_CONTACT = {"contype": "2", "conaffinity": "1"}
_WORLD_CONTACT = {"contype": "1", "conaffinity": "3"}


def _fmt(values: Sequence[float] | np.ndarray) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


def _look_at(pos: Sequence[float], target: Sequence[float]) -> str:
    """MJCF xyaxes of a camera at `pos` looking at `target` with world +z up in the image."""
    forward = np.asarray(target, dtype=float) - np.asarray(pos, dtype=float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return _fmt([*right, *up])


# name -> (parent body or None for the world, camera attributes). fovy in degrees.
CAMERAS: dict[str, tuple[str | None, dict[str, str]]] = {
    "front": (
        None,
        {"pos": "0.62 -0.34 0.42", "xyaxes": _look_at((0.62, -0.34, 0.42), (0.17, 0.0, 0.1))},
    ),
    "top": (None, {"pos": "0.2 0 0.85", "xyaxes": "0 -1 0 1 0 0"}),
    # Under the gripper (opposite the moving jaw), looking along the fingers (gripper_link -z),
    # tilted 10 deg toward them; the gripper is just below the bottom of the image.
    "wrist": ("gripper_link", {"pos": "-0.06 0 -0.085", "xyaxes": "0 1 0 -0.985 0 -0.174"}),
}
FOVY_DEG = {"front": 50.0, "top": 50.0, "wrist": 75.0}


def find_data_file(relative: str) -> Path:
    """`resolve(relative)`, or the source tree's copy when the install does not have it yet."""
    path = resolve(relative)
    source = _SOURCE_ROOT / relative
    return path if path.is_file() or not source.is_file() else source


def default_urdf_path() -> Path:
    """The SO-101 URDF (installed share, else the source tree)."""
    return find_data_file("urdf/so101.urdf")


def _sub(parent: ET.Element, tag: str, **attrs: str) -> ET.Element:
    return ET.SubElement(parent, tag, attrs)


def _add_link_content(body: ET.Element, link: UrdfLink) -> None:
    """Inertial and geoms of a URDF link; visual geoms draw, collision geoms only collide."""
    if link.inertial is not None and link.inertial.mass > 0:
        rot = rpy_to_matrix(link.inertial.rpy)
        i = rot @ link.inertial.inertia @ rot.T  # MJCF fullinertia is in the body frame
        _sub(
            body,
            "inertial",
            pos=_fmt(link.inertial.xyz),
            mass=f"{link.inertial.mass:.6g}",
            fullinertia=_fmt([i[0, 0], i[1, 1], i[2, 2], i[0, 1], i[0, 2], i[1, 2]]),
        )
    for k, g in enumerate(link.geometries):
        attrs = {
            "name": f"{link.name}_{g.role}_{k}",
            "pos": _fmt(g.xyz),
            "quat": _fmt(rpy_to_quat(g.rpy)),
        }
        if g.kind == "box":
            attrs.update(type="box", size=_fmt(g.size / 2))
        elif g.kind == "cylinder":
            attrs.update(type="cylinder", size=_fmt([g.size[0], g.size[1] / 2]))
        else:
            attrs.update(type="sphere", size=_fmt(g.size))
        if g.role == "visual":
            rgba = g.rgba if g.rgba is not None else (0.7, 0.7, 0.7, 1.0)
            attrs.update(rgba=_fmt(rgba), contype="0", conaffinity="0", group="0", mass="0")
        else:
            attrs.update(group="3", mass="0", **_ARM_CONTACT)
        _sub(body, "geom", **attrs)


def _add_subtree(parent: ET.Element, model: UrdfModel, link_name: str) -> dict[str, ET.Element]:
    """Nest a body per child joint; returns link name -> body for the whole subtree."""
    bodies: dict[str, ET.Element] = {}
    for joint in model.child_joints(link_name):
        body = _sub(
            parent,
            "body",
            name=joint.child,
            pos=_fmt(joint.xyz),
            quat=_fmt(rpy_to_quat(joint.rpy)),
        )
        bodies[joint.child] = body
        if joint.type in ("revolute", "continuous", "prismatic"):
            attrs = {
                "name": joint.name,
                "type": "slide" if joint.type == "prismatic" else "hinge",
                "axis": _fmt(joint.axis),
                "damping": f"{JOINT_DAMPING}",
                "armature": f"{JOINT_ARMATURE}",
                "frictionloss": f"{JOINT_FRICTIONLOSS}",
            }
            if joint.type != "continuous" and joint.lower is not None and joint.upper is not None:
                attrs.update(limited="true", range=_fmt([joint.lower, joint.upper]))
            _sub(body, "joint", **attrs)
        elif joint.type != "fixed":
            raise ValueError(f"joint {joint.name!r}: type {joint.type!r} is not simulated")
        _add_link_content(body, model.links[joint.child])
        bodies.update(_add_subtree(body, model, joint.child))
    return bodies


def _add_camera(worldbody: ET.Element, bodies: dict[str, ET.Element], name: str) -> None:
    if name not in CAMERAS:
        raise ValueError(f"unknown sim camera {name!r}; known: {', '.join(sorted(CAMERAS))}")
    parent_name, attrs = CAMERAS[name]
    parent = worldbody if parent_name is None else bodies.get(parent_name)
    if parent is None:
        raise ValueError(f"sim camera {name!r} needs a link {parent_name!r} in the URDF")
    _sub(parent, "camera", name=name, fovy=f"{FOVY_DEG[name]}", **attrs)


def build_scene_mjcf(
    urdf_path: str | Path,
    *,
    cameras: Sequence[str] = ("front",),
    width: int = 640,
    height: int = 480,
) -> str:
    """MJCF of the arm (from its URDF) on a table, with a red cube, a light and `cameras`."""
    model = load_urdf(urdf_path)
    root = ET.Element("mujoco", model=f"{model.name}_scene")
    _sub(root, "compiler", angle="radian", autolimits="true")
    _sub(root, "option", timestep=f"{TIMESTEP}", integrator="implicitfast")
    visual = _sub(root, "visual")
    _sub(visual, "quality", shadowsize="0", offsamples="0")
    _sub(visual, "global", offwidth=str(int(width)), offheight=str(int(height)))
    _sub(visual, "headlight", ambient="0.35 0.35 0.35", diffuse="0.45 0.45 0.45")
    asset = _sub(root, "asset")
    _sub(
        asset,
        "texture",
        name="sky",
        type="skybox",
        builtin="gradient",
        rgb1="0.55 0.6 0.68",
        rgb2="0.15 0.17 0.2",
        width="32",
        height="32",
    )

    worldbody = _sub(root, "worldbody")
    _sub(worldbody, "light", name="top", pos="0.2 -0.2 1.2", dir="-0.1 0.15 -1", castshadow="false")
    _sub(
        worldbody,
        "geom",
        name="table",
        type="box",
        size="0.45 0.4 0.01",
        pos=f"0.15 0 {TABLE_TOP_Z - 0.01}",
        rgba="0.55 0.42 0.3 1",
        **_WORLD_CONTACT,
    )
    base = _sub(worldbody, "body", name=model.root_link, pos="0 0 0")
    _add_link_content(base, model.links[model.root_link])
    bodies = {model.root_link: base, **_add_subtree(base, model, model.root_link)}
    if "gripper_frame_link" in bodies:
        _sub(bodies["gripper_frame_link"], "site", name="gripper_frame", size="0.005")

    cube = _sub(worldbody, "body", name=CUBE_NAME, pos=_fmt(CUBE_POSITION))
    _sub(cube, "freejoint", name=CUBE_NAME)
    _sub(
        cube,
        "geom",
        name=CUBE_NAME,
        type="box",
        size=_fmt([CUBE_SIZE / 2] * 3),
        mass="0.03",
        rgba=_fmt(CUBE_RGBA),
        **_WORLD_CONTACT,
    )
    for name in cameras:
        _add_camera(worldbody, bodies, name)

    actuator = _sub(root, "actuator")
    for joint in model.chain_order():
        if joint.type not in ("revolute", "continuous", "prismatic"):
            continue
        attrs = {
            "name": joint.name,
            "joint": joint.name,
            "kp": f"{SERVO_KP}",
            "kv": f"{SERVO_KV}",
            "forcerange": _fmt([-SERVO_FORCE, SERVO_FORCE]),
        }
        if joint.lower is not None and joint.upper is not None:
            attrs["ctrlrange"] = _fmt([joint.lower, joint.upper])
        _sub(actuator, "position", **attrs)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


class SimScene:
    """MjModel + MjData of the scene, addressed by arm joint and object names."""

    def __init__(
        self,
        urdf_path: str | Path | None = None,
        *,
        joint_names: Sequence[str] | None = None,
        cameras: Sequence[str] = ("front",),
        width: int = 640,
        height: int = 480,
    ) -> None:
        self.urdf_path = Path(urdf_path) if urdf_path is not None else default_urdf_path()
        xml = build_scene_mjcf(self.urdf_path, cameras=cameras, width=width, height=height)
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        m = self.model
        actuated = [m.joint(int(m.actuator_trnid[a, 0])).name for a in range(m.nu)]
        self.joint_names = list(joint_names) if joint_names is not None else actuated
        self.qpos_index: dict[str, int] = {}
        self.qvel_index: dict[str, int] = {}
        self.actuator_index: dict[str, int] = {}
        for a, name in enumerate(actuated):
            jid = int(m.actuator_trnid[a, 0])
            self.qpos_index[name] = int(m.jnt_qposadr[jid])
            self.qvel_index[name] = int(m.jnt_dofadr[jid])
            self.actuator_index[name] = a
        missing = [n for n in self.joint_names if n not in self.actuator_index]
        if missing:
            raise ValueError(f"{self.urdf_path}: no simulated joint(s) {missing}")
        self._qpos = self._indices(self.qpos_index, self.joint_names)
        self._qvel = self._indices(self.qvel_index, self.joint_names)
        self._act = self._indices(self.actuator_index, self.joint_names)
        self._objects = [
            m.body(int(m.jnt_bodyid[j])).name
            for j in range(m.njnt)
            if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE
        ]
        mujoco.mj_forward(m, self.data)

    @staticmethod
    def _indices(index: dict[str, int], names: Sequence[str]) -> np.ndarray:
        try:
            return np.array([index[n] for n in names], dtype=int)
        except KeyError as e:
            raise ValueError(f"unknown arm joint {e.args[0]!r}; known: {list(index)}") from None

    @property
    def timestep(self) -> float:
        return float(self.model.opt.timestep)

    def joint_range(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) of the arm joints, in `joint_names` order."""
        jids = [int(self.model.actuator_trnid[a, 0]) for a in self._act]
        r = self.model.jnt_range[jids]
        return r[:, 0].copy(), r[:, 1].copy()

    def set_arm_positions(self, names: Sequence[str], q: Sequence[float] | np.ndarray) -> None:
        """Write joint positions (kinematically: no dynamics); call forward() afterwards."""
        q = np.asarray(q, dtype=float)
        if q.shape != (len(names),):
            raise ValueError(f"expected {len(names)} positions, got shape {q.shape}")
        self.data.qpos[self._indices(self.qpos_index, names)] = q
        self.data.qvel[self._indices(self.qvel_index, names)] = 0.0

    def forward(self) -> None:
        mujoco.mj_forward(self.model, self.data)

    def arm_positions(self) -> np.ndarray:
        return self.data.qpos[self._qpos].copy()

    def arm_velocities(self) -> np.ndarray:
        return self.data.qvel[self._qvel].copy()

    def actuator_forces(self) -> np.ndarray:
        return self.data.actuator_force[self._act].copy()

    def set_ctrl(self, q: np.ndarray) -> None:
        """Position setpoints of the arm actuators, in `joint_names` order."""
        self.data.ctrl[self._act] = q

    def set_actuation(self, on: bool) -> None:
        """Torque on/off for all servos: off = the actuators produce no force at all."""
        flag = int(mujoco.mjtDisableBit.mjDSBL_ACTUATION)
        if on:
            self.model.opt.disableflags &= ~flag
        else:
            self.model.opt.disableflags |= flag

    def object_names(self) -> list[str]:
        return list(self._objects)

    def objects(self) -> list[SceneObject]:
        """Free objects (pose in the base frame = world), for markers and remote cameras."""
        out = []
        for name in self._objects:
            body = self.model.body(name)
            geom = int(body.geomadr[0])
            out.append(
                SceneObject(
                    name=name,
                    position=self.data.xpos[body.id].copy(),
                    quaternion=self.data.xquat[body.id].copy(),
                    size=2.0 * self.model.geom_size[geom].copy(),
                    rgba=self.model.geom_rgba[geom].copy(),
                )
            )
        return out

    def set_object(
        self, name: str, position: Sequence[float], quaternion: Sequence[float] = (1, 0, 0, 0)
    ) -> None:
        """Place a free object (quaternion w, x, y, z); call forward() afterwards."""
        if name not in self._objects:
            raise ValueError(f"unknown scene object {name!r}; known: {self._objects}")
        jid = int(self.model.body(name).jntadr[0])
        adr, dof = int(self.model.jnt_qposadr[jid]), int(self.model.jnt_dofadr[jid])
        quat = np.asarray(quaternion, dtype=float)
        self.data.qpos[adr : adr + 3] = np.asarray(position, dtype=float)
        self.data.qpos[adr + 3 : adr + 7] = quat / np.linalg.norm(quat)
        self.data.qvel[dof : dof + 6] = 0.0
