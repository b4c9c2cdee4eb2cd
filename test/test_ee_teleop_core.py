"""End-effector teleop core without ROS: placo IK follows motions in the commanded direction,
the workspace and the URDF joint limits hold, IK failures hold the last command, and the
keyboard (through a pseudo-terminal) and gamepad (js_event bytes through a FIFO) readers turn
raw input into motions."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pytest

from lerobot_ros.core.ee_teleop import (
    AXES,
    EndEffectorIK,
    EndEffectorTeleop,
    Jog,
    Workspace,
    default_workspace,
    motion,
)
from lerobot_ros.core.input_devices import (
    INPUT_DEVICES,
    JS_EVENT_AXIS,
    JS_EVENT_BUTTON,
    JS_EVENT_INIT,
    KEY_BINDINGS,
    DeviceError,
    InputSettings,
    JoystickState,
    decode_keys,
    gamepad_velocity,
    js_event,
    make_device,
)
from lerobot_ros.core.robots import SO_ARM_JOINTS, get_robot
from lerobot_ros.core.urdf import joint_limits, load_urdf

TIP = "gripper_frame_link"
# A bent-elbow pose in front of the SO-101 (tip about 0.32 m out, 0.14 m up, pitch 0.3 rad).
START = {"shoulder_lift": -0.5, "elbow_flex": 0.8}


def so101_teleop(workspace: Workspace | None = None, urdf: str | None = None) -> EndEffectorTeleop:
    path = urdf or str(get_robot("so101").urdf_path())
    model = load_urdf(path)
    ik = EndEffectorIK(path, TIP, "wrist_roll", ("gripper",))
    ws = workspace or default_workspace(model, TIP, (-0.5, -0.5, 0.01), (0.5, 0.5, 0.6))
    return EndEffectorTeleop(ik, ws, SO_ARM_JOINTS, "gripper")


@pytest.fixture(scope="module")
def teleop() -> EndEffectorTeleop:
    return so101_teleop()


@pytest.mark.parametrize("axis", ["x", "y", "z"])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_linear_motion_moves_the_tip_that_way(
    teleop: EndEffectorTeleop, axis: str, sign: float
) -> None:
    teleop.reset(START)
    start, pitch0, _ = teleop.ik.forward(teleop.q)
    for _ in range(10):
        step = teleop.step(motion(**{axis: sign * 0.005}))
        assert step.status == "ok", step.message
    reached, pitch, _ = teleop.ik.forward(dict(zip(SO_ARM_JOINTS, step.command, strict=True)))
    expected = start.copy()
    expected["xyz".index(axis)] += sign * 0.05
    np.testing.assert_allclose(reached, expected, atol=1e-3)
    assert pitch == pytest.approx(pitch0, abs=1e-3)  # the tool keeps its pitch


def test_pitch_roll_and_gripper_move_without_moving_the_tip(teleop: EndEffectorTeleop) -> None:
    teleop.reset(START)
    start, pitch0, _ = teleop.ik.forward(teleop.q)
    roll0, gripper0 = teleop.roll, teleop.gripper
    for _ in range(10):
        assert teleop.step(motion(pitch=0.03, roll=0.05, gripper=0.05)).status == "ok"
    reached, pitch, _ = teleop.ik.forward(teleop.q)
    np.testing.assert_allclose(reached, start, atol=1e-3)
    assert pitch == pytest.approx(pitch0 + 0.3, abs=1e-3)
    assert teleop.roll == pytest.approx(roll0 + 0.5)
    assert teleop.gripper == pytest.approx(gripper0 + 0.5)


def test_targets_outside_the_workspace_are_refused_per_axis() -> None:
    """A box 3.25 cm past the start in +x: pushing +x and +y together stops x at the last
    5 mm step inside the wall and y goes on; the arm's tip never passes the wall."""
    t = so101_teleop()
    t.reset(START)
    start = t.position.copy()
    box_max = start + np.array([0.0325, 0.5, 0.5])
    t.workspace = Workspace(start - 0.5, box_max, t.workspace.center, 1.0)
    statuses = []
    for _ in range(40):
        step = t.step(motion(x=0.005, y=0.002))
        statuses.append(step.status)
        reached, _, _ = t.ik.forward(dict(zip(SO_ARM_JOINTS, step.command, strict=True)))
        assert reached[0] <= box_max[0] + 1e-3
    assert "workspace" in statuses and statuses[0] == "ok"
    assert "x" in step.message and "holding x" in step.message
    assert t.position[0] == pytest.approx(start[0] + 0.03, abs=1e-9)
    assert t.position[1] == pytest.approx(start[1] + 0.08, abs=1e-9)  # y kept moving
    assert t.counters.workspace_refusals > 0


