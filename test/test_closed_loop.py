"""Issue 7, the closed loop in simulation: the fast variant of lerobot_ros_closed_loop runs every
stage (expert demos recorded through ROS, conversion, ACT training, rollouts through the rollout
graph with success seen through ROS, offline evaluation, report) and each leaves its output."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

from lerobot_ros.closed_loop import FAST, ClosedLoopConfig, main, run  # noqa: E402


def test_fast_closed_loop_runs_every_stage(tmp_path: Path, domain_id: int) -> None:
    out = tmp_path / "out"
    lines: list[str] = []
    cfg = dataclasses.replace(ClosedLoopConfig(output_dir=str(out), domain_id=domain_id), **FAST)
    report = run(cfg, log=lines.append)

    stages = report["stages"]
    assert list(stages) == ["demos", "convert", "train", "rollouts", "offline_eval"]
    # 1. demos through ROS: one bag per demo, each touched the cube (seen on /follower/touching)
    demos = stages["demos"]["outputs"]
    assert len(demos["bags"]) == FAST["demos"]
    assert all(Path(b, "metadata.yaml").is_file() for b in demos["bags"])
    assert [d["success"] for d in demos["demos"]] == [True] * FAST["demos"]
    assert all(40 <= d["steps"] <= 110 for d in demos["demos"]), demos["demos"]
    assert len({tuple(d["cube"]) for d in demos["demos"]}) == FAST["demos"]  # seeded cubes
    # 2. the dataset has the demos as episodes
    data = stages["convert"]["outputs"]
    info = json.loads(Path(data["dataset"], "meta", "info.json").read_text())
    assert info["total_episodes"] == FAST["demos"] == data["episodes"]
    assert info["features"]["observation.images.front"]["shape"] == [96, 128, 3]
    # 3. training: the step budget, a checkpoint, the loss curve
    trained = stages["train"]["outputs"]
    assert trained["steps"] == FAST["train_steps"]
    assert Path(trained["checkpoint"], "model.safetensors").is_file()
    assert (out / "loss.svg").read_text().startswith("<svg")
    # 4. rollouts through ROS, and the offline evaluation of the same checkpoint
    rollouts = stages["rollouts"]["outputs"]["outcomes"]
    assert [r["seed"] for r in rollouts] == [cfg.rollout_seed + k for k in range(FAST["rollouts"])]
    limit = round(cfg.time_limit_s * cfg.fps)
    assert all(1 <= r["steps"] <= limit for r in rollouts)
    offline = stages["offline_eval"]["outputs"]
    assert offline["episodes"] == FAST["rollouts"] and Path(offline["report"]).is_file()
    assert offline["expert_success_rate"] == 1.0  # the teacher, on the rollouts' seeds
    # 5. the report, the plots and the printed figure
    assert json.loads((out / "report.json").read_text())["result"] == report["result"]
    assert report["result"]["rollouts"] == FAST["rollouts"]
    assert (out / "rollouts.svg").read_text().startswith("<svg")
    assert any(line.startswith("success rate ") and "%" in line for line in lines)
    assert any(line.startswith("episode lengths") for line in lines)


def test_the_command_refuses_a_used_output_dir(tmp_path: Path, capsys) -> None:
    (tmp_path / "something").write_text("x")
    assert main(["--output-dir", str(tmp_path), "--fast"]) == 1
    assert "not empty" in capsys.readouterr().err
