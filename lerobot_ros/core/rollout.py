"""Rollout strategies, ROS-free: what to do while a policy drives the follower.

A strategy decides; the rollout node (lerobot_ros/nodes/rollout.py) does. Every input (a
service request, an e-stop edge, a finished service call, a leader sample, a timer tick) goes
into the strategy, which returns *effects* (`SetPlayer`, `SwitchSource`, `AlignLeader`,
`PublishEvent`, `StartRecording`, `StopRecording`) for the node to carry out asynchronously and
whose outcomes come back as further inputs. So the whole behaviour, DAgger's state machine
included, is plain Python that tests drive without ROS, and the node holds no decisions.

Strategies (STRATEGIES registry; the graph reads their flags to pick its nodes):

- base: the policy drives; nothing is recorded.
- sentry: continuous recording; the episode is rotated (stop + start back to back, control never
  pauses) once it is `episode_s` long or its bag reaches `episode_mb`.
- highlight: the recorder's ring buffer keeps the recent past; `save_highlight` saves it.
- dagger: the policy drives until a human takes over; the takeover and release are states of an
  explicit machine (`DAGGER_TRANSITIONS`); anything not allowed is refused with the reason.

Every strategy stops on the e-stop (the chunk player is disabled, recording stops) and stays
stopped until the e-stop is reset and `resume` is asked for: a reset alone restarts nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum

import numpy as np

from lerobot_ros.core.registry import Registry


class EventKind(IntEnum):
    """lerobot_msgs/EpisodeEvent type constants that the rollout publishes (same values)."""

    INTERVENTION_START = 4
    INTERVENTION_END = 5


# --- effects: what the node is asked to do ------------------------------------------------------


@dataclass(frozen=True)
class SetPlayer:
    """Enable / disable the chunk player (disabling drops the chunk in hand)."""

    enabled: bool


@dataclass(frozen=True)
class SwitchSource:
    """Switch the watchdog's active source; the outcome comes back as `switched(token, ...)`."""

    source: str
    token: int


@dataclass(frozen=True)
class AlignLeader:
    """After `settle_s` (the follower comes to rest under the watchdog's hold), drive the
    leader (torque on) to the follower's measured pose and release it; the outcome comes back as
    `aligned(token, ...)`."""

    token: int
    settle_s: float


@dataclass(frozen=True)
class PublishEvent:
    """An EpisodeEvent on /rollout/events, stamped `stamp` (s, the clock of message stamps)."""

    kind: EventKind
    source: str
    detail: str
    stamp: float


@dataclass(frozen=True)
class StartRecording:
    task: str


@dataclass(frozen=True)
class StopRecording:
    reason: str


Effect = SetPlayer | SwitchSource | AlignLeader | PublishEvent | StartRecording | StopRecording


@dataclass(frozen=True)
class Reply:
    """The answer to a request (SetIntervention, resume): refused requests carry the reason."""

    ok: bool
    message: str
    state: str
    effects: tuple[Effect, ...] = ()


