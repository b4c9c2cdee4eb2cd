"""Safety watchdog logic, ROS-free: the node around it only converts messages and calls this.

Every command source (teleop, a policy's chunk player, ...) goes through one `Watchdog` before
it reaches the follower arm. The limiter follows ros2_control's joint limiters
(`enforce(current, desired, dt)`): position limits, then a velocity limit against the last
forwarded target, then a step limit against the measured position (LeRobot's
`max_relative_target`), so that no source can ask for a jump the arm cannot follow safely.

Units are SI (rad, rad/s, s). Times are floats passed in by the caller; nothing here reads a
clock, so the node may use ROS time, sim time or wall time, and tests are deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

# dt below this is treated as this: a burst of commands with equal stamps must not divide by
# zero, and a tiny dt only makes the velocity limit stricter, never looser.
MIN_DT = 1e-3
# Excess (rad) below which a clip is not reported: rounding noise is not a violation.
_EPS = 1e-9


class Violation(StrEnum):
    """What to do with a command that breaks a limit."""

    CLAMP = "clamp"  # forward the nearest command within the limits
    REJECT = "reject"  # drop the whole command


@dataclass(frozen=True)
class JointLimits:
    """Per-joint limits, ordered like `names`. Arrays are stored as read-only float copies."""

    names: tuple[str, ...]
    lower: np.ndarray  # rad
    upper: np.ndarray  # rad
    max_velocity: np.ndarray  # rad/s, |Δcommand| / Δt between forwarded commands
    max_step: np.ndarray  # rad, |command - measured position|

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        if not names:
            raise ValueError("JointLimits needs at least one joint name")
        seen: set[str] = set()
        for n in names:
            if n in seen:
                raise ValueError(f"duplicate joint name {n!r} in {list(names)}")
            seen.add(n)
        object.__setattr__(self, "names", names)
        for attr in ("lower", "upper", "max_velocity", "max_step"):
            arr = np.array(getattr(self, attr), dtype=float).reshape(-1)
            if arr.shape != (len(names),):
                raise ValueError(
                    f"{attr} has {arr.size} values but there are {len(names)} joints {list(names)}"
                )
            for n, v in zip(names, arr, strict=True):
                if not math.isfinite(v):
                    raise ValueError(f"joint {n!r}: {attr} = {v} is not finite")
                if attr in ("max_velocity", "max_step") and v <= 0:
                    raise ValueError(f"joint {n!r}: {attr} = {v} must be > 0")
            arr.flags.writeable = False
            object.__setattr__(self, attr, arr)
        for n, lo, hi in zip(names, self.lower, self.upper, strict=True):
            if lo > hi:
                raise ValueError(f"joint {n!r}: lower = {lo} is above upper = {hi}")

    @classmethod
    def uniform(
        cls,
        names: Sequence[str],
        lower: float | Sequence[float],
        upper: float | Sequence[float],
        max_velocity: float,
        max_step: float,
    ) -> JointLimits:
        """Limits where scalars apply to every joint (sequences are taken per joint)."""
        n = len(names)

        def per_joint(v: float | Sequence[float]) -> np.ndarray:
            arr = np.asarray(v, dtype=float)
            return np.full(n, float(arr)) if arr.ndim == 0 else arr

        return cls(
            names=tuple(names),
            lower=per_joint(lower),
            upper=per_joint(upper),
            max_velocity=per_joint(max_velocity),
            max_step=per_joint(max_step),
        )

    def index(self, name: str) -> int:
        """Position of joint `name` in `names` (ValueError if unknown)."""
        return self.names.index(name)


class JointLimiter:
    """Applies `JointLimits` to one command, like ros2_control's `JointLimiterInterface`."""

    def __init__(
        self, limits: JointLimits, violation: Violation | str, min_dt: float = MIN_DT
    ) -> None:
        if not (math.isfinite(min_dt) and min_dt > 0):
            raise ValueError(f"min_dt = {min_dt!r} must be a finite number > 0")
        self.limits = limits
        self.violation = Violation(violation)
        # Floor of the velocity-limit dt: a command cannot take effect faster than the control
        # period, so two commands closer than that are judged as one period apart.
        self.min_dt = float(min_dt)

    def enforce(
        self, measured: np.ndarray, previous: np.ndarray, desired: np.ndarray, dt: float
    ) -> tuple[np.ndarray | None, list[str]]:
        """Limit `desired`; returns (command, violations like "step_limit:elbow_flex").

        Rules are applied in order, each to the output of the one before: position limits,
        velocity limit against `previous` (the last forwarded target) over `dt` (floored at
        MIN_DT; `math.inf` disables it), step limit against `measured`. The step limit comes last
        because it is the one that prevents a jump; if the measured position is outside the
        position limits, the result may be too, but it is always within max_step of the arm.
        With Violation.REJECT any violation returns (None, violations).
        """
        lim = self.limits
        n = len(lim.names)
        arrays = {"measured": measured, "previous": previous, "desired": desired}
        for what, arr in arrays.items():
            if np.shape(arr) != (n,):
                raise ValueError(f"{what} must have shape ({n},), got {np.shape(arr)}")
        if not dt >= self.min_dt:  # also catches NaN
            dt = self.min_dt
        cmd = np.array(desired, dtype=float)
        prev = np.asarray(previous, dtype=float)
        meas = np.asarray(measured, dtype=float)
        max_delta = lim.max_velocity * dt
        violations: list[str] = []
        # Bare ufuncs, and joint names only when something clipped: this runs for every command
        # of every source at 100 Hz, inside the teleop latency path.
        for rule, lo, hi in (
            ("position_limit", lim.lower, lim.upper),
            ("velocity_limit", prev - max_delta, prev + max_delta),
            ("step_limit", meas - lim.max_step, meas + lim.max_step),
        ):
            clipped = np.minimum(np.maximum(cmd, lo), hi)
            over = np.abs(clipped - cmd) > _EPS
            if over.any():
                violations += [f"{rule}:{lim.names[i]}" for i in over.nonzero()[0]]
            cmd = clipped
        if violations and self.violation is Violation.REJECT:
            return None, violations
        return cmd, violations


