"""Closed loop in simulation, in one command: scripted demos recorded through ROS -> dataset ->
ACT trained on the CPU -> rollouts through the rollout graph -> success rate.

    lerobot_ros_closed_loop --output-dir out --demos 50 --train-minutes 30 --rollouts 50
    lerobot_ros_closed_loop --output-dir out --fast      # every stage, small: ~1 min

Stages (each reported in report.json with its outputs and duration):

1. demos: the expert record graph runs in this process (its own ROS_DOMAIN_ID, loopback-only
   discovery): for each demo the expert homes the arm through the watchdog, the sim follower
   starts trial `seed` (the cube placed as the env's reset(seed) places it), the recorder starts
   an episode, the expert touches the cube, and the episode stops shortly after the follower
   reports the touch on /follower/touching. Bags land in <out>/bags.
2. convert: the bags become a LeRobotDataset v3.0 (<out>/dataset), actions = /follower/command.
3. train: ACT (config/act_touch.yaml) on the CPU until the step or time budget; the checkpoint and
   loss.svg land in <out>/train (and the loss plot is copied to <out>/loss.svg).
4. rollouts: the rollout graph (strategy base: policy runner -> chunk player -> watchdog ->
   follower) plus the expert as a second watchdog source, used only to bring the arm home between
   trials. Per rollout: pause the chunk player, switch the watchdog to the expert, home, start
   trial `seed`, switch back to the chunk player, enable it; success = a touch reported through
   ROS within the time limit. Then the same checkpoint is evaluated offline on the gymnasium
   env (lerobot_ros_eval's evaluate(), no ROS) over the same seeds, for comparison.
5. report: report.json, rollouts.svg (success per rollout), loss.svg, and the printed
   "success rate X% (k/M)" with the episode lengths.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lerobot_ros.core.sim.demos import TASK_TEXT
from lerobot_ros.core.sim.task import TouchCubeTask
from lerobot_ros.testing.ros import isolate_this_process

REPO_ID = "local/touch_cube"
POLICY_CONFIG = "act_touch"


@dataclass
class ClosedLoopConfig:
    """Everything the command's options set."""

    output_dir: str
    demos: int = 50
    rollouts: int = 50
    train_minutes: float = 30.0
    train_steps: int = 100_000  # the step cap; the time budget usually ends training first
    batch_size: int = 8
    policy_config: str = POLICY_CONFIG
    overrides: dict[str, Any] = field(default_factory=dict)
    fps: int = 30
    width: int = 128
    height: int = 96
    demo_seed: int = 0
    rollout_seed: int = 100_000  # lerobot_ros_eval's default first seed: the same cubes
    time_limit_s: float = 8.0  # per rollout (TouchCubeTask.max_steps at 30 fps)
    demo_tail_s: float = 0.3  # recorded after the touch
    settle_s: float = 0.3  # after homing, before the next trial
    offline_eval: bool = True
    vcodec: str = "libsvtav1"
    train_seed: int = 1000
    checkpoint_every: int = 1000
    domain_id: int | None = None

    def validate(self) -> None:
        checks = {
            "demos": self.demos >= 1,
            "rollouts": self.rollouts >= 0,
            "train_minutes": self.train_minutes >= 0,
            "train_steps": self.train_steps >= 1,
            "time_limit_s": self.time_limit_s > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"{name} has invalid value {getattr(self, name)!r}")


@dataclass
class StageReport:
    name: str
    seconds: float = 0.0
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """One demo or rollout: its seed, whether the arm touched the cube, after how many steps."""

    seed: int
    success: bool
    steps: int
    cube: list[float] = field(default_factory=list)


# --- the probe side of the ROS graph --------------------------------------------------------------


