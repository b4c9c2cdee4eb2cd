"""The touch-the-cube task as a gymnasium env, without ROS: seeded resets, LeRobot-unit actions
that move the sim arm, the touch criterion, and errors for bad actions."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from lerobot_ros.core.sim.scene import CUBE_NAME
from lerobot_ros.core.sim.task import STATE_KEY, TouchCubeEnv, TouchCubeTask


@pytest.fixture(scope="module")
def env():
    env = TouchCubeEnv(task=TouchCubeTask(max_steps=20))
    yield env
    env.close()


def test_reset_is_seeded_and_observations_match_the_spaces(env: TouchCubeEnv) -> None:
    assert isinstance(env, gymnasium.Env)
    obs, info = env.reset(seed=3)
    cube = info["cube"].copy()
    assert env.observation_space.contains(obs)
    assert env.reset(seed=3)[1]["cube"] == pytest.approx(cube)
    assert env.reset(seed=4)[1]["cube"] != pytest.approx(cube)
    task = env.task
    assert task.x_range[0] <= cube[0] <= task.x_range[1]
    assert task.y_range[0] <= cube[1] <= task.y_range[1]
    assert not info["success"]
    assert obs[env.image_key].shape == (96, 128, 3) and obs[env.image_key].std() > 5


def test_actions_in_lerobot_units_move_the_arm_and_episodes_truncate(env: TouchCubeEnv) -> None:
    obs, _ = env.reset(seed=0)
    target = obs[STATE_KEY].copy()
    target[0] += 20.0  # shoulder_pan +20 degrees
    for _ in range(20):
        obs, reward, terminated, truncated, info = env.step(target)
        if terminated or truncated:
            break
    assert obs[STATE_KEY][0] == pytest.approx(target[0], abs=2.0)
    assert truncated and not terminated and reward == 0.0 and info["steps"] == 20
    with pytest.raises(ValueError, match="6 finite values"):
        env.step(np.array([0.0, np.nan, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="6 finite values"):
        env.step(np.zeros(5))


def test_touching_the_cube_is_success(env: TouchCubeEnv) -> None:
    env.reset(seed=1)
    assert not env.success()
    scene = env.arm.scene
    scene.set_object(CUBE_NAME, env.tip_position())  # the cube where the gripper is
    scene.forward()
    assert env.success()
    _, reward, terminated, _, info = env.step(env._observation()[STATE_KEY])
    assert terminated and reward == 1.0 and info["success"]


def test_offline_evaluation_of_a_checkpoint(tmp_path, capsys) -> None:
    """The eval entry point runs a real (untrained) ACT checkpoint on the env and reports."""
    import json

    from lerobot_ros.core.sim.evaluate import main
    from lerobot_ros.testing.policies import tiny_act_checkpoint

    ckpt = tiny_act_checkpoint(tmp_path / "ckpt", chunk_size=10, n_action_steps=5)
    out = tmp_path / "eval"
    argv = [str(ckpt), "--episodes", "2", "--max-steps", "12", "--output-dir", str(out)]
    assert main(argv) == 0
    assert "success rate" in capsys.readouterr().out
    report = json.loads((out / "eval.json").read_text())
    assert report["episodes"] == 2 and len(report["lengths"]) == 2
    assert all(1 <= n <= 12 for n in report["lengths"])
    assert (out / "outcomes.svg").read_text().startswith("<svg")
    assert main([str(tmp_path / "nothing")]) == 2