def test_a_start_outside_the_workspace_may_only_move_back_towards_it() -> None:
    t = so101_teleop()
    t.reset(START)
    start = t.position.copy()
    t.workspace = Workspace(
        start + np.array([-0.5, -0.5, 0.05]), start + 0.5, t.workspace.center, 1.0
    )
    assert t.step(motion(z=-0.005)).status == "workspace"  # further out: refused
    assert t.step(motion(z=0.005)).status == "ok"  # back towards the box: allowed
    assert t.position[2] == pytest.approx(start[2] + 0.005)


def test_unreachable_targets_hold_the_last_command_within_joint_limits() -> None:
    """Without a workspace (a huge box and sphere), pushing far forward, down and sideways
    ends in IK failures: the command then stays what it was, always inside the URDF limits."""
    urdf = str(get_robot("so101").urdf_path())
    t = so101_teleop(Workspace(np.full(3, -9.0), np.full(3, 9.0), np.zeros(3), 99.0), urdf)
    lower, upper, _ = joint_limits(load_urdf(urdf), SO_ARM_JOINTS)
    t.reset(START)
    for direction in ({"x": 0.01}, {"z": -0.01}, {"y": 0.01}, {"pitch": 0.1}, {"roll": 0.1}):
        t.reset(START)
        last = t.command()
        failed = 0
        for _ in range(80):
            step = t.step(motion(**direction))
            assert np.all(step.command >= lower - 1e-9) and np.all(step.command <= upper + 1e-9)
            if step.status == "ik_failed":
                failed += 1
                np.testing.assert_array_equal(step.command, last)
                assert "IK failed" in step.message
            last = step.command
        if "roll" not in direction and "pitch" not in direction:
            assert failed > 0, direction
    assert t.counters.ik_failures > 0
    # Roll and pitch saturate at their limits instead of failing.
    assert t.roll == pytest.approx(upper[SO_ARM_JOINTS.index("wrist_roll")])


def test_reset_clips_a_measured_pose_outside_the_limits(teleop: EndEffectorTeleop) -> None:
    teleop.reset({"elbow_flex": 5.0, "gripper": -3.0})
    assert teleop.q["elbow_flex"] == pytest.approx(1.69)
    assert teleop.gripper == pytest.approx(-0.174533)


def test_default_workspace_is_centred_on_the_shoulder() -> None:
    model = load_urdf(get_robot("so101").urdf_path())
    ws = default_workspace(model, TIP, (-0.5, -0.5, 0.0), (0.5, 0.5, 0.6))
    np.testing.assert_allclose(ws.center, model.link_poses()["upper_arm_link"][:3, 3])
    assert 0.3 < ws.radius < 0.45  # SO-101: 0.116 + 0.135 + 0.161 m of segments, 95 %
    assert ws.violation(ws.center) is None
    assert "radius" in (ws.violation(ws.center + np.array([0, 0, 0.45])) or "")
    assert "z -0.100 < 0.000" in (ws.violation([0.2, 0.0, -0.1]) or "")
    with pytest.raises(ValueError, match="box_min"):
        Workspace(np.zeros(3), np.zeros(3), np.zeros(3), 1.0)


def test_koch_urdf_works_too() -> None:
    path = str(get_robot("koch").urdf_path())
    model = load_urdf(path)
    ik = EndEffectorIK(path, TIP, "wrist_roll", ("gripper",))
    np.testing.assert_allclose(ik.tool_axis, [0, 0, -1], atol=1e-9)  # Koch's roll axis: -z
    t = EndEffectorTeleop(
        ik,
        default_workspace(model, TIP, (-0.5, -0.5, 0.0), (0.5, 0.5, 0.6)),
        SO_ARM_JOINTS,
        "gripper",
    )
    t.reset({"shoulder_lift": 0.8, "elbow_flex": -1.2, "wrist_flex": -0.5})
    start = t.position.copy()
    for _ in range(6):
        assert t.step(motion(z=0.005)).status == "ok"
    np.testing.assert_allclose(t.ik.forward(t.q)[0], start + np.array([0, 0, 0.03]), atol=1e-3)


def test_jog_rate_limits_steps_and_caps_the_queue() -> None:
    jog = Jog(max_rate=[0.1] * 3 + [1.0] * 3, max_queue=[0.05] * 3 + [0.5] * 3)
    for _ in range(20):  # 20 key repeats of 1 cm: only 5 cm stay queued
        jog.step(motion(x=0.01))
    total = sum(jog.take(0.02)[0] for _ in range(100))
    assert total == pytest.approx(0.05)
    assert jog.take(0.02)[0] == 0.0
    jog.set_velocity(motion(y=-0.5))
    np.testing.assert_allclose(jog.take(0.1), motion(y=-0.005))
    jog.clear()
    np.testing.assert_allclose(jog.take(0.1), np.zeros(len(AXES)))


# --- input devices -----------------------------------------------------------------------------


def test_decode_keys_skips_escape_sequences() -> None:
    assert decode_keys(b"wW\x1b[A s\x1bOPd\x03\r") == ["w", "w", " ", "s", "d"]
    assert set(KEY_BINDINGS) >= set("wsadrfqegh")


