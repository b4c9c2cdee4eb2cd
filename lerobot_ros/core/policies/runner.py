"""What the policy runner node does, without ROS: observation assembly, unit mapping, and
when to infer.

* `ObservationSync` keeps the last joint states and images and picks, for an inference, the
  newest joint state that has an image from every camera within `max_skew` of it: a policy
  trained on synchronous frames must not see an arm pose and a picture from different moments.
  The observation time (what the chunk is stamped with) is that joint state's stamp.
* `PolicyIO` maps the ROS side (radians in the robot's joint order, camera names) to the policy's
  LeRobot features and back, through the robot's `DatasetProfile` only (`to_lerobot` /
  `from_lerobot`), so there is one place where units change.
* `SCHEDULES` decide when the next inference starts and where row 0 of its chunk goes:
  - `sync`: infer when the last chunk has run out; the chunk is published with
    start_offset = its latency, so row 0 is meant for the publish time (the robot waits).
  - `rtc`: infer when the last chunk has at most `rtc_trigger(...)` rows left (the rule of
    `inference.RtcEngine`); start_offset 0, so the chunk player drops the rows whose time
    passed during inference.
  - `rate`: infer at a fixed rate; start_offset 0.
* `PolicyRunner` ties them together with one worker thread: at most one inference is in
  flight, and `tick()` (called from a ROS timer) never waits for the policy.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from lerobot_ros.core.dataset.profile import DatasetProfile
from lerobot_ros.core.inference import Chunk, LatencyStats, rtc_trigger
from lerobot_ros.core.policies.base import ChunkPolicy
from lerobot_ros.core.registry import Registry

IMAGE_PREFIX = "observation.images."
STATE_KEY = "observation.state"
_EPS = 1e-6


def limit_cpu_threads(threads: int) -> None:
    """Cap torch's intra-op CPU threads (process-wide); 0 leaves torch's default (one per core).

    Measured on a loaded 2-core machine: a small ACT took ~950 ms per chunk with torch's 2
    threads competing with the other nodes' threads, ~30 ms with 1. Policies without torch are
    unaffected."""
    if threads <= 0:
        return
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


def image_key(camera: str) -> str:
    """Policy image key of a camera: `front` -> `observation.images.front`."""
    return IMAGE_PREFIX + camera


# --- synchronisation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncedObservation:
    """One observation for the policy, in ROS units."""

    stamp: float  # the joint state's capture time: the chunk's header.stamp
    state: np.ndarray  # (J,) rad, in the profile's joint order
    images: dict[str, np.ndarray]  # camera -> (H, W, 3) uint8 RGB
    skew: float  # s: largest |image stamp - stamp| over the cameras (0 without cameras)


class ObservationSync:
    """Recent joint states and images; `latest()` returns the newest synchronised set.

    Thread-safe: subscriptions add from the executor thread while `latest()` may run elsewhere.
    `state_depth` joint states are kept (at 100 Hz, 64 cover 0.64 s, more than any sane skew);
    `image_depth` images per camera.
    """

    def __init__(
        self,
        cameras: Sequence[str],
        max_skew: float,
        *,
        state_depth: int = 64,
        image_depth: int = 4,
    ) -> None:
        if not max_skew >= 0:
            raise ValueError(f"max_skew must be >= 0, got {max_skew!r}")
        self.cameras = list(cameras)
        self.max_skew = max_skew
        self._lock = threading.Lock()
        self._states: deque[tuple[float, np.ndarray]] = deque(maxlen=state_depth)
        self._images: dict[str, deque[tuple[float, np.ndarray]]] = {
            c: deque(maxlen=image_depth) for c in self.cameras
        }
        self.failure = ""  # why the last latest() returned None

    def add_state(self, stamp: float, positions: np.ndarray) -> None:
        with self._lock:
            self._states.append((stamp, positions))

    def add_image(self, camera: str, stamp: float, rgb: np.ndarray) -> None:
        with self._lock:
            self._images[camera].append((stamp, rgb))

    @property
    def newest_state_stamp(self) -> float | None:
        with self._lock:
            return self._states[-1][0] if self._states else None

    def latest(self) -> SyncedObservation | None:
        """The newest joint state whose closest image from every camera is within max_skew,
        with those images; None (reason in `failure`) when there is none yet."""
        with self._lock:
            states = list(self._states)
            images = {c: list(q) for c, q in self._images.items()}
        if not states:
            self.failure = "no joint state received"
            return None
        empty = [c for c, q in images.items() if not q]
        if empty:
            self.failure = f"no image received from cameras {empty}"
            return None
        best_skew = math.inf
        for stamp, state in reversed(states):
            chosen: dict[str, np.ndarray] = {}
            skew = 0.0
            for cam, frames in images.items():
                t_img, rgb = min(frames, key=lambda f, s=stamp: abs(f[0] - s))
                skew = max(skew, abs(t_img - stamp))
                chosen[cam] = rgb
            if skew <= self.max_skew + _EPS:
                return SyncedObservation(stamp, state, chosen, skew)
            best_skew = min(best_skew, skew)
        self.failure = (
            f"no joint state within max_skew {self.max_skew * 1e3:.0f} ms of an image from "
            f"every camera (best {best_skew * 1e3:.0f} ms)"
        )
        return None


# --- units and features ------------------------------------------------------------------------


class FeatureMismatchError(ValueError):
    """The policy's features do not fit the robot or cameras; `parameter` is the node parameter
    to change."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class PolicyIO:
    """ROS side <-> the policy's LeRobot features, through the robot's DatasetProfile.

    The state fed to the policy is ordered as `policy.state_names`; each action column is a
    profile feature (`<joint>.pos`) and goes back to that joint in radians.
    """

    def __init__(self, policy: ChunkPolicy, profile: DatasetProfile, cameras: Sequence[str]):
        self.profile = profile
        features = profile.feature_names
        unknown = [n for n in policy.state_names if n not in features]
        if unknown:
            raise FeatureMismatchError(
                "robot", f"policy state features {unknown} are not features of {features}"
            )
        self._state_index = [features.index(n) for n in policy.state_names]
        unknown = [n for n in policy.action_names if n not in features]
        if unknown:
            raise FeatureMismatchError(
                "robot", f"policy action features {unknown} are not features of {features}"
            )
        self._action_index = [features.index(n) for n in policy.action_names]
        self.joint_names = [profile.joint_names[i] for i in self._action_index]
        provided = {image_key(c): c for c in cameras}
        missing = [k for k in policy.image_keys if k not in provided]
        if missing:
            raise FeatureMismatchError(
                "cameras", f"policy needs images {missing}; cameras give {sorted(provided)}"
            )
        self.cameras = {k: provided[k] for k in policy.image_keys}  # image key -> camera

    def observation(self, obs: SyncedObservation) -> dict[str, np.ndarray]:
        """The policy input: `observation.state` (LeRobot units, policy order) + images."""
        state = self.profile.to_lerobot(obs.state)[self._state_index]
        out: dict[str, np.ndarray] = {STATE_KEY: state.astype(np.float32)}
        for key, cam in self.cameras.items():
            out[key] = obs.images[cam]
        return out

    def actions_to_ros(self, actions: np.ndarray) -> np.ndarray:
        """(H, A) in LeRobot units, policy column order -> (H, A) rad for `joint_names`."""
        actions = np.asarray(actions)
        if actions.ndim != 2 or actions.shape[1] != len(self._action_index):
            raise ValueError(
                f"policy returned shape {actions.shape}, expected (H, {len(self._action_index)})"
            )
        full = np.zeros((actions.shape[0], len(self.profile.joint_names)))
        full[:, self._action_index] = actions
        return self.profile.from_lerobot(full)[:, self._action_index]


