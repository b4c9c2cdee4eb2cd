"""The real arm nodes with the real servo SDKs, against emulated servo buses on pseudo-terminals:
tracking, leader publishing, LeRobot calibration files, torque-off on every exit, bus faults."""

from __future__ import annotations

import hashlib
import itertools
import math
import signal
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.ros

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

from lerobot_ros.core.graph import TeleopGraphArgs, teleop_graph  # noqa: E402
from lerobot_ros.core.hardware.robots import hardware_for  # noqa: E402
from lerobot_ros.core.motors import MotorCalibration, calibration_path, save_calibration  # noqa: E402
from lerobot_ros.core.robots import SO_ARM_JOINTS  # noqa: E402
from lerobot_ros.nodes import qos  # noqa: E402
from lerobot_ros.testing.graph import FOLLOWER, LEADER, GraphHarness, spec  # noqa: E402
from lerobot_ros.testing.ros import spawn_node, wait_until  # noqa: E402
from lerobot_ros.testing.servo_bus import ROBOTS as EMULATED  # noqa: E402
from lerobot_ros.testing.servo_bus import EmulatedServoBus  # noqa: E402

JOINTS = list(SO_ARM_JOINTS)
# A realistic SO-101 calibration (LeRobot format): mid-range offsets, recorded ranges.
SO101_CAL = {
    "shoulder_pan": MotorCalibration(1, 0, -1024, 712, 3381),
    "shoulder_lift": MotorCalibration(2, 0, 931, 854, 3267),
    "elbow_flex": MotorCalibration(3, 0, 1008, 855, 3082),
    "wrist_flex": MotorCalibration(4, 0, -1002, 853, 3270),
    "wrist_roll": MotorCalibration(5, 0, 1536, 0, 4095),
    "gripper": MotorCalibration(6, 0, 1333, 2030, 3488),
}


def emulated(robot: str, link: Path) -> EmulatedServoBus:
    protocol, motors = EMULATED[robot]
    return EmulatedServoBus(protocol, motors, link=str(link))


def write_calibration(root: Path, robot: str, role: str, calib=None) -> Path:
    hw = hardware_for(robot, role)
    path = calibration_path(hw.calibration_kind, hw.calibration_name, f"{robot}_{role}", root)
    if calib is None:
        calib = {
            m.name: MotorCalibration(m.id, 0, 0, 1000, 3000)
            if m.name != "wrist_roll"
            else MotorCalibration(m.id, 0, 0, 0, 4095)
            for m in hw.motors
        }
    save_calibration(path, calib)
    return path