class _Session:
    """Service calls and topic waits on a running GraphHarness, with errors that say what
    failed."""

    def __init__(self, harness: Any) -> None:
        from std_msgs.msg import Bool, String

        from lerobot_ros.nodes import qos

        self.h = harness
        self.touching = harness.inbox(Bool, "/follower/touching", qos.LATCHED)
        self.expert_state = harness.inbox(String, "/expert/state", qos.LATCHED)

    def call(self, srv: Any, name: str, request: Any, timeout: float = 10.0) -> Any:
        res = self.h.call(srv, name, request, timeout)
        if not res.success:
            raise RuntimeError(f"{name} failed: {res.message}")
        return res

    @staticmethod
    def wait_for(inbox: Any, since: int, predicate: Callable[[Any], bool], timeout: float) -> bool:
        """True once a message received after the first `since` ones satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        while True:
            if any(predicate(m) for m in inbox.messages()[since:]):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)

    def expert(self, motion: str, timeout: float = 20.0) -> None:
        """Run an expert motion (home | touch) and wait until it is done."""
        from std_srvs.srv import Trigger

        since = len(self.expert_state)
        self.call(Trigger, f"/expert/{motion}", Trigger.Request())
        if not self.wait_for(
            self.expert_state, since, lambda m: m.data == f"{motion} done", timeout
        ):
            raise RuntimeError(f"expert {motion} not done within {timeout} s")

    def start_motion(self, motion: str) -> None:
        from std_srvs.srv import Trigger

        self.call(Trigger, f"/expert/{motion}", Trigger.Request())

    def home(self, settle_s: float) -> None:
        self.expert("home")
        time.sleep(settle_s)  # the servo reaches the last setpoint

    def start_trial(self, seed: int) -> list[float]:
        """Place the cube for `seed`; returns its position once nothing touches it."""
        from lerobot_msgs.srv import StartTrial

        res = self.call(StartTrial, "/follower/start_trial", StartTrial.Request(seed=seed))
        if not self.h.graph.context.ok() or not _wait_latest(
            self.touching, lambda m: not m.data, 5.0
        ):
            raise RuntimeError(f"trial {seed}: the arm still touches the cube after homing")
        return [float(v) for v in res.object_position]

    def set_source(self, source: str) -> None:
        from lerobot_msgs.srv import SetActiveSource

        self.call(
            SetActiveSource, "/watchdog/set_active_source", SetActiveSource.Request(source=source)
        )

    def set_player(self, enabled: bool) -> None:
        from std_srvs.srv import SetBool

        self.call(SetBool, "/chunk_player/set_enabled", SetBool.Request(data=enabled))


def _wait_latest(inbox: Any, predicate: Callable[[Any], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = inbox.last()
        if last is not None and predicate(last):
            return True
        time.sleep(0.005)
    return False


def _camera_sized(specs: list[Any], width: int, height: int, fps: int) -> list[Any]:
    """The graph's cameras at the dataset's image size (small images: fast rendering and
    training; the converter keeps the recorded size)."""
    camera = {"width": width, "height": height, "fps": float(fps)}
    return [
        dataclasses.replace(s, parameters={**s.parameters, **camera})
        if s.executable == "camera"
        else s
        for s in specs
    ]


# --- stages --------------------------------------------------------------------------------------


def record_demos(cfg: ClosedLoopConfig, domain_id: int, log: Callable[[str], None]) -> StageReport:
    """Stage 1: `cfg.demos` expert demos through the ROS record graph, as bags."""
    from lerobot_msgs.srv import DiscardEpisode, StartEpisode, StopEpisode
    from lerobot_ros.core.graph import RecordGraphArgs, expert_record_graph
    from lerobot_ros.core.sim.expert import ExpertConfig
    from lerobot_ros.testing.graph import GraphHarness

    out = Path(cfg.output_dir)
    bags = out / "bags"
    specs = _camera_sized(
        expert_record_graph(RecordGraphArgs(output_dir=str(bags))), cfg.width, cfg.height, cfg.fps
    )
    touch_timeout = ExpertConfig().touch_s + 3.0
    stage = StageReport("demos")
    demos: list[Outcome] = []
    attempts = 0
    with GraphHarness(specs, domain_id) as h:
        s = _Session(h)
        rec = h.nodes["recorder"]
        h.wait(lambda: not rec.pending, 30.0, "the recorder to find its topics")
        image = "/cameras/front/image_raw"
        h.wait(lambda: rec.writer.stats()[image].idle > 3, 30.0, "camera images")
        h.wait(lambda: len(s.expert_state) > 0, 30.0, "the expert")
        while len(demos) < cfg.demos:
            seed = cfg.demo_seed + attempts
            attempts += 1
            if attempts > 2 * cfg.demos + 5:
                raise RuntimeError(f"only {len(demos)} of {cfg.demos} demos touched the cube")
            s.home(cfg.settle_s)
            cube = s.start_trial(seed)
            time.sleep(0.1)  # the expert and the camera see the cube's new pose (100 Hz)
            since = len(s.touching)
            s.call(StartEpisode, "/recorder/start_episode", StartEpisode.Request(task=TASK_TEXT))
            t0 = time.monotonic()
            s.start_motion("touch")
            touched = s.wait_for(s.touching, since, lambda m: m.data, touch_timeout)
            steps = round((time.monotonic() - t0) * cfg.fps)
            if touched:
                time.sleep(cfg.demo_tail_s)
                s.call(StopEpisode, "/recorder/stop_episode", StopEpisode.Request())
                demos.append(Outcome(seed, True, steps, cube))
                log(f"demo {len(demos)}/{cfg.demos} (seed {seed}): touched after {steps} steps")
            else:
                s.call(DiscardEpisode, "/recorder/discard_episode", DiscardEpisode.Request())
                log(f"demo seed {seed}: no touch within {touch_timeout:g} s; discarded")
        if not rec.writer.flush(30.0):
            raise RuntimeError("the recorder did not flush its bags within 30 s")
    paths = sorted(str(p) for p in bags.glob("*/episode_*"))
    stage.outputs = {
        "bags": paths,
        "demos": [asdict(d) for d in demos],
        "attempts": attempts,
    }
    return stage


def convert(cfg: ClosedLoopConfig, bags: Sequence[str], log: Callable[[str], None]) -> StageReport:
    """Stage 2: bags -> LeRobotDataset v3.0."""
    from lerobot_ros.core.dataset.convert import convert_bags

    out = Path(cfg.output_dir) / "dataset"
    report = convert_bags(bags, out, REPO_ID, fps=cfg.fps, vcodec=cfg.vcodec, log=lambda _m: None)
    if len(report.converted) != cfg.demos:
        raise RuntimeError(
            f"{len(report.converted)} of {cfg.demos} demos converted: "
            + "; ".join(str(e) for e in report.episodes if e.status != "converted")
        )
    frames = sum(e.frames for e in report.converted)
    log(f"dataset {out}: {len(report.converted)} episodes, {frames} frames")
    return StageReport(
        "convert",
        outputs={"dataset": str(out), "episodes": len(report.converted), "frames": frames},
    )


def train_policy(cfg: ClosedLoopConfig, dataset: str, log: Callable[[str], None]) -> StageReport:
    """Stage 3: ACT on the CPU until the step cap or the time budget, whichever comes first."""
    import torch

    from lerobot_ros.core.training.train import PLOT_NAME, TrainConfig, train

    out = Path(cfg.output_dir) / "train"
    torch.set_num_threads(os.cpu_count() or 1)
    train_cfg = TrainConfig(
        dataset=dataset,
        output_dir=str(out),
        policy_config=cfg.policy_config,
        overrides=dict(cfg.overrides),
        steps=cfg.train_steps,
        batch_size=cfg.batch_size,
        checkpoint_every=cfg.checkpoint_every,
        log_every=max(1, min(25, cfg.train_steps // 10)),
        seed=cfg.train_seed,
        progress=False,
        max_seconds=60.0 * cfg.train_minutes,
    )
    result = train(train_cfg, log=log)
    plot = Path(cfg.output_dir) / "loss.svg"
    shutil.copyfile(out / PLOT_NAME, plot)
    return StageReport(
        "train",
        outputs={
            "checkpoint": str(result.checkpoint),
            "steps": result.step,
            "final_loss": result.losses[-1][1] if result.losses else None,
            "loss_plot": str(plot),
        },
    )


def run_rollouts(
    cfg: ClosedLoopConfig, checkpoint: str, domain_id: int, log: Callable[[str], None]
) -> StageReport:
    """Stage 4a: `cfg.rollouts` rollouts of the checkpoint through the rollout graph."""
    from lerobot_msgs.msg import ActionChunk
    from lerobot_ros.core.graph import EXPERT_SOURCE, RolloutGraphArgs, expert_rollout_graph
    from lerobot_ros.core.policies.base import load_policy
    from lerobot_ros.nodes import qos
    from lerobot_ros.testing.graph import GraphHarness

    policy = load_policy(checkpoint)
    n_action_steps = int(getattr(policy.config, "n_action_steps", policy.chunk_size))
    rate_hz = cfg.fps / n_action_steps  # a new chunk every n_action_steps rows, as offline
    args = RolloutGraphArgs(policy=checkpoint, mode="rate", strategy="base")
    specs = []
    for spec in _camera_sized(expert_rollout_graph(args), cfg.width, cfg.height, cfg.fps):
        if spec.name == "policy_runner":
            extra = {"rate_hz": rate_hz, "publish_markers": False}
            spec = dataclasses.replace(spec, parameters={**spec.parameters, **extra})
        specs.append(spec)
    stage = StageReport("rollouts")
    outcomes: list[Outcome] = []
    with GraphHarness(specs, domain_id) as h:
        s = _Session(h)
        chunks = h.inbox(ActionChunk, "/policy/action_chunk", qos.COMMAND)
        h.wait(lambda: len(chunks) > 0, 60.0, "the policy's first chunk")
        h.wait(lambda: len(s.expert_state) > 0, 30.0, "the expert")
        for k in range(cfg.rollouts):
            seed = cfg.rollout_seed + k
            s.set_player(False)
            s.set_source(EXPERT_SOURCE)
            s.home(cfg.settle_s)
            cube = s.start_trial(seed)
            since = len(s.touching)
            s.set_source("chunk_player")
            s.set_player(True)
            t0 = time.monotonic()
            touched = s.wait_for(s.touching, since, lambda m: m.data, cfg.time_limit_s)
            elapsed = time.monotonic() - t0 if touched else cfg.time_limit_s
            outcomes.append(Outcome(seed, touched, round(elapsed * cfg.fps), cube))
            log(
                f"rollout {k + 1}/{cfg.rollouts} (seed {seed}): "
                f"{'success' if touched else 'failure'} after {outcomes[-1].steps} steps"
            )
        s.set_player(False)
    stage.outputs = {
        "outcomes": [asdict(o) for o in outcomes],
        "n_action_steps": n_action_steps,
        "inference_rate_hz": rate_hz,
    }
    return stage


def offline_eval(cfg: ClosedLoopConfig, checkpoint: str, log: Callable[[str], None]) -> StageReport:
    """Stage 4b: the same checkpoint on the gymnasium env, no ROS, the same seeds."""
    from lerobot_ros.core.policies.base import load_policy
    from lerobot_ros.core.sim.demos import evaluate_expert
    from lerobot_ros.core.sim.evaluate import evaluate, write_report

    policy = load_policy(checkpoint)
    task = TouchCubeTask(max_steps=round(cfg.time_limit_s * cfg.fps))
    report = evaluate(policy, episodes=cfg.rollouts, seed=cfg.rollout_seed, task=task, log=log)
    out = Path(cfg.output_dir) / "offline_eval"
    write_report(report, out)
    # The teacher on the same seeds: what the policy could at best reach.
    expert = evaluate_expert(cfg.rollouts, seed=cfg.rollout_seed, task=task, log=log)
    return StageReport(
        "offline_eval",
        outputs={
            "success_rate": report.success_rate,
            "successes": report.successes,
            "episodes": report.episodes,
            "lengths": report.lengths,
            "report": str(out / "eval.json"),
            "expert_success_rate": expert.success_rate,
            "expert_lengths": expert.lengths,
        },
    )


def summarize(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    n = len(outcomes)
    ok = [o for o in outcomes if o.success]
    lengths = [o.steps for o in ok]
    return {
        "rollouts": n,
        "successes": len(ok),
        "success_rate": len(ok) / n if n else 0.0,
        "success_lengths_mean": float(np.mean(lengths)) if lengths else None,
        "success_lengths_min": min(lengths) if lengths else None,
        "success_lengths_max": max(lengths) if lengths else None,
    }


def run(cfg: ClosedLoopConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """All stages; returns the report (also written to <output_dir>/report.json)."""
    from lerobot_ros.core.training.plot import outcomes_svg

    cfg.validate()
    out = Path(cfg.output_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"output dir {out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    domain_id = isolate_this_process(cfg.domain_id if cfg.domain_id is not None else None)
    report: dict[str, Any] = {"config": asdict(cfg), "domain_id": domain_id, "stages": {}}

    def stage(number: int, name: str, fn: Callable[[], StageReport]) -> StageReport:
        log(f"[{number}/5] {name}")
        t0 = time.monotonic()
        result = fn()
        result.seconds = round(time.monotonic() - t0, 1)
        report["stages"][result.name] = asdict(result)
        (out / "report.json").write_text(json.dumps(report, indent=2))
        log(f"[{number}/5] {name}: done in {result.seconds:.0f} s")
        return result

    demos = stage(
        1, "recording expert demos through ROS", lambda: record_demos(cfg, domain_id, log)
    )
    data = stage(2, "converting bags", lambda: convert(cfg, demos.outputs["bags"], log))
    trained = stage(
        3, "training ACT on the CPU", lambda: train_policy(cfg, data.outputs["dataset"], log)
    )
    checkpoint = trained.outputs["checkpoint"]
    rolled = stage(
        4,
        "rollouts through the ROS rollout graph",
        lambda: run_rollouts(cfg, checkpoint, domain_id, log),
    )
    outcomes = [Outcome(**o) for o in rolled.outputs["outcomes"]]
    summary = summarize(outcomes)
    report["result"] = summary
    if cfg.offline_eval and cfg.rollouts:
        offline = stage(
            4,
            "offline evaluation (gymnasium env, no ROS)",
            lambda: offline_eval(cfg, checkpoint, log),
        )
        report["result"]["offline_success_rate"] = offline.outputs["success_rate"]
        report["result"]["expert_offline_success_rate"] = offline.outputs["expert_success_rate"]
    rate, k, m = summary["success_rate"], summary["successes"], summary["rollouts"]
    title = f"{k}/{m} successes through ROS ({rate:.0%})"
    (out / "rollouts.svg").write_text(
        outcomes_svg([o.steps for o in outcomes], [o.success for o in outcomes], title=title)
    )
    report["plots"] = {"loss": str(out / "loss.svg"), "rollouts": str(out / "rollouts.svg")}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    log("[5/5] report: " + str(out / "report.json"))
    log(
        f"success rate {rate:.0%} ({k}/{m}) "
        f"through ROS after {trained.outputs['steps']} training steps "
        f"({trained.seconds / 60:.1f} min) on {cfg.demos} demos"
    )
    lengths = [o.steps for o in outcomes]
    log(f"episode lengths (steps at {cfg.fps} fps; failures at the limit): {lengths}")
    if "offline_success_rate" in report["result"]:
        offline_rate = report["result"]["offline_success_rate"]
        expert_rate = report["result"]["expert_offline_success_rate"]
        log(
            f"offline (gymnasium env, no ROS, same seeds): policy {offline_rate:.0%}, "
            f"scripted expert {expert_rate:.0%}"
        )
    return report


FAST = {"demos": 2, "rollouts": 2, "train_minutes": 0.0, "train_steps": 20, "time_limit_s": 3.0}


def main(argv: Sequence[str] | None = None) -> int:
    d = ClosedLoopConfig(output_dir="")
    p = argparse.ArgumentParser(
        prog="lerobot_ros_closed_loop", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--output-dir", required=True, help="everything goes here (must be empty)")
    p.add_argument("--demos", type=int, default=d.demos)
    p.add_argument("--rollouts", type=int, default=d.rollouts)
    p.add_argument(
        "--train-minutes", type=float, default=d.train_minutes, help="training time budget"
    )
    p.add_argument("--train-steps", type=int, default=d.train_steps, help="training step cap")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument(
        "--policy-config", default=d.policy_config, help="ACT config YAML or shipped name"
    )
    p.add_argument("--time-limit", type=float, default=d.time_limit_s, help="s per rollout")
    p.add_argument("--demo-seed", type=int, default=d.demo_seed)
    p.add_argument("--rollout-seed", type=int, default=d.rollout_seed)
    p.add_argument("--no-offline-eval", action="store_true")
    p.add_argument(
        "--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: a free pick)"
    )
    p.add_argument("--fast", action="store_true", help=f"a quick run of every stage: {FAST}")
    args = p.parse_args(argv)
    cfg = ClosedLoopConfig(
        output_dir=args.output_dir,
        demos=args.demos,
        rollouts=args.rollouts,
        train_minutes=args.train_minutes,
        train_steps=args.train_steps,
        batch_size=args.batch_size,
        policy_config=args.policy_config,
        time_limit_s=args.time_limit,
        demo_seed=args.demo_seed,
        rollout_seed=args.rollout_seed,
        offline_eval=not args.no_offline_eval,
        domain_id=args.domain_id,
    )
    if args.fast:
        cfg = dataclasses.replace(cfg, **FAST)
    try:
        run(cfg, log=lambda m: print(m, flush=True))
    except (ValueError, FileExistsError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
