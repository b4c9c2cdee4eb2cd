"""`train` console script (also `ros2 run lerobot_ros train`, and under torchrun for DDP):

train DATASET --output-dir runs/act --policy-config act_small --steps 2000
torchrun --nproc_per_node 2 -m lerobot_ros.core.training.cli DATASET --output-dir runs/ddp
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from lerobot_ros.core.training.train import TrainConfig, train


def _override(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set expects key=value, got {text!r}")
    return key, yaml.safe_load(value)


def _episodes(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--episodes expects 0,1,2; got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig(dataset="", output_dir="")
    p = argparse.ArgumentParser(prog="train", description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", help="LeRobotDataset v3.0 directory or Hub repo id (owner/name)")
    p.add_argument("--output-dir", required=True, help="checkpoints, log and loss plot go here")
    p.add_argument("--policy", default=d.policy, help="policy type (default: %(default)s)")
    p.add_argument(
        "--policy-config",
        default="act_small",
        help="policy config YAML, or a shipped name: act, act_small (default: %(default)s)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        type=_override,
        default=[],
        metavar="KEY=VALUE",
        help="override a policy config field, e.g. --set chunk_size=20 (repeatable)",
    )
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument(
        "--max-minutes",
        type=float,
        default=0.0,
        help="stop (and checkpoint) once training has run this long; 0 = no limit",
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch size")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the config's)")
    p.add_argument("--grad-clip-norm", type=float, default=d.grad_clip_norm)
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--num-workers", type=int, default=d.num_workers)
    p.add_argument("--device", default=d.device, help="cpu, cuda, cuda:1, ...")
    p.add_argument("--episodes", type=_episodes, default=None, help="train on these episodes")
    p.add_argument("--resume", action="store_true", help="continue from checkpoints/last")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--ros-args" in argv:  # `ros2 run` may append ROS arguments; training has none
        argv = argv[: argv.index("--ros-args")]
    args = build_parser().parse_args(argv)
    cfg = TrainConfig(
        dataset=args.dataset,
        output_dir=args.output_dir,
        policy=args.policy,
        policy_config=args.policy_config,
        overrides=dict(args.overrides),
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        grad_clip_norm=args.grad_clip_norm,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
        seed=args.seed,
        num_workers=args.num_workers,
        device=args.device,
        resume=args.resume,
        episodes=args.episodes,
        progress=not args.no_progress,
        max_seconds=60.0 * args.max_minutes,
    )
    try:
        train(cfg, log=lambda m: print(m, flush=True))
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
