"""End-effector teleop over real DDS: teleop_graph(input=keyboard|gamepad) in-process (simulated
follower, watchdog with ee_teleop active, ee_teleop). Keys go in through a pseudo-terminal, stick
events through a FIFO opened as the joystick device; the tip is measured by forward kinematics
of /follower/joint_states."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.ros

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

from lerobot_ros.core.graph import TeleopGraphArgs, teleop_graph  # noqa: E402
from lerobot_ros.core.input_devices import JS_EVENT_AXIS, js_event  # noqa: E402
from lerobot_ros.core.kinematics import ForwardKinematics  # noqa: E402
from lerobot_ros.core.params import ParameterError  # noqa: E402
from lerobot_ros.core.robots import SO_ARM_JOINTS, get_robot  # noqa: E402
from lerobot_ros.core.urdf import joint_limits, load_urdf  # noqa: E402
from lerobot_ros.nodes import qos  # noqa: E402
from lerobot_ros.testing.graph import GraphHarness  # noqa: E402

URDF = get_robot("so101").urdf_path()
LOWER, UPPER, _ = joint_limits(load_urdf(URDF), SO_ARM_JOINTS)
FK = ForwardKinematics(URDF)


def ee_specs(input_: str, device: str, **ee_params: Any) -> list:
    """teleop_graph's nodes for `input_` (no cameras), ee_teleop's parameters overridden."""
    specs = teleop_graph(TeleopGraphArgs(input=input_, input_device=device, cameras=()))
    assert [s.name for s in specs if s.in_process] == ["follower", "ee_teleop", "watchdog"]
    return [
        replace(s, parameters={**s.parameters, **ee_params}) if s.name == "ee_teleop" else s
        for s in specs
    ]


def q_of(msg: JointState) -> np.ndarray:
    return np.array([msg.position[list(msg.name).index(j)] for j in SO_ARM_JOINTS])


def tip(msg: JointState) -> np.ndarray:
    return FK.pose(dict(zip(SO_ARM_JOINTS, q_of(msg), strict=True)))[:3, 3]


class Arm:
    """The follower's measured tip, and waiting for it to settle."""

    def __init__(self, h: GraphHarness) -> None:
        self.h = h
        self.measured = h.inbox(JointState, "/follower/joint_states", qos.SENSOR)
        self.commands = h.inbox(JointState, "/ee_teleop/command", qos.COMMAND)
        self.diag = h.inbox(DiagnosticArray, "/diagnostics", 50)
        h.wait(lambda: len(self.commands) > 10, 20.0, "ee_teleop commands (active source)")

    def tip(self) -> np.ndarray:
        return tip(self.measured.last())

    def settle(self, timeout: float = 5.0) -> np.ndarray:
        """The tip once it moved < 0.5 mm in 0.2 s."""
        deadline = time.monotonic() + timeout
        last = self.tip()
        while time.monotonic() < deadline:
            time.sleep(0.2)
            now = self.tip()
            if np.linalg.norm(now - last) < 5e-4:
                return now
            last = now
        raise AssertionError(f"the arm did not settle within {timeout} s")

    def diagnostics(self) -> dict[str, str]:
        for msg in reversed(self.diag.messages()):
            for status in msg.status:
                if status.name.startswith("ee_teleop"):
                    return {"message": status.message, **{kv.key: kv.value for kv in status.values}}
        return {}


@pytest.fixture
def pty():
    master, slave = os.openpty()
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def press(master: int, keys: str, period: float = 0.05) -> None:
    """Type `keys` one by one, like a person (or key auto-repeat) would."""
    for key in keys:
        os.write(master, key.encode())
        time.sleep(period)


def test_keyboard_through_a_pty_moves_the_tip_in_the_commanded_direction(
    domain_id: int, pty: tuple[int, str]
) -> None:
    master, path = pty
    with GraphHarness(ee_specs("keyboard", path), domain_id) as h:
        arm = Arm(h)
        start = arm.settle()
        # The sim arm starts stretched out (q = 0): back 5 cm (s), up 3 cm (r), left 2 cm (a).
        for keys, axis, distance in (("sssss", 0, -0.05), ("rrr", 2, 0.03), ("aa", 1, 0.02)):
            press(master, keys)
            reached = arm.settle()
            moved = reached - start
            assert moved[axis] == pytest.approx(distance, abs=0.006), (keys, moved)
            others = np.delete(moved, axis)
            assert np.all(np.abs(others) < 0.006), (keys, moved)  # straight, not sideways
            start = reached
        for msg in arm.commands.messages():
            q = q_of(msg)
            assert np.all(q >= LOWER - 1e-9) and np.all(q <= UPPER + 1e-9)


