"""Forward kinematics on the robot's URDF with placo (pinocchio underneath), ROS-free.

The policy runner draws each predicted chunk as an end-effector path in RViz; that needs the
tip position for every row of the chunk, in the URDF's root frame (the frame RViz shows the
robot in via robot_state_publisher). placo is imported when the first `ForwardKinematics` is
built, so importing this module stays cheap for code that never draws a path.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from lerobot_ros.core.urdf import load_urdf

DEFAULT_TIP = "gripper_frame_link"


class ForwardKinematics:
    """Pose of one frame (`tip`) of a URDF for given joint positions, in the root link's frame.

    Not thread-safe (placo keeps one state): use one instance per thread.
    """

    def __init__(self, urdf_path: str | Path, tip: str = DEFAULT_TIP) -> None:
        with warnings.catch_warnings():  # placo imports pinocchio's deprecated hppfcl alias
            warnings.simplefilter("ignore", DeprecationWarning)
            import placo  # heavy (pinocchio); only paid by users of FK

        path = Path(urdf_path)
        model = load_urdf(path)  # clear FileNotFoundError / ValueError naming the file
        self.root_link: str = model.root_link
        self.tip = tip
        # Collisions are never queried: skipping them avoids loading collision geometry.
        self._robot = placo.RobotWrapper(str(path), placo.Flags.ignore_collisions)
        frames = set(self._robot.frame_names())
        if tip not in frames:
            links = sorted(model.links)
            raise ValueError(f"{path}: tip frame {tip!r} is not a link of the URDF ({links})")
        self.joint_names: list[str] = list(self._robot.joint_names())
        self._known = set(self.joint_names)

    def pose(self, positions: Mapping[str, float]) -> np.ndarray:
        """4x4 pose of the tip in the root frame; joints left out stay at 0, unknown names
        raise (a typo would otherwise draw a silently wrong path)."""
        unknown = sorted(set(positions) - self._known)
        if unknown:
            raise ValueError(f"joints {unknown} are not in the URDF (has {self.joint_names})")
        for name in self.joint_names:
            self._robot.set_joint(name, float(positions.get(name, 0.0)))
        self._robot.update_kinematics()
        # The model has a floating base (placo's default) left at identity: world == root link.
        return np.array(self._robot.get_T_world_frame(self.tip), dtype=float)

    def path(self, joint_names: Sequence[str], q: np.ndarray) -> np.ndarray:
        """(N, J) joint positions (columns named by `joint_names`) -> (N, 3) tip positions."""
        q = np.asarray(q, dtype=float)
        if q.ndim != 2 or q.shape[1] != len(joint_names):
            raise ValueError(f"q must be (N, {len(joint_names)}), got {q.shape}")
        return np.array(
            [self.pose(dict(zip(joint_names, row, strict=True)))[:3, 3] for row in q]
        ).reshape(len(q), 3)
