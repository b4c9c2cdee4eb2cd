"""THE conversion between raw servo ticks and radians, for every joint including the gripper.

    rad   = (raw - mid) * 2*pi / max_res          mid = (range_min + range_max) / 2
    ticks = trunc(rad * max_res / (2*pi) + mid)   (toward zero, like LeRobot's int())

with max_res = resolution - 1 = 4095 for the 4096-tick STS/Dynamixel models. This is LeRobot's
DEGREES normalisation (deg = (raw - mid) * 360 / 4095) expressed in radians, so a position here
equals LeRobot's degrees * pi/180; 0 rad is mid-range, not the homing pose. drive_mode is not
applied (LeRobot does not apply it in DEGREES mode either) and nothing is clamped: limits are
the watchdog's job.

One deliberate refinement of LeRobot's truncation: a value within 1e-6 tick of an integer (pure
floating-point noise, e.g. from a ticks -> rad -> ticks round trip) is taken as that integer, so
round trips are exact. LeRobot would return one tick nearer zero there; everywhere else the
results agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lerobot_ros.core.motors.calibration import MotorCalibration

MAX_RES = 4095  # 4096 ticks per revolution, LeRobot divides by resolution - 1
_SNAP = 1e-6  # ticks: float noise around an integer that truncation must not move by one


def mid_range(calib: MotorCalibration) -> float:
    """(range_min + range_max) / 2: the raw position that maps to 0 rad."""
    return (calib.range_min + calib.range_max) / 2


def ticks_to_rad(raw: float, calib: MotorCalibration, max_res: int = MAX_RES) -> float:
    """Raw position (offset-corrected Present_Position) -> radians."""
    return (raw - (calib.range_min + calib.range_max) / 2) * (2 * math.pi) / max_res


def rad_to_ticks(rad: float, calib: MotorCalibration, max_res: int = MAX_RES) -> int:
    """Radians -> raw Goal_Position ticks, truncated toward zero like LeRobot."""
    x = rad * max_res / (2 * math.pi) + (calib.range_min + calib.range_max) / 2
    r = round(x)
    if abs(r - x) < _SNAP:
        return int(r)
    return int(x)


def mids(calibs: Sequence[MotorCalibration]) -> np.ndarray:
    """Mid-range of each calibration, as a float array (precompute it for a control loop)."""
    return np.array([(c.range_min + c.range_max) / 2 for c in calibs], dtype=float)


def ticks_to_rad_array(
    raw: np.ndarray | Sequence[float],
    calibs: Sequence[MotorCalibration] | np.ndarray,
    max_res: int | Sequence[int] = MAX_RES,
) -> np.ndarray:
    """Vectorised `ticks_to_rad`: raw[i] with calibs[i] (or a precomputed `mids()` array)."""
    mid = calibs if isinstance(calibs, np.ndarray) else mids(calibs)
    raw = np.asarray(raw, dtype=float)
    return (raw - mid) * (2 * math.pi) / np.asarray(max_res, dtype=float)


def rad_to_ticks_array(
    rad: np.ndarray | Sequence[float],
    calibs: Sequence[MotorCalibration] | np.ndarray,
    max_res: int | Sequence[int] = MAX_RES,
) -> np.ndarray:
    """Vectorised `rad_to_ticks` -> int64 array."""
    mid = calibs if isinstance(calibs, np.ndarray) else mids(calibs)
    x = np.asarray(rad, dtype=float) * np.asarray(max_res, dtype=float) / (2 * math.pi) + mid
    r = np.rint(x)
    out = np.where(np.abs(r - x) < _SNAP, r, np.trunc(x))
    return out.astype(np.int64)


__all__ = [
    "MAX_RES",
    "mid_range",
    "mids",
    "rad_to_ticks",
    "rad_to_ticks_array",
    "ticks_to_rad",
    "ticks_to_rad_array",
]
