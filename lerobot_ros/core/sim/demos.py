"""The scripted expert on the gymnasium env, without ROS: its own success rate, and a quick
offline demo dataset.

The official pipeline (lerobot_ros_closed_loop) records its demos through the ROS graph; this
path exists to measure the expert itself (it should never fail: a policy cannot be expected to
beat its teacher) and to iterate on learnability (image size, ACT config, steps) in minutes,
with datasets of the same layout and units the converter writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lerobot_ros.core.sim.evaluate import EvalReport
from lerobot_ros.core.sim.expert import ExpertConfig, TouchExpert
from lerobot_ros.core.sim.task import STATE_KEY, TouchCubeEnv, TouchCubeTask

TASK_TEXT = "touch the red cube"
ACTION_KEY = "action"


@dataclass
class ExpertEpisode:
    """One expert run: per-frame state, action (LeRobot units) and image, and the outcome."""

    seed: int
    success: bool
    touch_step: int | None  # control steps until the first touch (None: never)
    states: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)


def make_expert(
    env: TouchCubeEnv, config: ExpertConfig | None = None, robot_name: str = "so101"
) -> TouchExpert:
    """The expert for the env's robot (`robot_name`), homing to the env's start pose."""
    from lerobot_ros.core.robots import get_robot

    robot = get_robot(robot_name)
    return TouchExpert(
        robot.urdf_path(),
        env.joint_names,
        gripper_joint=robot.gripper_joint,
        home=env._initial,
        config=config,
    )


def expert_episode(
    env: TouchCubeEnv,
    expert: TouchExpert,
    seed: int,
    *,
    tail_steps: int = 0,
    keep_frames: bool = False,
) -> ExpertEpisode:
    """Reset `env` with `seed` and let the expert touch the cube; `tail_steps` more steps are
    taken after the first touch (a demo ends a little after the touch, as a recorded one
    does). The action of a frame is the command sent right after its observation."""
    obs, info = env.reset(seed=seed)
    motion = expert.touch(env.profile.from_lerobot(obs[STATE_KEY]), info["cube"])
    ep = ExpertEpisode(seed=seed, success=False, touch_step=None)
    remaining = None
    while remaining is None or remaining > 0:
        action = env.profile.to_lerobot(motion.command((env.steps + 1) / env.fps))
        if keep_frames:
            ep.states.append(obs[STATE_KEY])
            ep.actions.append(action)
            ep.images.append(obs[env.image_key])
        obs, _, terminated, truncated, info = env.step(action)
        if remaining is not None:
            remaining -= 1
        elif terminated:
            ep.success, ep.touch_step = True, int(info["steps"])
            remaining = tail_steps
        elif truncated:
            break
    return ep


def evaluate_expert(
    episodes: int = 50,
    *,
    seed: int = 100_000,
    task: TouchCubeTask | None = None,
    config: ExpertConfig | None = None,
    log: Callable[[str], None] = print,
) -> EvalReport:
    """The expert's success rate on the env, over the seeds a policy is evaluated on."""
    env = TouchCubeEnv(task=task)
    start = time.monotonic()
    try:
        expert = make_expert(env, config)
        results = [expert_episode(env, expert, seed + k) for k in range(episodes)]
    finally:
        env.close()
    success = [r.success for r in results]
    lengths = [r.touch_step or env.task.max_steps for r in results]
    for r in results:
        if not r.success:
            log(f"expert: seed {r.seed} failed")
    n_ok = sum(success)
    return EvalReport(
        checkpoint="scripted expert",
        episodes=episodes,
        successes=n_ok,
        success_rate=n_ok / episodes if episodes else 0.0,
        lengths=lengths,
        success=success,
        seed=seed,
        seconds=time.monotonic() - start,
    )


def write_expert_dataset(
    root: str | Path,
    episodes: int,
    *,
    seed: int = 0,
    fps: int = 30,
    width: int = 128,
    height: int = 96,
    tail_steps: int = 10,
    vcodec: str = "libsvtav1",
    config: ExpertConfig | None = None,
    repo_id: str = "local/touch_cube_offline",
    log: Callable[[str], None] = print,
) -> Path:
    """`episodes` expert demos (seeds seed, seed+1, ...) written straight from the env as a
    LeRobotDataset v3.0 with the converter's features; failed runs are skipped (and logged)."""
    from lerobot_ros.core.dataset.writer import LeRobotDatasetWriter

    env = TouchCubeEnv(fps=fps, width=width, height=height)
    names = env.profile.feature_names
    vector = {"dtype": "float32", "shape": [len(names)], "names": names}
    features = {
        ACTION_KEY: dict(vector),
        STATE_KEY: dict(vector),
        env.image_key: {
            "dtype": "video",
            "shape": [height, width, 3],
            "names": ["height", "width", "channels"],
        },
    }
    writer = LeRobotDatasetWriter(
        root, repo_id, fps, features, robot_type=env.profile.robot_type, vcodec=vcodec
    )
    try:
        expert = make_expert(env, config)
        k = 0
        while len(writer.episodes) < episodes:
            ep = expert_episode(env, expert, seed + k, tail_steps=tail_steps, keep_frames=True)
            k += 1
            if not ep.success:
                log(f"demo seed {ep.seed}: the expert missed; skipped")
                continue
            writer.add_episode(
                TASK_TEXT,
                {ACTION_KEY: np.stack(ep.actions), STATE_KEY: np.stack(ep.states)},
                {env.image_key: ep.images},
            )
        writer.finalize()
    except BaseException:
        writer.abort()
        raise
    finally:
        env.close()
    return Path(root)
