"""Upstream LeRobot policies (SmolVLA, pi0, pi0.5, ACT, Diffusion, ...) behind ChunkPolicy.

A checkpoint written by LeRobot itself (`config.json` without IMPLEMENTATION_KEY, plus
`model.safetensors`, `policy_preprocessor.json` / `policy_postprocessor.json` and their
statistics) is loaded with LeRobot's own classes, so its normalization, tokenization and
device placement are exactly what it was trained with:

    config      = PreTrainedConfig.from_pretrained(dir)          (picks the class by `type`)
    policy      = get_policy_class(config.type).from_pretrained(dir, config=config)
    pre, post   = make_pre_post_processors(config, pretrained_path=dir, ...)
    chunk       = post(policy.predict_action_chunk(pre(batch)))

`lerobot` needs Python >= 3.12, this package supports older interpreters: LeRobot is imported
inside the functions only, so this module imports anywhere (the core isolation test imports
every core module) and loading without LeRobot raises a CheckpointError that says so.

Upstream checkpoints carry feature shapes but not feature names nor the dataset's fps: the
names default to LeRobot's SO-100/SO-101/Koch motor order (`shoulder_pan.pos` ... `gripper.pos`)
when the state and action have 6 values, and fps to LeRobot's recording default (30); pass
others to `from_pretrained`, or set the attributes, for other robots.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lerobot_ros.core.policies.base import POLICIES, CheckpointError
from lerobot_ros.core.robots import SO_ARM_JOINTS

STATE_KEY = "observation.state"
ACTION_KEY = "action"
PREPROCESSOR = "policy_preprocessor"  # LeRobot's POLICY_PREPROCESSOR_DEFAULT_NAME (+ .json)
POSTPROCESSOR = "policy_postprocessor"
DEFAULT_FPS = 30.0  # lerobot-record's default; upstream configs do not store it
DEFAULT_NAMES = [f"{j}.pos" for j in SO_ARM_JOINTS]
REQUIREMENT = "the `lerobot` package (pip install lerobot), which needs Python >= 3.12"


def _lerobot_api() -> tuple[Any, Any, Any]:
    """(PreTrainedConfig, get_policy_class, make_pre_post_processors), or CheckpointError."""
    try:
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors
    except ImportError as exc:
        here = ".".join(map(str, sys.version_info[:3]))
        raise CheckpointError(
            f"an upstream LeRobot checkpoint needs {REQUIREMENT}; this is Python {here} "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    return PreTrainedConfig, get_policy_class, make_pre_post_processors


def _step_names(directory: Path, pipeline: str) -> list[str]:
    """Registry names of the steps of a saved processor pipeline (to override only those that
    exist: LeRobot rejects overrides for absent steps)."""
    path = directory / f"{pipeline}.json"
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {directory}: missing {path.name} (checkpoints from LeRobot < 0.4 lack "
            "processors; convert them with LeRobot's migrate_policy_normalization)"
        )
    try:
        steps = json.loads(path.read_text()).get("steps", [])
    except (json.JSONDecodeError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint {path}: not a processor pipeline ({exc})") from exc
    return [s.get("registry_name", "") for s in steps if isinstance(s, dict)]


def _names(given: Sequence[str] | None, shape: Sequence[int] | None, what: str) -> list[str]:
    size = int(shape[0]) if shape else 0
    if given is not None:
        names = list(given)
    elif size == len(DEFAULT_NAMES):
        names = list(DEFAULT_NAMES)
    else:
        raise CheckpointError(
            f"upstream checkpoint: {what} has {size} values and no names; pass {what}_names"
        )
    if len(names) != size:
        raise CheckpointError(f"upstream checkpoint: {len(names)} {what} names for {size} values")
    return names


@POLICIES.register("lerobot")
class UpstreamPolicy:
    """A LeRobot `PreTrainedPolicy` with its pre/post processors, as a ChunkPolicy.

    `task` is the instruction text that language-conditioned policies (SmolVLA, pi0) read; the
    policy runner sets it from its `task` parameter.
    """

    def __init__(
        self,
        policy: Any,
        preprocessor: Any,
        postprocessor: Any,
        *,
        device: str,
        state_names: list[str],
        action_names: list[str],
        image_keys: list[str],
        chunk_size: int,
        fps: float = DEFAULT_FPS,
        policy_id: str = "",
        task: str = "",
        robot_type: str = "",
    ) -> None:
        self.policy = policy
        self.preprocessor = preprocessor
        self.postprocessor = postprocessor
        self.device = device
        self.state_names = state_names
        self.action_names = action_names
        self.image_keys = image_keys
        self.chunk_size = chunk_size
        self.fps = fps
        self.policy_id = policy_id
        self.task = task
        self.robot_type = robot_type

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        device: str = "cpu",
        *,
        state_names: Sequence[str] | None = None,
        action_names: Sequence[str] | None = None,
        fps: float = DEFAULT_FPS,
    ) -> UpstreamPolicy:
        """Load an upstream checkpoint directory; CheckpointError names what is wrong."""
        directory = Path(directory)
        pretrained_config, get_policy_class, make_pre_post_processors = _lerobot_api()
        pre_steps = _step_names(directory, PREPROCESSOR)
        post_steps = _step_names(directory, POSTPROCESSOR)
        try:
            config = pretrained_config.from_pretrained(str(directory))
            config.device = device
            policy = get_policy_class(config.type).from_pretrained(str(directory), config=config)
            pre_overrides = {"device_processor": {"device": device}}
            post_overrides = {"device_processor": {"device": "cpu"}}  # actions come back to numpy
            preprocessor, postprocessor = make_pre_post_processors(
                config,
                pretrained_path=str(directory),
                preprocessor_overrides={k: v for k, v in pre_overrides.items() if k in pre_steps},
                postprocessor_overrides={
                    k: v for k, v in post_overrides.items() if k in post_steps
                },
            )
        except CheckpointError:
            raise
        except Exception as exc:  # LeRobot's own errors: config, weights, processors
            raise CheckpointError(
                f"checkpoint {directory}: LeRobot could not load it ({type(exc).__name__}: {exc})"
            ) from exc
        state = config.robot_state_feature
        action = config.action_feature
        if action is None:
            raise CheckpointError(f"checkpoint {directory}: the policy has no '{ACTION_KEY}'")
        wrapper = cls(
            policy,
            preprocessor,
            postprocessor,
            device=device,
            state_names=[] if state is None else _names(state_names, state.shape, "state"),
            action_names=_names(action_names, action.shape, "action"),
            image_keys=list(config.image_features),
            chunk_size=int(getattr(config, "chunk_size", None) or config.n_action_steps),
            fps=fps,
        )
        wrapper.reset()
        return wrapper

    def batch(self, observation: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """LeRobot's inference batch (as its prepare_observation_for_inference builds it):
        tensors with a batch dimension of 1, images float CHW in [0, 1], plus task text and
        robot type."""
        import torch

        out: dict[str, Any] = {}
        for key in ([STATE_KEY] if self.state_names else []) + self.image_keys:
            if key not in observation:
                raise ValueError(f"observation lacks {key!r}")
            x = torch.from_numpy(np.ascontiguousarray(observation[key]))
            if key in self.image_keys:
                x = x.to(torch.float32).div_(255.0).permute(2, 0, 1).contiguous()
            else:
                x = x.to(torch.float32)
            out[key] = x.unsqueeze(0).to(self.device)
        out["task"] = self.task
        out["robot_type"] = self.robot_type
        return out

    def predict_chunk(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """(chunk, A) float32 actions in LeRobot units: the whole predicted chunk, unnormalized."""
        import torch

        with torch.inference_mode():
            batch = self.preprocessor(self.batch(observation))
            chunk = self.policy.predict_action_chunk(batch)  # (1, H, A), normalized
            if chunk.ndim == 2:
                chunk = chunk.unsqueeze(0)
            # The postprocessor works on (B, A) actions: the H rows go through as one batch.
            actions = self.postprocessor(chunk[0])
        return np.asarray(actions.detach().cpu().numpy(), dtype=np.float32)

    def reset(self) -> None:
        """Clears upstream's per-episode queues (SmolVLA fills them in predict_action_chunk)."""
        self.policy.reset()