# --- scheduling --------------------------------------------------------------------------------


class Schedule(Protocol):
    """When to start an inference, and where row 0 of its chunk goes."""

    def due(self, now: float, last: Chunk | None, latency: LatencyStats) -> bool:
        """Start an inference now? `last` is the last published chunk (t0 = its row 0 time)."""
        ...

    def started(self, now: float) -> None:
        """An inference started at `now`."""
        ...

    def start_offset(self, latency: float) -> float:
        """start_offset of a chunk whose observation is `latency` s old at publish time."""
        ...


SCHEDULES: Registry[Schedule] = Registry("inference mode")


def rows_left(chunk: Chunk, now: float) -> int:
    """Rows of `chunk` from `now` on, the one in effect at `now` included."""
    return max(0, len(chunk) - max(0, chunk.index_at(now)))


@SCHEDULES.register("sync")
class SyncSchedule:
    """Infer only when the published chunk has run out; row 0 is for the publish time, so the
    arm holds still during inference and then plays the whole chunk (simple, but it stops)."""

    def __init__(self, **_: Any) -> None:
        pass

    def due(self, now: float, last: Chunk | None, latency: LatencyStats) -> bool:
        return last is None or rows_left(last, now) == 0

    def started(self, now: float) -> None:
        pass

    def start_offset(self, latency: float) -> float:
        return latency


