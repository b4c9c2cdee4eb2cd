"""Action-chunk playback and inference scheduling, ROS-free.

A policy predicts a CHUNK of future joint-position targets from one observation: H rows, one per
`period`, row 0 meant for the observation time (plus `start_offset`, as in
lerobot_msgs/ActionChunk). The control loop needs one action per tick, but inference may take
several control periods. Two engines turn chunks into per-tick actions:

* `SyncEngine` infers when the chunk runs out and waits for it inside the tick: simple, but the
  control loop stalls for the whole inference (the robot stops, then jerks on).
* `RtcEngine` ("real-time chunking") starts the next inference in a background thread while
  enough actions remain to cover its latency, and submits the result stamped with the time of
  its observation, so the rows whose time passed during inference are dropped instead of being
  played late. The tick never blocks.

Times are floats passed in by the caller (the tick's scheduled time, ROS time or sim time);
only the engines read a clock, and only to measure inference latency (injectable for tests).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from lerobot_ros.core.registry import Registry

# Fraction of a row: a time a rounding error before a row's time still selects that row.
_EPS = 1e-6


@dataclass(frozen=True)
class Chunk:
    """H x J joint targets; row i is meant for time `t0 + i * period`."""

    actions: np.ndarray  # (H, J) float
    t0: float  # time of row 0: the observation time + start_offset
    period: float  # s between rows
    chunk_id: int = 0

    def __post_init__(self) -> None:
        actions = np.asarray(self.actions, dtype=float)
        if actions.ndim != 2 or actions.shape[0] == 0:
            raise ValueError(f"actions must be a non-empty (H, J) array, got {actions.shape}")
        if not self.period > 0:
            raise ValueError(f"period must be > 0, got {self.period!r}")
        object.__setattr__(self, "actions", actions)

    def __len__(self) -> int:
        return self.actions.shape[0]

    def time_of(self, i: int) -> float:
        return self.t0 + i * self.period

    def index_at(self, t: float) -> int:
        """The row in effect at time t (zero-order hold); may be < 0 or >= H."""
        return math.floor((t - self.t0) / self.period + _EPS)


@dataclass
class PlayerStats:
    submitted: int = 0
    stale_discarded: int = 0
    dropped_rows: int = 0
    starved_ticks: int = 0
    blended_rows: int = 0


class ChunkPlayer:
    """Holds the current chunk (and blends a new one in); `action_at(t)` returns the action for
    control time t, or None when starved (no action for t).

    `blend_window` rows at the start of a new chunk are mixed with the old chunk's rows for the
    same times, with weights going linearly from old to new, so that a new prediction that
    disagrees with the old one does not cause a step. `max_age` (s) stops playing a chunk whose
    row 0 is older than that: a stale plan is worse than no plan (the watchdog then holds).
    """

    def __init__(self, blend_window: int = 0, max_age: float | None = None) -> None:
        if blend_window < 0:
            raise ValueError(f"blend_window must be >= 0, got {blend_window!r}")
        self.blend_window = blend_window
        self.max_age = max_age
        self.stats = PlayerStats()
        self._plan: Chunk | None = None  # the current chunk, aligned and blended
        self._source: Chunk | None = None  # the chunk as submitted (for the staleness check)
        self._prev: Chunk | None = None  # played until a chunk that starts later takes over

    @property
    def chunk_id(self) -> int | None:
        return None if self._source is None else self._source.chunk_id

    def submit(self, chunk: Chunk, now: float) -> int:
        """Align `chunk` to `now` and make it current; returns how many leading rows were dropped
        because their time slot had passed (rows before the one in effect at `now`; on a tick
        grid exactly the rows whose time is < now). A chunk older than the current one (lower or
        equal chunk_id, or earlier t0) or entirely in the past is discarded as stale: counted in
        `stats.stale_discarded`, returns 0."""
        self.stats.submitted += 1
        src = self._source
        dropped = max(0, chunk.index_at(now))
        stale = src is not None and (chunk.chunk_id <= src.chunk_id or chunk.t0 < src.t0)
        if stale or dropped >= len(chunk):
            self.stats.stale_discarded += 1
            return 0
        actions = chunk.actions[dropped:].copy()
        t_first = chunk.time_of(dropped)
        # Blend the first rows with what the old plan would have played at the same times.
        for j in range(min(self.blend_window, len(actions))):
            old = self._row(self._plan, t_first + j * chunk.period)
            if old is not None:
                w = (j + 1) / (self.blend_window + 1)
                actions[j] = (1.0 - w) * old + w * actions[j]
                self.stats.blended_rows += 1
        self.stats.dropped_rows += dropped
        self._prev = self._plan if t_first > now else None
        self._plan = Chunk(actions, t_first, chunk.period, chunk.chunk_id)
        self._source = chunk
        return dropped

    def clear(self) -> None:
        """Forget the chunks in hand (the counters stay): playback resumes with the next
        submitted chunk, e.g. a policy resumed after a human correction."""
        self._plan = self._source = self._prev = None

    def action_at(self, t: float) -> np.ndarray | None:
        """The action for control time t (a copy), or None (counted) when there is none."""
        plan = self._prev if self._prev is not None and t < self._plan.t0 else self._plan
        row = self._row(plan, t)
        if row is not None and self.max_age is not None and t - self._source.t0 > self.max_age:
            row = None
        if row is None:
            self.stats.starved_ticks += 1
            return None
        return row.copy()

    def remaining(self, t: float) -> int:
        """Actions left from t on, the one for t included."""
        if self._plan is None:
            return 0
        return max(0, len(self._plan) - max(0, self._plan.index_at(t)))

    @staticmethod
    def _row(plan: Chunk | None, t: float) -> np.ndarray | None:
        if plan is None:
            return None
        i = plan.index_at(t)
        return plan.actions[i] if 0 <= i < len(plan) else None


class Policy(Protocol):
    def infer(self, observation: Any) -> np.ndarray:
        """(H, J) joint targets, row 0 for the observation time; may take several periods."""
        ...


@dataclass
class LatencyStats:
    """Inference latency (s): a summary, and the recent maximum used as the estimate, because
    underestimating the latency starves the arm while overestimating only infers a bit early."""

    count: int = 0
    last: float = 0.0
    total: float = 0.0
    max: float = 0.0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=10))

    def add(self, latency: float) -> None:
        self.count += 1
        self.last = latency
        self.total += latency
        self.max = max(self.max, latency)
        self.recent.append(latency)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    @property
    def estimate(self) -> float:
        return max(self.recent, default=0.0)


def rtc_trigger(latency: float, period: float, margin: int, horizon: int) -> int:
    """Rows left at which real-time chunking starts the next inference: the rows that play
    during `latency` (s) plus `margin` rows for jitter, capped at the horizon. Shared by
    RtcEngine and the policy runner so that both schedule by the same rule."""
    return min(horizon, math.ceil(latency / period - _EPS) + margin)


class _Engine:
    """What both engines share: the player, the counters and the clock."""

    def __init__(
        self,
        policy: Policy,
        period: float,
        horizon: int,
        *,
        blend_window: int = 0,
        max_age: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not period > 0:
            raise ValueError(f"period must be > 0, got {period!r}")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon!r}")
        self.policy = policy
        self.period = period
        self.horizon = horizon
        self.clock = clock
        self.player = ChunkPlayer(blend_window, max_age)
        self.latency = LatencyStats()
        self.ticks = 0
        self.starved_ticks = 0
        self.inferences = 0
        self._next_id = 0

    def _submit(self, actions: np.ndarray, obs_time: float, latency: float, now: float) -> None:
        self.inferences += 1
        self.latency.add(latency)
        chunk = Chunk(np.asarray(actions, dtype=float), obs_time, self.period, self._next_id)
        self._next_id += 1
        self.player.submit(chunk, now)

    def _play(self, now: float) -> np.ndarray | None:
        action = self.player.action_at(now)
        if action is None:
            self.starved_ticks += 1
        return action

    def close(self) -> None:
        """Release resources (the RTC worker thread); the engine is not used afterwards."""

    def __enter__(self) -> _Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


ENGINES: Registry[_Engine] = Registry("inference engine")


@ENGINES.register("sync")
class SyncEngine(_Engine):
    """Infers when the chunk runs out, inside the tick: the control loop stalls meanwhile.

    The chunk is stamped with the tick's time and played from row 0, as if time had stopped
    during inference; this is the baseline that RtcEngine improves on.
    """

    def tick(self, now: float, observation: Any) -> np.ndarray | None:
        self.ticks += 1
        if self.player.remaining(now) == 0:
            start = self.clock()
            actions = self.policy.infer(observation)
            self._submit(actions, now, self.clock() - start, now)
        return self._play(now)


@ENGINES.register("rtc")
class RtcEngine(_Engine):
    """Real-time chunking: infers in a background thread, ahead of time; never blocks the tick.

    Inference starts when `remaining(now) <= trigger`, with the observation of that tick, and its
    chunk is stamped with that tick's time. It is submitted at the first tick after it finished,
    so the rows meant for the ticks that elapsed during inference are dropped: the action played
    at time t is always the row meant for t. By default `trigger` is the rows needed to cover the
    latency estimate plus `margin` rows (ticks late by jitter), capped at the horizon;
    `latency_guess` (s) is the estimate before the first inference is measured.
    """

    def __init__(
        self,
        policy: Policy,
        period: float,
        horizon: int,
        *,
        trigger: int | None = None,
        margin: int = 1,
        latency_guess: float = 0.0,
        **options: Any,
    ) -> None:
        super().__init__(policy, period, horizon, **options)
        self.fixed_trigger = trigger
        self.margin = margin
        self.latency_guess = latency_guess
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._pending: Future[tuple[np.ndarray, float]] | None = None
        self._pending_time = 0.0

    @property
    def trigger(self) -> int:
        if self.fixed_trigger is not None:
            return self.fixed_trigger
        latency = self.latency.estimate if self.latency.count else self.latency_guess
        return rtc_trigger(latency, self.period, self.margin, self.horizon)

    @property
    def inferring(self) -> bool:
        return self._pending is not None

    def tick(self, now: float, observation: Any) -> np.ndarray | None:
        self.ticks += 1
        if self._pending is not None and self._pending.done():
            pending, self._pending = self._pending, None
            actions, latency = pending.result()  # a policy error surfaces here, in the tick
            self._submit(actions, self._pending_time, latency, now)
        if self._pending is None and self.player.remaining(now) <= self.trigger:
            self._pending_time = now
            self._pending = self._executor.submit(self._infer, observation)
        return self._play(now)

    def _infer(self, observation: Any) -> tuple[np.ndarray, float]:
        start = self.clock()
        actions = self.policy.infer(observation)
        return actions, self.clock() - start

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