def park(bus: EmulatedServoBus, calib: dict[str, MotorCalibration]) -> None:
    """Put each emulated servo mid-range for `calib` (Feetech: Present = actual - offset), as a
    user's arm would be: a real servo clamps goals outside its limits and would move there."""
    for c in calib.values():
        bus.motors[c.id].set_actual_position((c.range_min + c.range_max) // 2 + c.homing_offset)


def positions(msg: JointState) -> np.ndarray:
    return np.array([msg.position[list(msg.name).index(j)] for j in JOINTS])


def torque(bus: EmulatedServoBus) -> list[bool]:
    return [m.torque_enabled for _, m in sorted(bus.motors.items())]


def diag(box, prefix: str) -> dict[str, str]:
    for msg in reversed(box.messages()):
        for s in msg.status:
            if s.name.startswith(prefix):
                return {
                    "level": str(s.level[0]),
                    "message": s.message,
                    **{kv.key: kv.value for kv in s.values},
                }
    return {}


@pytest.fixture
def so101_bus(tmp_path: Path):
    with emulated("so101", tmp_path / "ttyFOLLOWER") as bus:
        yield bus


def follower_spec(bus: EmulatedServoBus, cal_dir: Path, **extra):
    return spec(
        "follower",
        FOLLOWER,
        backend="feetech",
        port=bus.port,
        calibration_dir=str(cal_dir),
        robot_id="so101_follower",
        objects_topic="",
        **extra,
    )


def test_follower_tracks_commands_and_leaves_the_calibration_file_unchanged(
    so101_bus: EmulatedServoBus, tmp_path: Path, domain_id: int
) -> None:
    cal = tmp_path / "cal"
    path = write_calibration(cal, "so101", "follower", SO101_CAL)
    park(so101_bus, SO101_CAL)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with GraphHarness([follower_spec(so101_bus, cal)], domain_id) as h:
        states = h.inbox(JointState, "/follower/joint_states", qos.SENSOR)
        cmd = h.publisher(JointState, "/follower/command", qos.COMMAND)
        h.wait(lambda: len(states) > 10 and cmd.get_subscription_count() > 0, 10, "joint states")
        assert all(torque(so101_bus)), "active = torque on"
        # The motors were given the file's calibration.
        assert so101_bus.motors[1].read_register("Homing_Offset") == -1024
        assert so101_bus.motors[6].read_register("Max_Position_Limit") == 3488
        target = np.array([0.3, -0.2, 0.25, 0.1, -0.5, 0.2])
        msg = JointState(name=JOINTS, position=target.tolist())
        for _ in range(150):
            cmd.publish(msg)
            time.sleep(0.01)
        err = np.abs(positions(states.last()) - target).max()
        assert err < math.radians(0.2), f"tracking error {math.degrees(err):.2f} deg"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert not any(torque(so101_bus)), "torque must be off after the node stops"


def test_leader_publishes_what_the_hand_does(tmp_path: Path, domain_id: int) -> None:
    cal = tmp_path / "cal"
    write_calibration(cal, "so101", "leader")
    with emulated("so101", tmp_path / "ttyLEADER") as bus:
        node = spec("leader", LEADER, backend="feetech", port=bus.port, calibration_dir=str(cal))
        with GraphHarness([node], domain_id) as h:
            states = h.inbox(JointState, "/leader/joint_states", qos.SENSOR)
            h.wait(lambda: len(states) > 10, 10, "leader joint states")
            assert not any(torque(bus)), "a leader is configured with torque off"
            bus.motors[3].set_actual_position(2000 + 512)  # elbow moved by hand, +45 deg
            expected = (2512 - 2000) * 2 * math.pi / 4095  # mid of 1000..3000 is 2000
            h.wait(
                lambda: abs(positions(states.last())[2] - expected) < 1e-3,
                3,
                "the elbow's new angle",
            )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_torque_goes_off_on_signals(
    sig: signal.Signals, so101_bus: EmulatedServoBus, tmp_path: Path, domain_id: int
) -> None:
    cal = tmp_path / "cal"
    write_calibration(cal, "so101", "follower", SO101_CAL)
    park(so101_bus, SO101_CAL)
    proc = spawn_node(
        "lerobot_ros.nodes.arm",
        [
            "-p",
            "backend:=feetech",
            "-p",
            f"port:={so101_bus.port}",
            "-p",
            f"calibration_dir:={cal}",
            "-p",
            "robot_id:=so101_follower",
        ],
        domain_id=domain_id,
    )
    try:
        assert wait_until(lambda: all(torque(so101_bus)), 20), "the follower never went active"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert not any(torque(so101_bus)), f"torque still on after {sig.name}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_corrupted_packets_are_retried_and_reported(
    so101_bus: EmulatedServoBus, tmp_path: Path, domain_id: int
) -> None:
    cal = tmp_path / "cal"
    write_calibration(cal, "so101", "follower", SO101_CAL)
    park(so101_bus, SO101_CAL)
    with GraphHarness([follower_spec(so101_bus, cal)], domain_id) as h:
        states = h.inbox(JointState, "/follower/joint_states", qos.SENSOR)
        diags = h.inbox(DiagnosticArray, "/diagnostics", 50)
        h.wait(lambda: len(states) > 10, 10, "joint states")
        so101_bus.corrupt_rate = 0.01
        n0 = len(states)
        time.sleep(4.0)
        rate = (len(states) - n0) / 4.0
        # No crash, no fault: the loop keeps publishing (a loaded 2-core box still does > 20 Hz).
        assert rate > 20, f"only {rate:.0f} joint states/s with 1 % corrupted packets"
        h.wait(
            lambda: int(diag(diags, "follower").get("bus_retries", 0)) > 0,
            5,
            "retries in /diagnostics",
        )
        d = diag(diags, "follower")
        assert d["lifecycle_state"] == "active", d
        assert d["level"] == "0", d  # OK: retried errors are not faults