@pytest.mark.parametrize(
    ("case", "params", "keys"),
    [
        # A box wall 3 cm behind the start (x >= 0.36): the tip stops there.
        ("box", {"workspace_min": [0.36, -0.45, 0.02]}, "s" * 40),
        # No workspace to speak of: forward from the stretched-out start soon leaves the reach.
        (
            "reach",
            {"workspace_min": [-5.0, -5.0, -5.0], "workspace_max": [5.0, 5.0, 5.0]},
            "w" * 40,
        ),
    ],
)
def test_targets_outside_the_workspace_or_reach_hold_within_limits(
    domain_id: int, pty: tuple[int, str], case: str, params: dict, keys: str
) -> None:
    master, path = pty
    params = {**params, "workspace_radius": 5.0} if case == "reach" else params
    with GraphHarness(ee_specs("keyboard", path, **params), domain_id) as h:
        arm = Arm(h)
        start = arm.settle()
        assert start[0] == pytest.approx(0.391, abs=0.005)  # stretched out: tip x
        out = h.inbox(JointState, "/follower/command", qos.COMMAND)
        press(master, keys, period=0.03)
        final = arm.settle()
        h.wait(lambda: "status" in arm.diagnostics(), 3.0, "ee_teleop diagnostics")
        time.sleep(1.1)  # one more diagnostics period after the last key
        diag = arm.diagnostics()
        tips = [tip(m) for m in arm.measured.messages()]
        for msg in [*arm.commands.messages(), *out.messages()]:
            q = q_of(msg)
            assert np.all(q >= LOWER - 1e-9) and np.all(q <= UPPER + 1e-9)
        if case == "box":
            assert min(t[0] for t in tips) >= 0.36 - 0.003
            assert final[0] == pytest.approx(0.36, abs=0.011)
            assert int(diag["workspace_refusals"]) > 0
            assert "x" in diag["last_problem"] and "0.360" in diag["last_problem"], diag
        else:
            # Out to the arm's reach (0.46 m here; the shoulder is at x 0.07 and the segments
            # add up to 0.41 m), then IK failures: the last good command is held.
            assert 0.44 < final[0] < 0.07 + 0.41
            assert int(diag["ik_failures"]) > 0
            assert "IK failed" in diag["last_problem"], diag
            np.testing.assert_allclose(final, tip(arm.commands.last()), atol=0.005)  # sag


def test_gamepad_through_a_fifo_plugged_in_late(domain_id: int, tmp_path: Path) -> None:
    """The joystick device does not exist at start: the node warns, naming the parameter and
    path, and reports ERROR; once the FIFO appears it is opened, and a stick pulled back moves
    the tip back (-x) until released."""
    fifo = tmp_path / "js0"
    with GraphHarness(ee_specs("gamepad", str(fifo), reconnect_period=0.2), domain_id) as h:
        arm = Arm(h)
        h.wait(lambda: "message" in arm.diagnostics(), 3.0, "ee_teleop diagnostics")
        diag = arm.diagnostics()
        assert diag["message"].startswith("no input: cannot open") and str(fifo) in diag["message"]
        start = arm.settle()

        os.mkfifo(fifo)
        writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        try:
            h.wait(
                lambda: arm.diagnostics().get("device_status") == f"reading {fifo}",
                5.0,
                "the gamepad opened",
            )
            os.write(writer, js_event(1, 32767, JS_EVENT_AXIS))  # left stick full back: -x
            time.sleep(0.4)  # 0.1 m/s for 0.4 s: ~4 cm
            os.write(writer, js_event(1, 0, JS_EVENT_AXIS))
            released = time.time()  # the inbox stamps arrivals with time.time()
            reached = arm.settle()
        finally:
            os.close(writer)
        moved = reached - start
        assert -0.06 < moved[0] < -0.02, moved
        assert np.all(np.abs(moved[1:]) < 0.006), moved
        # Released: no command after the release moves the target on.
        late = [m for t, m in arm.commands.items() if t > released + 0.1]
        assert late and np.allclose(q_of(late[0]), q_of(late[-1]), atol=1e-6)


def test_keyboard_on_a_non_terminal_stops_naming_the_parameter(
    domain_id: int, tmp_path: Path
) -> None:
    plain = tmp_path / "keys.txt"
    plain.write_text("wasd")
    specs = [s for s in ee_specs("keyboard", str(plain)) if s.name == "ee_teleop"]
    with pytest.raises(ParameterError) as info, GraphHarness(specs, domain_id):
        pass
    assert info.value.name == "device"
    assert "is not a terminal" in str(info.value) and str(plain) in str(info.value)


def test_reader_threads_do_not_outlive_the_graph(domain_id: int, pty: tuple[int, str]) -> None:
    _, path = pty
    with GraphHarness(ee_specs("keyboard", path), domain_id):
        assert any(t.name == "keyboard-reader" for t in threading.enumerate())
    assert not any(t.name == "keyboard-reader" for t in threading.enumerate())