def test_device_registry_names() -> None:
    assert INPUT_DEVICES.names() == ["gamepad", "keyboard"]


def wait_for(predicate, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_keyboard_through_a_pseudo_terminal() -> None:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    jog = Jog([1.0] * 6, [1.0] * 6)
    device = make_device("keyboard", InputSettings(device=path, linear_step=0.01), jog, print)
    device.start()
    try:
        assert os.read(master, 4096).decode().startswith("end-effector teleop keys")
        os.write(master, b"www")
        assert wait_for(lambda: jog.take(0.0) is not None and jog._queued[0] > 0.029)
        np.testing.assert_allclose(jog.take(1.0), motion(x=0.03))
        os.write(master, b"h ")  # open the gripper, then stop: drops the queued step
        time.sleep(0.3)
        np.testing.assert_allclose(jog.take(1.0), np.zeros(6))
    finally:
        device.stop()
        os.close(master)
        os.close(slave)


def test_keyboard_refuses_a_non_terminal(tmp_path: Path) -> None:
    plain = tmp_path / "not_a_tty"
    plain.write_text("")
    with pytest.raises(DeviceError, match="is not a terminal"):
        make_device("keyboard", InputSettings(device=str(plain)), Jog([1] * 6, [1] * 6), print)
    with pytest.raises(DeviceError, match="cannot open"):
        make_device(
            "keyboard", InputSettings(device=str(tmp_path / "nope")), Jog([1] * 6, [1] * 6), print
        )


def test_joystick_events_through_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "js0"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # a writer that never blocks
    jog = Jog([0.1] * 3 + [1.0] * 3, [0.1] * 6)
    logs: list[str] = []
    device = make_device("gamepad", InputSettings(device=str(fifo)), jog, logs.append)
    device.start()
    try:
        assert wait_for(device.connected)
        # Initial state (as the kernel sends it after open), then the left stick pushed up
        # full (axis 1 = -32767: forward, +x), split across two writes mid-event.
        data = js_event(1, 0, JS_EVENT_AXIS | JS_EVENT_INIT) + js_event(1, -32767, JS_EVENT_AXIS)
        os.write(writer, data[:11])
        time.sleep(0.05)
        os.write(writer, data[11:] + js_event(5, 1, JS_EVENT_BUTTON))  # RB: open gripper
        assert wait_for(lambda: jog.take(0.0)[0] > 0 or jog._velocity[0] > 0)
        np.testing.assert_allclose(jog.take(0.1), motion(x=0.01, gripper=0.1))
        os.write(writer, js_event(1, 0, JS_EVENT_AXIS) + js_event(5, 0, JS_EVENT_BUTTON))
        assert wait_for(lambda: not np.any(jog._velocity))
    finally:
        device.stop()
        os.close(writer)
    assert any("reading" in line for line in logs)


def test_missing_gamepad_is_reported_and_retried(tmp_path: Path) -> None:
    path = tmp_path / "js7"
    logs: list[str] = []
    jog = Jog([1.0] * 6, [1.0] * 6)
    settings = InputSettings(device=str(path), reconnect_period=0.05)
    device = make_device("gamepad", settings, jog, logs.append)
    device.start()
    try:
        assert wait_for(lambda: bool(logs))
        assert "cannot open" in logs[0] and str(path) in logs[0] and "retrying" in logs[0]
        assert not device.connected()
        os.mkfifo(path)
        writer = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        assert wait_for(device.connected)  # plugged in: picked up by the retry
        os.close(writer)
    finally:
        device.stop()


def test_gamepad_velocity_dead_zone_signs_and_enable_button() -> None:
    state = JoystickState()
    state.feed(
        js_event(0, -32767, JS_EVENT_AXIS)  # left stick full left: +y
        + js_event(4, 1000, JS_EVENT_AXIS)  # right stick barely down: inside the dead zone
        + js_event(4, 1, JS_EVENT_BUTTON)  # LB held: close the gripper
    )
    settings = InputSettings()
    v = gamepad_velocity(state, settings)
    np.testing.assert_allclose(v, motion(y=1.0, gripper=-1.0))
    assert gamepad_velocity(state, InputSettings(enable_button=7)).any() == False  # noqa: E712
    state.feed(js_event(7, 1, JS_EVENT_BUTTON))
    assert gamepad_velocity(state, InputSettings(enable_button=7))[1] == 1.0
    half = JoystickState()
    half.feed(js_event(3, 16384, JS_EVENT_AXIS))  # right stick half right: roll
    assert gamepad_velocity(half, settings)[AXES.index("roll")] == pytest.approx(
        (0.5 - 0.1) / 0.9, abs=1e-3
    )
    assert math.isclose(float(np.abs(gamepad_velocity(JoystickState(), settings)).sum()), 0.0)
