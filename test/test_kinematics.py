"""Forward kinematics (placo) of the SO-101 URDF against known poses."""

from __future__ import annotations

import numpy as np
import pytest

from lerobot_ros.core.kinematics import ForwardKinematics
from lerobot_ros.core.robots import SO_ARM_JOINTS, get_robot
from lerobot_ros.core.urdf import load_urdf

URDF = get_robot("so101").urdf_path()


@pytest.fixture(scope="module")
def fk() -> ForwardKinematics:
    return ForwardKinematics(URDF)


def test_zero_pose_tip_matches_the_joint_origin_chain(fk: ForwardKinematics) -> None:
    assert fk.root_link == "base_link"
    assert fk.joint_names == list(SO_ARM_JOINTS)
    tip = fk.pose({})[:3, 3]
    # shared/reference/arms.md (SO-101 kinematics, the URDF's joint origins chained by hand):
    # at q = 0 the tip is at (0.391, 0, 0.227) m and wrist_flex at (0.232, -0.018, 0.234) m in
    # base_link, and the wrist_flex -> tip segment is 0.161 m long.
    np.testing.assert_allclose(tip, [0.391, 0.0, 0.227], atol=1e-3)
    wrist = ForwardKinematics(URDF, tip="wrist_link").pose({})[:3, 3]
    np.testing.assert_allclose(wrist, [0.232, -0.018, 0.234], atol=1e-3)
    assert np.linalg.norm(tip - wrist) == pytest.approx(0.161, abs=1e-3)


def test_pan_rotates_the_tip_about_the_vertical_axis(fk: ForwardKinematics) -> None:
    """shoulder_pan's world axis is -z (arms.md): +90 deg swings the tip from +x towards -y."""
    pan_axis_xy = np.array([0.0388353, 0.0])
    r0 = fk.pose({})[:3, 3]
    r90 = fk.pose({"shoulder_pan": np.pi / 2})[:3, 3]
    assert r90[2] == pytest.approx(r0[2], abs=1e-6)
    expected = pan_axis_xy + np.array([[0, 1], [-1, 0]]) @ (r0[:2] - pan_axis_xy)
    np.testing.assert_allclose(r90[:2], expected, atol=1e-4)


def test_placo_agrees_with_the_urdf_reader_chain(fk: ForwardKinematics) -> None:
    """Two independent FKs (pinocchio vs core/urdf.py's transform chain) on random poses."""
    model = load_urdf(URDF)
    rng = np.random.default_rng(0)
    q = rng.uniform(-1.5, 1.5, size=(20, 6))
    path = fk.path(list(SO_ARM_JOINTS), q)
    assert path.shape == (20, 3)
    for row, p in zip(q, path, strict=True):
        expected = model.link_poses(dict(zip(SO_ARM_JOINTS, row, strict=True)))
        np.testing.assert_allclose(p, expected["gripper_frame_link"][:3, 3], atol=1e-6)


def test_errors_name_what_is_wrong(fk: ForwardKinematics) -> None:
    with pytest.raises(ValueError, match="tip frame 'hand'"):
        ForwardKinematics(URDF, tip="hand")
    with pytest.raises(ValueError, match="elbow"):
        fk.pose({"elbow": 0.1})
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        fk.path(list(SO_ARM_JOINTS), np.zeros((3, 5)))
