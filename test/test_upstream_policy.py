"""The upstream LeRobot adapter: without `lerobot` (Python < 3.12 here) an upstream checkpoint
fails with a clear CheckpointError; with it, an upstream ACT round-trips through load_policy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lerobot_ros.core.policies.base import CheckpointError, load_policy


def upstream_style_checkpoint(directory: Path) -> Path:
    """What LeRobot writes: config.json with its `type`, no IMPLEMENTATION_KEY."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {"type": "smolvla", "chunk_size": 50, "n_action_steps": 50}
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def test_upstream_checkpoint_without_lerobot_names_what_is_needed(tmp_path: Path) -> None:
    try:
        import lerobot  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("lerobot is installed: the adapter loads for real (next test)")
    with pytest.raises(CheckpointError) as exc:
        load_policy(upstream_style_checkpoint(tmp_path / "smolvla"))
    text = str(exc.value)
    assert "upstream LeRobot checkpoint needs" in text
    assert "`lerobot` package" in text and "Python >= 3.12" in text, text


def test_upstream_act_through_load_policy(tmp_path: Path) -> None:
    pytest.importorskip("lerobot")
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    config = ACTConfig(
        input_features={
            "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(6,)),
            "observation.images.front": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 48, 64)),
        },
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(6,))},
        chunk_size=10,
        n_action_steps=10,
        dim_model=32,
        n_heads=2,
        dim_feedforward=64,
        n_encoder_layers=1,
        n_vae_encoder_layers=1,
        pretrained_backbone_weights=None,
        device="cpu",
    )
    stats = {
        "observation.state": {"mean": torch.zeros(6), "std": torch.full((6,), 30.0)},
        "observation.images.front": {
            "mean": torch.full((3, 1, 1), 0.5),
            "std": torch.full((3, 1, 1), 0.25),
        },
        "action": {"mean": torch.full((6,), 5.0), "std": torch.full((6,), 10.0)},
    }
    torch.manual_seed(0)
    policy = ACTPolicy(config)
    pre, post = make_pre_post_processors(config, dataset_stats=stats)
    directory = tmp_path / "pretrained_model"
    policy.save_pretrained(directory)
    pre.save_pretrained(directory)
    post.save_pretrained(directory)

    loaded = load_policy(directory)
    assert type(loaded).__name__ == "UpstreamPolicy"
    assert loaded.policy_id == str(directory)
    assert loaded.state_names[0] == "shoulder_pan.pos" and len(loaded.action_names) == 6
    assert loaded.image_keys == ["observation.images.front"] and loaded.chunk_size == 10
    loaded.task = "pick the cube"
    observation = {
        "observation.state": np.zeros(6, np.float32),
        "observation.images.front": np.zeros((48, 64, 3), np.uint8),
    }
    chunk = loaded.predict_chunk(observation)
    assert chunk.shape == (10, 6) and chunk.dtype == np.float32
    assert np.isfinite(chunk).all()
    # Unnormalized: the same network output as upstream's own pipeline.
    with torch.inference_mode():
        batch = pre(loaded.batch(observation))
        expected = post(policy.predict_action_chunk(batch)[0]).numpy()
    np.testing.assert_allclose(chunk, expected, rtol=1e-5, atol=1e-5)
