"""A scripted chunk policy (POLICIES "scripted"): no network, no torch, microseconds per chunk.

It exists so that the rollout graph (strategies, recording, DAgger takeovers) can be run and
tested on a machine where a trained policy would be slow or absent, with motion that is easy to
reason about: the arm oscillates smoothly around the pose it had when the policy was reset, and
every chunk starts at the observed state (row 0 = the measured pose), so a policy resumed after
a human correction moves on from where the human left the arm, as a learned policy would.

A checkpoint is a directory holding only `config.json` (see `save_scripted_policy`):

    {"type": "scripted", "lerobot_ros_implementation": "lerobot_ros/0.1.0", "motion": "sine",
     "fps": 30, "chunk_size": 20, "amplitude": [...], "period_s": 6.0, "max_speed": [...], ...}

Units are LeRobot's, like every ChunkPolicy (degrees; the gripper 0-100).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lerobot_ros import __version__
from lerobot_ros.core.policies.base import (
    CONFIG_NAME,
    IMPLEMENTATION_KEY,
    POLICIES,
    CheckpointError,
)

POLICY_TYPE = "scripted"
SO_ARM_FEATURES = [
    "shoulder_pan.pos",
    "shoulder_lift.pos",
    "elbow_flex.pos",
    "wrist_flex.pos",
    "wrist_roll.pos",
    "gripper.pos",
]


def _sine(center: np.ndarray, amplitude: np.ndarray, period_s: float, t: np.ndarray) -> np.ndarray:
    """(len(t), A) goals: center + amplitude * sin(2 pi t / period)."""
    return center + amplitude * np.sin(2.0 * math.pi * t[:, None] / period_s)


def _hold(center: np.ndarray, amplitude: np.ndarray, period_s: float, t: np.ndarray) -> np.ndarray:
    return np.broadcast_to(center, (len(t), len(center))).copy()


# Goal trajectories by name (the config's "motion"); a policy follows its goal at max_speed.
MOTIONS: dict[str, Callable[[np.ndarray, np.ndarray, float, np.ndarray], np.ndarray]] = {
    "sine": _sine,
    "hold": _hold,
}

DEFAULTS: dict[str, Any] = {
    "motion": "sine",
    "fps": 30.0,
    "chunk_size": 20,
    "state_names": SO_ARM_FEATURES,
    "action_names": SO_ARM_FEATURES,
    "image_keys": ["observation.images.front"],
    # Around the pose at reset(): degrees for the arm joints, 0-100 for the gripper.
    "amplitude": [20.0, 15.0, 15.0, 15.0, 20.0, 5.0],
    "period_s": 6.0,
    "max_speed": [30.0, 30.0, 30.0, 30.0, 30.0, 50.0],  # units/s along a chunk
}


@POLICIES.register(POLICY_TYPE)
class ScriptedPolicy:
    """Each chunk starts at the observed state and tracks the motion's goal trajectory at no
    more than `max_speed`: row i = row i-1 + clip(goal(t + i/fps) - row i-1, +-max_speed/fps)."""

    def __init__(
        self,
        *,
        motion: str = DEFAULTS["motion"],
        fps: float = DEFAULTS["fps"],
        chunk_size: int = DEFAULTS["chunk_size"],
        state_names: Sequence[str] = DEFAULTS["state_names"],
        action_names: Sequence[str] = DEFAULTS["action_names"],
        image_keys: Sequence[str] = DEFAULTS["image_keys"],
        amplitude: Sequence[float] = DEFAULTS["amplitude"],
        period_s: float = DEFAULTS["period_s"],
        max_speed: Sequence[float] = DEFAULTS["max_speed"],
        policy_id: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if motion not in MOTIONS:
            raise ValueError(f"motion {motion!r} unknown; known: {sorted(MOTIONS)}")
        if not (fps > 0 and period_s > 0 and chunk_size >= 1):
            raise ValueError("fps and period_s must be > 0 and chunk_size >= 1")
        self.action_names = list(action_names)
        missing = [n for n in self.action_names if n not in state_names]
        if missing:
            raise ValueError(f"action features {missing} are not in state_names {state_names}")
        n = len(self.action_names)
        self.amplitude = np.asarray(amplitude, dtype=np.float64)
        self.max_speed = np.asarray(max_speed, dtype=np.float64)
        for name, arr in (("amplitude", self.amplitude), ("max_speed", self.max_speed)):
            if arr.shape != (n,) or not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} needs {n} finite values (one per action), got {arr}")
        if np.any(self.max_speed <= 0):
            raise ValueError(f"max_speed must be > 0, got {self.max_speed}")
        self.motion = motion
        self.fps = float(fps)
        self.chunk_size = int(chunk_size)
        self.state_names = list(state_names)
        self.image_keys = list(image_keys)
        self.period_s = float(period_s)
        self.policy_id = policy_id
        self.clock = clock
        self._action_index = [self.state_names.index(a) for a in self.action_names]
        self._center: np.ndarray | None = None

    def reset(self) -> None:
        """The next observation's state becomes the centre of the motion."""
        self._center = None

    def predict_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        state = np.asarray(observation["observation.state"], dtype=np.float64)
        if state.shape != (len(self.state_names),):
            raise ValueError(
                f"observation.state has shape {state.shape}, expected "
                f"({len(self.state_names)},) ({self.state_names})"
            )
        current = state[self._action_index]
        if self._center is None:
            self._center = current.copy()
        steps = np.arange(self.chunk_size, dtype=np.float64) / self.fps
        goal = MOTIONS[self.motion](
            self._center, self.amplitude, self.period_s, self.clock() + steps
        )
        step = self.max_speed / self.fps
        rows = np.empty((self.chunk_size, len(current)))
        rows[0] = current
        for i in range(1, self.chunk_size):
            rows[i] = rows[i - 1] + np.clip(goal[i] - rows[i - 1], -step, step)
        return rows.astype(np.float32)

    # --- checkpoints -----------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "type": POLICY_TYPE,
            IMPLEMENTATION_KEY: f"lerobot_ros/{__version__}",
            "motion": self.motion,
            "fps": self.fps,
            "chunk_size": self.chunk_size,
            "state_names": self.state_names,
            "action_names": self.action_names,
            "image_keys": self.image_keys,
            "amplitude": self.amplitude.tolist(),
            "period_s": self.period_s,
            "max_speed": self.max_speed.tolist(),
        }

    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_NAME).write_text(json.dumps(self.config(), indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str = "cpu") -> ScriptedPolicy:
        """`device` is accepted for the POLICIES interface; nothing runs on it."""
        path = Path(directory) / CONFIG_NAME
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"checkpoint {path}: {exc}") from exc
        options = {k: v for k, v in raw.items() if k not in ("type", IMPLEMENTATION_KEY)}
        unknown = sorted(set(options) - set(DEFAULTS))
        if unknown:
            raise CheckpointError(f"checkpoint {path}: unknown keys {unknown}")
        try:
            return cls(**options)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {path}: {exc}") from exc


def save_scripted_policy(directory: str | Path, **options: Any) -> Path:
    """Write a scripted-policy checkpoint (config.json only) with DEFAULTS updated by
    `options`; load it with load_policy(directory) or `policy:=<directory>`."""
    return ScriptedPolicy(**options).save_pretrained(directory)
