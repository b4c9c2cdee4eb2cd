"""Policy runner core, without ROS: the profile's inverse mapping, stamp synchronisation,
feature mapping, the sync / rtc / rate schedules and the one-in-flight worker."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from lerobot_ros.core.dataset.profile import so101_profile
from lerobot_ros.core.inference import Chunk, LatencyStats, RtcEngine, rtc_trigger
from lerobot_ros.core.policies.runner import (
    SCHEDULES,
    ChunkResult,
    FeatureMismatchError,
    ObservationSync,
    PolicyIO,
    PolicyRunner,
    RateSchedule,
    RtcSchedule,
    SyncedObservation,
    SyncSchedule,
    rows_left,
)
from lerobot_ros.core.robots import SO_ARM_JOINTS

PROFILE = so101_profile()
NAMES = PROFILE.feature_names


class FakePolicy:
    """A ChunkPolicy that echoes its state (LeRobot units) into every row, optionally slowly."""

    def __init__(
        self,
        state_names: list[str] | None = None,
        action_names: list[str] | None = None,
        image_keys: tuple[str, ...] = ("observation.images.front",),
        chunk_size: int = 10,
        fps: float = 10.0,
        delay: float = 0.0,
    ) -> None:
        self.policy_id = "fake"
        self.state_names = list(state_names or NAMES)
        self.action_names = list(action_names or NAMES)
        self.image_keys = list(image_keys)
        self.chunk_size = chunk_size
        self.fps = fps
        self.delay = delay
        self.gate: threading.Event | None = None
        self.calls: list[dict[str, np.ndarray]] = []

    def predict_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        self.calls.append(observation)
        if self.gate is not None:
            self.gate.wait(5.0)
        if self.delay:
            time.sleep(self.delay)
        state = observation["observation.state"]
        lookup = dict(zip(self.state_names, state, strict=True))
        row = np.array([lookup.get(n, 0.0) for n in self.action_names], dtype=np.float32)
        return np.tile(row, (self.chunk_size, 1))

    def reset(self) -> None:
        pass


def rgb(value: int = 0) -> np.ndarray:
    return np.full((4, 6, 3), value, np.uint8)


# --- profile -----------------------------------------------------------------------------------


def test_from_lerobot_inverts_to_lerobot() -> None:
    lo, hi = PROFILE.range_joints["gripper"]
    rad = np.array(
        [[0.5, -1.0, 1.2, -0.3, 2.0, lo], [0.0, 0.0, 0.0, 0.0, 0.0, hi], [1, 1, 1, 1, 1, 0.3]]
    )
    lerobot = PROFILE.to_lerobot(rad)
    np.testing.assert_allclose(lerobot[0, :5], np.degrees(rad[0, :5]), rtol=1e-6)
    assert lerobot[0, 5] == pytest.approx(0.0, abs=1e-5)  # closed
    assert lerobot[1, 5] == pytest.approx(100.0)  # open
    back = PROFILE.from_lerobot(lerobot)
    assert back.dtype == np.float64
    np.testing.assert_allclose(back, rad, atol=1e-6)  # float32 rounding only
    np.testing.assert_allclose(PROFILE.from_lerobot([90.0] * 5 + [50.0])[:5], math.pi / 2)


# --- synchronisation ---------------------------------------------------------------------------


def test_sync_picks_the_newest_state_with_every_image_within_max_skew() -> None:
    sync = ObservationSync(["front", "wrist"], max_skew=0.02)
    assert sync.latest() is None and "no joint state" in sync.failure
    for i in range(10):  # 100 Hz joint states, t = 1.00 .. 1.09
        sync.add_state(1.0 + i * 0.01, np.full(6, float(i)))
    assert sync.latest() is None and "front" in sync.failure
    sync.add_image("front", 1.033, rgb(1))
    sync.add_image("front", 1.066, rgb(2))
    sync.add_image("wrist", 1.060, rgb(3))
    obs = sync.latest()
    assert obs is not None
    # Newest state 1.09: front 1.066 is 24 ms away; 1.08: 14 ms and wrist 20 ms -> taken.
    assert obs.stamp == pytest.approx(1.08)
    assert obs.state[0] == 8.0
    assert obs.images["front"][0, 0, 0] == 2 and obs.images["wrist"][0, 0, 0] == 3
    assert obs.skew == pytest.approx(0.02)


def test_sync_reports_why_nothing_is_in_skew() -> None:
    sync = ObservationSync(["front"], max_skew=0.01)
    sync.add_state(2.0, np.zeros(6))
    sync.add_image("front", 1.5, rgb())
    assert sync.latest() is None
    assert "max_skew 10 ms" in sync.failure and "best 500 ms" in sync.failure
    no_cam = ObservationSync([], max_skew=0.0)
    no_cam.add_state(3.0, np.zeros(6))
    obs = no_cam.latest()
    assert obs is not None and obs.skew == 0.0 and obs.images == {}


# --- features ----------------------------------------------------------------------------------


def test_policy_io_orders_features_and_converts_units_both_ways() -> None:
    state_names = ["gripper.pos", "shoulder_pan.pos", "elbow_flex.pos"]
    action_names = ["elbow_flex.pos", "gripper.pos"]
    policy = FakePolicy(state_names, action_names, image_keys=("observation.images.top",))
    io = PolicyIO(policy, PROFILE, ["front", "top"])
    assert io.joint_names == ["elbow_flex", "gripper"]
    lo, hi = PROFILE.range_joints["gripper"]
    state = np.array([0.5, 0.1, -0.25, 0.0, 0.0, (lo + hi) / 2])
    obs = SyncedObservation(1.0, state, {"front": rgb(1), "top": rgb(2)}, 0.0)
    inputs = io.observation(obs)
    assert set(inputs) == {"observation.state", "observation.images.top"}
    assert inputs["observation.state"].dtype == np.float32
    np.testing.assert_allclose(inputs["observation.state"], [50.0, 28.6478898, -14.3239449])
    assert inputs["observation.images.top"][0, 0, 0] == 2
    rad = io.actions_to_ros(np.array([[-14.3239449, 50.0], [90.0, 0.0]], np.float32))
    np.testing.assert_allclose(rad, [[-0.25, (lo + hi) / 2], [math.pi / 2, lo]], atol=1e-6)
    with pytest.raises(ValueError, match=r"expected \(H, 2\)"):
        io.actions_to_ros(np.zeros((3, 6)))


def test_policy_io_mismatches_name_the_parameter() -> None:
    with pytest.raises(FeatureMismatchError, match=r"observation\.images\.wrist") as exc:
        PolicyIO(FakePolicy(image_keys=("observation.images.wrist",)), PROFILE, ["front"])
    assert exc.value.parameter == "cameras"
    with pytest.raises(FeatureMismatchError, match=r"elbow\.pos") as exc:
        PolicyIO(FakePolicy(state_names=["elbow.pos"]), PROFILE, ["front"])
    assert exc.value.parameter == "robot"


# --- schedules ---------------------------------------------------------------------------------


def test_sync_schedule_waits_for_the_chunk_to_run_out_and_offsets_row_0() -> None:
    s = SyncSchedule()
    lat = LatencyStats()
    assert s.due(0.0, None, lat)
    chunk = Chunk(np.zeros((5, 6)), t0=10.0, period=0.1)  # rows for 10.0 .. 10.4
    assert not s.due(10.45, chunk, lat)
    assert s.due(10.5, chunk, lat)
    assert s.start_offset(0.3) == 0.3


def test_rtc_schedule_uses_the_shared_trigger() -> None:
    s = RtcSchedule(margin=2)
    lat = LatencyStats()
    chunk = Chunk(np.zeros((20, 6)), t0=0.0, period=0.1)
    assert s.trigger(chunk, lat) == 2  # no latency measured yet: margin only
    lat.add(0.25)
    assert s.trigger(chunk, lat) == rtc_trigger(0.25, 0.1, 2, 20) == 5
    assert rows_left(chunk, 1.45) == 6 and not s.due(1.45, chunk, lat)
    assert rows_left(chunk, 1.5) == 5 and s.due(1.5, chunk, lat)
    assert s.start_offset(0.25) == 0.0
    # The engine of inference.py computes its trigger with the same function.
    with RtcEngine(policy=None, period=0.1, horizon=20, margin=2) as engine:  # type: ignore[arg-type]
        engine.latency.add(0.25)
        assert engine.trigger == 5


def test_rate_schedule_keeps_a_fixed_grid() -> None:
    s = RateSchedule(rate_hz=5.0)
    lat = LatencyStats()
    assert s.due(0.0, None, lat)
    s.started(0.0)
    assert not s.due(0.19, None, lat) and s.due(0.2, None, lat)
    s.started(0.23)  # late start: the next one stays on the grid
    assert not s.due(0.39, None, lat) and s.due(0.4, None, lat)
    s.started(1.5)  # a whole period behind: the grid restarts
    assert not s.due(1.6, None, lat) and s.due(1.7, None, lat)
    assert sorted(SCHEDULES.names()) == ["rate", "rtc", "sync"]
    with pytest.raises(ValueError, match="rate_hz"):
        RateSchedule(rate_hz=0.0)


# --- the runner --------------------------------------------------------------------------------


class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_runner(
    policy: FakePolicy, mode: str, clock: Clock, **options: object
) -> tuple[PolicyRunner, list[ChunkResult]]:
    out: list[ChunkResult] = []
    runner = PolicyRunner(
        policy, PROFILE, ["front"], out.append, mode=mode, max_skew=0.05, clock=clock, **options
    )
    return runner, out


def feed(runner: PolicyRunner, t: float, q: float = 0.1) -> None:
    names = list(reversed(SO_ARM_JOINTS))  # any order: the runner reorders by name
    runner.add_state(t, names, [q] * 6)
    runner.add_image("front", t, rgb())


def test_runner_sync_mode_one_in_flight_stamps_and_offsets() -> None:
    clock = Clock()
    policy = FakePolicy(chunk_size=4, fps=10.0)
    policy.gate = threading.Event()
    runner, out = make_runner(policy, "sync", clock)
    try:
        assert not runner.tick()  # nothing received yet
        assert runner.stats.dropped_observations == 0
        assert not runner.add_state(clock.t, ["shoulder_pan"], [0.0])  # lacks joints: ignored
        feed(runner, clock.t, q=0.2)
        assert runner.tick() and runner.in_flight
        clock.t += 0.01
        feed(runner, clock.t)
        assert not runner.tick()  # one inference in flight at most
        clock.t += 0.29  # the inference "takes" 0.3 s since the observation
        policy.gate.set()
        assert runner.wait_idle(5.0)
        (c,) = out
        assert c.chunk_id == 0 and c.stamp == 100.0 and c.joint_names == list(SO_ARM_JOINTS)
        assert c.latency == pytest.approx(0.3) and c.start_offset == pytest.approx(0.3)
        assert c.period == pytest.approx(0.1) and c.actions.shape == (4, 6)
        np.testing.assert_allclose(c.actions, 0.2, atol=1e-6)  # rad -> deg -> rad
        assert policy.calls[0]["observation.state"][0] == pytest.approx(math.degrees(0.2))
        # Row 0 is for the publish time 100.3; the chunk runs out at 100.7.
        clock.t = 100.65
        feed(runner, clock.t)
        assert not runner.tick()
        clock.t = 100.7
        assert runner.tick()
        assert runner.wait_idle(5.0)
        assert [c.chunk_id for c in out] == [0, 1] and out[1].stamp == pytest.approx(100.65)
    finally:
        runner.close()


def test_runner_rtc_mode_starts_before_the_chunk_runs_out() -> None:
    clock = Clock()
    runner, out = make_runner(FakePolicy(chunk_size=10, fps=10.0), "rtc", clock, margin=1)
    try:
        feed(runner, clock.t)
        clock.t += 0.2
        assert runner.tick() and runner.wait_idle(5.0)
        assert out[0].start_offset == 0.0 and out[0].latency == pytest.approx(0.2)
        # Trigger = ceil(0.2 / 0.1) + 1 = 3 rows: rows for 100.0 .. 100.9, 3 left from 100.7.
        for t in (100.5, 100.65):
            clock.t = t
            feed(runner, t)
            assert not runner.tick(), t
        clock.t = 100.7
        feed(runner, 100.7)
        assert runner.tick() and runner.wait_idle(5.0)
        assert out[1].stamp == pytest.approx(100.7)
    finally:
        runner.close()


def test_runner_rate_mode_needs_fresh_synchronised_observations() -> None:
    clock = Clock()
    runner, out = make_runner(FakePolicy(), "rate", clock, rate_hz=5.0)
    try:
        runner.add_state(clock.t, list(SO_ARM_JOINTS), [0.0] * 6)
        assert not runner.tick()  # no image yet: dropped, with the reason
        assert runner.stats.dropped_observations == 1
        assert not runner.tick()  # the same joint state is not counted twice
        assert runner.stats.dropped_observations == 1
        assert "no image" in runner.stats.last_drop_reason
        runner.add_image("front", clock.t - 0.2, rgb())  # 200 ms off: out of skew
        assert not runner.tick() and "max_skew" in runner.stats.last_drop_reason
        starts = 0
        for _ in range(100):  # 1 s in 10 ms ticks, fresh data every tick
            feed(runner, clock.t)
            starts += runner.tick()
            runner.wait_idle(5.0)
            clock.t += 0.01
        assert starts == 5 and len(out) == 5
        assert [c.chunk_id for c in out] == list(range(5))
        assert runner.stats.skew_max == 0.0 and runner.stats.inferences == 5
        clock.t += 1.0
        assert runner.tick() and runner.wait_idle(5.0)  # takes the newest sample, t = 100.99
        clock.t += 1.0  # due, but nothing newer than the last observation: no inference
        assert not runner.tick()
    finally:
        runner.close()


def test_runner_reports_policy_errors_and_keeps_going() -> None:
    clock = Clock()
    errors: list[Exception] = []
    policy = FakePolicy(chunk_size=3)
    runner, out = make_runner(policy, "rate", clock, rate_hz=100.0)
    runner.on_error = errors.append
    policy.predict_chunk = lambda obs: np.zeros((3, 2))  # type: ignore[method-assign]
    try:
        feed(runner, clock.t)
        assert runner.tick() and runner.wait_idle(5.0)
        assert runner.stats.errors == 1 and "expected (H, 6)" in runner.stats.last_error
        assert out == [] and len(errors) == 1 and not runner.in_flight
    finally:
        runner.close()


# --- the graph ---------------------------------------------------------------------------------


def test_policy_graph_feeds_the_watchdog_through_the_chunk_player() -> None:
    from lerobot_ros.core.graph import PolicyGraphArgs, policy_graph

    args = PolicyGraphArgs.from_strings({"policy": "/ckpt", "mode": "rate", "cameras": "front,top"})
    assert args.policy == "/ckpt" and args.mode == "rate" and args.task == ""
    specs = {s.fqn: s for s in policy_graph(args)}
    assert "/leader" not in specs and "/teleop" not in specs
    assert {"/follower", "/watchdog", "/cameras/front", "/cameras/top"} <= set(specs)
    assert specs["/watchdog"].parameters["active_source"] == "chunk_player"
    runner = specs["/policy_runner"]
    assert runner.in_process == "lerobot_ros.nodes.policy_runner:PolicyRunnerNode"
    assert runner.parameters == {
        "robot": "so101",
        "cameras": ["front", "top"],
        "policy": "/ckpt",
        "mode": "rate",
    }
    assert specs["/chunk_player"].in_process == "lerobot_ros.nodes.chunk_player:ChunkPlayerNode"
