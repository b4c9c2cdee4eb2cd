"""Small, real policy checkpoints for tests: no training, but the same files and loading path
(load_policy) as a trained policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def tiny_act_checkpoint(
    directory: Path,
    *,
    height: int = 48,
    width: int = 64,
    chunk_size: int = 20,
    n_action_steps: int | None = None,
    seed: int = 0,
    **overrides: Any,
) -> Path:
    """A randomly initialised small ACT for the SO-101 (6 joints, one `front` camera of
    height x width; config/act_small.yaml, narrower still), saved with save_pretrained."""
    import torch

    from lerobot_ros.core.dataset.profile import so101_profile
    from lerobot_ros.core.paths import resolve
    from lerobot_ros.core.policies.act import ACTConfig, ACTPolicy, read_config_file

    names = so101_profile().feature_names
    features = {
        "observation.state": {"dtype": "float32", "shape": [6], "names": names},
        "action": {"dtype": "float32", "shape": [6], "names": names},
        "observation.images.front": {
            "dtype": "video",
            "shape": [height, width, 3],
            "names": ["height", "width", "channels"],
        },
    }
    options = read_config_file(resolve("config/act_small.yaml"))
    options.update(
        chunk_size=chunk_size,
        n_action_steps=n_action_steps or chunk_size,
        image_resize=None,
        dim_model=64,
        n_heads=2,
        dim_feedforward=128,
        n_encoder_layers=1,
        n_vae_encoder_layers=1,
        use_vae=False,
        dropout=0.0,
    )
    options.update(overrides)
    config = ACTConfig.from_dataset(features, 30, **options)
    stats = {
        "observation.state": {"mean": [0.0] * 6, "std": [30.0] * 6},
        "action": {"mean": [0.0] * 6, "std": [10.0] * 6},
        "observation.images.front": {"mean": [[[0.5]]] * 3, "std": [[[0.25]]] * 3},
    }
    torch.manual_seed(seed)
    return ACTPolicy(config, stats).save_pretrained(directory)
