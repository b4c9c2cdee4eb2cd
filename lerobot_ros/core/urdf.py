"""A small URDF reader (xml.etree, no ROS), enough for joint limits, kinematics and a MuJoCo scene.

robot_state_publisher reads the same file on the ROS side; this module lets the ROS-free core
(simulation, limits checks, tests) use it without urdf_parser_py or rclpy.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_REVOLUTE = ("revolute", "continuous")


def rpy_to_matrix(rpy: Sequence[float]) -> np.ndarray:
    """3x3 rotation of URDF roll-pitch-yaw: R = Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
    r, p, y = (float(v) for v in rpy)
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def rpy_to_quat(rpy: Sequence[float]) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of URDF roll-pitch-yaw (same rotation as rpy_to_matrix)."""
    r, p, y = (0.5 * float(v) for v in rpy)
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    return np.array(
        [
            cr * cp * cy + sr * sp * sy,
            sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy,
        ]
    )


def axis_angle_matrix(axis: Sequence[float], angle: float) -> np.ndarray:
    """3x3 rotation by `angle` about the (normalised) `axis` (Rodrigues)."""
    a = np.asarray(axis, dtype=float)
    a = a / np.linalg.norm(a)
    k = np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def make_transform(xyz: Sequence[float], rotation: np.ndarray) -> np.ndarray:
    """4x4 homogeneous transform from a translation and a 3x3 rotation."""
    t = np.eye(4)
    t[:3, :3] = rotation
    t[:3, 3] = np.asarray(xyz, dtype=float)
    return t


@dataclass
class UrdfGeometry:
    """A primitive shape; size: box full extents xyz, cylinder (radius, length), sphere (r,)."""

    kind: str  # "box" | "cylinder" | "sphere"
    size: np.ndarray
    xyz: np.ndarray
    rpy: np.ndarray
    rgba: np.ndarray | None
    role: str  # "visual" | "collision"


@dataclass
class UrdfInertial:
    mass: float
    xyz: np.ndarray
    rpy: np.ndarray
    inertia: np.ndarray  # 3x3, about the centre of mass, in the inertial frame


@dataclass
class UrdfLink:
    name: str
    inertial: UrdfInertial | None = None
    geometries: list[UrdfGeometry] = field(default_factory=list)


@dataclass
class UrdfJoint:
    name: str
    type: str
    parent: str
    child: str
    xyz: np.ndarray
    rpy: np.ndarray
    axis: np.ndarray
    lower: float | None = None
    upper: float | None = None
    velocity: float | None = None
    effort: float | None = None

    def origin(self) -> np.ndarray:
        """Child-frame pose in the parent frame at q = 0 (4x4)."""
        return make_transform(self.xyz, rpy_to_matrix(self.rpy))

    def motion(self, q: float) -> np.ndarray:
        """4x4 motion of the child frame for joint value q (rad or m), after `origin()`."""
        if self.type in _REVOLUTE:
            return make_transform((0.0, 0.0, 0.0), axis_angle_matrix(self.axis, q))
        if self.type == "prismatic":
            return make_transform(self.axis / np.linalg.norm(self.axis) * q, np.eye(3))
        return np.eye(4)


@dataclass
class UrdfModel:
    name: str
    root_link: str
    links: dict[str, UrdfLink]
    joints: dict[str, UrdfJoint]

    def child_joints(self, link: str) -> list[UrdfJoint]:
        """Joints whose parent is `link`, in file order."""
        return [j for j in self.joints.values() if j.parent == link]

    def chain_order(self) -> list[UrdfJoint]:
        """All joints, depth-first from the root, so a parent always precedes its children."""
        return _depth_first(self, self.root_link)

    def link_poses(self, positions: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
        """Forward kinematics: 4x4 pose of every link in the root frame; missing joints are 0."""
        positions = positions or {}
        poses = {self.root_link: np.eye(4)}
        for j in self.chain_order():
            q = float(positions.get(j.name, 0.0))
            poses[j.child] = poses[j.parent] @ j.origin() @ j.motion(q)
        return poses


def _depth_first(model: UrdfModel, link: str) -> list[UrdfJoint]:
    out: list[UrdfJoint] = []
    for j in model.child_joints(link):
        out.append(j)
        out.extend(_depth_first(model, j.child))
    return out


def _floats(text: str | None, n: int, default: Sequence[float], where: str) -> np.ndarray:
    if text is None:
        return np.asarray(default, dtype=float)
    try:
        values = [float(v) for v in text.split()]
    except ValueError:
        raise ValueError(f"{where}: not numbers: {text!r}") from None
    if len(values) != n:
        raise ValueError(f"{where}: expected {n} numbers, got {text!r}")
    return np.asarray(values, dtype=float)


def _origin(elem: ET.Element | None, where: str) -> tuple[np.ndarray, np.ndarray]:
    if elem is None:
        return np.zeros(3), np.zeros(3)
    return (
        _floats(elem.get("xyz"), 3, (0, 0, 0), f"{where} origin xyz"),
        _floats(elem.get("rpy"), 3, (0, 0, 0), f"{where} origin rpy"),
    )


def _opt_float(elem: ET.Element | None, attr: str, where: str) -> float | None:
    if elem is None or elem.get(attr) is None:
        return None
    try:
        return float(elem.get(attr, ""))
    except ValueError:
        raise ValueError(f"{where}: {attr}={elem.get(attr)!r} is not a number") from None


def _material_colors(root: ET.Element, where: str) -> dict[str, np.ndarray]:
    colors: dict[str, np.ndarray] = {}
    for mat in root.findall("material"):
        color = mat.find("color")
        if mat.get("name") and color is not None:
            colors[mat.get("name", "")] = _floats(
                color.get("rgba"), 4, (1, 1, 1, 1), f"{where} material {mat.get('name')}"
            )
    return colors


def _geometry(
    elem: ET.Element, role: str, colors: dict[str, np.ndarray], where: str
) -> UrdfGeometry | None:
    geom = elem.find("geometry")
    if geom is None or len(geom) == 0:
        raise ValueError(f"{where}: <{role}> without <geometry>")
    shape = geom[0]
    if shape.tag == "box":
        size = _floats(shape.get("size"), 3, (), f"{where} box size")
    elif shape.tag == "cylinder":
        radius = _opt_float(shape, "radius", where)
        length = _opt_float(shape, "length", where)
        if radius is None or length is None:
            raise ValueError(f"{where}: cylinder needs radius and length")
        size = np.array([radius, length])
    elif shape.tag == "sphere":
        radius = _opt_float(shape, "radius", where)
        if radius is None:
            raise ValueError(f"{where}: sphere needs radius")
        size = np.array([radius])
    else:
        return None  # meshes are not used by the primitive-only consumers
    xyz, rpy = _origin(elem.find("origin"), where)
    rgba = None
    mat = elem.find("material")
    if mat is not None:
        color = mat.find("color")
        if color is not None:
            rgba = _floats(color.get("rgba"), 4, (1, 1, 1, 1), f"{where} color")
        else:
            rgba = colors.get(mat.get("name", ""))
    return UrdfGeometry(shape.tag, size, xyz, rpy, rgba, role)


def _inertial(elem: ET.Element | None, where: str) -> UrdfInertial | None:
    if elem is None:
        return None
    mass_el = elem.find("mass")
    mass = _opt_float(mass_el, "value", f"{where} mass")
    if mass is None:
        raise ValueError(f"{where}: <inertial> without <mass value=...>")
    xyz, rpy = _origin(elem.find("origin"), where)
    i = elem.find("inertia")
    names = ("ixx", "ixy", "ixz", "iyy", "iyz", "izz")
    v = {n: (_opt_float(i, n, f"{where} inertia") or 0.0) for n in names}
    inertia = np.array(
        [
            [v["ixx"], v["ixy"], v["ixz"]],
            [v["ixy"], v["iyy"], v["iyz"]],
            [v["ixz"], v["iyz"], v["izz"]],
        ]
    )
    return UrdfInertial(mass, xyz, rpy, inertia)


def _parse_link(elem: ET.Element, colors: dict[str, np.ndarray], path: Path) -> UrdfLink:
    name = elem.get("name")
    if not name:
        raise ValueError(f"{path}: <link> without a name")
    where = f"{path}: link {name!r}"
    link = UrdfLink(name, _inertial(elem.find("inertial"), where))
    for role in ("visual", "collision"):
        for g in elem.findall(role):
            geometry = _geometry(g, role, colors, where)
            if geometry is not None:
                link.geometries.append(geometry)
    return link


def _parse_joint(elem: ET.Element, path: Path) -> UrdfJoint:
    name = elem.get("name")
    jtype = elem.get("type")
    if not name or not jtype:
        raise ValueError(f"{path}: <joint> needs name and type")
    where = f"{path}: joint {name!r}"
    parent, child = elem.find("parent"), elem.find("child")
    if parent is None or child is None or not parent.get("link") or not child.get("link"):
        raise ValueError(f"{where}: needs <parent link=...> and <child link=...>")
    xyz, rpy = _origin(elem.find("origin"), where)
    axis_el = elem.find("axis")
    axis = _floats(None if axis_el is None else axis_el.get("xyz"), 3, (1, 0, 0), f"{where} axis")
    if np.linalg.norm(axis) == 0.0:
        raise ValueError(f"{where}: zero axis")
    limit = elem.find("limit")
    return UrdfJoint(
        name=name,
        type=jtype,
        parent=parent.get("link", ""),
        child=child.get("link", ""),
        xyz=xyz,
        rpy=rpy,
        axis=axis,
        lower=_opt_float(limit, "lower", where),
        upper=_opt_float(limit, "upper", where),
        velocity=_opt_float(limit, "velocity", where),
        effort=_opt_float(limit, "effort", where),
    )


def load_urdf(path: str | Path) -> UrdfModel:
    """Parse a URDF file. FileNotFoundError / ValueError messages name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"URDF not found: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"{path}: malformed URDF XML: {e}") from None
    if root.tag != "robot":
        raise ValueError(f"{path}: root element is <{root.tag}>, expected <robot>")
    colors = _material_colors(root, str(path))
    links = {lk.name: lk for lk in (_parse_link(e, colors, path) for e in root.findall("link"))}
    joints = {j.name: j for j in (_parse_joint(e, path) for e in root.findall("joint"))}
    for j in joints.values():
        for end in (j.parent, j.child):
            if end not in links:
                raise ValueError(f"{path}: joint {j.name!r} refers to unknown link {end!r}")
    children = [j.child for j in joints.values()]
    twice = sorted({c for c in children if children.count(c) > 1})
    if twice:
        raise ValueError(f"{path}: links with more than one parent joint: {twice}")
    roots = [name for name in links if name not in children]
    if len(roots) != 1:
        raise ValueError(f"{path}: expected one root link, found {roots}")
    return UrdfModel(root.get("name", ""), roots[0], links, joints)


def joint_limits(
    model: UrdfModel, names: Iterable[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower, upper, velocity) arrays for `names`; absent limits are -inf / +inf / +inf."""
    lower, upper, velocity = [], [], []
    for name in names:
        j = model.joints.get(name)
        if j is None:
            raise ValueError(f"joint {name!r} is not in URDF {model.name!r}")
        lo = -np.inf if j.lower is None or j.type == "continuous" else j.lower
        hi = np.inf if j.upper is None or j.type == "continuous" else j.upper
        if lo > hi:
            raise ValueError(f"joint {name!r}: lower limit {lo} > upper limit {hi}")
        lower.append(lo)
        upper.append(hi)
        velocity.append(np.inf if j.velocity is None else j.velocity)
    return np.array(lower), np.array(upper), np.array(velocity)
