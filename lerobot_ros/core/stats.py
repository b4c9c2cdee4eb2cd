"""Small running statistics for loop periods and rates (used in diagnostics and demos)."""

from __future__ import annotations

from collections import deque

import numpy as np


class PeriodStats:
    """Keeps the last `window` loop periods (seconds) and summarizes them."""

    def __init__(self, window: int = 500) -> None:
        self._periods: deque[float] = deque(maxlen=window)

    def add(self, period: float) -> None:
        self._periods.append(period)

    def summary(self, target: float) -> dict[str, float]:
        """Mean rate and the period error vs `target` (ms): what a 100 Hz loop really did."""
        if not self._periods:
            return {"rate_hz": 0.0, "p99_error_ms": 0.0, "max_period_ms": 0.0}
        p = np.fromiter(self._periods, float)
        err = np.abs(p - target) * 1e3
        return {
            "rate_hz": round(float(1.0 / p.mean()), 2),
            "p99_error_ms": round(float(np.percentile(err, 99)), 3),
            "max_period_ms": round(float(p.max() * 1e3), 3),
        }
