"""Resample timestamped streams onto the dataset's fixed frame grid t_k = t0 + k / fps.

Policies (per stream):
- `hold`: the latest sample with stamp <= t_k. Observations (state, images) always use it: an
  observation never contains data captured after its frame time. ("nearest among the past
  samples" is the same thing, so there is no separate past-nearest policy.)
- `linear`: interpolates between the latest sample <= t_k and the next one (> t_k), hold at the
  end. Allowed for actions only (the command that was being executed around t_k).
- `nearest`: nearest sample in either direction. Allowed for actions only.
Default for actions is `hold` too: the action of frame k is the command in force at t_k.

Quality per stream: `max_gap_s` is the longest time the stream went without a new sample inside
[t_0, t_last] (counting from the sample held at t_0 and up to t_last), `max_sync_error_s` is the
largest |t_k - stamp of the sample used| (for `linear`, the nearer neighbour).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

POLICIES = ("hold", "linear", "nearest")
FUTURE_POLICIES = frozenset({"linear", "nearest"})


class ResampleError(ValueError):
    """A stream cannot be resampled (no sample, or a gap beyond the tolerance)."""


@dataclass
class StreamReport:
    name: str
    policy: str
    samples: int
    frames: int
    max_gap_s: float
    max_sync_error_s: float

    def __str__(self) -> str:
        return (
            f"{self.name}: {self.policy}, {self.samples} samples -> {self.frames} frames, "
            f"max gap {self.max_gap_s * 1e3:.1f} ms, max sync error "
            f"{self.max_sync_error_s * 1e3:.1f} ms"
        )


@dataclass
class Resampled:
    """Where frame k takes its value: values[i0[k]] * (1 - w[k]) + values[i1[k]] * w[k]."""

    i0: np.ndarray
    i1: np.ndarray
    w: np.ndarray
    report: StreamReport

    def apply(self, values: np.ndarray) -> np.ndarray:
        v0 = values[self.i0]
        if not np.any(self.w):
            return v0
        w = self.w.reshape(-1, *([1] * (values.ndim - 1)))
        return (v0 * (1.0 - w) + values[self.i1] * w).astype(values.dtype)


def frame_grid(t0_ns: int, t_end_ns: int, fps: int) -> np.ndarray:
    """t_k = t0 + k/fps (ns, int64) for every k with t_k <= t_end."""
    if t_end_ns < t0_ns:
        return np.zeros(0, dtype=np.int64)
    n = int((t_end_ns - t0_ns) * fps // 1_000_000_000) + 1
    k = np.arange(n, dtype=np.int64)
    return t0_ns + (k * 1_000_000_000 + fps // 2) // fps


def resample(
    name: str,
    stamps_ns: np.ndarray,
    grid_ns: np.ndarray,
    policy: str = "hold",
    *,
    observation: bool = True,
    max_gap_s: float | None = None,
) -> Resampled:
    """Map the grid onto a sorted stamp array. Raises ResampleError on a missing sample before
    t_0 or a gap larger than `max_gap_s`."""
    if policy not in POLICIES:
        raise ValueError(f"{name}: unknown resampling policy {policy!r} (one of {POLICIES})")
    if observation and policy in FUTURE_POLICIES:
        raise ValueError(f"{name}: observations never use future samples; policy must be 'hold'")
    stamps = np.asarray(stamps_ns, dtype=np.int64)
    if stamps.size == 0:
        raise ResampleError(f"{name}: no samples")
    if np.any(np.diff(stamps) < 0):
        raise ValueError(f"{name}: stamps must be sorted")
    grid = np.asarray(grid_ns, dtype=np.int64)
    prev = np.searchsorted(stamps, grid, side="right") - 1
    if grid.size and prev[0] < 0:
        raise ResampleError(
            f"{name}: no sample at or before the first frame "
            f"(first sample {(stamps[0] - grid[0]) / 1e9:+.3f} s after it)"
        )
    nxt = np.minimum(prev + 1, stamps.size - 1)
    has_next = (prev + 1) < stamps.size
    w = np.zeros(grid.size)
    err_prev = (grid - stamps[prev]) / 1e9
    err_next = np.where(has_next, (stamps[nxt] - grid) / 1e9, np.inf)
    if policy == "hold":
        i0, i1, err = prev, prev, err_prev
    elif policy == "nearest":
        use_next = err_next < err_prev
        i0 = np.where(use_next, nxt, prev)
        i1, err = i0, np.minimum(err_prev, err_next)
    else:  # linear
        span = np.where(has_next, stamps[nxt] - stamps[prev], 1)
        w = np.where(has_next, (grid - stamps[prev]) / span, 0.0)
        i0, i1, err = prev, np.where(has_next, nxt, prev), np.minimum(err_prev, err_next)
    gap = 0.0
    if grid.size:
        inside = stamps[(stamps > grid[0]) & (stamps <= grid[-1])]
        edges = np.concatenate([[stamps[prev[0]]], inside, [grid[-1]]])
        gap = float(np.max(np.diff(edges))) / 1e9 if edges.size > 1 else 0.0
    report = StreamReport(
        name, policy, int(stamps.size), int(grid.size), gap, float(np.max(err, initial=0.0))
    )
    if max_gap_s is not None and gap > max_gap_s:
        raise ResampleError(
            f"{name}: gap of {gap:.3f} s without a sample exceeds the tolerance of {max_gap_s} s"
        )
    return Resampled(i0, i1, w, report)
