"""The safety watchdog over real DDS, between a test probe (the command source) and the
simulated follower: limits, invalid commands, stale streams, the e-stop."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402

from lerobot_msgs.msg import EpisodeEvent, WatchdogState  # noqa: E402
from lerobot_msgs.srv import ResetEstop, SetActiveSource, TriggerEstop  # noqa: E402
from lerobot_ros.core.paths import resolve  # noqa: E402
from lerobot_ros.core.robots import SO_ARM_JOINTS  # noqa: E402
from lerobot_ros.core.urdf import joint_limits, load_urdf  # noqa: E402
from lerobot_ros.nodes import qos  # noqa: E402
from lerobot_ros.nodes.convert import from_time  # noqa: E402
from lerobot_ros.testing.graph import FOLLOWER, WATCHDOG, GraphHarness, spec  # noqa: E402

JOINTS = list(SO_ARM_JOINTS)
LOWER, UPPER, _ = joint_limits(load_urdf(resolve("urdf/so101.urdf")), JOINTS)
MAX_STEP = 0.35
RATE = 100.0


def command(q: np.ndarray | list[float], names: list[str] | None = None) -> JointState:
    msg = JointState()
    msg.name = JOINTS if names is None else names
    msg.position = [float(x) for x in q]
    return msg


def diag_values(box, prefix: str = "watchdog") -> dict[str, str]:
    for msg in reversed(box.messages()):
        for status in msg.status:
            if status.name.startswith(prefix):
                return {kv.key: kv.value for kv in status.values}
    return {}


class Rig:
    """Follower (sim) + watchdog in-process, the probe acting as the 'teleop' source."""

    def __init__(self, h: GraphHarness) -> None:
        self.h = h
        self.out = h.inbox(JointState, "/follower/command", qos.COMMAND)
        self.measured = h.inbox(JointState, "/follower/joint_states", qos.SENSOR)
        self.state = h.inbox(WatchdogState, "/watchdog/state", qos.LATCHED)
        self.diag = h.inbox(DiagnosticArray, "/diagnostics", 50)
        self.pub = h.publisher(JointState, "/teleop/command", qos.COMMAND)
        h.wait(lambda: len(self.measured) > 5, 10.0, "follower joint states")
        # Wait until the watchdog's subscription matched ours.
        h.wait(lambda: self.pub.get_subscription_count() > 0, 10.0, "watchdog subscription")
        time.sleep(0.3)  # the watchdog has measured state by now

    def q(self) -> np.ndarray:
        m = self.measured.last()
        return np.array([m.position[list(m.name).index(j)] for j in JOINTS])

    def send(self, q, names=None) -> float:
        t = time.time()
        self.pub.publish(command(q, names))
        return t

    def last_state(self) -> WatchdogState:
        return self.state.last()


def rig_specs(**watchdog_params):
    return [
        spec("follower", FOLLOWER),
        spec("watchdog", WATCHDOG, **watchdog_params),
    ]


@pytest.fixture
def rig(domain_id):
    with GraphHarness(rig_specs(), domain_id) as h:
        yield Rig(h)


def test_out_of_limit_command_is_clamped_and_never_reaches_the_follower(rig: Rig) -> None:
    pan_j = JOINTS.index("shoulder_pan")  # swings freely: nothing but the limit stops it
    target = rig.q()
    target[pan_j] = UPPER[pan_j] + 1.0  # a full radian past the URDF limit
    for _ in range(150):  # 1.5 s at 100 Hz: enough to walk there if nothing stopped it
        rig.send(target)
        time.sleep(0.01)
    rig.h.wait(lambda: rig.last_state().clipped >= 100, 3.0, "clip counter")
    sent = np.array([m.position for m in rig.out.messages()])
    assert len(sent) >= 100
    assert sent[:, pan_j].max() <= UPPER[pan_j] + 1e-9, "a command past the limit went out"
    assert sent[:, pan_j].max() == pytest.approx(UPPER[pan_j], abs=1e-6)  # it was clamped to it
    time.sleep(0.5)
    assert rig.q()[pan_j] <= UPPER[pan_j] + math.radians(1.0)
    rig.h.wait(
        lambda: int(diag_values(rig.diag).get("clipped.position_limit", 0)) > 0,
        3.0,
        "position_limit clips in /diagnostics",
    )


def test_step_limit_relative_to_measured(rig: Rig) -> None:
    pan = JOINTS.index("shoulder_pan")
    q0 = rig.q()
    far = q0.copy()
    far[pan] += 1.0  # within limits, but 1 rad away from where the arm is
    rig.out.clear()
    rig.send(far)
    rig.h.wait(lambda: len(rig.out) > 0, 2.0, "a forwarded command")
    first = np.array(rig.out.messages()[0].position)
    assert abs(first[pan] - q0[pan]) == pytest.approx(MAX_STEP, abs=0.02)


@pytest.mark.parametrize(
    ("names", "values", "reason"),
    [
        (JOINTS, [0.0, math.nan, 0.0, 0.0, 0.0, 0.0], "nan"),
        (JOINTS, [0.0, 0.0, math.inf, 0.0, 0.0, 0.0], "inf"),
        (JOINTS, [0.0] * 5, "wrong_length"),
        (["shoulder_pan", "pan_j", "x", "y", "z", "gripper"], [0.0] * 6, "unknown_joint"),
    ],
)
def test_invalid_commands_are_rejected_and_counted(rig: Rig, names, values, reason) -> None:
    rig.out.clear()
    before = rig.q()
    for _ in range(5):
        msg = JointState()
        msg.name = list(names)
        msg.position = [float(v) for v in values]
        rig.pub.publish(msg)
        time.sleep(0.02)
    rig.h.wait(lambda: rig.last_state().rejected >= 5, 3.0, "rejected counter")
    time.sleep(0.2)
    assert len(rig.out) == 0, "an invalid command was forwarded"
    rig.h.wait(
        lambda: int(diag_values(rig.diag).get(f"rejected.{reason}", 0)) >= 5,
        3.0,
        f"rejected.{reason} in /diagnostics",
    )
    assert np.abs(rig.q() - before).max() < math.radians(0.5)


def test_reject_mode_drops_out_of_limit_commands(domain_id) -> None:
    with GraphHarness(rig_specs(violation="reject"), domain_id) as h:
        rig = Rig(h)
        target = rig.q()
        target[JOINTS.index("wrist_flex")] = UPPER[JOINTS.index("wrist_flex")] + 0.3
        for _ in range(10):
            rig.send(target)
            time.sleep(0.02)
        h.wait(lambda: rig.last_state().rejected >= 10, 3.0, "rejected counter")
        assert len(rig.out) == 0
        ok = rig.q()
        rig.send(ok)  # a valid command still goes through
        h.wait(lambda: len(rig.out) == 1, 2.0, "the valid command")


def test_stale_stream_makes_the_follower_hold(rig: Rig) -> None:
    pan = JOINTS.index("shoulder_pan")
    q0 = rig.q()
    for i in range(50):  # 1 s of a slow sweep
        q = q0.copy()
        q[pan] += 0.3 * i / 50
        rig.send(q)
        time.sleep(0.02)
    t_stop = time.time()
    rig.h.wait(lambda: rig.last_state().holding, 1.0, "hold after the stream stopped")
    assert rig.last_state().hold_reason == "stale"
    held_at = time.time()
    assert held_at - t_stop >= 0.25 - 0.02  # not before the timeout
    time.sleep(0.6)
    holds = [np.array(m.position) for t, m in rig.out.items() if t > held_at]
    # 100 Hz nominally; >= 25 in 0.6 s still shows a continuous hold on a loaded machine.
    assert len(holds) >= 25, "the watchdog must keep commanding the hold at the control rate"
    assert all(np.array_equal(h, holds[0]) for h in holds), "the hold position walked"
    q_a = rig.q()
    time.sleep(0.5)
    assert np.abs(rig.q() - q_a).max() < math.radians(0.5), "the follower kept moving"


def test_estop_latches_stops_within_one_period_and_resets(rig: Rig) -> None:
    pan = JOINTS.index("shoulder_pan")
    q0 = rig.q()

    def sweep(i: int) -> np.ndarray:
        q = q0.copy()
        q[pan] += 0.4 * math.sin(i / 20)
        return q

    for i in range(40):
        rig.send(sweep(i))
        time.sleep(0.01)
    events = rig.h.inbox(EpisodeEvent, "/watchdog/events", qos.EVENTS)
    rig.out.clear()
    res = rig.h.call(TriggerEstop, "/watchdog/trigger_estop", TriggerEstop.Request(reason="test"))
    assert res.success
    rig.h.wait(
        lambda: any(e.type == EpisodeEvent.ESTOP for e in events.messages()), 2.0, "the ESTOP event"
    )
    estop = next(e for e in events.messages() if e.type == EpisodeEvent.ESTOP)
    t_latched = from_time(estop.header.stamp)

    # From the moment the watchdog latched, the hold reaches the follower's topic within one
    # control period (it is sent at once, not at the next tick).
    def holds() -> list[tuple[float, JointState]]:  # holds are stamped when sent; commands
        return [(t, m) for t, m in rig.out.items() if from_time(m.header.stamp) >= t_latched]

    rig.h.wait(lambda: len(holds()) > 0, 1.0, "the e-stop hold command")
    t_first, first = holds()[0]
    assert t_first - t_latched <= 1.0 / RATE, f"hold after {1e3 * (t_first - t_latched):.1f} ms"
    hold = np.array(first.position)
    for i in range(40, 100):  # the source keeps pushing: nothing of it may pass
        rig.send(sweep(i))
        time.sleep(0.01)
    after = [m for t, m in rig.out.items() if t > t_latched + 1.0 / RATE]
    assert len(after) > 30
    assert all(np.array_equal(np.array(m.position), hold) for m in after)
    assert rig.last_state().estop_active
    assert np.abs(rig.q() - hold).max() < math.radians(2.0)

    # Latched: a subscriber that joins late still sees the e-stop.
    late = rig.h.inbox(WatchdogState, "/watchdog/state", qos.LATCHED)
    rig.h.wait(lambda: len(late) > 0, 3.0, "latched state for a late subscriber")
    assert late.last().estop_active

    res = rig.h.call(ResetEstop, "/watchdog/reset_estop", ResetEstop.Request(reason="test"))
    assert res.success
    rig.h.wait(lambda: not rig.last_state().estop_active, 2.0, "e-stop cleared")
    assert rig.last_state().holding  # still holding until a fresh command
    n = len(rig.out)
    fresh = hold.copy()
    fresh[pan] += 0.01  # from the hold, under max_velocity * one period: forwarded unchanged
    rig.send(fresh)
    rig.h.wait(lambda: not rig.last_state().holding, 2.0, "resume on a fresh command")
    rig.h.wait(
        lambda: any(abs(m.position[pan] - fresh[pan]) < 1e-9 for m in rig.out.messages()[n:]),
        2.0,
        "the fresh command forwarded",
    )


def test_estop_topic_and_source_switch(rig: Rig) -> None:
    from std_msgs.msg import Bool

    res = rig.h.call(
        SetActiveSource, "/watchdog/set_active_source", SetActiveSource.Request(source="nope")
    )
    assert not res.success and "nope" in res.message
    res = rig.h.call(
        SetActiveSource,
        "/watchdog/set_active_source",
        SetActiveSource.Request(source="chunk_player"),
    )
    assert res.success and res.previous_source == "teleop"
    rig.h.wait(lambda: rig.last_state().active_source == "chunk_player", 2.0, "source switch")
    rig.out.clear()
    target = rig.q()
    target[0] += 0.1
    rig.send(target)  # teleop is no longer active: ignored, not forwarded
    rig.h.wait(lambda: int(diag_values(rig.diag).get("ignored", 0)) >= 1, 3.0, "ignored counter")
    assert not any(abs(m.position[0] - target[0]) < 1e-9 for m in rig.out.messages())
    estop = rig.h.publisher(Bool, "/estop", qos.COMMAND)
    rig.h.wait(lambda: estop.get_subscription_count() > 0, 5.0, "watchdog /estop subscription")
    estop.publish(Bool(data=True))
    rig.h.wait(lambda: rig.last_state().estop_active, 2.0, "e-stop from the /estop topic")
