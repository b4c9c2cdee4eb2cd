"""Offline evaluation of a checkpoint on the touch-the-cube env, without ROS:

    lerobot_ros_eval ~/runs/act/checkpoints/last --episodes 50 --output-dir ~/runs/act/eval
    lerobot_ros_eval --expert --episodes 50      # the scripted expert itself, same seeds

Inference runs in simulated time through the same SyncEngine the ROS-free tests use: a chunk is
predicted when the previous one has been played, and `n_action_steps` rows of it are played
(ACT's action queue). Prints the success rate and episode lengths; writes eval.json and
outcomes.svg.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lerobot_ros.core.inference import SyncEngine
from lerobot_ros.core.policies.base import CheckpointError, ChunkPolicy, load_policy
from lerobot_ros.core.sim.task import TouchCubeEnv, TouchCubeTask


@dataclass
class EvalReport:
    checkpoint: str
    episodes: int
    successes: int
    success_rate: float
    lengths: list[int]
    success: list[bool]
    seed: int
    seconds: float


class _FirstRows:
    """Adapts a ChunkPolicy to the engines' Policy: the first `n` rows of each chunk."""

    def __init__(self, policy: ChunkPolicy, n: int) -> None:
        self.policy, self.n = policy, n

    def infer(self, observation: Any) -> np.ndarray:
        return self.policy.predict_chunk(observation)[: self.n]


def evaluate(
    policy: ChunkPolicy,
    *,
    episodes: int = 50,
    seed: int = 0,
    task: TouchCubeTask | None = None,
    n_action_steps: int | None = None,
    log: Callable[[str], None] = print,
) -> EvalReport:
    """Run `episodes` rollouts (seeds seed, seed+1, ...) and report."""
    shape = _image_shape(policy)
    env = TouchCubeEnv(task=task, fps=round(policy.fps), width=shape[1], height=shape[0])
    steps = n_action_steps or getattr(getattr(policy, "config", None), "n_action_steps", None)
    steps = min(int(steps or policy.chunk_size), policy.chunk_size)
    period = 1.0 / env.fps
    lengths: list[int] = []
    success: list[bool] = []
    start = time.monotonic()
    try:
        for k in range(episodes):
            obs, _ = env.reset(seed=seed + k)
            policy.reset()
            engine = SyncEngine(_FirstRows(policy, steps), period, steps)
            done = False
            while not done:
                action = engine.tick(env.steps * period, obs)
                assert action is not None  # sync never starves: it infers inside the tick
                obs, _, terminated, truncated, info = env.step(action)
                done = terminated or truncated
            lengths.append(int(info["steps"]))
            success.append(bool(info["success"]))
            log(
                f"rollout {k + 1}/{episodes}: {'success' if success[-1] else 'failure'} "
                f"after {lengths[-1]} steps"
            )
    finally:
        env.close()
    n_ok = sum(success)
    return EvalReport(
        checkpoint=policy.policy_id,
        episodes=episodes,
        successes=n_ok,
        success_rate=n_ok / episodes if episodes else 0.0,
        lengths=lengths,
        success=success,
        seed=seed,
        seconds=time.monotonic() - start,
    )


def _image_shape(policy: ChunkPolicy) -> tuple[int, int]:
    """(H, W) of the policy's camera input; the env renders at that size."""
    config = getattr(policy, "config", None)
    if config is not None and policy.image_keys:
        _, h, w = config.input_features[policy.image_keys[0]]["shape"]
        return int(h), int(w)
    return 96, 128


def write_report(report: EvalReport, output_dir: Path) -> None:
    from lerobot_ros.core.training.plot import outcomes_svg

    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "eval.json").write_text(json.dumps(asdict(report), indent=2))
    title = f"{report.successes}/{report.episodes} successes ({report.success_rate:.0%})"
    (output_dir / "outcomes.svg").write_text(
        outcomes_svg(report.lengths, report.success, title=title)
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lerobot_ros_eval", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "checkpoint", nargs="?", help="pretrained_model dir, training output dir or Hub id"
    )
    p.add_argument(
        "--expert", action="store_true", help="evaluate the scripted expert instead of a policy"
    )
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=100_000, help="seed of the first rollout")
    p.add_argument("--max-steps", type=int, default=TouchCubeTask.max_steps)
    p.add_argument("--n-action-steps", type=int, default=None, help="rows played per chunk")
    p.add_argument("--output-dir", default=None, help="write eval.json and outcomes.svg here")
    args = p.parse_args(argv)
    if args.episodes < 1:
        print(f"error: --episodes must be >= 1, got {args.episodes}", file=sys.stderr)
        return 2
    if (args.checkpoint is not None) == args.expert:
        print("error: give a checkpoint or --expert (not both)", file=sys.stderr)
        return 2
    task = TouchCubeTask(max_steps=args.max_steps)
    if args.expert:
        from lerobot_ros.core.sim.demos import evaluate_expert

        report = evaluate_expert(args.episodes, seed=args.seed, task=task)
    else:
        try:
            policy = load_policy(args.checkpoint)
        except CheckpointError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        report = evaluate(
            policy,
            episodes=args.episodes,
            seed=args.seed,
            task=task,
            n_action_steps=args.n_action_steps,
        )
    print(
        f"success rate {report.success_rate:.0%} ({report.successes}/{report.episodes}); "
        f"episode length mean {np.mean(report.lengths):.1f} steps; {report.seconds:.0f} s"
    )
    if args.output_dir:
        write_report(report, Path(args.output_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
