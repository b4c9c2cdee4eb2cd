"""Safety watchdog core: limiter rules, command validation, hold, e-stop, source switching.

Values are chosen to be exact in binary floating point, so boundaries are tested with `==`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lerobot_ros.core.safety import (
    MIN_DT,
    JointLimiter,
    JointLimits,
    Violation,
    Watchdog,
)

NAMES = ("shoulder_pan", "elbow_flex", "gripper")
TIMEOUT = 0.5


def limits() -> JointLimits:
    return JointLimits(
        names=NAMES,
        lower=np.array([-1.0, -2.0, 0.0]),
        upper=np.array([1.0, 2.0, 1.0]),
        max_velocity=np.array([1.0, 1.0, 2.0]),
        max_step=np.array([0.5, 0.5, 0.5]),
    )


def watchdog(violation: Violation = Violation.CLAMP, measured=(0.0, 0.0, 0.5)) -> Watchdog:
    wd = Watchdog(
        limits(),
        sources=("teleop", "policy"),
        active_source="teleop",
        command_timeout=TIMEOUT,
        violation=violation,
    )
    if measured is not None:
        wd.on_measured(NAMES, measured, 0.0)
    return wd


def arr(*v: float) -> np.ndarray:
    return np.array(v, dtype=float)


# --- JointLimits ---------------------------------------------------------------------------------


def test_limits_store_read_only_float_arrays() -> None:
    lim = JointLimits(NAMES, [-1, -2, 0], [1, 2, 1], [1, 1, 2], [0.5, 0.5, 0.5])
    assert lim.names == NAMES
    assert lim.lower.dtype == float
    np.testing.assert_array_equal(lim.upper, [1.0, 2.0, 1.0])
    with pytest.raises(ValueError):
        lim.lower[0] = 5.0


def test_limits_uniform_broadcasts_scalars() -> None:
    lim = JointLimits.uniform(["a", "b"], -1.5, [2.0, 3.0], max_velocity=4.0, max_step=0.25)
    np.testing.assert_array_equal(lim.lower, [-1.5, -1.5])
    np.testing.assert_array_equal(lim.upper, [2.0, 3.0])
    np.testing.assert_array_equal(lim.max_velocity, [4.0, 4.0])
    np.testing.assert_array_equal(lim.max_step, [0.25, 0.25])
    assert lim.names == ("a", "b")


def test_limits_lower_above_upper_names_joint_and_both_values() -> None:
    with pytest.raises(ValueError) as err:
        JointLimits.uniform(["a", "elbow_flex"], [0.0, 1.5], [1.0, -0.5], 1.0, 0.5)
    msg = str(err.value)
    assert "elbow_flex" in msg and "1.5" in msg and "-0.5" in msg
    # lower == upper is a fixed joint, which is allowed
    JointLimits.uniform(["a"], 0.25, 0.25, 1.0, 0.5)


@pytest.mark.parametrize(
    ("field", "bad", "text"),
    [
        ("lower", math.nan, "nan"),
        ("upper", math.inf, "inf"),
        ("max_velocity", 0.0, "must be > 0"),
        ("max_velocity", -1.0, "must be > 0"),
        ("max_step", 0.0, "must be > 0"),
        ("max_step", math.nan, "not finite"),
    ],
)
def test_limits_reject_bad_values_naming_joint(field: str, bad: float, text: str) -> None:
    kwargs = {"lower": [-1.0, -1.0], "upper": [1.0, 1.0], "max_velocity": [1.0, 1.0]}
    kwargs["max_step"] = [0.5, 0.5]
    kwargs[field] = [kwargs[field][0], bad]
    with pytest.raises(ValueError) as err:
        JointLimits(names=("a", "wrist_roll"), **kwargs)
    msg = str(err.value)
    assert "wrist_roll" in msg and field in msg and text in msg


def test_limits_reject_length_mismatch_duplicates_and_empty() -> None:
    with pytest.raises(ValueError, match=r"upper has 2 values but there are 3 joints"):
        JointLimits(NAMES, [0, 0, 0], [1, 1], [1, 1, 1], [1, 1, 1])
    with pytest.raises(ValueError, match="duplicate joint name 'a'"):
        JointLimits.uniform(["a", "b", "a"], 0.0, 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="at least one joint"):
        JointLimits.uniform([], 0.0, 1.0, 1.0, 1.0)


# --- JointLimiter --------------------------------------------------------------------------------


def test_limiter_passes_command_within_all_limits() -> None:
    lim = JointLimiter(limits(), Violation.CLAMP)
    cmd, violations = lim.enforce(arr(0, 0, 0.5), arr(0, 0, 0.5), arr(0.25, -0.5, 1.0), 1.0)
    np.testing.assert_array_equal(cmd, [0.25, -0.5, 1.0])
    assert violations == []


def test_limiter_position_limits_per_joint() -> None:
    lim = JointLimiter(limits(), "clamp")
    near = arr(0.75, 1.75, 0.125)
    cmd, violations = lim.enforce(near, near, arr(1.0, 2.25, -0.25), 1.0)
    # shoulder_pan exactly at its upper limit is fine; elbow above, gripper below are clamped
    np.testing.assert_array_equal(cmd, [1.0, 2.0, 0.0])
    assert violations == ["position_limit:elbow_flex", "position_limit:gripper"]


def test_limiter_velocity_limit_over_dt() -> None:
    lim = JointLimiter(limits(), Violation.CLAMP)
    zero = arr(0, 0, 0.5)
    # dt = 0.25 s: at most 0.25 rad for the arm joints, 0.5 rad for the gripper (2 rad/s)
    cmd, violations = lim.enforce(zero, zero, arr(0.25, -0.375, 0.75), 0.25)
    np.testing.assert_array_equal(cmd, [0.25, -0.25, 0.75])
    assert violations == ["velocity_limit:elbow_flex"]
    # the same change over twice the time is allowed
    cmd, violations = lim.enforce(zero, zero, arr(0.25, -0.375, 0.75), 0.5)
    np.testing.assert_array_equal(cmd, [0.25, -0.375, 0.75])
    assert violations == []


def test_limiter_velocity_is_relative_to_previous_not_measured() -> None:
    lim = JointLimiter(limits(), Violation.CLAMP)
    cmd, violations = lim.enforce(arr(0, 0, 0.5), arr(0, 0.25, 0.5), arr(0, 0.5, 0.5), 0.25)
    np.testing.assert_array_equal(cmd, [0, 0.5, 0.5])
    assert violations == []


@pytest.mark.parametrize("dt", [0.0, -1.0, 1e-6, math.nan])
def test_limiter_floors_dt(dt: float) -> None:
    lim = JointLimiter(limits(), Violation.CLAMP)
    zero = arr(0, 0, 0.5)
    cmd, violations = lim.enforce(zero, zero, arr(0.25, 0, 0.5), dt)
    assert cmd[0] == pytest.approx(1.0 * MIN_DT)
    assert violations == ["velocity_limit:shoulder_pan"]


def test_limiter_infinite_dt_disables_velocity_limit() -> None:
    lim = JointLimiter(limits(), Violation.CLAMP)
    cmd, violations = lim.enforce(arr(0, 0, 0.5), arr(-1, -1, 0), arr(0.5, 0, 0.5), math.inf)
    np.testing.assert_array_equal(cmd, [0.5, 0, 0.5])
    assert violations == []


def test_limiter_step_limit_relative_to_measured() -> None:
    lim = JointLimiter(limits(), Violation.CLAMP)
    # the arm lags behind the previous target; the step limit follows the arm
    measured, previous = arr(0, 1.0, 0.5), arr(0.5, 1.0, 0.5)
    cmd, violations = lim.enforce(measured, previous, arr(0.75, 1.5, 0.5), 1.0)
    np.testing.assert_array_equal(cmd, [0.5, 1.5, 0.5])
    assert violations == ["step_limit:shoulder_pan"]


def test_limiter_applies_rules_in_order() -> None:
    lim = JointLimiter(limits(), Violation.CLAMP)
    zero = arr(0, 0, 0.5)
    cmd, violations = lim.enforce(zero, zero, arr(0, 5.0, 0.5), 0.75)
    # 5.0 -> position 2.0 -> velocity 0.75 -> step 0.5
    np.testing.assert_array_equal(cmd, [0, 0.5, 0.5])
    assert violations == [
        "position_limit:elbow_flex",
        "velocity_limit:elbow_flex",
        "step_limit:elbow_flex",
    ]


def test_limiter_reject_mode() -> None:
    lim = JointLimiter(limits(), Violation.REJECT)
    zero = arr(0, 0, 0.5)
    cmd, violations = lim.enforce(zero, zero, arr(0, 0.625, 0.5), 1.0)
    assert cmd is None
    assert violations == ["step_limit:elbow_flex"]
    cmd, violations = lim.enforce(zero, zero, arr(0, 0.5, 0.5), 1.0)
    np.testing.assert_array_equal(cmd, [0, 0.5, 0.5])
    assert violations == []


def test_limiter_checks_shapes_and_mode() -> None:
    lim = JointLimiter(limits(), Violation.CLAMP)
    with pytest.raises(ValueError, match="desired"):
        lim.enforce(arr(0, 0, 0), arr(0, 0, 0), arr(0, 0), 1.0)
    with pytest.raises(ValueError):
        JointLimiter(limits(), "ignore")


# --- Watchdog: construction and measurements -----------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"sources": (), "active_source": "teleop"}, "sources"),
        ({"active_source": "planner"}, "'planner'"),
        ({"command_timeout": 0.0}, "command_timeout = 0.0"),
        ({"command_timeout": -1.0}, "command_timeout = -1.0"),
        ({"command_timeout": math.nan}, "command_timeout = nan"),
        ({"sources": ("teleop", "teleop")}, "duplicates"),
    ],
)
def test_watchdog_rejects_bad_configuration(kwargs: dict, text: str) -> None:
    args = {"sources": ("teleop", "policy"), "active_source": "teleop", "command_timeout": 0.5}
    args.update(kwargs)
    with pytest.raises(ValueError) as err:
        Watchdog(limits(), **args)
    assert text in str(err.value)


def test_bad_measurements_are_dropped_and_counted() -> None:
    wd = watchdog(measured=(0.0, 0.25, 0.5))
    wd.on_measured(("shoulder_pan", "elbow_flex"), (1.0, 1.0), 0.1)  # gripper missing
    wd.on_measured(NAMES, (1.0, math.nan, 1.0), 0.2)
    wd.on_measured(NAMES, (1.0, 1.0, math.inf), 0.3)
    wd.on_measured(NAMES, (1.0, 1.0), 0.4)  # wrong length
    assert wd.status().bad_measurements == 4
    # the good measurement is still the reference: hold at it
    np.testing.assert_array_equal(wd.trigger_estop("test", 1.0), [0.0, 0.25, 0.5])


def test_measurement_with_extra_joints_in_any_order() -> None:
    wd = watchdog(measured=None)
    wd.on_measured(
        ("gripper", "base_yaw", "elbow_flex", "shoulder_pan"), (0.5, 9.0, 0.25, 0.125), 0
    )
    assert wd.status().bad_measurements == 0
    np.testing.assert_array_equal(wd.trigger_estop("test", 1.0), [0.125, 0.25, 0.5])


# --- Watchdog: command validation ----------------------------------------------------------------


def test_forwards_valid_command_in_configured_order() -> None:
    wd = watchdog()
    v = wd.on_command("teleop", ("gripper", "shoulder_pan", "elbow_flex"), (0.75, 0.25, -0.5), 0.1)
    assert (v.status, v.reason, v.violations) == ("forwarded", "", ())
    assert v.accepted
    np.testing.assert_array_equal(v.command, [0.25, -0.5, 0.75])
    v = wd.on_command("teleop", (), (0.25, -0.25, 0.75), 0.6)  # empty names: configured order
    assert v.status == "forwarded"
    np.testing.assert_array_equal(v.command, [0.25, -0.25, 0.75])
    assert wd.joint_names == NAMES
    s = wd.status()
    assert (s.forwarded, s.clipped, s.rejected, s.ignored) == (2, 0, 0, 0)


@pytest.mark.parametrize(
    ("names", "positions", "reason"),
    [
        (NAMES, (0.0, 0.0), "wrong_length"),
        (("shoulder_pan",), (0.0, 0.0), "wrong_length"),
        ((), (0.0, 0.0), "wrong_length"),
        ((), (0.0, 0.0, 0.0, 0.0), "wrong_length"),
        (("gripper", "elbow_flex", "gripper"), (0.5, 0.0, 0.5), "duplicate_joint:gripper"),
        (("shoulder_pan", "foo"), (0.0, 0.0), "unknown_joint:foo"),
        (NAMES, (0.0, math.nan, 0.5), "nan"),
        (NAMES, (0.0, math.inf, 0.5), "inf"),
        (NAMES, (0.0, -math.inf, 0.5), "inf"),
        (("gripper",), ("open",), "not_numeric"),
    ],
)
def test_rejects_malformed_commands(names, positions, reason: str) -> None:
    wd = watchdog()
    v = wd.on_command("teleop", names, positions, 0.1)
    assert (v.status, v.command, v.reason) == ("rejected", None, reason)
    s = wd.status()
    assert (s.forwarded, s.rejected) == (0, 1)
    assert s.reject_reasons == {reason.split(":")[0]: 1}


def test_unknown_and_inactive_sources() -> None:
    wd = watchdog()
    v = wd.on_command("joystick", NAMES, (0, 0, 0.5), 0.1)
    assert (v.status, v.reason) == ("rejected", "unknown_source:joystick")
    v = wd.on_command("policy", NAMES, (0, 0, 0.5), 0.1)
    assert (v.status, v.command, v.reason) == ("ignored", None, "inactive_source:policy")
    s = wd.status()
    assert (s.rejected, s.ignored, s.forwarded) == (1, 1, 0)
    assert s.reject_reasons == {"unknown_source": 1}


def test_no_state_before_first_measurement() -> None:
    wd = watchdog(measured=None)
    v = wd.on_command("teleop", NAMES, (0, 0, 0.5), 0.1)
    assert (v.status, v.reason) == ("rejected", "no_state")
    wd.on_measured(NAMES, (0, 0, 0.5), 0.2)
    assert wd.on_command("teleop", NAMES, (0, 0, 0.5), 0.3).status == "forwarded"


def test_subset_command_keeps_other_joints_at_last_target() -> None:
    wd = watchdog()
    wd.on_command("teleop", NAMES, (0.25, -0.25, 0.75), 1.0)
    v = wd.on_command("teleop", ("gripper",), (0.5,), 1.5)
    assert v.status == "forwarded"
    np.testing.assert_array_equal(v.command, [0.25, -0.25, 0.5])


def test_verdict_command_is_a_copy() -> None:
    wd = watchdog()
    v = wd.on_command("teleop", NAMES, (0.25, 0.0, 0.5), 1.0)
    v.command[:] = 9.0
    v = wd.on_command("teleop", ("gripper",), (0.5,), 1.5)
    np.testing.assert_array_equal(v.command, [0.25, 0.0, 0.5])


# --- Watchdog: limits ----------------------------------------------------------------------------


def test_clamp_mode_clips_and_counts_reasons() -> None:
    wd = watchdog()
    v = wd.on_command("teleop", NAMES, (0.0, 0.75, 0.5), 0.1)  # 0.75 rad from measured
    assert v.status == "clipped"
    assert v.reason == "step_limit:elbow_flex"
    assert v.violations == ("step_limit:elbow_flex",)
    np.testing.assert_array_equal(v.command, [0.0, 0.5, 0.5])
    v = wd.on_command("teleop", NAMES, (0.0, 0.5, 1.5), 1.1)  # gripper above 1.0
    assert v.status == "clipped"
    np.testing.assert_array_equal(v.command, [0.0, 0.5, 1.0])
    s = wd.status()
    assert (s.forwarded, s.clipped, s.rejected) == (0, 2, 0)
    assert s.clip_reasons == {"step_limit": 1, "position_limit": 1}
    assert s.reject_reasons == {}


def test_reject_mode_drops_command_and_keeps_target() -> None:
    wd = watchdog(Violation.REJECT)
    assert wd.on_command("teleop", NAMES, (0.25, 0.0, 0.5), 1.0).status == "forwarded"
    v = wd.on_command("teleop", NAMES, (0.25, 0.75, 0.5), 2.0)
    assert (v.status, v.command, v.reason) == ("rejected", None, "step_limit:elbow_flex")
    v = wd.on_command("teleop", NAMES, (0.25, -2.5, 0.5), 4.0)  # 3 s: velocity is fine
    assert v.reason == "position_limit:elbow_flex,step_limit:elbow_flex"
    # the rejected commands changed nothing: a subset command starts from the last target
    v = wd.on_command("teleop", ("gripper",), (0.75,), 5.0)
    np.testing.assert_array_equal(v.command, [0.25, 0.0, 0.75])
    s = wd.status()
    assert (s.forwarded, s.clipped, s.rejected) == (2, 0, 2)
    assert s.reject_reasons == {"step_limit": 2, "position_limit": 1}


def test_velocity_limit_uses_time_since_last_forwarded_command() -> None:
    wd = watchdog()
    wd.on_command("teleop", NAMES, (0.25, 0.0, 0.5), 1.0)
    # 0.25 rad in 0.125 s is 2 rad/s, twice the limit: clipped to 0.125 rad
    v = wd.on_command("teleop", NAMES, (0.5, 0.0, 0.5), 1.125)
    assert (v.status, v.reason) == ("clipped", "velocity_limit:shoulder_pan")
    np.testing.assert_array_equal(v.command, [0.375, 0.0, 0.5])
    # a rejected command does not move the reference time
    assert wd.on_command("teleop", NAMES, (math.nan, 0, 0), 1.25).status == "rejected"
    v = wd.on_command("teleop", NAMES, (0.5, 0.0, 0.5), 1.25)
    assert v.status == "forwarded"  # 0.125 rad in 0.125 s: exactly the limit


def test_first_command_is_only_step_limited() -> None:
    wd = watchdog()
    v = wd.on_command("teleop", NAMES, (0.5, -0.5, 1.0), 0.0)  # exactly max_step everywhere
    assert v.status == "forwarded"
    np.testing.assert_array_equal(v.command, [0.5, -0.5, 1.0])


# --- Watchdog: stale source and hold -------------------------------------------------------------


def test_stale_source_holds_at_measured_position_without_walking() -> None:
    wd = watchdog()
    assert wd.tick(0.5) is None  # never commanded: nothing to hold against
    wd.on_command("teleop", NAMES, (0.25, 0.25, 0.75), 1.0)
    wd.on_measured(NAMES, (0.125, 0.25, 0.625), 1.2)
    assert wd.tick(1.5) is None  # exactly the timeout: still fresh
    assert not wd.status().holding
    hold = wd.tick(1.625)
    np.testing.assert_array_equal(hold, [0.125, 0.25, 0.625])  # measured, not the target
    s = wd.status()
    assert (s.holding, s.hold_reason, s.last_command_age) == (True, "stale", 0.625)
    events = wd.drain_events()
    assert [(e.kind, e.source, e.t) for e in events] == [("hold", "teleop", 1.625)]
    assert "stale" in events[0].detail
    # the arm sags: the hold stays where it started
    wd.on_measured(NAMES, (0.125, 0.0, 0.625), 1.7)
    np.testing.assert_array_equal(wd.tick(1.75), [0.125, 0.25, 0.625])
    np.testing.assert_array_equal(wd.tick(2.0), [0.125, 0.25, 0.625])
    assert wd.drain_events() == []  # one event per hold, not per tick


def test_rejected_commands_do_not_keep_a_source_alive() -> None:
    wd = watchdog()
    wd.on_command("teleop", NAMES, (0.0, 0.0, 0.5), 1.0)
    wd.on_command("teleop", NAMES, (math.nan, 0.0, 0.5), 1.4)
    wd.on_command("policy", NAMES, (0.0, 0.0, 0.5), 1.4)  # ignored
    assert wd.tick(1.625) is not None
    assert wd.status().holding


def test_fresh_command_resumes_from_hold() -> None:
    wd = watchdog()
    wd.on_command("teleop", NAMES, (0.25, 0.25, 0.75), 1.0)
    wd.on_measured(NAMES, (0.25, 0.25, 0.75), 1.0)
    wd.tick(2.0)
    wd.drain_events()
    # a subset command moves from the hold; the other joints stay at the hold position
    v = wd.on_command("teleop", ("gripper",), (0.5,), 2.25)
    assert v.status == "forwarded"
    np.testing.assert_array_equal(v.command, [0.25, 0.25, 0.5])
    s = wd.status()
    assert (s.holding, s.hold_reason) == (False, "")
    assert [(e.kind, e.t) for e in wd.drain_events()] == [("resume", 2.25)]
    assert wd.tick(2.5) is None
    assert wd.status().last_command_age == 0.25
    assert wd.tick(2.875) is not None  # and the stale timer restarted at 2.25


def test_resume_is_velocity_limited_against_the_hold() -> None:
    wd = watchdog()
    wd.on_command("teleop", NAMES, (0.0, 0.0, 0.5), 1.0)
    wd.tick(2.0)  # hold at (0, 0, 0.5), sent at 2.0
    v = wd.on_command("teleop", NAMES, (0.25, 0.0, 0.5), 2.125)
    assert (v.status, v.reason) == ("clipped", "velocity_limit:shoulder_pan")
    np.testing.assert_array_equal(v.command, [0.125, 0.0, 0.5])


# --- Watchdog: e-stop ----------------------------------------------------------------------------


def test_estop_latches_until_reset_then_holds_until_fresh_command() -> None:
    wd = watchdog(measured=(0.125, 0.25, 0.5))
    wd.on_command("teleop", NAMES, (0.25, 0.25, 0.5), 1.0)
    hold = wd.trigger_estop("button", 1.1)
    np.testing.assert_array_equal(hold, [0.125, 0.25, 0.5])
    v = wd.on_command("teleop", NAMES, (0.25, 0.25, 0.5), 1.2)
    assert (v.status, v.command, v.reason) == ("rejected", None, "estop")
    s = wd.status()
    assert (s.estop_active, s.estop_reason, s.holding, s.hold_reason) == (
        True,
        "button",
        True,
        "estop",
    )
    # the latch outlives the timeout and a second trigger, and the hold does not walk
    wd.on_measured(NAMES, (0.125, 0.0, 0.5), 1.3)
    np.testing.assert_array_equal(wd.trigger_estop("again", 1.4), hold)
    np.testing.assert_array_equal(wd.tick(5.0), hold)
    assert wd.status().estop_reason == "button"
    assert wd.on_command("teleop", NAMES, (0.125, 0.25, 0.5), 5.0).reason == "estop"

    ok, msg = wd.reset_estop("operator", 6.0)
    assert ok and "teleop" in msg
    s = wd.status()
    assert (s.estop_active, s.estop_reason, s.holding, s.hold_reason) == (
        False,
        "",
        True,
        "estop_reset",
    )
    np.testing.assert_array_equal(wd.tick(6.5), hold)  # still holding after the reset
    v = wd.on_command("teleop", NAMES, (0.125, 0.25, 0.5), 7.0)
    assert v.status == "forwarded"
    assert not wd.status().holding
    assert wd.tick(7.25) is None
    kinds = [(e.kind, e.detail) for e in wd.drain_events()]
    assert [k for k, _ in kinds] == ["estop", "hold", "estop_reset", "resume"]
    assert kinds[0][1] == "button" and kinds[2][1] == "operator"
    s = wd.status()
    assert (s.rejected, s.reject_reasons, s.forwarded) == (2, {"estop": 2}, 2)


def test_reset_without_estop_is_refused() -> None:
    wd = watchdog()
    ok, msg = wd.reset_estop("operator", 1.0)
    assert not ok and "not active" in msg
    assert wd.drain_events() == []


def test_estop_before_any_measurement_holds_once_measured() -> None:
    wd = watchdog(measured=None)
    assert wd.trigger_estop("startup", 0.0) is None
    assert wd.tick(0.1) is None
    wd.on_measured(NAMES, (0.0, 0.5, 0.25), 0.2)
    np.testing.assert_array_equal(wd.tick(0.3), [0.0, 0.5, 0.25])
    wd.on_measured(NAMES, (0.0, 0.25, 0.25), 0.4)
    np.testing.assert_array_equal(wd.tick(0.5), [0.0, 0.5, 0.25])


def test_estop_does_not_block_rejecting_unknown_or_ignoring_inactive_sources() -> None:
    wd = watchdog()
    wd.trigger_estop("x", 0.0)
    assert wd.on_command("policy", NAMES, (0, 0, 0.5), 0.1).status == "ignored"
    assert wd.on_command("bogus", NAMES, (0, 0, 0.5), 0.1).reason == "unknown_source:bogus"


# --- Watchdog: source switching ------------------------------------------------------------------


def test_source_switch_starts_new_source_from_a_hold_at_measured() -> None:
    wd = watchdog()
    wd.on_command("teleop", NAMES, (0.5, 0.0, 0.5), 1.0)
    wd.on_measured(NAMES, (0.25, 0.0, 0.5), 1.1)  # the arm has not caught up yet
    ok, msg, previous = wd.set_active_source("policy", 1.2)
    assert (ok, previous) == (True, "teleop")
    assert "policy" in msg
    s = wd.status()
    assert (s.active_source, s.holding, s.hold_reason, s.last_command_age) == (
        "policy",
        True,
        "source_switch",
        None,
    )
    np.testing.assert_array_equal(wd.tick(1.25), [0.25, 0.0, 0.5])
    v = wd.on_command("teleop", NAMES, (0.5, 0.0, 0.5), 1.3)
    assert (v.status, v.reason) == ("ignored", "inactive_source:teleop")
    # the policy's first command starts from the measured position, not teleop's target
    v = wd.on_command("policy", ("elbow_flex",), (0.0625,), 2.0)
    assert v.status == "forwarded"
    np.testing.assert_array_equal(v.command, [0.25, 0.0625, 0.5])
    v = wd.on_command("policy", NAMES, (0.875, 0.0, 0.5), 3.0)
    assert (v.status, v.reason) == ("clipped", "step_limit:shoulder_pan")
    np.testing.assert_array_equal(v.command, [0.75, 0.0, 0.5])
    events = [(e.kind, e.source, e.detail) for e in wd.drain_events()]
    assert events[0] == ("source_switch", "policy", "teleop -> policy")
    assert [e[0] for e in events] == ["source_switch", "hold", "resume"]


def test_switch_to_unknown_or_same_source() -> None:
    wd = watchdog()
    ok, msg, previous = wd.set_active_source("planner", 1.0)
    assert (ok, previous) == (False, "teleop")
    assert "planner" in msg and "teleop" in msg and "policy" in msg
    ok, _, previous = wd.set_active_source("teleop", 1.0)
    assert (ok, previous) == (True, "teleop")
    assert wd.status().active_source == "teleop"
    assert not wd.status().holding
    assert wd.drain_events() == []


def test_switch_during_estop_keeps_latch_and_hold() -> None:
    wd = watchdog()
    wd.trigger_estop("button", 1.0)
    wd.on_measured(NAMES, (0.5, 0.5, 0.5), 1.1)
    assert wd.set_active_source("policy", 1.2)[0]
    s = wd.status()
    assert (s.estop_active, s.hold_reason, s.active_source) == (True, "estop", "policy")
    np.testing.assert_array_equal(wd.tick(1.3), [0.0, 0.0, 0.5])
    assert wd.on_command("policy", NAMES, (0, 0, 0.5), 1.4).reason == "estop"


# --- counters ------------------------------------------------------------------------------------


def test_counters_accumulate_and_drain_clears_events() -> None:
    wd = watchdog()
    wd.on_command("teleop", NAMES, (0, 0, 0.5), 1.0)  # forwarded
    wd.on_command("teleop", NAMES, (0, 0.75, 0.5), 2.0)  # clipped
    wd.on_command("teleop", NAMES, (0, 0, math.nan), 2.1)  # nan
    wd.on_command("teleop", ("foo",), (0,), 2.2)  # unknown_joint
    wd.on_command("teleop", ("bar",), (0,), 2.3)  # unknown_joint
    wd.on_command("policy", NAMES, (0, 0, 0.5), 2.4)  # ignored
    wd.trigger_estop("x", 2.5)
    wd.on_command("teleop", NAMES, (0, 0, 0.5), 2.6)  # estop
    s = wd.status()
    assert (s.forwarded, s.clipped, s.rejected, s.ignored) == (1, 1, 4, 1)
    assert s.reject_reasons == {"nan": 1, "unknown_joint": 2, "estop": 1}
    assert s.clip_reasons == {"step_limit": 1}
    assert len(wd.drain_events()) == 2
    assert wd.drain_events() == []
    # status is a snapshot: mutating it does not touch the watchdog
    s.reject_reasons["nan"] = 99
    assert wd.status().reject_reasons["nan"] == 1