@dataclass(frozen=True)
class Verdict:
    """What happened to one command."""

    status: str  # "forwarded" | "clipped" | "rejected" | "ignored"
    command: np.ndarray | None  # full joint vector in limits.names order, if forwarded/clipped
    # "" or e.g. "nan", "unknown_joint:foo", "inactive_source:policy"; limit violations are
    # joined with "," ("position_limit:gripper,step_limit:gripper").
    reason: str = ""
    violations: tuple[str, ...] = ()  # every limit rule broken, also for "clipped"

    @property
    def accepted(self) -> bool:
        """True when a command goes to the arm."""
        return self.status in ("forwarded", "clipped")


@dataclass(frozen=True)
class WatchdogStatus:
    """A snapshot for the node's diagnostics / status topic."""

    estop_active: bool
    estop_reason: str
    active_source: str
    holding: bool
    hold_reason: str  # "" | "stale" | "estop" | "estop_reset" | "source_switch"
    forwarded: int  # sent unchanged
    clipped: int  # sent after limiting (not included in `forwarded`)
    rejected: int
    ignored: int
    # Counts by category (the reason up to ":"); a command breaking two rules counts in both.
    reject_reasons: dict[str, int]
    clip_reasons: dict[str, int]
    last_command_age: float | None  # s since the active source's last accepted command
    bad_measurements: int = 0  # joint states dropped (missing joints, NaN/inf, bad lengths)


@dataclass(frozen=True)
class WatchdogEvent:
    """Something the node publishes (lerobot_msgs/EpisodeEvent) and logs."""

    kind: str  # "source_switch" | "estop" | "estop_reset" | "hold" | "resume"
    source: str  # the active source after the event
    detail: str
    t: float


@dataclass
class _Counters:
    forwarded: int = 0
    clipped: int = 0
    rejected: int = 0
    ignored: int = 0
    bad_measurements: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)
    clip_reasons: dict[str, int] = field(default_factory=dict)


def _category(reason: str) -> str:
    return reason.split(":", 1)[0]


