"""The training entry point: deterministic, resumable to the same weights, data-parallel under
torchrun with the same result as one process, and errors that name the option."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_training_data import CAM, frame_image, state_values, write_dataset

from lerobot_ros.core.policies.base import load_policy
from lerobot_ros.core.training import cli
from lerobot_ros.core.training.train import TrainConfig, train

# A tiny ACT: one 48x64 camera through the ResNet-18, a narrow transformer, no dropout and no
# VAE sampling, so two runs can be compared bit for bit (or to float rounding across processes).
TINY = {
    "chunk_size": 5,
    "n_action_steps": 5,
    "dim_model": 32,
    "n_heads": 2,
    "dim_feedforward": 64,
    "n_encoder_layers": 1,
    "n_decoder_layers": 1,
    "use_vae": False,
    "dropout": 0.0,
    "image_resize": None,
    "optimizer_lr": 1e-3,
    "optimizer_lr_backbone": 1e-3,
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("train") / "ds", [14, 10, 12])


def config(dataset: Path, out: Path, **kw: object) -> TrainConfig:
    options = {
        "dataset": str(dataset),
        "output_dir": str(out),
        "policy_config": None,
        "overrides": dict(TINY),
        "steps": 6,
        "batch_size": 4,
        "checkpoint_every": 3,
        "log_every": 1,
        "progress": False,
        **kw,
    }
    return TrainConfig(**options)  # type: ignore[arg-type]


def weights(out: Path, step: int | None = None) -> dict[str, torch.Tensor]:
    ckpt = out / "checkpoints" / ("last" if step is None else f"{step:06d}")
    return load_file(str(ckpt / "pretrained_model" / "model.safetensors"))


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def predictions(out: Path) -> np.ndarray:
    """The last checkpoint's action chunks for the observations of frames 0, 7, 20 and 33."""
    policy = load_policy(out / "checkpoints" / "last")
    chunks = []
    for g in (0, 7, 20, 33):
        obs = {
            "observation.state": state_values(np.array([g]))[0].astype(np.float32),
            CAM: frame_image(g),
        }
        chunks.append(policy.predict_chunk(obs))
    return np.stack(chunks)


def test_resume_ends_where_training_straight_through_ends(dataset: Path, tmp_path: Path) -> None:
    straight = train(config(dataset, tmp_path / "straight"), log=lambda _m: None)
    assert straight.step == 6
    ckpts = sorted(p.name for p in (tmp_path / "straight/checkpoints").iterdir())
    assert ckpts == ["000003", "000006", "last"]
    assert os.readlink(tmp_path / "straight/checkpoints/last") == "000006"
    for name in ("config.json", "model.safetensors", "train_config.json"):
        assert (tmp_path / "straight/checkpoints/000006/pretrained_model" / name).is_file()
    log = [json.loads(line) for line in (tmp_path / "straight/train_log.jsonl").open()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6] and all("loss" in r for r in log)
    assert (tmp_path / "straight/loss.svg").read_text().startswith("<svg")

    halves = tmp_path / "halves"
    train(config(dataset, halves, steps=3), log=lambda _m: None)
    first = weights(halves)
    resumed = train(config(dataset, halves, steps=6, resume=True), log=lambda _m: None)
    assert resumed.step == 6
    assert max_diff(weights(halves), weights(tmp_path / "straight")) == 0.0
    assert max_diff(first, weights(halves)) > 0  # the resumed run did train
    assert [s for s, _ in resumed.losses] == [1, 2, 3, 4, 5, 6]

    # Same seed -> same weights; another seed -> others (the comparison above can fail).
    train(config(dataset, tmp_path / "seed2", steps=3, seed=7), log=lambda _m: None)
    assert max_diff(weights(tmp_path / "seed2"), first) > 1e-4
    # An output dir with checkpoints is never overwritten without resume.
    with pytest.raises(FileExistsError, match="already has checkpoints"):
        train(config(dataset, halves), log=lambda _m: None)


def test_two_process_ddp_matches_one_process(dataset: Path, tmp_path: Path) -> None:
    """torchrun, 2 processes on gloo with half the batch each == 1 process with the full batch."""
    single = tmp_path / "single"
    train(config(dataset, single, steps=4, checkpoint_every=2), log=lambda _m: None)
    args = [
        str(dataset),
        "--output-dir",
        str(tmp_path / "ddp"),
        "--policy-config",
        str(tmp_path / "tiny.yaml"),
        "--steps",
        "4",
        "--batch-size",
        "4",
        "--checkpoint-every",
        "4",
        "--no-progress",
        "--log-every",
        "1",
    ]
    (tmp_path / "tiny.yaml").write_text(json.dumps(TINY))  # JSON is YAML
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "GLOO_SOCKET_IFNAME": "lo",
        "MASTER_ADDR": "127.0.0.1",
    }
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "lerobot_ros.core.training.cli",
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "over 2 process(es)" in run.stdout
    # The loss of every step: the mean over both processes' half batches equals the loss of
    # the whole batch in one process, to float rounding; rank 0's own half differs.
    log = [json.loads(line) for line in (tmp_path / "ddp/train_log.jsonl").open()]
    single_log = [json.loads(line) for line in (single / "train_log.jsonl").open()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert [r["loss"] for r in log] == pytest.approx([r["loss"] for r in single_log], rel=1e-4)
    assert any(abs(r["l1_loss"] - r["loss"]) > 1e-3 for r in log)
    # Weights: Adam turns rounding-level differences of near-zero gradients into lr-sized
    # steps of weights the loss does not depend on, so compare what the policies do: their
    # action chunks for the same observations agree; a run with another seed does not.
    ddp, one = predictions(tmp_path / "ddp"), predictions(single)
    scale = float(np.abs(one).max())
    assert float(np.abs(ddp - one).max()) < 1e-2 * scale  # measured 0.14 %
    other = tmp_path / "seed2"
    train(config(dataset, other, steps=4, checkpoint_every=4, seed=7), log=lambda _m: None)
    assert float(np.abs(predictions(other) - one).max()) > 5e-2 * scale  # measured 12 %


def test_cli_errors_name_the_option(dataset: Path, tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "o")
    assert cli.main([str(dataset), "--output-dir", out, "--set", "dim_model=-3"]) == 2
    assert "dim_model" in capsys.readouterr().err
    assert cli.main([str(dataset), "--output-dir", out, "--set", "no_such_field=1"]) == 2
    assert "no_such_field" in capsys.readouterr().err
    assert cli.main([str(dataset), "--output-dir", out, "--steps", "0"]) == 2
    assert "steps" in capsys.readouterr().err
    assert cli.main([str(tmp_path / "missing"), "--output-dir", out]) == 2
    assert "missing" in capsys.readouterr().err
    assert cli.main([str(dataset), "--output-dir", out, "--policy-config", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
