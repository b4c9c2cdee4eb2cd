"""A camera that renders the simulated scene with MuJoCo (offscreen, EGL by default).

It may run in another process than the simulated follower, so it keeps its own copy of the scene
and is told the arm pose and object poses through `update_scene` (the camera node feeds it from
/joint_states and the scene markers: `wants_robot_state`).
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco: offscreen rendering without X

import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mujoco
import numpy as np

from lerobot_ros.core.backends import (
    CAMERA_BACKENDS,
    CameraIntrinsics,
    Frame,
    SceneObject,
)
from lerobot_ros.core.sim.scene import CAMERAS, FOVY_DEG, SimScene


def pinhole(width: int, height: int, fovy_deg: float) -> CameraIntrinsics:
    """MuJoCo cameras have square pixels and a centred principal point; fovy is vertical."""
    fy = height / 2.0 / math.tan(math.radians(fovy_deg) / 2.0)
    return CameraIntrinsics(width=width, height=height, fx=fy, fy=fy, cx=width / 2, cy=height / 2)


@CAMERA_BACKENDS.register("sim")
class SimCamera:
    """CameraBackend rendering camera `name` ("front", "top" or "wrist") of the sim scene."""

    wants_robot_state = True

    def __init__(
        self,
        name: str = "front",
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        urdf_path: str | Path | None = None,
    ) -> None:
        if name not in CAMERAS:
            raise ValueError(f"unknown sim camera {name!r}; known: {', '.join(sorted(CAMERAS))}")
        if width <= 0 or height <= 0 or fps <= 0:
            raise ValueError(
                f"sim camera needs width, height, fps > 0 (got {width}x{height}@{fps})"
            )
        self.name = name
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.urdf_path = urdf_path
        self.intrinsics = pinhole(self.width, self.height, FOVY_DEG[name])
        self._scene: SimScene | None = None
        self._renderer: mujoco.Renderer | None = None
        self._lock = threading.Lock()  # update_scene and grab may come from different threads
        # An EGL/OSMesa context is current in ONE thread; executor callbacks may run on any.
        # Every GL call (create, render, free) therefore goes through this one render thread.
        self._gl: ThreadPoolExecutor | None = None

    @property
    def scene(self) -> SimScene:
        if self._scene is None:
            raise RuntimeError(f"sim camera {self.name!r} is not open")
        return self._scene

    def open(self) -> None:
        if self._scene is not None:
            return
        scene = SimScene(self.urdf_path, cameras=(self.name,), width=self.width, height=self.height)
        fovy = float(scene.model.cam_fovy[scene.model.camera(self.name).id])
        self.intrinsics = pinhole(self.width, self.height, fovy)
        self._gl = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"render-{self.name}")
        self._renderer = self._gl.submit(
            mujoco.Renderer, scene.model, height=self.height, width=self.width
        ).result()
        self._scene = scene

    def update_scene(
        self,
        joint_names: Sequence[str],
        positions: Sequence[float] | np.ndarray,
        objects: Sequence[SceneObject] = (),
    ) -> None:
        """Pose the arm and the objects (kinematically); joints and objects this scene lacks
        (e.g. another robot's, on a shared /joint_states) are ignored."""
        scene = self.scene
        q = np.asarray(positions, dtype=float)
        if q.shape != (len(joint_names),):
            raise ValueError(f"{len(joint_names)} joint names but positions of shape {q.shape}")
        mine = [k for k, n in enumerate(joint_names) if n in scene.qpos_index]
        known = set(scene.object_names())
        with self._lock:
            scene.set_arm_positions([joint_names[k] for k in mine], q[mine])
            for obj in objects:
                if obj.name in known:
                    scene.set_object(obj.name, obj.position, obj.quaternion)
            scene.forward()

    def grab(self) -> Frame:
        if self._gl is None:
            raise RuntimeError(f"sim camera {self.name!r} is not open")
        return self._gl.submit(self._render).result()

    def _render(self) -> Frame:
        scene = self.scene
        assert self._renderer is not None
        with self._lock:
            self._renderer.update_scene(scene.data, camera=self.name)
            image = self._renderer.render()
        return Frame(image=np.ascontiguousarray(image, dtype=np.uint8), stamp=time.time())

    def close(self) -> None:
        """Free the renderer in the render thread, after any render already queued there.
        The lock is never held while waiting on that thread (it may be waiting for the lock)."""
        gl, self._gl = self._gl, None  # no new grabs from here on
        if gl is None:
            return

        def free() -> None:
            with self._lock:
                renderer, self._renderer, self._scene = self._renderer, None, None
            if renderer is not None:
                renderer.close()

        gl.submit(free).result()
        gl.shutdown(wait=True)
