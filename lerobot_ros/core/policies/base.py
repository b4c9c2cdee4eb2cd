"""The chunk-policy interface every policy implements, and loading one from a checkpoint.

The boundary is LeRobot's, not ROS's: observations and actions are in LeRobot units and names
(degrees, gripper 0-100, `observation.state` ordered as `shoulder_pan.pos`, ...), images are
RGB uint8 (H, W, 3). The policy runner node converts from and to ROS units with the robot's
DatasetProfile, in one place, so a policy never sees radians.

A checkpoint is a directory in LeRobot's `pretrained_model` layout: `config.json` (its `type`
picks the policy class from POLICIES), `model.safetensors`, plus whatever the class keeps next
to them (normalization statistics as safetensors). No pickle anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lerobot_ros.core.registry import Registry

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# Marks checkpoints written by this package; upstream LeRobot checkpoints of the same `type`
# (e.g. "act") lack it and go to the upstream adapter instead.
IMPLEMENTATION_KEY = "lerobot_ros_implementation"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file, key or feature."""


@runtime_checkable
class ChunkPolicy(Protocol):
    """What the policy runner and rollout strategies call."""

    policy_id: str
    state_names: list[str]  # names of observation.state, e.g. ["shoulder_pan.pos", ...]
    action_names: list[str]  # names of action columns
    image_keys: list[str]  # e.g. ["observation.images.front"]
    chunk_size: int  # rows per predicted chunk
    fps: float  # rate the actions are meant for (the training dataset's fps)

    def predict_chunk(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """observation: "observation.state" (S,) float32 and each image key (H, W, 3) uint8 RGB.
        Returns (chunk_size, len(action_names)) float32 in LeRobot units."""
        ...

    def reset(self) -> None:
        """Forget any episode state (temporal ensembling buffers, RNN state, ...)."""
        ...


POLICIES: Registry[Any] = Registry("policy type")
POLICIES.lazy("act", "lerobot_ros.core.policies.act")
# A scripted policy (no network): for trying and testing the rollout graph without a checkpoint.
POLICIES.lazy("scripted", "lerobot_ros.core.policies.scripted")
# Upstream LeRobot policies (SmolVLA, pi0, ACT, ...) when `lerobot` is importable.
POLICIES.lazy("lerobot", "lerobot_ros.core.policies.upstream")


def read_config(directory: Path) -> dict[str, Any]:
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"checkpoint {directory}: missing {CONFIG_NAME}")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"checkpoint {path}: not valid JSON ({exc})") from exc
    if not isinstance(config, dict) or not isinstance(config.get("type"), str):
        raise CheckpointError(f"checkpoint {path}: no policy 'type' string")
    return config


def resolve_checkpoint(source: str | Path, *, revision: str | None = None) -> Path:
    """A local directory as is (a training output dir resolves to its latest checkpoint's
    pretrained_model); anything else that looks like `owner/name` is fetched from the Hub."""
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"checkpoint {path} is a file, expected a directory")
        for candidate in (
            path,
            path / "pretrained_model",
            path / "checkpoints" / "last" / "pretrained_model",
        ):
            if (candidate / CONFIG_NAME).is_file():
                return candidate
        raise CheckpointError(f"checkpoint {path}: missing {CONFIG_NAME}")
    text = str(source)
    if text.count("/") != 1 or text.startswith((".", "/", "~")):
        raise CheckpointError(f"checkpoint {text!r} is neither a directory nor a Hub repo id")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise CheckpointError(
            f"checkpoint {text!r} is not a local directory and huggingface_hub is not installed"
        ) from exc
    try:
        return Path(snapshot_download(repo_id=text, revision=revision))
    except Exception as exc:  # network, auth, offline cache miss: all mean "not available"
        raise CheckpointError(
            f"checkpoint {text!r}: not a local directory, and the Hub download failed: {exc}"
        ) from exc


def load_policy(
    source: str | Path, *, device: str = "cpu", revision: str | None = None
) -> ChunkPolicy:
    """Load a ChunkPolicy from a checkpoint directory or Hub repo id."""
    directory = resolve_checkpoint(source, revision=revision)
    config = read_config(directory)
    kind = config["type"] if config.get(IMPLEMENTATION_KEY) else "lerobot"
    if kind not in POLICIES:
        raise CheckpointError(
            f"checkpoint {directory}: policy type {kind!r} unknown (known: {POLICIES.names()})"
        )
    policy = POLICIES.get(kind).from_pretrained(directory, device=device)
    if not policy.policy_id:
        policy.policy_id = str(source)
    return policy
