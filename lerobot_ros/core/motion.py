"""Velocity-limited moves to a pose (ROS-free), e.g. driving a leader arm to the follower's
pose before a human takes over, so that neither arm jumps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PoseMove:
    """Ramps a setpoint from where the arm is to `target` at `max_velocity` rad/s."""

    target: np.ndarray
    max_velocity: float
    deadline: float  # wall-clock time after which the move fails
    release: bool  # torque off once reached
    tolerance: float = 0.02  # rad: |measured - target| that counts as reached
    setpoint: np.ndarray | None = None

    def next_goal(self, measured: np.ndarray, dt: float) -> np.ndarray:
        """The goal for this control tick (starts at the measured pose: no jump)."""
        if self.setpoint is None:
            self.setpoint = np.asarray(measured, dtype=float).copy()
        step = self.max_velocity * max(dt, 0.0)
        self.setpoint = self.setpoint + np.clip(self.target - self.setpoint, -step, step)
        return self.setpoint

    def error(self, measured: np.ndarray) -> float:
        return float(np.max(np.abs(np.asarray(measured) - self.target)))

    def reached(self, measured: np.ndarray) -> bool:
        return (
            self.setpoint is not None
            and bool(np.array_equal(self.setpoint, self.target))
            and self.error(measured) <= self.tolerance
        )
