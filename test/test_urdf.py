"""The SO-101 URDF matches the reference kinematics, and the URDF reader reports bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lerobot_ros.core.robots import SO_ARM_JOINTS
from lerobot_ros.core.urdf import joint_limits, load_urdf, rpy_to_matrix, rpy_to_quat

URDF = Path(__file__).resolve().parents[1] / "urdf" / "so101.urdf"

# arms.md section 5: joint -> (parent, child, lower, upper)
SO101_JOINTS = {
    "shoulder_pan": ("base_link", "shoulder_link", -1.91986, 1.91986),
    "shoulder_lift": ("shoulder_link", "upper_arm_link", -1.74533, 1.74533),
    "elbow_flex": ("upper_arm_link", "lower_arm_link", -1.69, 1.69),
    "wrist_flex": ("lower_arm_link", "wrist_link", -1.65806, 1.65806),
    "wrist_roll": ("wrist_link", "gripper_link", -2.74385, 2.84121),
    "gripper": ("gripper_link", "moving_jaw_so101_v1_link", -0.174533, 1.74533),
}
MASSES = {
    "base_link": 0.147,
    "shoulder_link": 0.100,
    "upper_arm_link": 0.103,
    "lower_arm_link": 0.104,
    "wrist_link": 0.079,
    "gripper_link": 0.087,
    "moving_jaw_so101_v1_link": 0.012,
}
# arms.md: link origins at q = 0 in the base frame (m)
FK_AT_ZERO = {
    "upper_arm_link": (0.069, -0.018, 0.117),
    "lower_arm_link": (0.097, -0.018, 0.229),
    "wrist_link": (0.232, -0.018, 0.234),
    "gripper_link": (0.293, 0.0, 0.234),
    "gripper_frame_link": (0.391, 0.0, 0.227),
}


@pytest.fixture(scope="module")
def model():
    return load_urdf(URDF)


def test_structure(model) -> None:
    assert model.name == "so101"
    assert model.root_link == "base_link"
    assert set(model.links) == set(MASSES) | {"gripper_frame_link"}
    order = [j.name for j in model.chain_order()]
    assert order[:6] == list(SO_ARM_JOINTS)
    assert model.joints["gripper_frame_joint"].type == "fixed"
    assert model.joints["gripper_frame_joint"].lower is None


@pytest.mark.parametrize("name", list(SO101_JOINTS))
def test_joint_matches_reference(model, name: str) -> None:
    parent, child, lower, upper = SO101_JOINTS[name]
    j = model.joints[name]
    assert (j.type, j.parent, j.child) == ("revolute", parent, child)
    assert j.axis.tolist() == [0.0, 0.0, 1.0]
    assert (j.lower, j.upper) == (lower, upper)
    assert (j.velocity, j.effort) == (4.7, 3.35)


def test_links_have_mass_box_and_inertia(model) -> None:
    for name, mass in MASSES.items():
        link = model.links[name]
        assert link.inertial is not None and link.inertial.mass == pytest.approx(mass)
        assert np.all(np.linalg.eigvalsh(link.inertial.inertia) > 0)
        roles = sorted(g.role for g in link.geometries)
        assert roles == ["collision", "visual"]
        assert all(g.kind == "box" and np.all(g.size > 0) for g in link.geometries)
        visual = next(g for g in link.geometries if g.role == "visual")
        assert visual.rgba is not None  # resolved from the named material
        np.testing.assert_allclose(visual.xyz, link.inertial.xyz)


def test_joint_limits(model) -> None:
    lower, upper, velocity = joint_limits(model, SO_ARM_JOINTS)
    np.testing.assert_allclose(lower, [v[2] for v in SO101_JOINTS.values()])
    np.testing.assert_allclose(upper, [v[3] for v in SO101_JOINTS.values()])
    np.testing.assert_allclose(velocity, 4.7)
    with pytest.raises(ValueError, match="elbow"):
        joint_limits(model, ["shoulder_pan", "elbow"])


def test_forward_kinematics_at_zero(model) -> None:
    poses = model.link_poses({})
    for link, xyz in FK_AT_ZERO.items():
        np.testing.assert_allclose(poses[link][:3, 3], xyz, atol=1.5e-3, err_msg=link)


def test_forward_kinematics_directions(model) -> None:
    """Sign conventions of arms.md: pan about world -z, lift/elbow/wrist_flex about +y."""
    tip0 = model.link_poses({})["gripper_frame_link"][:3, 3]
    pan = model.link_poses({"shoulder_pan": 0.5})["gripper_frame_link"][:3, 3]
    lift = model.link_poses({"shoulder_lift": 0.3})["gripper_frame_link"][:3, 3]
    assert pan[1] < -0.1  # rotating about -z swings +x toward -y
    assert lift[2] < tip0[2] - 0.05  # about +y: the extended arm goes down
    assert np.linalg.norm(pan[:2]) == pytest.approx(np.linalg.norm(tip0[:2]), abs=0.05)


def test_rpy_conventions() -> None:
    rpy = (0.3, -0.7, 1.1)
    rx = rpy_to_matrix((rpy[0], 0, 0))
    ry = rpy_to_matrix((0, rpy[1], 0))
    rz = rpy_to_matrix((0, 0, rpy[2]))
    np.testing.assert_allclose(rpy_to_matrix(rpy), rz @ ry @ rx, atol=1e-12)
    np.testing.assert_allclose(
        rx[1:, 1:], [[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]]
    )
    w, x, y, z = rpy_to_quat(rpy)
    from_quat = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    np.testing.assert_allclose(from_quat, rpy_to_matrix(rpy), atol=1e-12)


def test_missing_file_names_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.urdf"
    with pytest.raises(FileNotFoundError, match=str(path)):
        load_urdf(path)


def test_malformed_xml_names_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.urdf"
    path.write_text("<robot name='x'><link name='a'></robot>")
    with pytest.raises(ValueError, match=str(path)):
        load_urdf(path)


def _write(tmp_path: Path, joints: str) -> Path:
    path = tmp_path / "r.urdf"
    path.write_text(f"<robot name='r'><link name='a'/><link name='b'/>{joints}</robot>")
    return path


def test_inverted_limits_rejected(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "<joint name='j' type='revolute'><parent link='a'/><child link='b'/>"
        "<axis xyz='0 0 1'/><limit lower='1' upper='-1' effort='1' velocity='1'/></joint>",
    )
    model = load_urdf(path)
    with pytest.raises(ValueError, match="'j'"):
        joint_limits(model, ["j"])


def test_unknown_link_and_bad_numbers(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "<joint name='j' type='fixed'><parent link='a'/><child link='c'/></joint>"
    )
    with pytest.raises(ValueError, match="'c'"):
        load_urdf(path)
    path = _write(
        tmp_path,
        "<joint name='j' type='fixed'><parent link='a'/><child link='b'/>"
        "<origin xyz='0 zero 0'/></joint>",
    )
    with pytest.raises(ValueError, match=str(path)):
        load_urdf(path)


def test_continuous_joint_is_unbounded(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "<joint name='j' type='continuous'><parent link='a'/><child link='b'/></joint>",
    )
    lower, upper, velocity = joint_limits(load_urdf(path), ["j"])
    assert (lower[0], upper[0], velocity[0]) == (-np.inf, np.inf, np.inf)