def test_unplug_faults_with_torque_off_attempt_and_recovers(
    so101_bus: EmulatedServoBus, tmp_path: Path, domain_id: int
) -> None:
    cal = tmp_path / "cal"
    write_calibration(cal, "so101", "follower", SO101_CAL)
    park(so101_bus, SO101_CAL)
    with GraphHarness([follower_spec(so101_bus, cal, reconnect_period=0.3)], domain_id) as h:
        states = h.inbox(JointState, "/follower/joint_states", qos.SENSOR)
        diags = h.inbox(DiagnosticArray, "/diagnostics", 50)
        h.wait(lambda: len(states) > 10, 10, "joint states")
        node = h.nodes["follower"]
        so101_bus.unplug()
        h.wait(lambda: node.lifecycle_state == "unconfigured", 5, "fault -> unconfigured")
        h.wait(lambda: diag(diags, "follower").get("level") == "2", 3, "ERROR diagnostics")
        assert "fault" in diag(diags, "follower")["message"]
        stats = node.backend.bus.stats
        assert stats.disconnects >= 1
        time.sleep(1.0)  # reconnect attempts fail while unplugged
        assert node.lifecycle_state == "unconfigured"
        so101_bus.replug()
        h.wait(lambda: node.lifecycle_state == "active", 10, "recovery to active")
        n = len(states)
        h.wait(lambda: len(states) > n + 20, 5, "joint states again")
        assert all(torque(so101_bus))


def test_a_silent_servo_is_a_fatal_error_and_the_others_get_torque_off(
    so101_bus: EmulatedServoBus, tmp_path: Path, domain_id: int
) -> None:
    cal = tmp_path / "cal"
    write_calibration(cal, "so101", "follower", SO101_CAL)
    park(so101_bus, SO101_CAL)
    with GraphHarness([follower_spec(so101_bus, cal)], domain_id) as h:
        node = h.nodes["follower"]
        h.wait(lambda: node.lifecycle_state == "active" and all(torque(so101_bus)), 10, "active")
        so101_bus.motors[4].online = False  # wrist_flex stops answering
        h.wait(lambda: node.lifecycle_state == "unconfigured", 10, "fatal error -> unconfigured")
        on = torque(so101_bus)
        assert not any(on[:3]) and not any(on[4:]), f"reachable motors kept torque: {on}"


@pytest.mark.parametrize("robot", ["so101", "koch"])
def test_hardware_teleop_graph_on_emulated_buses(
    robot: str, tmp_path: Path, domain_id: int
) -> None:
    """What `so101_teleop.launch.py sim:=false` (robot:=koch for the Koch) starts, on emulated
    buses: the leader, moved by 'a hand', drives the follower through teleop and watchdog."""
    cal = tmp_path / "cal"
    for role in ("follower", "leader"):
        write_calibration(cal, robot, role)
    names = ("so101", "so101") if robot == "so101" else ("koch_follower", "koch_leader")
    with (
        emulated(names[0], tmp_path / "ttyF") as fbus,
        emulated(names[1], tmp_path / "ttyL") as lbus,
    ):
        lbus.leader_motion = True
        args = TeleopGraphArgs(
            robot=robot, sim=False, cameras=(), follower_port=fbus.port, leader_port=lbus.port
        )
        specs = [
            replace(s, parameters={**s.parameters, "calibration_dir": str(cal)})
            if s.name in ("follower", "leader")
            else s
            for s in teleop_graph(args)
        ]
        with GraphHarness(specs, domain_id) as h:
            lead = h.inbox(JointState, "/leader/joint_states", qos.SENSOR)
            foll = h.inbox(JointState, "/follower/joint_states", qos.SENSOR)
            h.wait(lambda: len(lead) > 50 and len(foll) > 50, 15, "both arms publishing")
            time.sleep(3.0)
            lq, fq = positions(lead.last()), positions(foll.last())
            moving = np.abs(positions(lead.messages()[-100]) - lq).max()
            assert moving > 0.01, "the emulated hand did not move the leader"
            err = np.degrees(np.abs(lq - fq)).max()
            assert err < 5.0, f"follower {err:.1f} deg from the moving leader"


def test_calibration_services_write_a_lerobot_file(tmp_path: Path, domain_id: int) -> None:
    """No file yet: the arm still configures (torque off), refuses to activate, and the
    ~/calibrate services run LeRobot's procedure while 'the user' moves the joints."""
    from std_srvs.srv import Trigger

    from lerobot_ros.core.motors import load_calibration

    cal = tmp_path / "cal"
    with emulated("so101", tmp_path / "ttyC") as bus:
        for m in bus.motors.values():
            m.set_actual_position(2600)  # wherever the user left the arm: the mid pose
        node = spec(
            "follower",
            FOLLOWER,
            backend="feetech",
            port=bus.port,
            calibration_dir=str(cal),
            objects_topic="",
        )
        with GraphHarness([node], domain_id) as h:
            arm = h.nodes["follower"]
            h.wait(lambda: arm.lifecycle_state == "inactive", 10, "configured without a file")
            assert not any(torque(bus))
            res = h.call(Trigger, "/follower/calibrate/start", Trigger.Request())
            assert res.success, res.message
            # The mid pose now reads half a turn: Homing_Offset = 2600 - 2047.
            assert bus.motors[1].read_register("Homing_Offset") == 2600 - 2047
            for ticks in (2600, 2000, 3300, 2600):  # sweep every joint
                for m in bus.motors.values():
                    m.set_actual_position(ticks)
                time.sleep(0.15)
            res = h.call(Trigger, "/follower/calibrate/stop", Trigger.Request())
            assert res.success, res.message
    calib = load_calibration(cal / "so101_follower.json")
    assert calib["elbow_flex"].homing_offset == 553
    assert (calib["elbow_flex"].range_min, calib["elbow_flex"].range_max) == (
        2000 - 553,
        3300 - 553,
    )
    assert (calib["wrist_roll"].range_min, calib["wrist_roll"].range_max) == (0, 4095)


