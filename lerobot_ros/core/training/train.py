"""Offline training loop: a LeRobotDataset v3.0 in, LeRobot-layout checkpoints out.

Single process, or data-parallel under `torchrun` (torch.distributed DDP, gloo on CPU, nccl on
GPU). `batch_size` is the GLOBAL batch: each of the N processes takes batch_size / N samples of
the same seeded permutation (DistributedSampler), so N processes see exactly the samples one
process would, step for step, and DDP's gradient averaging makes the update the same.

Deterministic for a given seed: weights are initialised from the seed, the sample order comes
from (seed, epoch), and a resumed run restores the optimizer, the RNG and the position in the
epoch, so N steps + resume + M steps ends where N + M steps straight would.

Layout of `output_dir` (as upstream LeRobot's):
    checkpoints/<step:06d>/pretrained_model/   config.json, model.safetensors, ... (load_policy)
    checkpoints/<step:06d>/training_state/     optimizer + RNG (safetensors), training_step.json
    checkpoints/last -> <step:06d>
    train_log.jsonl                            one JSON line per logged step
    loss.svg                                   the loss curve, redrawn at every checkpoint
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from lerobot_ros.core import paths
from lerobot_ros.core.registry import Registry
from lerobot_ros.core.training import state as st
from lerobot_ros.core.training.plot import write_loss_svg

LOG_NAME = "train_log.jsonl"
PLOT_NAME = "loss.svg"
TRAIN_CONFIG_NAME = "train_config.json"

# policy type -> builder(meta, options) -> a policy module with forward(batch) -> (loss, info),
# save_pretrained(dir), optimizer_param_groups(), normalizer, chunk_size; and the class's
# from_pretrained(dir) to resume.
BUILDERS: Registry[Any] = Registry("trainable policy")
BUILDERS.lazy("act", "lerobot_ros.core.training.builders")


@dataclass
class TrainConfig:
    dataset: str  # dataset root or Hub repo id
    output_dir: str
    policy: str = "act"
    policy_config: str | None = None  # YAML file or shipped name (act, act_small)
    overrides: dict[str, Any] = field(default_factory=dict)  # policy config fields
    steps: int = 1000
    batch_size: int = 8  # global, over all processes
    lr: float | None = None  # None = the policy config's
    grad_clip_norm: float = 10.0
    checkpoint_every: int = 500
    log_every: int = 10
    seed: int = 1000
    num_workers: int = 0
    device: str = "cpu"
    resume: bool = False
    episodes: list[int] | None = None
    progress: bool = True
    # Wall-clock budget (s) of this run's training loop: at the first step past it, training
    # stops there and checkpoints, as if `steps` had been that step (0 = no budget). For "the
    # best model N minutes of this machine give", whatever its speed.
    max_seconds: float = 0.0

    def validate(self) -> None:
        checks = [
            ("steps", self.steps >= 1),
            ("batch_size", self.batch_size >= 1),
            ("checkpoint_every", self.checkpoint_every >= 1),
            ("log_every", self.log_every >= 1),
            ("num_workers", self.num_workers >= 0),
            ("grad_clip_norm", self.grad_clip_norm >= 0),
            ("lr", self.lr is None or self.lr > 0),
            ("max_seconds", self.max_seconds >= 0),
        ]
        for name, ok in checks:
            if not ok:
                raise ValueError(
                    f"training option {name} has invalid value {getattr(self, name)!r}"
                )


@dataclass
class TrainResult:
    step: int
    checkpoint: Path  # the last pretrained_model dir
    losses: list[tuple[int, float]]
    policy: Any = None  # the trained policy object, as saved in `checkpoint`


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: str) -> _Dist:
    """Join the torchrun process group when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def load_policy_options(cfg: TrainConfig) -> dict[str, Any]:
    """The policy config YAML (a path, or a shipped name under config/) merged with overrides."""
    options: dict[str, Any] = {}
    if cfg.policy_config:
        path = Path(cfg.policy_config)
        if not path.suffix:
            path = paths.resolve(f"config/{cfg.policy_config}.yaml")
        elif not path.exists():
            path = paths.resolve(cfg.policy_config)
        if not path.is_file():
            raise ValueError(f"policy_config {cfg.policy_config!r}: no such file ({path})")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(
                f"policy_config {path}: expected a mapping, got {type(loaded).__name__}"
            )
        options.update(loaded)
    options.update(cfg.overrides)
    if cfg.lr is not None:
        options["optimizer_lr"] = cfg.lr
    return options


