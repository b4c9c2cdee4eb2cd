"""Trainable policies by type, for train.BUILDERS: dataset metadata + config options -> policy.

A builder makes a fresh policy from the dataset's features, fps and stats.json, or, when
resuming, reloads the checkpoint's pretrained_model (its config and normalization win, so a
resumed run cannot silently change them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lerobot_ros.core.training.train import BUILDERS


@BUILDERS.register("act")
def build_act(meta: Any, options: dict[str, Any], resume: Path | None = None) -> Any:
    from lerobot_ros.core.policies.act import ACTConfig, ACTPolicy

    if resume is not None:
        return ACTPolicy.from_pretrained(resume)
    config = ACTConfig.from_dataset(meta.features, meta.fps, **options)
    return ACTPolicy(config, meta.stats, policy_id=f"act:{meta.root.name}")