class Watchdog:
    """Gate between command sources and the arm: validates, limits, holds and latches e-stop.

    State machine: until the active source's first accepted command nothing is sent (the arm
    driver holds itself at start-up). Once commanded, a source that goes silent for longer than
    `command_timeout` puts the arm into a hold at the measured position, which `tick` returns
    every call. An e-stop or a source switch also starts a hold. Any hold ends with the next
    accepted command from the active source (after an e-stop, only once it is reset). The hold
    position is captured once, so it cannot creep with gravity sag.
    """

    def __init__(
        self,
        limits: JointLimits,
        *,
        sources: Sequence[str],
        active_source: str,
        command_timeout: float,
        violation: Violation | str = Violation.CLAMP,
        min_dt: float = MIN_DT,
    ) -> None:
        sources = tuple(sources)
        if not sources:
            raise ValueError("sources must not be empty")
        if len(set(sources)) != len(sources):
            raise ValueError(f"sources = {list(sources)} contains duplicates")
        if active_source not in sources:
            raise ValueError(f"active_source = {active_source!r} is not one of {list(sources)}")
        if not (math.isfinite(command_timeout) and command_timeout > 0):
            raise ValueError(f"command_timeout = {command_timeout!r} must be a finite number > 0")
        self.limits = limits
        self.limiter = JointLimiter(limits, violation, min_dt)
        self.sources = sources
        self.command_timeout = float(command_timeout)
        self._index = {n: i for i, n in enumerate(limits.names)}
        self._active = active_source
        self._measured: np.ndarray | None = None
        self._measured_t: float | None = None
        # Last command sent to the arm (forwarded, or the hold) and when it was sent.
        self._target: np.ndarray | None = None
        self._target_t: float | None = None
        self._last_accept_t: float | None = None  # of the active source, since it became active
        self._holding = False
        self._hold_reason = ""
        self._estop = False
        self._estop_reason = ""
        self._last_command_age: float | None = None
        self._n = _Counters()
        self._events: list[WatchdogEvent] = []

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self.limits.names

    # --- inputs --------------------------------------------------------------------------------

    def on_measured(self, names: Sequence[str], positions: Sequence[float], t: float) -> None:
        """Store the arm's joint state. Extra joints are ignored; an incomplete or non-finite
        state is dropped (and counted) so the limiter never compares against garbage."""
        if len(names) != len(positions) or len(set(names)) != len(names):
            self._n.bad_measurements += 1
            return
        by_name = dict(zip(names, positions, strict=True))
        try:
            values = np.array([by_name[n] for n in self.joint_names], dtype=float)
        except (KeyError, TypeError, ValueError):
            self._n.bad_measurements += 1
            return
        if not np.all(np.isfinite(values)):
            self._n.bad_measurements += 1
            return
        self._measured = values
        self._measured_t = t

    def on_command(
        self, source: str, names: Sequence[str], positions: Sequence[float], t: float
    ) -> Verdict:
        """Check and limit one command. Empty `names` means all joints in `joint_names` order;
        a subset moves only those joints, the others keep the last sent target."""
        if source not in self.sources:
            return self._reject(f"unknown_source:{source}")
        if source != self._active:
            self._n.ignored += 1
            return Verdict("ignored", None, f"inactive_source:{source}")
        if self._estop:
            return self._reject("estop")
        if self._measured is None:
            return self._reject("no_state")
        # The usual command names every joint in order: no per-name checks needed.
        full = len(names) == 0 or tuple(names) == self.joint_names
        names = list(self.joint_names) if len(names) == 0 else list(names)
        if len(positions) != len(names):
            return self._reject("wrong_length")
        if not full:
            seen: set[str] = set()
            for n in names:
                if n in seen:
                    return self._reject(f"duplicate_joint:{n}")
                seen.add(n)
            for n in names:
                if n not in self._index:
                    return self._reject(f"unknown_joint:{n}")
        try:
            values = np.array(positions, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            return self._reject("not_numeric")
        if not np.isfinite(values).all():
            return self._reject("nan" if np.isnan(values).any() else "inf")

        if self._target is None or self._target_t is None:
            # Nothing sent yet (or a hold still waiting for its first measurement): start from
            # the arm; there is no earlier command to measure a velocity against.
            previous, dt = self._measured, math.inf
        else:
            previous, dt = self._target, t - self._target_t
        if full:
            desired = values
        else:
            desired = previous.copy()
            desired[[self._index[n] for n in names]] = values
        command, violations = self.limiter.enforce(self._measured, previous, desired, dt)
        if command is None:
            return self._reject(",".join(violations), violations)

        if violations:
            self._n.clipped += 1
            self._count(self._n.clip_reasons, violations)
            status = "clipped"
        else:
            self._n.forwarded += 1
            status = "forwarded"
        self._target = command
        self._target_t = t
        self._last_accept_t = t
        if self._holding:
            self._emit("resume", f"after {self._hold_reason} hold", t)
            self._holding = False
            self._hold_reason = ""
        return Verdict(status, command.copy(), ",".join(violations), tuple(violations))

    def tick(self, t: float) -> np.ndarray | None:
        """Call at the control rate. Returns the hold command while holding, else None
        (the accepted commands were already forwarded by `on_command`)."""
        if self._last_accept_t is not None:
            self._last_command_age = t - self._last_accept_t
        if (
            not self._holding
            and self._last_accept_t is not None
            and t - self._last_accept_t > self.command_timeout
        ):
            age = t - self._last_accept_t
            self._start_hold("stale", f"no command from {self._active} for {age:.3f} s", t)
        if not self._holding:
            return None
        return self._hold_command(t)

    # --- operator actions ------------------------------------------------------------------------

    def trigger_estop(self, reason: str, t: float) -> np.ndarray | None:
        """Latch the e-stop and hold. Returns the hold command, or None if nothing was measured
        yet (then `tick` returns it as soon as a measurement arrives)."""
        if not self._estop:
            self._estop = True
            self._estop_reason = reason
            self._emit("estop", reason, t)
        self._start_hold("estop", reason, t)
        return self._hold_command(t)

    def reset_estop(self, reason: str, t: float) -> tuple[bool, str]:
        """Clear the latch. The arm keeps holding until the active source sends a fresh command,
        so a reset never replays an old target."""
        if not self._estop:
            return False, "e-stop is not active"
        self._estop = False
        self._estop_reason = ""
        self._emit("estop_reset", reason, t)
        self._start_hold("estop_reset", reason, t)
        return True, f"e-stop cleared; holding until a command from {self._active!r}"

    def set_active_source(self, source: str, t: float) -> tuple[bool, str, str]:
        """Switch sources; returns (ok, message, previous source). The new source starts from a
        hold at the measured position, so it never inherits the old source's target."""
        previous = self._active
        if source not in self.sources:
            known = ", ".join(self.sources)
            return False, f"unknown source {source!r}; known: {known}", previous
        if source == previous:
            return True, f"{source!r} is already active", previous
        self._active = source
        self._last_accept_t = None
        self._last_command_age = None
        self._emit("source_switch", f"{previous} -> {source}", t)
        self._start_hold("source_switch", f"{previous} -> {source}", t)
        return True, f"active source {previous!r} -> {source!r}", previous

    # --- outputs ---------------------------------------------------------------------------------

    def status(self) -> WatchdogStatus:
        n = self._n
        return WatchdogStatus(
            estop_active=self._estop,
            estop_reason=self._estop_reason,
            active_source=self._active,
            holding=self._holding,
            hold_reason=self._hold_reason,
            forwarded=n.forwarded,
            clipped=n.clipped,
            rejected=n.rejected,
            ignored=n.ignored,
            reject_reasons=dict(n.reject_reasons),
            clip_reasons=dict(n.clip_reasons),
            last_command_age=self._last_command_age,
            bad_measurements=n.bad_measurements,
        )

    def drain_events(self) -> list[WatchdogEvent]:
        """Events since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    # --- internals -------------------------------------------------------------------------------

    def _start_hold(self, reason: str, detail: str, t: float) -> None:
        """Enter a hold at the measured position, captured now (or at the first measurement).
        An existing hold keeps its position; only an e-stop change may relabel it."""
        if self._holding:
            if not self._estop or reason == "estop":
                self._hold_reason = reason
            return
        self._holding = True
        self._hold_reason = reason
        self._target = None
        self._hold_command(t)
        self._emit("hold", f"{reason}: {detail}", t)

    def _hold_command(self, t: float) -> np.ndarray | None:
        """The hold position (captured once from the measurement); counts as sent at `t`."""
        if self._target is None:
            if self._measured is None:
                return None
            self._target = self._measured.copy()
        self._target_t = t
        return self._target.copy()

    def _reject(self, reason: str, violations: Sequence[str] = ()) -> Verdict:
        self._n.rejected += 1
        self._count(self._n.reject_reasons, list(violations) or [reason])
        return Verdict("rejected", None, reason, tuple(violations))

    @staticmethod
    def _count(counts: dict[str, int], reasons: Sequence[str]) -> None:
        for category in {_category(r) for r in reasons}:
            counts[category] = counts.get(category, 0) + 1

    def _emit(self, kind: str, detail: str, t: float) -> None:
        self._events.append(WatchdogEvent(kind, self._active, detail, t))
