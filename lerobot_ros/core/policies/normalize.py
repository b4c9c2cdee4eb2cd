"""Feature normalization from a dataset's stats.json, shared by the training loader and policies.

One class does it both ways, so training and inference can never disagree on the statistics:
the loader normalizes samples with it, a policy keeps the same statistics next to its weights
(saved as safetensors, never pickled) and normalizes observations / unnormalizes actions with it.

Modes follow LeRobot's NormalizationMode: MEAN_STD ((x - mean) / std), MIN_MAX (to [-1, 1]),
IDENTITY. Image statistics are per channel, shape (3, 1, 1), on pixels scaled to [0, 1], exactly
as stats.json holds them; image tensors are (..., 3, H, W) float in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

MODES = ("MEAN_STD", "MIN_MAX", "IDENTITY")
# Keeps a constant feature (std 0, min == max) from dividing by zero.
EPS = 1e-8


class NormalizationError(ValueError):
    """Statistics missing or malformed for a feature; the message names the feature."""


class Normalizer:
    """Normalizes named features with fixed statistics.

    `stats`: feature -> {"mean", "std", "min", "max", ...} (arrays or nested lists, as in
    stats.json); `modes`: feature -> one of MODES. Only features listed in `modes` are kept.
    """

    def __init__(self, stats: Mapping[str, Mapping[str, Any]], modes: Mapping[str, str]) -> None:
        self.modes = dict(modes)
        self._tensors: dict[str, dict[str, torch.Tensor]] = {}
        for key, mode in self.modes.items():
            if mode not in MODES:
                raise NormalizationError(
                    f"normalization mode for {key!r} is {mode!r}, not in {MODES}"
                )
            if mode == "IDENTITY":
                continue
            needed = ("mean", "std") if mode == "MEAN_STD" else ("min", "max")
            if key not in stats:
                raise NormalizationError(f"no statistics for feature {key!r} (mode {mode})")
            entry = {}
            for name in needed:
                if name not in stats[key]:
                    raise NormalizationError(f"statistics of {key!r} lack {name!r} (mode {mode})")
                value = torch.as_tensor(np.asarray(stats[key][name], dtype=np.float32))
                if not torch.isfinite(value).all():
                    raise NormalizationError(f"statistics {key!r}/{name} are not finite: {value}")
                entry[name] = value
            self._tensors[key] = entry

    def __contains__(self, key: object) -> bool:
        return key in self.modes

    def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        mode = self.modes.get(key, "IDENTITY")
        if mode == "IDENTITY":
            return x
        s = self._stats_like(key, x)
        if mode == "MEAN_STD":
            return (x - s["mean"]) / (s["std"] + EPS)
        return (x - s["min"]) / (s["max"] - s["min"] + EPS) * 2.0 - 1.0

    def unnormalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        mode = self.modes.get(key, "IDENTITY")
        if mode == "IDENTITY":
            return x
        s = self._stats_like(key, x)
        if mode == "MEAN_STD":
            return x * (s["std"] + EPS) + s["mean"]
        return (x + 1.0) / 2.0 * (s["max"] - s["min"] + EPS) + s["min"]

    def normalize_batch(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A copy of `batch` with every feature this normalizer knows normalized."""
        return {k: self.normalize(k, v) if k in self.modes else v for k, v in batch.items()}

    def _stats_like(self, key: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
        entry = self._tensors[key]
        out = {}
        for name, value in entry.items():
            if value.device != x.device or value.dtype != x.dtype:
                value = value.to(device=x.device, dtype=x.dtype)
            out[name] = value
        return out

    # ---- persistence: flat safetensors dict + modes in JSON -----------------------------------

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """Flat {"<feature>.<stat>": tensor} for safetensors (feature names contain dots, the stat
        name never does, so the last dot splits them)."""
        return {
            f"{k}.{n}": v.clone() for k, entry in self._tensors.items() for n, v in entry.items()
        }

    @classmethod
    def from_tensors(
        cls, tensors: Mapping[str, torch.Tensor], modes: Mapping[str, str]
    ) -> Normalizer:
        stats: dict[str, dict[str, torch.Tensor]] = {}
        for flat, value in tensors.items():
            key, _, name = flat.rpartition(".")
            stats.setdefault(key, {})[name] = value
        return cls(stats, modes)