def _epoch_batches(n: int, per_rank: int, seed: int, epoch: int, dist: _Dist) -> list[list[int]]:
    """This rank's batches of one epoch: DistributedSampler's split of one seeded permutation."""
    from torch.utils.data import BatchSampler, DistributedSampler

    sampler = DistributedSampler(
        range(n), num_replicas=dist.world, rank=dist.rank, shuffle=True, seed=seed, drop_last=True
    )
    sampler.set_epoch(epoch)
    return list(BatchSampler(sampler, per_rank, drop_last=True))


def _batches(
    dataset: Any, cfg: TrainConfig, per_rank: int, dist: _Dist, start_step: int
) -> Iterator[dict]:
    """Endless batches from step `start_step` on: epoch = step // batches_per_epoch, and a
    resumed run skips the batches of its epoch it already trained on without loading them."""
    from torch.utils.data import DataLoader

    per_epoch = len(_epoch_batches(len(dataset), per_rank, cfg.seed, 0, dist))
    if per_epoch == 0:
        raise ValueError(
            f"batch_size {cfg.batch_size} is larger than the dataset ({len(dataset)} samples "
            f"over {dist.world} processes)"
        )
    epoch, skip = divmod(start_step, per_epoch)
    while True:
        batches = _epoch_batches(len(dataset), per_rank, cfg.seed, epoch, dist)[skip:]
        loader = DataLoader(dataset, batch_sampler=batches, num_workers=cfg.num_workers)
        yield from loader
        epoch, skip = epoch + 1, 0


