"""Training state on disk without pickle: optimizer tensors and RNG states as safetensors, the
rest as JSON, in LeRobot's layout (checkpoints/<step>/{pretrained_model,training_state}/)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

PRETRAINED = "pretrained_model"
TRAINING_STATE = "training_state"
OPTIMIZER_STATE = "optimizer_state.safetensors"
OPTIMIZER_GROUPS = "optimizer_param_groups.json"
RNG_STATE = "rng_state.safetensors"
STEP_FILE = "training_step.json"
LAST = "last"


class TrainingStateError(ValueError):
    """A training state that cannot be resumed; the message names the file and what is wrong."""


def checkpoint_dir(output_dir: Path, step: int) -> Path:
    return output_dir / "checkpoints" / f"{step:06d}"


def save_optimizer(optimizer: torch.optim.Optimizer, directory: Path) -> None:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    save_file(tensors, str(directory / OPTIMIZER_STATE))
    groups = {"param_groups": state["param_groups"], "scalars": scalars}
    (directory / OPTIMIZER_GROUPS).write_text(json.dumps(groups, indent=2))


def load_optimizer(optimizer: torch.optim.Optimizer, directory: Path) -> None:
    for name in (OPTIMIZER_STATE, OPTIMIZER_GROUPS):
        if not (directory / name).is_file():
            raise TrainingStateError(f"cannot resume: {directory / name} is missing")
    tensors = load_file(str(directory / OPTIMIZER_STATE))
    saved = json.loads((directory / OPTIMIZER_GROUPS).read_text())
    state: dict[int, dict[str, Any]] = {}
    for flat, value in tensors.items():
        _, index, name = flat.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for index, entry in saved.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entry)
    groups = saved["param_groups"]
    current = optimizer.state_dict()["param_groups"]
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in current]:
        raise TrainingStateError(
            f"cannot resume: {directory / OPTIMIZER_GROUPS} has parameter groups of sizes "
            f"{[len(g['params']) for g in groups]}, the policy has "
            f"{[len(g['params']) for g in current]}"
        )
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_rng(directory: Path) -> None:
    tensors = {"torch": torch.get_rng_state()}
    save_file(tensors, str(directory / RNG_STATE))


def load_rng(directory: Path) -> None:
    path = directory / RNG_STATE
    if not path.is_file():
        raise TrainingStateError(f"cannot resume: {path} is missing")
    torch.set_rng_state(load_file(str(path))["torch"])


def save_step(directory: Path, step: int) -> None:
    (directory / STEP_FILE).write_text(json.dumps({"step": step}))


def load_step(directory: Path) -> int:
    path = directory / STEP_FILE
    try:
        step = json.loads(path.read_text())["step"]
    except (OSError, ValueError, KeyError) as exc:
        raise TrainingStateError(f"cannot resume: {path} unreadable ({exc})") from exc
    if not isinstance(step, int) or step < 0:
        raise TrainingStateError(f"cannot resume: {path} has step {step!r}")
    return step


def point_last(output_dir: Path, step: int) -> None:
    """checkpoints/last -> <step>, replaced atomically so a crash never leaves it dangling."""
    link = output_dir / "checkpoints" / LAST
    tmp = link.with_name(f".{LAST}.tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(f"{step:06d}", tmp)
    tmp.replace(link)


def last_checkpoint(output_dir: Path) -> Path:
    link = output_dir / "checkpoints" / LAST
    if not link.exists():
        raise TrainingStateError(f"cannot resume: no checkpoint at {link}")
    return link.resolve()
