"""The scripted touch-the-cube expert and the task's trials, without ROS: the expert touches the
cube on the eval seeds with the same timing every time, a trial seeded like an env reset places
the same cube, homing ends at home, the offline demo writer makes a converter-shaped dataset,
and the training time budget stops and checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lerobot_ros.core.backends import SIM_TASKS
from lerobot_ros.core.graph import (
    EXPERT_SOURCE,
    RecordGraphArgs,
    RolloutGraphArgs,
    expert_record_graph,
    expert_rollout_graph,
)
from lerobot_ros.core.sim.demos import evaluate_expert, expert_episode, make_expert
from lerobot_ros.core.sim.task import STATE_KEY, TouchCubeEnv


@pytest.fixture(scope="module")
def env():
    env = TouchCubeEnv()
    yield env
    env.close()


def test_the_expert_touches_the_cube_with_the_same_timing(env: TouchCubeEnv) -> None:
    expert = make_expert(env)
    steps = []
    for seed in (100_000, 100_001, 100_002, 7):
        ep = expert_episode(env, expert, seed)
        assert ep.success, f"seed {seed}: the expert missed the cube"
        steps.append(ep.touch_step)
    # Consistent demos: every approach takes the same time, wherever the cube is.
    assert max(steps) - min(steps) <= 3, steps
    assert max(steps) <= round(expert.config.touch_s * env.fps)


def test_evaluate_expert_reports_every_episode() -> None:
    report = evaluate_expert(3, log=lambda _m: None)
    assert report.episodes == 3 and report.successes == 3 and report.success_rate == 1.0
    assert len(report.lengths) == 3 and report.checkpoint == "scripted expert"


def test_a_seeded_trial_places_the_cube_where_the_env_reset_does(env: TouchCubeEnv) -> None:
    _, info = env.reset(seed=42)
    cube = info["cube"].copy()
    env.reset(seed=1)
    trials = SIM_TASKS.create("touch_cube", env.arm.scene)
    assert trials.start(42) == pytest.approx(cube)
    assert trials.cube_position() == pytest.approx(cube)
    assert not trials.touching()


def test_homing_is_a_smooth_move_that_ends_at_home(env: TouchCubeEnv) -> None:
    expert = make_expert(env)
    start = np.array([0.5, -0.4, 0.3, 0.2, 0.1, 0.0])
    move = expert.home(start)
    assert move.command(0.0) == pytest.approx(start)
    assert move.command(move.duration) == pytest.approx(expert.home_position)
    samples = np.array([move.command(t) for t in np.linspace(0, move.duration, 60)])
    speed = np.abs(np.diff(samples, axis=0)).max() / (move.duration / 59)
    assert speed <= expert.config.home_speed * 1.05  # the peak speed it was planned for


def test_touch_motion_starts_at_the_measured_pose_and_ends_on_the_cube(env: TouchCubeEnv) -> None:
    obs, info = env.reset(seed=3)
    expert = make_expert(env)
    q0 = env.profile.from_lerobot(obs[STATE_KEY])
    motion = expert.touch(q0, info["cube"])
    assert motion.command(0.0) == pytest.approx(q0, abs=1e-3)
    tip = expert.tip(motion.command(motion.duration))
    assert tip[:2] == pytest.approx(info["cube"][:2], abs=0.005)
    assert motion.ik_failures == 0


def test_expert_graphs_make_the_expert_a_watchdog_source() -> None:
    record = {s.name: s for s in expert_record_graph(RecordGraphArgs(output_dir="/tmp/x"))}
    assert {"follower", "watchdog", "recorder", EXPERT_SOURCE} <= set(record)
    assert "leader" not in record and "teleop" not in record
    watchdog = record["watchdog"].parameters
    assert EXPERT_SOURCE in watchdog["sources"] and watchdog["active_source"] == EXPERT_SOURCE
    assert "/leader/joint_states" not in record["recorder"].parameters["topics"]
    rollout = {s.name: s for s in expert_rollout_graph(RolloutGraphArgs(policy="x"))}
    assert {"policy_runner", "chunk_player", "rollout", EXPERT_SOURCE} <= set(rollout)
    watchdog = rollout["watchdog"].parameters
    assert EXPERT_SOURCE in watchdog["sources"] and watchdog["active_source"] == "chunk_player"


def test_offline_demos_and_the_training_time_budget(tmp_path: Path) -> None:
    from lerobot_ros.core.sim.demos import write_expert_dataset
    from lerobot_ros.core.training.data import DatasetMeta
    from lerobot_ros.core.training.train import TrainConfig, train

    root = write_expert_dataset(tmp_path / "ds", 2, fps=30, width=64, height=48, log=print)
    meta = DatasetMeta.load(root)
    assert meta.info["total_episodes"] == 2
    assert meta.shape("observation.images.front") == (48, 64, 3)
    cfg = TrainConfig(
        dataset=str(root),
        output_dir=str(tmp_path / "train"),
        policy_config="act_touch",
        overrides={"dim_model": 32, "n_heads": 2, "dim_feedforward": 64, "latent_dim": 8},
        steps=1000,
        checkpoint_every=1000,
        progress=False,
        max_seconds=1e-3,
    )
    result = train(cfg, log=lambda _m: None)
    assert result.step == 1  # the budget ran out during the first step: stop, checkpoint
    assert (result.checkpoint / "model.safetensors").is_file()
    log = [json.loads(x) for x in (tmp_path / "train" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1]
    assert (tmp_path / "train" / "loss.svg").is_file()


def test_eval_command_evaluates_the_expert(tmp_path: Path, capsys) -> None:
    from lerobot_ros.core.sim.evaluate import main

    out = tmp_path / "eval"
    assert main(["--expert", "--episodes", "2", "--output-dir", str(out)]) == 0
    assert "success rate 100% (2/2)" in capsys.readouterr().out
    assert json.loads((out / "eval.json").read_text())["checkpoint"] == "scripted expert"
    assert main([]) == 2 and main(["ckpt", "--expert"]) == 2
    assert "not both" in capsys.readouterr().err