def test_calibration_cli(tmp_path: Path) -> None:
    import subprocess
    import sys

    with emulated("so101", tmp_path / "ttyCLI") as bus:
        bus.leader_motion = True  # the joints sweep by themselves during the recording
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "lerobot_ros.core.hardware.calibrate",
                "--port",
                bus.port,
                "--calibration-dir",
                str(tmp_path),
                "--seconds",
                "2.5",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "so101_follower.json").is_file()
    assert "saved" in out.stdout


def test_leader_moves_to_a_pose_then_releases(tmp_path: Path, domain_id: int) -> None:
    from lerobot_msgs.srv import MoveToPose

    cal = tmp_path / "cal"
    write_calibration(cal, "so101", "leader")
    with emulated("so101", tmp_path / "ttyM") as bus:
        node = spec("leader", LEADER, backend="feetech", port=bus.port, calibration_dir=str(cal))
        with GraphHarness([node], domain_id) as h:
            states = h.inbox(JointState, "/leader/joint_states", qos.SENSOR)
            h.wait(lambda: len(states) > 10, 10, "leader states")
            target = np.array([0.4, -0.3, 0.5, 0.2, -0.6, 0.3])
            req = MoveToPose.Request(max_velocity=2.0, timeout=10.0, release=True)
            req.target = JointState(name=JOINTS, position=target.tolist())
            res = h.call(MoveToPose, "/leader/move_to_pose", req, timeout=15)
            assert res.success, res.message
            assert res.final_error < 0.02
            assert not any(torque(bus)), "released: torque off again"
            q = [positions(m) for m in states.messages()]
            steps = [float(np.abs(b - a).max()) for a, b in itertools.pairwise(q)]
            assert max(steps) < 2.0 * 0.05, "the leader jumped instead of moving smoothly"


def test_lifecycle_transitions_follow_ros2_control(
    so101_bus: EmulatedServoBus, tmp_path: Path, domain_id: int
) -> None:
    """Through lifecycle_msgs/ChangeState (`ros2 lifecycle set /follower ...`): deactivate holds
    with torque on and ignores commands; cleanup turns torque off; configure + activate again."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    cal = tmp_path / "cal"
    write_calibration(cal, "so101", "follower", SO101_CAL)
    park(so101_bus, SO101_CAL)
    with GraphHarness([follower_spec(so101_bus, cal)], domain_id) as h:
        states = h.inbox(JointState, "/follower/joint_states", qos.SENSOR)
        cmd = h.publisher(JointState, "/follower/command", qos.COMMAND)
        h.wait(lambda: len(states) > 10 and cmd.get_subscription_count() > 0, 10, "active")

        def change(transition: int) -> None:
            req = ChangeState.Request()
            req.transition.id = transition
            assert h.call(ChangeState, "/follower/change_state", req).success

        def state() -> str:
            return h.call(GetState, "/follower/get_state", GetState.Request()).current_state.label

        change(Transition.TRANSITION_DEACTIVATE)
        assert state() == "inactive" and all(torque(so101_bus)), "deactivate = hold, torque on"
        q0 = positions(states.last())
        for _ in range(30):
            cmd.publish(JointState(name=JOINTS, position=(q0 + 0.3).tolist()))
            time.sleep(0.01)
        time.sleep(0.3)
        assert np.abs(positions(states.last()) - q0).max() < 0.01, "inactive must ignore commands"
        change(Transition.TRANSITION_CLEANUP)
        assert state() == "unconfigured" and not any(torque(so101_bus)), "cleanup = torque off"
        change(Transition.TRANSITION_CONFIGURE)
        change(Transition.TRANSITION_ACTIVATE)
        assert state() == "active" and all(torque(so101_bus))