@SCHEDULES.register("rtc")
class RtcSchedule:
    """Real-time chunking: infer while the published chunk still covers the expected latency
    (`inference.rtc_trigger`); rows that elapse during inference are dropped by the player."""

    def __init__(self, *, margin: int = 1, latency_guess: float = 0.0, **_: Any) -> None:
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin!r}")
        self.margin = margin
        self.latency_guess = latency_guess

    def trigger(self, last: Chunk, latency: LatencyStats) -> int:
        estimate = latency.estimate if latency.count else self.latency_guess
        return rtc_trigger(estimate, last.period, self.margin, len(last))

    def due(self, now: float, last: Chunk | None, latency: LatencyStats) -> bool:
        return last is None or rows_left(last, now) <= self.trigger(last, latency)

    def started(self, now: float) -> None:
        pass

    def start_offset(self, latency: float) -> float:
        return 0.0


@SCHEDULES.register("rate")
class RateSchedule:
    """Infer every 1/rate_hz s on a fixed grid (a late start does not shift later ones; after
    falling a whole period behind, the grid restarts from now)."""

    def __init__(self, *, rate_hz: float, **_: Any) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz!r}")
        self.interval = 1.0 / rate_hz
        self._next: float | None = None

    def due(self, now: float, last: Chunk | None, latency: LatencyStats) -> bool:
        return self._next is None or now >= self._next - _EPS

    def started(self, now: float) -> None:
        nxt = now + self.interval if self._next is None else self._next + self.interval
        self._next = nxt if nxt > now else now + self.interval

    def start_offset(self, latency: float) -> float:
        return 0.0


# --- the runner --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkResult:
    """One predicted chunk, ready for the wire (lerobot_msgs/ActionChunk)."""

    chunk_id: int
    stamp: float  # observation time
    joint_names: list[str]
    actions: np.ndarray  # (H, J) rad
    period: float  # s between rows (1 / policy.fps)
    start_offset: float  # s from stamp to row 0
    latency: float  # s from stamp to the moment the chunk was ready
    inference_time: float  # s in predict_chunk
    skew: float  # s, of the observation
    policy_id: str


@dataclass
class RunnerStats:
    inferences: int = 0
    errors: int = 0
    last_error: str = ""
    # Joint-state samples at which an inference was due but no synchronised observation could be
    # built (an image missing or too far from the state).
    dropped_observations: int = 0
    last_drop_reason: str = ""
    skew_last: float = 0.0
    skew_max: float = 0.0
    inference_time: LatencyStats = field(default_factory=LatencyStats)