@dataclass(frozen=True)
class RolloutConfig:
    """Strategy options (the rollout node's parameters of the same names)."""

    task: str = "rollout"  # task text of every episode and highlight
    episode_s: float = 60.0  # rotate an episode this long (0 = never)
    episode_mb: float = 0.0  # rotate an episode whose bag is this big, MiB (0 = never)
    record_autonomous: bool = True  # dagger: record the policy's frames too (else corrections)
    tail_s: float = 0.5  # dagger, corrections only: keep recording this long after a release
    settle_s: float = 0.3  # dagger: wait after pausing the policy before reading its pose
    takeover_motion: float = 0.0  # dagger: leader motion (rad) that takes over; 0 = off
    rearm_s: float = 1.0  # dagger: leader motion is ignored this long after autonomy resumes
    retry_s: float = 1.0  # a failed recorder call is retried after this long
    policy_source: str = "chunk_player"  # watchdog source names
    human_source: str = "teleop"
    # A watchdog source nobody publishes: switching to it makes the watchdog hold the follower
    # at once (instead of after its command timeout) while the leader is aligned. "" = none.
    hold_source: str = "hold"

    def __post_init__(self) -> None:
        for name in ("episode_s", "episode_mb", "tail_s", "settle_s", "takeover_motion"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        if not self.task.strip():
            raise ValueError("task must not be empty (the recorder needs a task text)")


# --- an explicit state machine ------------------------------------------------------------------


class StateMachine:
    """(state, event) -> next state, from a table; anything else is refused with a reason from
    `refusals` (or a generic one). No hidden transitions: the table is the behaviour."""

    def __init__(
        self,
        initial: str,
        transitions: Mapping[tuple[str, str], str],
        refusals: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        self.state = initial
        self.transitions = dict(transitions)
        self.refusals = dict(refusals or {})

    def refusal(self, event: str) -> str | None:
        """Why `event` is not allowed now; None when it is."""
        if (self.state, event) in self.transitions:
            return None
        return self.refusals.get(
            (self.state, event), f"'{event}' is not allowed in state '{self.state}'"
        )

    def fire(self, event: str) -> str | None:
        """Take the transition; returns None, or the reason it was refused (state unchanged)."""
        reason = self.refusal(event)
        if reason is None:
            self.state = self.transitions[(self.state, event)]
        return reason


# --- the recorder's episode, as the rollout knows it ---------------------------------------------


@dataclass
class EpisodeTrack:
    index: int
    path: str
    started: float  # s


@dataclass
class Recording:
    """The recorder's current episode (from its events and our calls) and our one request in
    flight: the strategy reconciles what it wants with this on every tick."""

    current: EpisodeTrack | None = None
    in_flight: str = ""  # "" | "start" | "stop"
    retry_at: float = 0.0
    last_error: str = ""
    seen: int = 0  # episodes seen starting
    rotations: int = 0


# --- strategies ---------------------------------------------------------------------------------

RUNNING, STOPPED = "running", "stopped"
ESTOP_REFUSAL = "stopped by the e-stop: reset it (/watchdog/reset_estop), then call /rollout/resume"


class Strategy:
    """base: the policy drives, nothing is recorded. The other strategies extend it.

    Flags read by the graph (core/graph.py rollout_graph): `records_episodes` (a recorder records
    episodes), `ring_buffer` (a recorder keeps a highlight ring buffer), `interventions` (the
    leader arm and teleop are in the graph)."""

    name = "base"
    records_episodes = False
    ring_buffer = False
    interventions = False
    summary = "the policy drives; nothing is recorded"

    INITIAL = RUNNING
    TRANSITIONS: Mapping[tuple[str, str], str] = {
        (RUNNING, "estop"): STOPPED,
        (STOPPED, "resume"): RUNNING,
    }
    REFUSALS: Mapping[tuple[str, str], str] = {
        (RUNNING, "resume"): "not stopped: nothing to resume",
        (STOPPED, "estop"): "already stopped",
    }

    def __init__(self, config: RolloutConfig | None = None) -> None:
        self.config = config or RolloutConfig()
        self.machine = StateMachine(self.INITIAL, self.TRANSITIONS, self.REFUSALS)
        self.recording = Recording()
        self.estop_active = False
        self.detail = ""  # why the state is what it is (the last failure, the last request)

    @property
    def state(self) -> str:
        return self.machine.state

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self, now: float) -> list[Effect]:
        """Effects at start-up: the policy plays (unless the e-stop is already latched)."""
        return [SetPlayer(True), *self.tick(now)]

    def estop(self, active: bool, now: float) -> list[Effect]:
        """The watchdog's latched e-stop changed. Latching stops the strategy; a reset only
        records that `resume` may now be asked for."""
        self.estop_active = active
        if not active or self.state == STOPPED:
            return []
        effects = self._on_estop(now)
        self.machine.fire("estop")
        self.detail = "e-stop"
        return [*effects, *self.tick(now)]

    def _on_estop(self, now: float) -> list[Effect]:
        return [SetPlayer(False)]

    def resume(self, now: float) -> Reply:
        if self.estop_active:
            return Reply(False, "the e-stop is still latched: reset it first", self.state)
        reason = self.machine.fire("resume")
        if reason is not None:
            return Reply(False, reason, self.state)
        self.detail = "resumed"
        effects = [*self._on_resume(now), *self.tick(now)]
        return Reply(True, f"{self.name}: resumed", self.state, tuple(effects))

    def _on_resume(self, now: float) -> list[Effect]:
        return [SetPlayer(True)]

    # --- requests -----------------------------------------------------------------------------
    def intervention(self, active: bool, source: str, now: float) -> Reply:
        return Reply(
            False,
            f"strategy '{self.name}' takes no interventions (launch with strategy:=dagger)",
            self.state,
        )

    def highlight_refusal(self) -> str | None:
        """Why a highlight cannot be saved now; None when it can."""
        return (
            f"strategy '{self.name}' keeps no highlight ring buffer "
            "(launch with strategy:=highlight)"
        )

    # --- outcomes of the node's calls (no-ops unless a strategy uses them) --------------------
    def aligned(self, token: int, ok: bool, message: str, now: float) -> list[Effect]:
        return []

    def switched(self, token: int, ok: bool, message: str, stamp: float) -> list[Effect]:
        return []

    def leader_sample(self, position: np.ndarray, now: float) -> list[Effect]:
        return []

    # --- recording ----------------------------------------------------------------------------
    def want_recording(self, now: float) -> bool:
        return False

    def may_rotate(self, now: float) -> bool:
        return True

    def tick(self, now: float, episode_bytes: int = 0) -> list[Effect]:
        """Reconcile the recorder's episode with what the strategy wants: start, stop, or
        rotate (stop now; the start follows as soon as the stop is done). One call at a time.
        Strategies that record no episodes never touch one (a highlight left recording live by
        `continue_recording` is the recorder's business)."""
        rec, cfg = self.recording, self.config
        if rec.in_flight or now < rec.retry_at:
            return []
        want, current = self.want_recording(now), rec.current
        if want and current is None:
            rec.in_flight = "start"
            return [StartRecording(cfg.task)]
        if not want and current is not None and self.records_episodes:
            rec.in_flight = "stop"
            return [StopRecording(f"{self.name}: {self.state}")]
        if current is None or not want or not self.may_rotate(now):
            return []
        age = now - current.started
        if cfg.episode_s > 0 and age >= cfg.episode_s:
            reason = f"rotated after {age:.1f} s (episode_s {cfg.episode_s:g})"
        elif cfg.episode_mb > 0 and episode_bytes >= cfg.episode_mb * 2**20:
            reason = f"rotated at {episode_bytes / 2**20:.1f} MiB (episode_mb {cfg.episode_mb:g})"
        else:
            return []
        rec.in_flight = "stop"
        rec.rotations += 1
        return [StopRecording(reason)]

    def episode_started(self, index: int, path: str, started: float) -> None:
        """The recorder started episode `index` (our call's answer or its EPISODE_START)."""
        current = self.recording.current
        if current is None or current.index != index:
            self.recording.current = EpisodeTrack(index, path, started)
            self.recording.seen += 1
        else:
            current.path = current.path or path
            current.started = min(current.started, started)  # the event's exact time wins

    def episode_stopped(self, index: int) -> None:
        current = self.recording.current
        if current is not None and current.index == index:
            self.recording.current = None

    def request_done(self, ok: bool, message: str, now: float) -> None:
        """Our start/stop call finished; a failure is retried after `retry_s`."""
        self.recording.in_flight = ""
        if ok:
            self.recording.last_error = ""
            return
        self.recording.last_error = message
        self.recording.retry_at = now + self.config.retry_s


STRATEGIES: Registry[type[Strategy]] = Registry("rollout strategy")
STRATEGIES.register("base")(Strategy)


@STRATEGIES.register("sentry")
class SentryStrategy(Strategy):
    name = "sentry"
    records_episodes = True
    summary = "continuous recording, rotated by duration and size without pausing control"

    def want_recording(self, now: float) -> bool:
        return self.state != STOPPED


@STRATEGIES.register("highlight")
class HighlightStrategy(Strategy):
    name = "highlight"
    ring_buffer = True
    summary = "the recorder's ring buffer keeps the recent past; save_highlight saves it"

    def highlight_refusal(self) -> str | None:
        return None


# --- DAgger -------------------------------------------------------------------------------------


class Phase(StrEnum):
    AUTONOMOUS = "autonomous"  # the policy drives (chunk player -> watchdog)
    PAUSED = "paused"  # policy stopped, follower held (hold source); the leader is being aligned
    CORRECTING = "correcting"  # the human drives: leader -> teleop -> watchdog
    HELD = "held"  # a takeover failed (leader not aligned): follower held, nobody drives
    STOPPED = "stopped"  # e-stop; resume after the reset


A, P, C, H, S = (Phase.AUTONOMOUS, Phase.PAUSED, Phase.CORRECTING, Phase.HELD, Phase.STOPPED)
DAGGER_TRANSITIONS: dict[tuple[str, str], str] = {
    (A, "takeover"): P,
    (H, "takeover"): P,  # try the alignment again
    (P, "aligned"): P,  # the leader is at the follower's pose; control is being switched
    (P, "align_failed"): H,
    (P, "switched"): C,  # the watchdog forwards teleop: correction frames begin
    (P, "switch_failed"): H,
    (C, "release"): A,
    (H, "release"): A,
    (A, "switch_failed"): H,  # control could not be handed back to the policy
    **{(s, "estop"): S for s in (A, P, C, H)},
    (S, "resume"): A,
}
DAGGER_REFUSALS: dict[tuple[str, str], str] = {
    (P, "takeover"): "a takeover is in progress: the leader is being aligned with the follower",
    (C, "takeover"): "a human is already correcting",
    (A, "release"): "no intervention to end: the policy is driving",
    (P, "release"): "the leader is being aligned with the follower; release once correcting",
    (S, "takeover"): ESTOP_REFUSAL,
    (S, "release"): ESTOP_REFUSAL,
    (S, "estop"): "already stopped",
    **{(s, "resume"): "not stopped: nothing to resume" for s in (A, P, C, H)},
}


@STRATEGIES.register("dagger")
class DaggerStrategy(Strategy):
    """Autonomous until a human takes over (service, keyboard / pedal, or leader motion):
    paused (chunk player off, the watchdog switched to `hold_source` so it holds the follower
    at once, the leader driven to the follower's pose and released), then correcting (watchdog
    source teleop; INTERVENTION_START
    stamped with the watchdog's switch), then on release autonomous again (source chunk_player,
    INTERVENTION_END at that switch, the player re-enabled: it plays only chunks predicted after
    that). Episodes are recorded like sentry's, or only around corrections when
    `record_autonomous` is off."""

    name = "dagger"
    records_episodes = True
    interventions = True
    summary = "autonomous until a human takes over with the leader arm; corrections recorded"

    INITIAL = Phase.AUTONOMOUS.value
    TRANSITIONS = DAGGER_TRANSITIONS
    REFUSALS = DAGGER_REFUSALS

    def __init__(self, config: RolloutConfig | None = None) -> None:
        super().__init__(config)
        self._token = 0
        self._align_token = -1
        self._switches: dict[int, str] = {}  # token -> "hold" | "takeover" | "release" | "estop"
        self._intervening = False  # INTERVENTION_START published, END not yet
        self._requested_by = ""
        self._released_at = -float("inf")
        self._armed_at = 0.0  # leader motion counts from this time on
        self._reference: np.ndarray | None = None
        self.interventions_done = 0

    def _next_token(self) -> int:
        self._token += 1
        return self._token

    def start(self, now: float) -> list[Effect]:
        self._rearm(now)
        return super().start(now)

    def _rearm(self, now: float) -> None:
        self._armed_at = now + self.config.rearm_s
        self._reference = None

    # --- requests -----------------------------------------------------------------------------
    def intervention(self, active: bool, source: str, now: float) -> Reply:
        event = "takeover" if active else "release"
        reason = self.machine.refusal(event)
        if reason is not None:
            return Reply(False, reason, self.state)
        previous = self.state
        self.machine.fire(event)
        if active:
            self._requested_by = source or "service"
            effects: list[Effect] = [SetPlayer(False)]
            if self.config.hold_source:
                token = self._next_token()
                self._switches[token] = "hold"
                effects.append(SwitchSource(self.config.hold_source, token))
            else:
                effects.append(self._align())
            message = f"takeover by {self._requested_by}: aligning the leader"
        else:
            token = self._next_token()
            self._switches[token] = "release"
            self._released_at = now
            self._rearm(now)
            effects = [SwitchSource(self.config.policy_source, token)]
            message = f"released by {source or 'service'}: the policy resumes"
            if previous == Phase.HELD:
                message = f"released by {source or 'service'} after a failed takeover"
        self.detail = message
        return Reply(True, message, self.state, (*effects, *self.tick(now)))

    def _align(self) -> AlignLeader:
        self._align_token = self._next_token()
        return AlignLeader(self._align_token, self.config.settle_s)

    # --- outcomes -----------------------------------------------------------------------------
    def aligned(self, token: int, ok: bool, message: str, now: float) -> list[Effect]:
        if token != self._align_token or self.state != Phase.PAUSED:
            return []  # a late answer to an abandoned takeover (e.g. an e-stop came first)
        if not ok:
            self.machine.fire("align_failed")
            self.detail = f"leader alignment failed: {message}; follower held"
            return []
        self.machine.fire("aligned")
        switch = self._next_token()
        self._switches[switch] = "takeover"
        return [SwitchSource(self.config.human_source, switch)]

    def switched(self, token: int, ok: bool, message: str, stamp: float) -> list[Effect]:
        purpose = self._switches.pop(token, "")
        if purpose == "hold" and self.state == Phase.PAUSED:
            if not ok:  # the watchdog's own timeout holds the follower, a little later
                self.detail = f"no hold source ({message}); the watchdog holds after its timeout"
            return [self._align()]
        if purpose == "takeover" and self.state == Phase.PAUSED:
            if not ok:
                self.machine.fire("switch_failed")
                self.detail = f"could not give the human control: {message}; follower held"
                return []
            self.machine.fire("switched")
            self._intervening = True
            self.detail = f"correcting ({self._requested_by})"
            return [PublishEvent(EventKind.INTERVENTION_START, self._requested_by, message, stamp)]
        if purpose == "release":
            effects: list[Effect] = []
            if not ok:
                if self.state == Phase.AUTONOMOUS:
                    self.machine.fire("switch_failed")
                self.detail = f"could not hand control back to the policy: {message}"
                return effects
            if self._intervening:
                self._intervening = False
                self.interventions_done += 1
                effects.append(PublishEvent(EventKind.INTERVENTION_END, "release", message, stamp))
            if self.state == Phase.AUTONOMOUS:
                effects.append(SetPlayer(True))
            return effects
        return []  # a takeover overtaken by an e-stop, or the e-stop's own switch

    def _on_estop(self, now: float) -> list[Effect]:
        effects: list[Effect] = [SetPlayer(False)]
        if self._intervening:
            self._intervening = False
            self.interventions_done += 1
            effects.append(PublishEvent(EventKind.INTERVENTION_END, "estop", "e-stop", now))
        if self.state != Phase.AUTONOMOUS or self._switches:
            # The human may have (or be about to get) control: once the e-stop is reset, the
            # follower must hold until the policy is resumed, not follow the leader.
            token = self._next_token()
            self._switches[token] = "estop"
            effects.append(SwitchSource(self.config.policy_source, token))
        self._align_token = -1
        return effects

    def _on_resume(self, now: float) -> list[Effect]:
        self._rearm(now)
        return [SetPlayer(True)]

    def leader_sample(self, position: np.ndarray, now: float) -> list[Effect]:
        """Leader motion beyond `takeover_motion` (rad, any joint) from where it rested takes
        over; ignored for `rearm_s` after autonomy (re)starts, while the human lets go."""
        threshold = self.config.takeover_motion
        if threshold <= 0 or self.state != Phase.AUTONOMOUS:
            return []
        q = np.asarray(position, dtype=float)
        if now < self._armed_at or self._reference is None or self._reference.shape != q.shape:
            self._reference = q.copy()
            return []
        moved = float(np.max(np.abs(q - self._reference)))
        if moved <= threshold:
            return []
        reply = self.intervention(True, "leader_motion", now)
        self.detail = f"leader moved {moved:.3f} rad (> {threshold:g}): {reply.message}"
        return list(reply.effects)

    # --- recording ----------------------------------------------------------------------------
    def want_recording(self, now: float) -> bool:
        if self.state == Phase.STOPPED:
            return False
        if self.config.record_autonomous:
            return True
        return self.state != Phase.AUTONOMOUS or now < self._released_at + self.config.tail_s

    def may_rotate(self, now: float) -> bool:
        """Never in the middle of an intervention: a correction stays in one episode."""
        return self.state == Phase.AUTONOMOUS and not self._intervening and not self._switches


def create_strategy(name: str, config: RolloutConfig | None = None) -> Strategy:
    return STRATEGIES.create(name, config)
