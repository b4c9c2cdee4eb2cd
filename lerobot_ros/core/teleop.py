"""Leader -> follower joint mapping (ROS-free)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lerobot_ros.core.params import ParameterError


@dataclass(frozen=True)
class JointMap:
    """follower[i] = scale[i] * leader[i] + offset[i], joints paired by index."""

    leader: tuple[str, ...]
    follower: tuple[str, ...]
    scale: np.ndarray
    offset: np.ndarray

    @classmethod
    def from_params(
        cls,
        leader: Sequence[str],
        follower: Sequence[str],
        scale: Sequence[float],
        offset: Sequence[float],
    ) -> JointMap:
        n = len(leader)
        for name, values in (("follower_joints", follower), ("scale", scale), ("offset", offset)):
            if len(values) != n:
                raise ParameterError(
                    name, list(values), f"needs {n} entries, one per leader joint {list(leader)}"
                )
        return cls(
            tuple(leader), tuple(follower), np.asarray(scale, float), np.asarray(offset, float)
        )

    def apply(self, leader_positions: np.ndarray) -> np.ndarray:
        return self.scale * leader_positions + self.offset