def train(cfg: TrainConfig, *, log: Callable[[str], None] = print) -> TrainResult:
    """Train `cfg.policy` on `cfg.dataset`; see the module docstring for the guarantees."""
    from lerobot_ros.core.training.data import ChunkDataset, DatasetMeta, resolve_dataset

    cfg.validate()
    dist = _init_distributed(cfg.device)
    if cfg.batch_size % dist.world:
        raise ValueError(
            f"batch_size {cfg.batch_size} is not divisible by the {dist.world} processes"
        )
    per_rank = cfg.batch_size // dist.world
    out = Path(cfg.output_dir)
    resume_from: Path | None = None
    if cfg.resume:
        resume_from = st.last_checkpoint(out)
    elif (out / "checkpoints").exists():
        raise FileExistsError(
            f"output_dir {out} already has checkpoints; pass resume to continue, or another dir"
        )

    torch.manual_seed(cfg.seed)
    meta = DatasetMeta.load(resolve_dataset(cfg.dataset))
    builder = BUILDERS.get(cfg.policy)
    policy = builder(
        meta, load_policy_options(cfg), resume_from / st.PRETRAINED if resume_from else None
    )
    device = torch.device(cfg.device)
    policy.to(device)
    dataset = ChunkDataset(
        meta, horizon=policy.chunk_size, normalizer=policy.normalizer, episodes=cfg.episodes
    )
    optimizer = torch.optim.AdamW(
        policy.optimizer_param_groups(),
        weight_decay=getattr(policy.config, "optimizer_weight_decay", 0.0),
    )
    step = 0
    if resume_from is not None:
        step = st.load_step(resume_from / st.TRAINING_STATE)
        st.load_optimizer(optimizer, resume_from / st.TRAINING_STATE)
        st.load_rng(resume_from / st.TRAINING_STATE)
        if dist.main:
            log(f"resuming from {resume_from} at step {step}")
    model: torch.nn.Module = policy
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(
            policy, device_ids=[device.index] if device.type == "cuda" else None
        )

    losses = _read_log(out) if resume_from is not None and dist.main else []
    checkpoint = resume_from / st.PRETRAINED if resume_from else out
    bar = None
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        if cfg.progress and step < cfg.steps:
            from tqdm import tqdm

            bar = tqdm(
                total=cfg.steps, initial=step, desc="training", unit="step", dynamic_ncols=True
            )
        log(
            f"training {cfg.policy} on {meta.root} ({len(dataset)} samples, fps {meta.fps}) for "
            f"{cfg.steps} steps, batch {cfg.batch_size} over {dist.world} process(es), "
            f"seed {cfg.seed}"
        )
    policy.train()
    batches = _batches(dataset, cfg, per_rank, dist, step)
    t_last = t_start = time.monotonic()
    step_last = step
    out_of_time = False
    while step < cfg.steps and not out_of_time:
        batch = {
            k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in next(batches).items()
        }
        loss, info = model(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {step + 1}; stopping")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip_norm)
        optimizer.step()
        step += 1
        value = _global_mean(loss.detach(), dist)
        if cfg.max_seconds > 0:
            out_of_time = _any_rank(time.monotonic() - t_start >= cfg.max_seconds, dist)
        last = step == cfg.steps or out_of_time
        if dist.main:
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4f}")
            if step % cfg.log_every == 0 or last:
                now = time.monotonic()
                # info holds this process's own loss; "loss" is the mean over all processes.
                record = {**{k: float(v) for k, v in info.items()}, "step": step, "loss": value}
                record["lr"] = optimizer.param_groups[0]["lr"]
                record["s_per_step"] = (now - t_last) / max(1, step - step_last)
                t_last, step_last = now, step
                losses.append((step, value))
                with (out / LOG_NAME).open("a") as f:
                    f.write(json.dumps(record) + "\n")
        if step % cfg.checkpoint_every == 0 or last:
            if dist.main:
                checkpoint = _save(out, step, policy, optimizer, cfg, losses)
                if bar is not None:
                    bar.set_postfix(loss=f"{value:.4f}", saved=step)
            if dist.world > 1:
                torch.distributed.barrier()
    if bar is not None:
        bar.close()
    if dist.main and out_of_time:
        log(f"time budget of {cfg.max_seconds:g} s reached at step {step}")
    if dist.main:
        log(
            f"done: step {step}, loss {losses[-1][1] if losses else float('nan'):.4f}, {checkpoint}"
        )
    return TrainResult(step, checkpoint, losses, policy)


def _any_rank(flag: bool, dist: _Dist) -> bool:
    """True when `flag` is true on any process: every rank must stop at the same step."""
    if dist.world == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0])
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item() > 0)


def _global_mean(value: torch.Tensor, dist: _Dist) -> float:
    if dist.world > 1:
        value = value.clone()
        torch.distributed.all_reduce(value)
        value /= dist.world
    return float(value)


def _save(
    out: Path,
    step: int,
    policy: Any,
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig,
    losses: list[tuple[int, float]],
) -> Path:
    """Write checkpoints/<step>/ completely, then move `last` to it."""
    ckpt = st.checkpoint_dir(out, step)
    pretrained = ckpt / st.PRETRAINED
    training = ckpt / st.TRAINING_STATE
    pretrained.mkdir(parents=True, exist_ok=True)
    training.mkdir(parents=True, exist_ok=True)
    policy.save_pretrained(pretrained)
    (pretrained / TRAIN_CONFIG_NAME).write_text(json.dumps(asdict(cfg), indent=2, default=str))
    st.save_optimizer(optimizer, training)
    st.save_rng(training)
    st.save_step(training, step)
    st.point_last(out, step)
    if losses:
        write_loss_svg(out / PLOT_NAME, [s for s, _ in losses], [v for _, v in losses])
    return pretrained


def _read_log(out: Path) -> list[tuple[int, float]]:
    path = out / LOG_NAME
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
            rows.append((int(rec["step"]), float(rec["loss"])))
        except (ValueError, KeyError):
            continue
    return rows
