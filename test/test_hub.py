"""Hub repo ids resolve through huggingface_hub's own cache (offline here): a policy checkpoint
for load_policy and a dataset for training, the way a user's `owner/name` is looked up."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_training_data import write_dataset

from lerobot_ros.core.policies.act import ACTConfig, ACTPolicy
from lerobot_ros.core.policies.base import CheckpointError, load_policy
from lerobot_ros.core.training.data import DatasetError, DatasetMeta, resolve_dataset

REVISION = "0123456789abcdef0123456789abcdef01234567"


def cache_repo(hub_cache: Path, kind: str, repo_id: str, files: Path) -> Path:
    """Lay `files` out as huggingface_hub's cache holds a downloaded snapshot."""
    owner, name = repo_id.split("/")
    repo = hub_cache / f"{kind}s--{owner}--{name}"
    snapshot = repo / "snapshots" / REVISION
    shutil.copytree(files, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REVISION)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def test_policy_and_dataset_by_hub_repo_id(hub_cache: Path, tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "ds", [12, 9], video=False)
    snapshot = cache_repo(hub_cache, "dataset", "someone/tiny_ds", ds)
    assert resolve_dataset("someone/tiny_ds") == snapshot
    meta = DatasetMeta.load(resolve_dataset("someone/tiny_ds"))
    assert meta.total_frames == 21

    config = ACTConfig.from_dataset(
        meta.features,
        meta.fps,
        chunk_size=4,
        n_action_steps=4,
        dim_model=16,
        n_heads=2,
        dim_feedforward=32,
        n_encoder_layers=1,
        use_vae=False,
    )
    torch.manual_seed(0)
    policy = ACTPolicy(config, meta.stats)
    policy.save_pretrained(tmp_path / "ckpt")
    cache_repo(hub_cache, "model", "someone/tiny_act", tmp_path / "ckpt")
    loaded = load_policy("someone/tiny_act")
    assert loaded.policy_id == "someone/tiny_act"
    obs = {"observation.state": np.array([1.0, 2.0, 3.0], dtype=np.float32)}
    np.testing.assert_array_equal(loaded.predict_chunk(obs), policy.predict_chunk(obs))

    # Not in the cache and offline: errors naming the repo.
    with pytest.raises(CheckpointError, match=r"'someone/absent'.*Hub download failed"):
        load_policy("someone/absent")
    with pytest.raises(DatasetError, match=r"'someone/absent_ds'.*Hub download failed"):
        resolve_dataset("someone/absent_ds")
