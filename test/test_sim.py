"""The MuJoCo scene, the simulated follower/leader and the simulated camera (no ROS)."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
import pytest

import lerobot_ros.core.sim  # noqa: F401 - registers the "sim" backends
from lerobot_ros.core.backends import ARM_BACKENDS, CAMERA_BACKENDS, SceneObject
from lerobot_ros.core.robots import SO_ARM_JOINTS, get_robot
from lerobot_ros.core.sim.arm import (
    SCRIPT_SPAN,
    ScriptedLeaderArm,
    SimFollowerArm,
    create_sim_arm,
)
from lerobot_ros.core.sim.camera import SimCamera
from lerobot_ros.core.sim.scene import CUBE_POSITION, SimScene, build_scene_mjcf
from lerobot_ros.core.urdf import load_urdf

URDF = Path(__file__).resolve().parents[1] / "urdf" / "so101.urdf"
NAMES = list(SO_ARM_JOINTS)
ABOVE_CUBE = np.array([0.0, 0.0, 0.1, 1.5, 0.0, 0.8])  # gripper pointing down over the cube
POSES = [
    np.zeros(6),
    np.array([0.3, 0.8, -0.6, 0.5, 0.2, 0.5]),
    np.array([0.0, 0.9, -1.2, 0.0, 0.0, 0.0]),  # long horizontal lever: worst gravity load
    np.array([-0.5, -0.4, 0.6, -0.8, -1.0, 1.2]),
]


def _follower(**kwargs) -> SimFollowerArm:
    arm = SimFollowerArm(NAMES, URDF, **kwargs)
    arm.connect()
    return arm


def _run(arm, seconds: float, dt: float = 0.01) -> np.ndarray:
    """Step `seconds` of sim time; returns the positions read after each step."""
    out = []
    for _ in range(round(seconds / dt)):
        arm.step(dt)
        out.append(arm.read().position)
    return np.array(out)


# --- scene -------------------------------------------------------------------------------------


def test_mjcf_has_scene_elements() -> None:
    xml = build_scene_mjcf(URDF, cameras=("front", "top", "wrist"), width=320, height=240)
    model = mujoco.MjModel.from_xml_string(xml)
    assert model.opt.timestep == pytest.approx(0.002)
    assert model.vis.quality.shadowsize == 0 and model.vis.quality.offsamples == 0
    assert (model.vis.global_.offwidth, model.vis.global_.offheight) == (320, 240)
    assert {model.camera(i).name for i in range(model.ncam)} == {"front", "top", "wrist"}
    assert [model.actuator(i).name for i in range(model.nu)] == NAMES
    np.testing.assert_allclose(model.actuator_forcerange, [[-3.35, 3.35]] * 6)
    with pytest.raises(ValueError, match="fisheye"):
        build_scene_mjcf(URDF, cameras=("fisheye",))


@pytest.mark.parametrize("q", [np.zeros(6), POSES[1], POSES[3]])
def test_mujoco_kinematics_match_urdf(q: np.ndarray) -> None:
    scene = SimScene(URDF, cameras=())
    scene.set_arm_positions(NAMES, q)
    scene.forward()
    urdf_poses = load_urdf(URDF).link_poses(dict(zip(NAMES, q, strict=True)))
    for link in ("wrist_link", "gripper_frame_link"):
        np.testing.assert_allclose(scene.data.body(link).xpos, urdf_poses[link][:3, 3], atol=1e-5)
    np.testing.assert_allclose(
        scene.data.site("gripper_frame").xpos, urdf_poses["gripper_frame_link"][:3, 3], atol=1e-5
    )
    if not q.any():
        np.testing.assert_allclose(
            scene.data.site("gripper_frame").xpos, (0.391, 0, 0.227), atol=2e-3
        )


def test_cube_in_front_and_in_reach() -> None:
    scene = SimScene(URDF, cameras=())
    (cube,) = scene.objects()
    assert cube.name == "cube"
    np.testing.assert_allclose(cube.position, CUBE_POSITION)
    np.testing.assert_allclose(cube.size, [0.03] * 3)
    assert cube.rgba[0] > 0.8 and cube.rgba[1] < 0.2
    tip = scene.data.site("gripper_frame").xpos
    assert tip[0] > 0.3 and abs(tip[1]) < 1e-3  # the arm points along +x at q = 0
    scene.set_arm_positions(NAMES, ABOVE_CUBE)
    scene.forward()
    tip = scene.data.site("gripper_frame").xpos
    assert np.linalg.norm(tip[:2] - cube.position[:2]) < 0.02
    assert 0.03 < tip[2] < 0.1
    scene.set_object("cube", (0.1, 0.1, 0.015), (0, 0, 0, 1))
    scene.forward()
    np.testing.assert_allclose(scene.objects()[0].position, (0.1, 0.1, 0.015))
    with pytest.raises(ValueError, match="ball"):
        scene.set_object("ball", (0, 0, 0))


# --- follower ----------------------------------------------------------------------------------


def test_follower_holds_poses_under_gravity() -> None:
    for q in POSES:
        arm = SimFollowerArm(NAMES, URDF, initial_position=q)
        arm.connect()
        arm.enable()
        _run(arm, 0.6)
        err = np.degrees(np.abs(arm.read().position - q))
        assert err.max() < 0.5, f"pose {q}: static error {err} deg"


def test_torque_off_sags_and_ignores_goals() -> None:
    arm = _follower()
    arm.write(np.full(6, 0.5))  # ignored: torque is off
    positions = _run(arm, 1.0)
    state = arm.read()
    assert positions[-1][1] > np.radians(10)  # the extended arm falls forward (lift +)
    np.testing.assert_allclose(state.effort, 0.0)
    assert abs(state.position[0]) < 1e-3 and abs(state.position[4]) < 0.02  # no drive on pan/roll
    with pytest.raises(ValueError, match="6 positions"):
        arm.write(np.zeros(5))


def test_enable_holds_measured_pose_then_tracks_ramp() -> None:
    max_v = 1.5
    arm = _follower(max_velocity=max_v)
    _run(arm, 0.5)  # sag with torque off
    arm.enable()
    held = arm.read().position
    _run(arm, 0.3)
    np.testing.assert_allclose(arm.read().position, held, atol=np.radians(0.5))  # no jump

    goal = np.array([1.0, 0.3, -0.6, 0.8, 1.2, 1.0])
    arm.write(goal)
    dt = 0.01
    positions = _run(arm, 2.0, dt)
    # speed over 50 ms windows never exceeds the ramp (a little slack for the servo transient)
    speed = np.abs(positions[5:] - positions[:-5]) / (5 * dt)
    assert speed.max() < 1.1 * max_v, speed.max(axis=0)
    # the largest move (1.2 rad at 1.5 rad/s = 0.8 s) is done well within 2 s, with < 0.5 deg error
    np.testing.assert_array_less(np.degrees(np.abs(positions[-1] - goal)), 0.5)
    # while ramping, the arm follows the setpoint closely: halfway at ~0.4 s
    t_half = int(0.4 / dt)
    assert abs(positions[t_half][4] - held[4] - max_v * 0.4) < 0.12


def test_per_joint_max_velocity_and_clipping() -> None:
    arm = _follower(max_velocity=[0.5, 3.0, 3.0, 3.0, 3.0, 3.0])
    arm.enable()
    start = arm.read().position
    arm.write(np.array([1.0, 0.0, 0.0, 0.0, 0.0, 5.0]))  # gripper goal beyond its limit
    positions = _run(arm, 1.0)
    assert positions[-1][0] - start[0] == pytest.approx(0.5, abs=0.05)
    assert positions[-1][5] == pytest.approx(1.74533, abs=np.radians(1))


def test_step_keeps_leftover_time_and_caps_substeps() -> None:
    arm = _follower()
    for _ in range(3):
        arm.step(0.003)
    assert arm.scene.data.time == pytest.approx(0.008)  # 9 ms: 4 steps, 1 ms owed
    arm.step(0.001)
    assert arm.scene.data.time == pytest.approx(0.010)
    arm.step(5.0)
    assert arm.scene.data.time == pytest.approx(0.010 + 100 * 0.002)


def test_disable_and_close() -> None:
    arm = _follower()
    arm.enable()
    arm.disable()
    assert not arm.enabled
    arm.close()
    arm.close()
    with pytest.raises(RuntimeError):
        arm.read()


# --- leader ------------------------------------------------------------------------------------


def _leader() -> ScriptedLeaderArm:
    arm = create_sim_arm(get_robot("so101"), "leader", URDF)
    assert isinstance(arm, ScriptedLeaderArm)
    arm.connect()
    return arm


def test_leader_script_within_limits_smooth_with_holds() -> None:
    arm = _leader()
    lower, upper = arm._lower, arm._upper
    mid, half = (lower + upper) / 2, (upper - lower) / 2
    dt = 0.01
    period = arm.script.period
    positions, velocities = [], []
    for _ in range(round(period / dt)):
        arm.step(dt)
        state = arm.read()
        positions.append(state.position)
        velocities.append(state.velocity)
    positions, velocities = np.array(positions), np.array(velocities)
    assert np.all(np.abs(positions - mid) <= SCRIPT_SPAN * half + 1e-9)
    assert np.abs(velocities).max() < 1.5
    # every joint moves, the gripper both opens and closes
    assert np.all(np.ptp(positions, axis=0) > 0.3)
    assert positions[:, 5].min() < 0.4 and positions[:, 5].max() > 1.2
    # holds of ~1 s: runs of zero velocity
    still = np.all(np.abs(velocities) < 1e-9, axis=1)
    runs, run = [], 0
    for s in still:
        run = run + 1 if s else 0
        runs.append(run)
    assert max(runs) * dt >= 0.9
    durations = [d for _, d, a, b in arm.script.segments if np.any(a != b)]
    assert all(1.5 <= d <= 2.5 for d in durations), durations
    # it loops
    np.testing.assert_allclose(arm.script.sample(0.3)[0], arm.script.sample(0.3 + period)[0])


def test_leader_with_torque_goes_to_goal_and_rejoins_script() -> None:
    arm = _leader()
    max_v = arm.max_velocity
    arm.step(1.5)
    arm.enable()
    start = arm.read().position
    goal = np.array([0.5, -0.5, 0.5, 0.0, 0.0, 1.0])
    arm.write(goal)
    dt = 0.02
    positions = _run(arm, 1.5, dt)
    speed = np.abs(np.diff(np.vstack([start, positions]), axis=0)) / dt
    assert np.all(speed <= max_v + 1e-9)
    np.testing.assert_allclose(positions[-1], goal)
    arm.disable()
    positions = _run(arm, 3.0, dt)
    assert np.abs(np.diff(positions, axis=0)).max() / dt < 1.5  # smooth rejoin, no jump
    assert arm.objects() == []


def test_registry_and_roles() -> None:
    assert "sim" in ARM_BACKENDS and "sim" in CAMERA_BACKENDS
    arm = ARM_BACKENDS.create("sim", robot=get_robot("so101"), role="follower", urdf_path=URDF)
    assert isinstance(arm, SimFollowerArm)
    assert arm.joint_names == NAMES
    with pytest.raises(ValueError, match="puppet"):
        create_sim_arm(get_robot("so101"), "puppet", URDF)


# --- camera ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def camera():
    cam = SimCamera("front", width=320, height=240, urdf_path=URDF)
    try:
        cam.open()
    except Exception as e:  # no OpenGL (EGL/OSMesa) on this machine
        pytest.skip(f"MuJoCo rendering unavailable: {e}")
    yield cam
    cam.close()


def _red_mask(image: np.ndarray) -> np.ndarray:
    r, g, b = (image[..., k].astype(int) for k in range(3))
    return (r > 120) & (g < 60) & (b < 60)


def test_camera_renders_scene(camera: SimCamera) -> None:
    assert camera.wants_robot_state
    frame = camera.grab()
    assert frame.image.shape == (240, 320, 3) and frame.image.dtype == np.uint8
    assert frame.image.std() > 10  # not blank
    assert _red_mask(frame.image).sum() > 20  # the cube is in view
    intr = camera.intrinsics
    assert (intr.width, intr.height, intr.cx, intr.cy) == (320, 240, 160, 120)
    assert intr.fx == intr.fy == pytest.approx(120 / np.tan(np.radians(50) / 2))


def test_camera_follows_arm_and_objects(camera: SimCamera) -> None:
    camera.update_scene(NAMES, np.zeros(6), [])
    before = camera.grab().image
    camera.update_scene(NAMES, POSES[1], [])
    after_arm = camera.grab().image
    assert np.mean(np.any(before != after_arm, axis=2)) > 0.01
    red_before = np.argwhere(_red_mask(before)).mean(axis=0)
    cube = SceneObject(
        name="cube",
        position=np.array([0.25, 0.12, 0.015]),
        quaternion=np.array([1.0, 0, 0, 0]),
        size=np.full(3, 0.03),
        rgba=np.array([1.0, 0, 0, 1]),
    )
    ghost = SceneObject("ghost", np.zeros(3), np.array([1.0, 0, 0, 0]), np.ones(3), np.ones(4))
    # unknown joints and objects are ignored
    camera.update_scene([*NAMES, "other_arm_joint"], [*np.zeros(6), 1.0], [cube, ghost])
    red_after = np.argwhere(_red_mask(camera.grab().image)).mean(axis=0)
    assert np.linalg.norm(red_after - red_before) > 5  # the cube moved in the image


def test_camera_rejects_unknown_name() -> None:
    with pytest.raises(ValueError, match="fisheye"):
        SimCamera("fisheye")
    assert isinstance(CAMERA_BACKENDS.get("sim")(name="top", urdf_path=URDF), SimCamera)