class PolicyRunner:
    """Observation in, chunks out, with at most one inference in flight on a worker thread.

    `add_state` / `add_image` feed it (from subscriptions); `tick(now)` (from a timer) starts an
    inference when the schedule says so and a synchronised observation exists; `on_chunk` is
    called on the worker thread with each result (publish it there: no executor round trip).
    Times are wall-clock seconds, as in message stamps; `clock` reads the same clock.
    """

    def __init__(
        self,
        policy: ChunkPolicy,
        profile: DatasetProfile,
        cameras: Sequence[str],
        on_chunk: Callable[[ChunkResult], None],
        *,
        mode: str = "rtc",
        max_skew: float = 0.05,
        clock: Callable[[], float] = time.time,
        on_error: Callable[[Exception], None] | None = None,
        **schedule_options: Any,
    ) -> None:
        if not policy.fps > 0:
            raise FeatureMismatchError("policy", f"policy fps must be > 0, got {policy.fps!r}")
        self.policy = policy
        self.io = PolicyIO(policy, profile, cameras)
        self.sync = ObservationSync(cameras, max_skew)
        self.schedule: Schedule = SCHEDULES.create(mode, **schedule_options)
        self.mode = mode
        self.period = 1.0 / policy.fps
        self.clock = clock
        self.on_chunk = on_chunk
        self.on_error = on_error
        self.latency = LatencyStats()
        self.stats = RunnerStats()
        self._profile_index: dict[tuple[str, ...], list[int] | None] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy")
        self._in_flight = threading.Event()
        self._last_chunk: Chunk | None = None
        self._last_stamp = -math.inf  # observation time of the last inference started
        self._last_drop_stamp: float | None = None
        self._next_id = 0
        self._closed = False

    # --- inputs ---------------------------------------------------------------------------
    def add_state(self, stamp: float, names: Sequence[str], positions: Sequence[float]) -> bool:
        """A measured JointState; False (ignored) when it lacks a joint of the profile."""
        key = tuple(names)
        if key not in self._profile_index:
            lookup = {n: i for i, n in enumerate(names)}
            joints = self.io.profile.joint_names
            index = [lookup[j] for j in joints] if all(j in lookup for j in joints) else None
            self._profile_index[key] = index
        index = self._profile_index[key]
        if index is None or len(positions) != len(names):
            return False
        self.sync.add_state(stamp, np.asarray(positions, dtype=np.float64)[index])
        return True

    def add_image(self, camera: str, stamp: float, rgb: np.ndarray) -> None:
        if camera in self.sync.cameras:
            self.sync.add_image(camera, stamp, rgb)

    # --- scheduling -----------------------------------------------------------------------
    @property
    def in_flight(self) -> bool:
        return self._in_flight.is_set()

    @property
    def last_chunk(self) -> Chunk | None:
        return self._last_chunk

    def tick(self, now: float | None = None) -> bool:
        """Start an inference if one is due and possible; True when one started. Cheap."""
        if self._closed or self._in_flight.is_set():
            return False
        now = self.clock() if now is None else now
        if not self.schedule.due(now, self._last_chunk, self.latency):
            return False
        obs = self.sync.latest()
        if obs is None:
            newest = self.sync.newest_state_stamp
            if newest is not None and newest != self._last_drop_stamp:
                self._last_drop_stamp = newest
                self.stats.dropped_observations += 1
            self.stats.last_drop_reason = self.sync.failure
            return False
        if obs.stamp <= self._last_stamp:
            return False  # nothing new since the last inference: wait for fresh data
        self._last_stamp = obs.stamp
        self.stats.skew_last = obs.skew
        self.stats.skew_max = max(self.stats.skew_max, obs.skew)
        inputs = self.io.observation(obs)
        self._in_flight.set()
        self.schedule.started(now)
        self._executor.submit(self._infer, obs, inputs)
        return True

    def _infer(self, obs: SyncedObservation, inputs: dict[str, np.ndarray]) -> None:
        try:
            start = time.perf_counter()
            predicted = self.policy.predict_chunk(inputs)
            inference_time = time.perf_counter() - start
            actions = self.io.actions_to_ros(predicted)
            latency = max(0.0, self.clock() - obs.stamp)
            offset = self.schedule.start_offset(latency)
            result = ChunkResult(
                chunk_id=self._next_id,
                stamp=obs.stamp,
                joint_names=list(self.io.joint_names),
                actions=actions,
                period=self.period,
                start_offset=offset,
                latency=latency,
                inference_time=inference_time,
                skew=obs.skew,
                policy_id=self.policy.policy_id,
            )
            self._next_id += 1
            self.latency.add(latency)
            self.stats.inference_time.add(inference_time)
            self.stats.inferences += 1
            self._last_chunk = Chunk(actions, obs.stamp + offset, self.period, result.chunk_id)
            if not self._closed:
                self.on_chunk(result)
        except Exception as exc:  # a policy bug must not kill the worker; it is reported
            self.stats.errors += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            if self.on_error is not None:
                self.on_error(exc)
        finally:
            self._in_flight.clear()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no inference is in flight (tests, shutdown); True when idle."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._in_flight.is_set():
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Stop starting inferences and wait (up to `timeout` s) for the one in flight, whose
        chunk is then dropped: the caller tears down what `on_chunk` publishes with right
        after. True when the worker finished in time."""
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        return self.wait_idle(timeout)
