"""Chunk playback and the sync / RTC inference engines (ROS-free, real time for the must-show)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pytest

from lerobot_ros.core.inference import (
    ENGINES,
    Chunk,
    ChunkPlayer,
    RtcEngine,
    SyncEngine,
)


def indexed_chunk(h: int = 10, t0: float = 1.0, period: float = 0.1, chunk_id: int = 0) -> Chunk:
    """Row i is [i, chunk_id]: a played action tells which row of which chunk it was."""
    rows = np.stack([np.arange(h, dtype=float), np.full(h, float(chunk_id))], axis=1)
    return Chunk(rows, t0, period, chunk_id)


# --- Chunk / ChunkPlayer ------------------------------------------------------------------------


def test_chunk_times_and_index() -> None:
    c = indexed_chunk()
    assert c.time_of(3) == pytest.approx(1.3)
    assert c.index_at(1.3) == 3  # 2.9999999999999996 rows: the eps keeps it on row 3
    assert c.index_at(1.39) == 3
    assert c.index_at(0.95) == -1
    with pytest.raises(ValueError):
        Chunk(np.zeros(3), 0.0, 0.1)


def test_alignment_drops_exactly_the_rows_whose_time_passed() -> None:
    player = ChunkPlayer()
    assert player.submit(indexed_chunk(t0=1.0), now=1.3) == 3
    assert player.stats.dropped_rows == 3
    assert player.remaining(1.3) == 7
    played = [player.action_at(1.0 + k * 0.1) for k in range(12)]
    # Before `now` nothing is played (rows 0-2 are gone), then rows 3..9 at their own times.
    assert all(a is None for a in played[:3])
    assert [int(a[0]) for a in played[3:10]] == list(range(3, 10))
    assert played[10] is None and played[11] is None
    assert player.stats.starved_ticks == 5


def test_alignment_off_grid_keeps_the_row_in_effect() -> None:
    player = ChunkPlayer()
    assert player.submit(indexed_chunk(t0=1.0), now=1.35) == 3
    assert player.action_at(1.35)[0] == 3  # row 3 (t=1.3) holds until 1.4


def test_stale_chunks_are_discarded() -> None:
    player = ChunkPlayer()
    player.submit(indexed_chunk(t0=1.0, chunk_id=5), now=1.0)
    assert player.submit(indexed_chunk(t0=1.1, chunk_id=4), now=1.1) == 0  # older id
    assert player.submit(indexed_chunk(t0=0.9, chunk_id=6), now=1.1) == 0  # older observation
    assert player.submit(indexed_chunk(t0=0.0, chunk_id=7), now=1.1) == 0  # already past: 0..0.9
    assert player.stats.stale_discarded == 3
    assert player.stats.submitted == 4
    assert player.chunk_id == 5
    assert player.action_at(1.2).tolist() == [2.0, 5.0]
    # A newer one is accepted.
    assert player.submit(indexed_chunk(t0=1.2, chunk_id=6), now=1.2) == 0
    assert player.action_at(1.2).tolist() == [0.0, 6.0]


def test_blending_is_linear_from_old_to_new() -> None:
    player = ChunkPlayer(blend_window=3)
    player.submit(Chunk(np.zeros((10, 2)), 1.0, 0.1, 0), now=1.0)
    player.submit(Chunk(np.ones((10, 2)), 1.2, 0.1, 1), now=1.2)
    values = [player.action_at(1.2 + k * 0.1)[0] for k in range(5)]
    assert values == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    assert player.stats.blended_rows == 3
    # Only rows the old chunk still covers are blended: it ends at 2.1, the window is 3 rows.
    player.submit(Chunk(np.full((5, 2), 2.0), 2.0, 0.1, 2), now=2.0)
    assert [player.action_at(t)[0] for t in (2.0, 2.1, 2.2)] == pytest.approx([1.25, 1.5, 2.0])
    assert player.stats.blended_rows == 5


def test_starvation_and_max_age() -> None:
    player = ChunkPlayer(max_age=0.5)
    assert player.action_at(0.0) is None
    assert player.remaining(0.0) == 0
    player.submit(indexed_chunk(t0=1.0), now=1.0)
    assert player.action_at(1.5) is not None
    assert player.action_at(1.6) is None  # row 6 exists, but the prediction is too old
    assert player.stats.starved_ticks == 2


def test_a_chunk_starting_later_takes_over_at_its_start() -> None:
    player = ChunkPlayer()
    player.submit(indexed_chunk(t0=1.0, chunk_id=0), now=1.0)
    player.submit(indexed_chunk(t0=1.3, chunk_id=1), now=1.1)  # start_offset of 2 periods
    assert player.action_at(1.1).tolist() == [1.0, 0.0]
    assert player.action_at(1.2).tolist() == [2.0, 0.0]
    assert player.action_at(1.3).tolist() == [0.0, 1.0]


# --- Engines ------------------------------------------------------------------------------------


class CountingPolicy:
    """Instant policy: row i is [observation, i]."""

    def __init__(self, horizon: int = 4, delay: float = 0.0) -> None:
        self.horizon = horizon
        self.delay = delay
        self.calls = 0

    def infer(self, observation: int) -> np.ndarray:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        return np.stack(
            [np.full(self.horizon, float(observation)), np.arange(self.horizon, dtype=float)], 1
        )


def test_registry_and_default_trigger() -> None:
    assert {"sync", "rtc"} <= set(ENGINES.names())
    with ENGINES.create("rtc", CountingPolicy(), 0.02, 10, latency_guess=0.05) as engine:
        assert isinstance(engine, RtcEngine)
        assert engine.trigger == 4  # ceil(0.05 / 0.02) rows + 1 margin
        engine.latency.add(0.061)
        assert engine.trigger == 5
        engine.latency.add(1.0)
        assert engine.trigger == 10  # capped at the horizon
    assert isinstance(ENGINES.create("sync", CountingPolicy(), 0.02, 10), SyncEngine)


def test_sync_engine_infers_when_the_chunk_runs_out() -> None:
    policy = CountingPolicy(horizon=4)
    engine = SyncEngine(policy, 0.1, 4)
    actions = [engine.tick(k * 0.1, k) for k in range(9)]
    # Chunks from observations 0, 4, 8, each played from row 0.
    assert [a.tolist() for a in actions] == [[k - k % 4, k % 4] for k in range(9)]
    assert engine.inferences == policy.calls == 3
    assert engine.starved_ticks == 0 and engine.ticks == 9


# --- The must-show: inference 3x slower than the control period, in real time ------------------

DT = 0.02
DURATION = 1.6
HORIZON = 10


@dataclass
class Tick:
    k: int
    now: float  # scheduled time, passed to the engine
    duration: float  # how long engine.tick took
    action: np.ndarray | None


def drive(engine: SyncEngine | RtcEngine, duration: float = DURATION) -> list[Tick]:
    """A fixed-rate loop on absolute deadlines that skips missed ones instead of bursting (like
    PeriodicThread); the observation of tick k is k."""
    ticks: list[Tick] = []
    start = time.monotonic()
    deadline = start
    k = 0
    while deadline - start < duration:
        delay = deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        begin = time.monotonic()
        action = engine.tick(deadline, k)
        ticks.append(Tick(k, deadline, time.monotonic() - begin, action))
        k += 1
        deadline += DT
        if time.monotonic() - deadline > DT:  # more than a period behind: skip, don't burst
            deadline = time.monotonic()
    return ticks


def test_rtc_keeps_the_rate_and_plays_the_row_meant_for_now() -> None:
    with RtcEngine(CountingPolicy(HORIZON, delay=3 * DT), DT, HORIZON) as engine:
        ticks = drive(engine)
    expected = round(DURATION / DT)
    assert len(ticks) == expected  # no deadline skipped
    assert max(t.duration for t in ticks) < DT / 2  # the tick never waits for inference
    first = next(i for i, t in enumerate(ticks) if t.action is not None)
    assert 3 <= first <= 5  # warm-up: the first inference (3 periods) has nothing to play
    assert all(t.action is not None for t in ticks[first:])  # no starved tick after warm-up
    assert engine.starved_ticks == first
    now_of = {t.k: t.now for t in ticks}
    for t in ticks[first:]:
        obs, row = int(t.action[0]), int(t.action[1])
        # The action played at time t is the row meant for t: rows that elapsed during the
        # inference were dropped, not played late.
        assert row == t.k - obs
        assert row == round((t.now - now_of[obs]) / DT)
    # Every chunk after the first was submitted >= 3 periods after its observation, so its
    # first played row is >= 3: rows 0..2 (at least) were dropped.
    first_rows = {}
    for t in ticks[first:]:
        first_rows.setdefault(int(t.action[0]), int(t.action[1]))
    assert len(first_rows) >= 8
    assert all(r >= 3 for r in first_rows.values())
    assert engine.player.stats.dropped_rows == sum(first_rows.values())
    assert engine.inferences >= len(first_rows)
    assert engine.latency.mean == pytest.approx(3 * DT, abs=DT / 2)


def test_sync_stalls_the_control_loop() -> None:
    engine = SyncEngine(CountingPolicy(HORIZON, delay=3 * DT), DT, HORIZON)
    ticks = drive(engine)
    expected = round(DURATION / DT)
    stalled = [t for t in ticks if t.duration >= 2.5 * DT]
    # Every inference blocks a tick for ~3 periods, and the loop loses those ticks.
    assert len(stalled) == engine.inferences >= 5
    assert len(ticks) < 0.85 * expected
    assert engine.starved_ticks == 0  # it never starves: it stops instead
    gaps = np.diff([t.now for t in ticks])
    assert (gaps > 2.5 * DT).sum() >= len(stalled) - 1
    assert math.isclose(engine.latency.mean, 3 * DT, abs_tol=DT / 2)


def test_clear_forgets_the_plan_but_keeps_counting() -> None:
    player = ChunkPlayer()
    player.submit(Chunk(np.ones((10, 2)), 0.0, 0.1, chunk_id=5), 0.0)
    assert player.action_at(0.25) is not None
    player.clear()
    assert player.action_at(0.3) is None and player.remaining(0.3) == 0
    assert player.stats.submitted == 1 and player.stats.starved_ticks == 1
    # A chunk with a lower id than the forgotten one is accepted again after clear().
    assert player.submit(Chunk(np.zeros((10, 2)), 0.3, 0.1, chunk_id=1), 0.3) == 0
    assert player.action_at(0.35).tolist() == [0.0, 0.0]
