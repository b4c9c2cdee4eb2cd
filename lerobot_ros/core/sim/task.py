"""The closed-loop task: touch the cube, in the MuJoCo SO-101 scene, as a gymnasium env.

The same physics (SimFollowerArm) and the same camera (SimCamera posed from the arm's joint
positions and the scene objects) as the ROS sim graph, so a policy trained on data recorded
through ROS sees the same observations here, without ROS. Observations and actions are in
LeRobot units (the dataset profile: degrees, gripper 0-100, `shoulder_pan.pos` order), i.e. what
a ChunkPolicy takes and returns.

Task: the cube is placed at a random spot of a reachable patch of the table; success when any
part of the arm touches it (a MuJoCo contact between an arm geom and the cube) within
`max_steps` control steps.

`CubeTrials` is the task on a live scene, shared by the env and the ROS sim follower node
(which offers it as `~/start_trial` and `~/touching` through the SIM_TASKS registry): a trial
seeded with `s` places the cube exactly where `TouchCubeEnv.reset(seed=s)` does, so a rollout
through ROS and an offline evaluation with the same seeds face the same cubes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium
import mujoco
import numpy as np

from lerobot_ros.core.backends import SIM_TASKS
from lerobot_ros.core.dataset.profile import DatasetProfile, so101_profile
from lerobot_ros.core.sim.arm import SimFollowerArm
from lerobot_ros.core.sim.camera import SimCamera
from lerobot_ros.core.sim.scene import CUBE_NAME, CUBE_SIZE, SimScene

STATE_KEY = "observation.state"


@dataclass(frozen=True)
class TouchCubeTask:
    """Where the cube may be, and what counts as touching it."""

    x_range: tuple[float, float] = (0.17, 0.27)  # m, base frame (forward)
    y_range: tuple[float, float] = (-0.10, 0.10)  # m (left +)
    max_steps: int = 240  # control steps (8 s at 30 fps)

    def sample_cube(self, rng: np.random.Generator) -> np.ndarray:
        x = rng.uniform(*self.x_range)
        y = rng.uniform(*self.y_range)
        return np.array([x, y, CUBE_SIZE / 2])


def touching(
    model: mujoco.MjModel, data: mujoco.MjData, cube_body: int, arm_bodies: set[int]
) -> bool:
    """True when a contact pairs the cube with a geom of the arm."""
    for i in range(data.ncon):
        contact = data.contact[i]
        b1 = int(model.geom_bodyid[contact.geom1])
        b2 = int(model.geom_bodyid[contact.geom2])
        if (b1 == cube_body and b2 in arm_bodies) or (b2 == cube_body and b1 in arm_bodies):
            return True
    return False


def seeded_rng(seed: int) -> np.random.Generator:
    """The generator gymnasium's `reset(seed=seed)` gives an env (PCG64 of SeedSequence(seed))."""
    return np.random.default_rng(seed)


class CubeTrials:
    """The touch-the-cube task on a live SimScene: place the cube for a trial, tell whether the
    arm touches it. The caller serialises access to the scene (the physics steps elsewhere)."""

    def __init__(self, scene: SimScene, task: TouchCubeTask | None = None) -> None:
        self.scene = scene
        self.task = task or TouchCubeTask()
        model = scene.model
        self.cube_body = int(model.body(CUBE_NAME).id)
        table = int(model.geom_bodyid[model.geom("table").id])
        self.arm_bodies = {b for b in range(model.nbody) if b not in (0, self.cube_body, table)}

    def place(self, rng: np.random.Generator) -> np.ndarray:
        """Put the cube (at rest) where `rng` samples it; returns its centre (m)."""
        cube = self.task.sample_cube(rng)
        self.scene.set_object(CUBE_NAME, cube)
        self.scene.forward()
        return cube

    def start(self, seed: int) -> np.ndarray:
        """Trial `seed`: the cube where TouchCubeEnv.reset(seed=seed) puts it."""
        return self.place(seeded_rng(seed))

    def touching(self) -> bool:
        return touching(self.scene.model, self.scene.data, self.cube_body, self.arm_bodies)

    def cube_position(self) -> np.ndarray:
        return self.scene.data.xpos[self.cube_body].copy()


SIM_TASKS.register("touch_cube")(CubeTrials)


class TouchCubeEnv(gymnasium.Env):
    """gymnasium.Env of TouchCubeTask; `render()` returns the camera image."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self,
        *,
        task: TouchCubeTask | None = None,
        fps: int = 30,
        camera: str = "front",
        width: int = 128,
        height: int = 96,
        profile: DatasetProfile | None = None,
        initial_position: np.ndarray | None = None,  # rad, profile joint order
    ) -> None:
        self.task = task or TouchCubeTask()
        self.fps = int(fps)
        self.profile = profile or so101_profile()
        self.joint_names = list(self.profile.joint_names)
        self.image_key = f"observation.images.{camera}"
        n = len(self.joint_names)
        self._initial = np.zeros(n) if initial_position is None else np.asarray(initial_position)
        self.arm = SimFollowerArm(self.joint_names, initial_position=self._initial)
        self.arm.connect()
        self.camera = SimCamera(camera, width, height, fps)
        self.camera.open()
        self.trials = CubeTrials(self.arm.scene, self.task)
        low = np.full(n, -np.inf, dtype=np.float32)
        self.observation_space = gymnasium.spaces.Dict(
            {
                STATE_KEY: gymnasium.spaces.Box(low, -low, dtype=np.float32),
                self.image_key: gymnasium.spaces.Box(0, 255, (height, width, 3), dtype=np.uint8),
            }
        )
        self.action_space = gymnasium.spaces.Box(low, -low, dtype=np.float32)
        self.cube = np.zeros(3)
        self.steps = 0

    # ---- gymnasium API ----------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        scene = self.arm.scene
        self.arm.disable()
        scene.set_arm_positions(self.joint_names, self._initial)
        self.cube = self.trials.place(self.np_random)  # forward() included
        self.arm.enable()
        self.steps = 0
        return self._observation(), self._info()

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (len(self.joint_names),) or not np.isfinite(action).all():
            raise ValueError(
                f"action must be {len(self.joint_names)} finite values in LeRobot units "
                f"({self.profile.feature_names}), got {action!r}"
            )
        self.arm.write(self.profile.from_lerobot(action))
        self.arm.step(1.0 / self.fps)
        self.steps += 1
        success = self.success()
        truncated = not success and self.steps >= self.task.max_steps
        return self._observation(), float(success), success, truncated, self._info()

    def render(self) -> np.ndarray:
        return self._observation()[self.image_key]

    def close(self) -> None:
        self.camera.close()
        self.arm.close()

    # ---- task --------------------------------------------------------------------------------

    def success(self) -> bool:
        return self.trials.touching()

    def tip_position(self) -> np.ndarray:
        scene = self.arm.scene
        return scene.data.site("gripper_frame").xpos.copy()

    def cube_position(self) -> np.ndarray:
        return self.trials.cube_position()

    def _observation(self) -> dict[str, np.ndarray]:
        q = self.arm.read().position
        self.camera.update_scene(self.joint_names, q, self.arm.objects())
        return {
            STATE_KEY: self.profile.to_lerobot(q),
            self.image_key: self.camera.grab().image,
        }

    def _info(self) -> dict[str, Any]:
        return {
            "cube": self.cube_position(),
            "tip": self.tip_position(),
            "steps": self.steps,
            "success": self.success(),
        }
