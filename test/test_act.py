"""ACT policy (lerobot_ros.core.policies.act): shapes and loss, overfitting, checkpoints and their
errors, batch-composition independence, backbone weights, configs. No ROS; tiny models."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from lerobot_ros.core.policies.act import (
    NORMALIZER_NAME,
    ACTConfig,
    ACTPolicy,
    ResNet18,
    make_normalizer,
    read_config_file,
)
from lerobot_ros.core.policies.base import (
    CONFIG_NAME,
    IMPLEMENTATION_KEY,
    WEIGHTS_NAME,
    CheckpointError,
    ChunkPolicy,
    load_policy,
)
from lerobot_ros.core.policies.normalize import NormalizationError

REPO = Path(__file__).resolve().parents[1]
STATE = [f"j{i}.pos" for i in range(4)]
ACTIONS = [f"j{i}.pos" for i in range(3)]
H, W = 32, 40
CAM = "observation.images.front"
TINY = {
    "dim_model": 16,
    "n_heads": 2,
    "dim_feedforward": 32,
    "n_encoder_layers": 1,
    "n_decoder_layers": 1,
    "n_vae_encoder_layers": 1,
    "latent_dim": 4,
    "chunk_size": 5,
    "n_action_steps": 5,
    "dropout": 0.0,
}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread: the tensors are tiny, and on a loaded 2-core machine two OpenMP
    threads wait on each other (a training step measured 5x slower with 2 than with 1)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def features(images: bool = True) -> dict[str, dict[str, Any]]:
    """meta/info.json-style features, with keys the policy must ignore."""
    out: dict[str, dict[str, Any]] = {
        "observation.state": {"dtype": "float32", "shape": [4], "names": STATE},
        "action": {"dtype": "float32", "shape": [3], "names": ACTIONS},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    }
    if images:
        out[CAM] = {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "channels"]}
    return out


def stats() -> dict[str, dict[str, Any]]:
    """stats.json-style: nested lists, image stats (3, 1, 1)."""
    return {
        "observation.state": {"mean": [1.0, -2.0, 3.0, 0.5], "std": [2.0, 1.0, 0.5, 4.0]},
        "action": {"mean": [10.0, 20.0, -5.0], "std": [3.0, 5.0, 2.0], "min": [0, 0, 0]},
        CAM: {"mean": [[[0.4]], [[0.5]], [[0.6]]], "std": [[[0.2]], [[0.25]], [[0.3]]]},
        "timestamp": {"mean": [0.0], "std": [1.0]},
    }


def tiny(images: bool = True, **overrides: Any) -> ACTPolicy:
    torch.manual_seed(0)
    config = ACTConfig.from_dataset(features(images), 30, **{**TINY, **overrides})
    return ACTPolicy(config, stats())


def batch(b: int = 4, images: bool = True, seed: int = 0) -> dict[str, torch.Tensor]:
    """A normalized training batch, as the loader yields it."""
    g = torch.Generator().manual_seed(seed)
    out = {
        "observation.state": torch.randn(b, 4, generator=g),
        "action": torch.randn(b, 5, 3, generator=g),
        "action_is_pad": torch.zeros(b, 5, dtype=torch.bool),
    }
    out["action_is_pad"][0, 3:] = True
    if images:
        out[CAM] = torch.randn(b, 3, H, W, generator=g)
    return out


def observation(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "observation.state": rng.normal(size=4).astype(np.float32),
        CAM: rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
    }


# ---- shapes, loss ---------------------------------------------------------------------------


def test_forward_shapes_and_loss() -> None:
    policy = tiny()
    assert isinstance(policy, ChunkPolicy)
    assert (policy.state_names, policy.action_names) == (STATE, ACTIONS)
    assert (policy.image_keys, policy.chunk_size, policy.fps) == ([CAM], 5, 30.0)
    b = batch()
    noise = torch.randn(4, 4)
    loss, logs = policy(b, latent_noise=noise)
    assert loss.shape == () and loss.requires_grad
    assert set(logs) == {"loss", "l1_loss", "kld_loss"}
    assert logs["loss"] == pytest.approx(logs["l1_loss"] + 10.0 * logs["kld_loss"], rel=1e-5)
    actions, mu, log_var = policy.model(b, noise)
    assert actions.shape == (4, 5, 3) and mu.shape == log_var.shape == (4, 4)
    # Padded rows count as zero error: changing them changes nothing.
    b2 = dict(b, action=b["action"].clone())
    b2["action"][0, 3:] += 100.0
    assert policy(b2, latent_noise=noise)[1]["loss"] == pytest.approx(logs["loss"], rel=1e-5)
    loss.backward()
    assert policy.model.backbone.conv1.weight.grad is not None

    chunk = policy.predict_chunk(observation())
    assert chunk.shape == (5, 3) and chunk.dtype == np.float32
    assert policy.training  # predict_chunk restores the mode it found

    plain = tiny(images=False, use_vae=False)
    loss, logs = plain(batch(images=False))
    assert set(logs) == {"loss", "l1_loss"} and not hasattr(plain.model, "backbone")


def test_predict_chunk_rejects_bad_observations() -> None:
    policy = tiny()
    obs = observation()
    with pytest.raises(ValueError, match=r"observation\.images\.front"):
        policy.predict_chunk({"observation.state": obs["observation.state"]})
    with pytest.raises(ValueError, match=r"observation.images.front.*\(32, 40, 3\)"):
        policy.predict_chunk(dict(obs, **{CAM: np.zeros((40, 32, 3), np.uint8)}))
    with pytest.raises(ValueError, match=r"observation\.state"):
        policy.predict_chunk(dict(obs, **{"observation.state": np.zeros(5, np.float32)}))


def test_loss_falls_overfitting_a_fixed_batch() -> None:
    policy = tiny(images=True, image_resize=[16, 20])
    # The ResNet stays fixed: its backward and AdamW over its 11 M weights would be most of the
    # time; the encoder still learns from its (random) features through the input projection.
    policy.model.backbone.requires_grad_(False)
    opt = torch.optim.AdamW(
        [dict(g, lr=3e-3) for g in policy.optimizer_param_groups()], weight_decay=0.0
    )
    b = batch(b=4, seed=1)
    losses = []
    for _ in range(100):
        loss, _ = policy(b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.2 * np.mean(losses[:5]), losses[::10]
    policy.eval()
    with torch.no_grad():
        l1 = policy(b)[1]["l1_loss"]  # no VAE at eval: the latent is zero
    assert l1 < 0.5


def test_optimizer_param_groups() -> None:
    policy = tiny(optimizer_lr=1e-4, optimizer_lr_backbone=1e-6, optimizer_weight_decay=0.01)
    rest, backbone = policy.optimizer_param_groups()
    assert (rest["lr"], backbone["lr"]) == (1e-4, 1e-6)
    assert rest["weight_decay"] == backbone["weight_decay"] == 0.01
    ids = [id(p) for g in (rest, backbone) for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in policy.parameters())
    assert {id(p) for p in backbone["params"]} == {
        id(p) for p in policy.model.backbone.parameters()
    }
    assert len(tiny(images=False).optimizer_param_groups()) == 1


# ---- batch composition, determinism --------------------------------------------------------


def test_train_mode_is_batch_composition_independent() -> None:
    """Sample i's prediction, loss and gradient are the same alone or in a batch (no BatchNorm
    statistics, losses are means over samples), so DDP over half batches equals one process."""
    policy = tiny()
    policy.train()
    b = batch(b=4, seed=3)
    noise = torch.randn(4, 4, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():  # still train mode: dropout and the VAE path are on
        full, mu, _ = policy.model(b, noise)
        for i in range(4):
            one = {k: v[i : i + 1] for k, v in b.items()}
            alone, mu_i, _ = policy.model(one, noise[i : i + 1])
            torch.testing.assert_close(alone[0], full[i], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(mu_i[0], mu[i], rtol=1e-5, atol=1e-5)

    def grads(part: slice) -> tuple[float, list[torch.Tensor]]:
        policy.zero_grad()
        loss, _ = policy({k: v[part] for k, v in b.items()}, latent_noise=noise[part])
        loss.backward()
        return loss.item(), [p.grad.clone() for p in policy.parameters()]

    loss_all, g_all = grads(slice(0, 4))
    loss_a, g_a = grads(slice(0, 2))
    loss_b, g_b = grads(slice(2, 4))
    assert (loss_a + loss_b) / 2 == pytest.approx(loss_all, rel=1e-5)
    for ga, gb, g in zip(g_a, g_b, g_all, strict=True):
        torch.testing.assert_close((ga + gb) / 2, g, rtol=1e-3, atol=1e-5)
    # Deterministic: the same step twice gives the same gradients, bit for bit.
    _, again = grads(slice(0, 4))
    assert all(torch.equal(x, y) for x, y in zip(g_all, again, strict=True))


# ---- checkpoints ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ACTPolicy]:
    policy = tiny(images=False)
    with torch.no_grad():  # non-trivial weights everywhere
        for p in policy.parameters():
            p.add_(0.01 * torch.randn_like(p))
    directory = tmp_path_factory.mktemp("act") / "pretrained_model"
    policy.save_pretrained(directory)
    return directory, policy


def test_save_load_round_trip_with_images(tmp_path: Path) -> None:
    policy = tiny()
    directory = policy.save_pretrained(tmp_path / "pretrained_model")
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [CONFIG_NAME, WEIGHTS_NAME, NORMALIZER_NAME]
    )
    config = json.loads((directory / CONFIG_NAME).read_text())
    assert config["type"] == "act" and config[IMPLEMENTATION_KEY].startswith("lerobot_ros/")
    assert config["normalization_mapping"]["VISUAL"] == "MEAN_STD"
    weights = load_file(directory / WEIGHTS_NAME)
    assert "model.backbone.layer4.1.bn2.running_var" in weights  # upstream key names
    assert not any("normaliz" in k for k in weights)
    assert sorted(load_file(directory / NORMALIZER_NAME)) == [
        "action.mean",
        "action.std",
        f"{CAM}.mean",
        f"{CAM}.std",
        "observation.state.mean",
        "observation.state.std",
    ]

    loaded = load_policy(tmp_path)  # a training output dir resolves to its pretrained_model
    assert isinstance(loaded, ACTPolicy) and loaded.policy_id == str(tmp_path)
    assert loaded.config == policy.config
    for seed in range(2):
        obs = observation(seed)
        np.testing.assert_array_equal(loaded.predict_chunk(obs), policy.predict_chunk(obs))

    # Checkpoint image keys must match the statistics saved next to them.
    config["input_features"]["observation.images.side"] = config["input_features"].pop(CAM)
    (directory / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"normalizer.safetensors.*observation.images.side"):
        ACTPolicy.from_pretrained(directory)


def _edit_config(d: Path, edit: Any) -> None:
    config = json.loads((d / CONFIG_NAME).read_text())
    edit(config)
    (d / CONFIG_NAME).write_text(json.dumps(config))


def _edit_tensors(path: Path, edit: Any) -> None:
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path)


BAD_CHECKPOINTS = {
    "no config": (lambda d: (d / CONFIG_NAME).unlink(), r"missing config\.json"),
    "no weights": (lambda d: (d / WEIGHTS_NAME).unlink(), r"missing model\.safetensors"),
    "no stats": (lambda d: (d / NORMALIZER_NAME).unlink(), r"missing normalizer\.safetensors"),
    "corrupt weights": (
        lambda d: (d / WEIGHTS_NAME).write_bytes(b"\x00" * 20),
        r"model\.safetensors: unreadable",
    ),
    "weight shape": (
        lambda d: _edit_tensors(
            d / WEIGHTS_NAME,
            lambda t: t.update({"model.action_head.weight": torch.zeros(4, 16)}),
        ),
        r"model\.action_head\.weight has shape \(4, 16\), expected \(3, 16\)",
    ),
    "missing weight": (
        lambda d: _edit_tensors(d / WEIGHTS_NAME, lambda t: t.pop("model.decoder.norm.weight")),
        r"missing keys \[model\.decoder\.norm\.weight\]",
    ),
    "unexpected weight": (
        lambda d: _edit_tensors(d / WEIGHTS_NAME, lambda t: t.update(extra=torch.zeros(1))),
        r"unexpected keys \[extra\]",
    ),
    "nan weight": (
        lambda d: _edit_tensors(
            d / WEIGHTS_NAME, lambda t: t["model.action_head.bias"].fill_(float("nan"))
        ),
        r"model\.action_head\.bias is not finite",
    ),
    "chunk size vs weights": (
        lambda d: _edit_config(d, lambda c: c.update(chunk_size=6, n_action_steps=6)),
        r"model\.decoder_pos_embed\.weight has shape \(5, 16\), expected \(6, 16\)",
    ),
    "missing stat": (
        lambda d: _edit_tensors(d / NORMALIZER_NAME, lambda t: t.pop("action.std")),
        r"normalizer\.safetensors: missing \[action\.std\]",
    ),
    "stat shape": (
        lambda d: _edit_tensors(
            d / NORMALIZER_NAME, lambda t: t.update({"observation.state.mean": torch.zeros(5)})
        ),
        r"observation\.state\.mean has shape \(5,\), expected \(4,\)",
    ),
    "mode needs other stats": (
        lambda d: _edit_config(d, lambda c: c["normalization_mapping"].update(ACTION="MIN_MAX")),
        r"missing \[action\.max, action\.min\], unexpected \[action\.mean, action\.std\]",
    ),
    "unknown config key": (
        lambda d: _edit_config(d, lambda c: c.update(temporal_ensemble_coeff=0.01)),
        r"config\.json.*unknown key\(s\) \['temporal_ensemble_coeff'\]",
    ),
    "bad config value": (
        lambda d: _edit_config(d, lambda c: c.update(dropout=1.5)),
        r"config\.json.*dropout = 1\.5",
    ),
    "wrong config type": (
        lambda d: _edit_config(d, lambda c: c.update(dim_model="16")),
        r"config\.json.*dim_model = '16' \(str\): expected int",
    ),
    "other policy type": (
        lambda d: _edit_config(d, lambda c: c.update(type="diffusion")),
        r"type = 'diffusion'",
    ),
    "state names vs shape": (
        lambda d: _edit_config(d, lambda c: c["state_names"].pop()),
        r"state_names has 3 names .*'observation\.state' has shape \[4\]",
    ),
    "duplicate action names": (
        lambda d: _edit_config(d, lambda c: c.update(action_names=["a", "a", "b"])),
        r"action_names = \['a', 'a', 'b'\]: empty or duplicate",
    ),
    "image key": (
        lambda d: _edit_config(
            d, lambda c: c["input_features"].update({"cam": {"type": "VISUAL", "shape": [3, 8, 8]}})
        ),
        r"input_features\['cam'\].*observation\.images\.<name>",
    ),
    "no action feature": (
        lambda d: _edit_config(d, lambda c: c.update(output_features={}, action_names=[])),
        r"output_features lack 'action'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CHECKPOINTS))
def test_bad_checkpoint_fails_at_load_naming_the_problem(
    case: str, saved: tuple[Path, ACTPolicy], tmp_path: Path
) -> None:
    edit, message = BAD_CHECKPOINTS[case]
    directory = tmp_path / "pretrained_model"
    shutil.copytree(saved[0], directory)
    edit(directory)
    with pytest.raises(CheckpointError, match=message):
        ACTPolicy.from_pretrained(directory)


def test_unedited_copy_loads(saved: tuple[Path, ACTPolicy], tmp_path: Path) -> None:
    """The bad-checkpoint cases start from a loadable directory."""
    shutil.copytree(saved[0], tmp_path / "ok")
    loaded = load_policy(tmp_path / "ok")
    obs = {"observation.state": np.arange(4, dtype=np.float32)}
    np.testing.assert_array_equal(loaded.predict_chunk(obs), saved[1].predict_chunk(obs))


# ---- normalization ----------------------------------------------------------------------------


def test_make_normalizer_checks_stats() -> None:
    config = ACTConfig.from_dataset(features(), 30, **TINY)
    normalizer = make_normalizer(config, stats())
    assert normalizer.modes == {
        "observation.state": "MEAN_STD",
        CAM: "MEAN_STD",
        "action": "MEAN_STD",
    }
    x = torch.tensor([3.0, -2.0, 3.0, 0.5])
    torch.testing.assert_close(
        normalizer.normalize("observation.state", x), torch.tensor([1.0, 0, 0, 0])
    )
    missing = {k: v for k, v in stats().items() if k != CAM}
    with pytest.raises(NormalizationError, match=r"observation\.images\.front"):
        make_normalizer(config, missing)
    flat_image = dict(stats(), **{CAM: {"mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]}})
    with pytest.raises(CheckpointError, match=r"observation.images.front.mean has shape \(3,\)"):
        make_normalizer(config, flat_image)


# ---- backbone weights -----------------------------------------------------------------------


def _torchvision_like(path: Path) -> dict[str, torch.Tensor]:
    """A resnet18 state dict as torchvision names it (with fc and num_batches_tracked)."""
    torch.manual_seed(7)
    tensors = {k: v.clone() for k, v in ResNet18().state_dict().items()}
    for k in list(tensors):
        if k.endswith("running_var"):
            tensors[k] = torch.rand_like(tensors[k]) + 0.5
            tensors[k.replace("running_var", "num_batches_tracked")] = torch.tensor(5)
    tensors["fc.weight"], tensors["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    save_file(tensors, path)
    return tensors


def test_pretrained_backbone_weights(tmp_path: Path) -> None:
    path = tmp_path / "resnet18.safetensors"
    tensors = _torchvision_like(path)
    policy = tiny(pretrained_backbone_weights=str(path))
    state = policy.model.backbone.state_dict()
    assert all(torch.equal(state[k], tensors[k]) for k in state)
    # A checkpoint carries the weights itself: the file is not needed to load it.
    directory = policy.save_pretrained(tmp_path / "ckpt")
    path.unlink()
    loaded = ACTPolicy.from_pretrained(directory)
    assert torch.equal(loaded.model.backbone.conv1.weight, tensors["conv1.weight"])

    with pytest.raises(CheckpointError, match=r"missing file .*resnet18\.safetensors"):
        tiny(pretrained_backbone_weights=str(path))
    del tensors["layer2.0.downsample.0.weight"]
    tensors["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    save_file(tensors, path)
    with pytest.raises(CheckpointError, match=r"missing keys \[layer2\.0\.downsample\.0\.weight\]"):
        tiny(pretrained_backbone_weights=str(path))
    tensors["layer2.0.downsample.0.weight"] = torch.zeros(128, 64, 1, 1)
    save_file(tensors, path)
    with pytest.raises(
        CheckpointError, match=r"layer1\.0\.conv1\.weight has shape \(64, 64, 1, 1\)"
    ):
        tiny(pretrained_backbone_weights=str(path))


def test_dilated_backbone_halves_the_stride() -> None:
    x = torch.zeros(1, 3, 64, 96)
    assert ResNet18()(x).shape == (1, 512, 2, 3)
    assert ResNet18(dilate_last=True)(x).shape == (1, 512, 4, 6)


# ---- config ---------------------------------------------------------------------------------


def test_shipped_configs_load() -> None:
    assert ACTConfig.from_yaml(REPO / "config" / "act.yaml") == ACTConfig()  # upstream defaults
    small = read_config_file(REPO / "config" / "act_small.yaml")
    config = ACTConfig.from_dataset(features(), 30, **small)
    assert (config.dim_model, config.vision_backbone, config.image_resize) == (
        128,
        "resnet18",
        [96, 128],
    )
    assert config.optimizer_lr == 1e-4


def test_config_from_dataset_and_round_trips(tmp_path: Path) -> None:
    feats = features()
    feats["observation.images.wrist"] = {
        "dtype": "image",
        "shape": [24, 32, 3],
        "names": ["height", "width", "channels"],
    }
    config = ACTConfig.from_dataset(feats, 15, **TINY)
    assert config.input_features == {
        "observation.state": {"type": "STATE", "shape": [4]},
        CAM: {"type": "VISUAL", "shape": [3, H, W]},
        "observation.images.wrist": {"type": "VISUAL", "shape": [3, 24, 32]},
    }
    assert config.output_features == {"action": {"type": "ACTION", "shape": [3]}}
    assert (config.state_names, config.action_names, config.fps) == (STATE, ACTIONS, 15.0)
    assert config.action_delta_indices == [0, 1, 2, 3, 4]
    assert ACTConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    path = tmp_path / "act.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    assert ACTConfig.from_yaml(path) == config
    path.write_text("optimizer_lr: 3e-4\nimage_resize: [48, 64]\n")  # YAML 1.1 reads 3e-4 as str
    assert read_config_file(path) == {"optimizer_lr": 3e-4, "image_resize": [48, 64]}
    with pytest.raises(ValueError, match=r"'action'"):
        ACTConfig.from_dataset({"observation.state": feats["observation.state"]}, 30)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"chunk_sise": 10}, r"unknown key\(s\) \['chunk_sise'\]"),
        ({"dropout": "0.1"}, r"dropout = '0\.1' \(str\): expected float"),
        ({"use_vae": 1}, r"use_vae = 1 \(int\): expected bool"),
        ({"n_heads": True}, r"n_heads = True \(bool\): expected int"),
        ({"chunk_size": 0}, r"chunk_size = 0: must be >= 1"),
        ({"n_action_steps": 200}, r"n_action_steps = 200: must be <= chunk_size \(100\)"),
        ({"n_heads": 7}, r"dim_model = 512: must be a multiple of n_heads \(7\)"),
        ({"feedforward_activation": "glu"}, r"feedforward_activation = 'glu'"),
        ({"vision_backbone": "resnet34"}, r"vision_backbone = 'resnet34'"),
        ({"normalization_mapping": {"VISUAL": "MEAN_STD"}}, r"normalization_mapping = "),
        (
            {"normalization_mapping": {"VISUAL": "Z", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"}},
            r"mode of VISUAL must be one of",
        ),
        ({"image_resize": [96]}, r"image_resize = \[96\]"),
        ({"fps": -1}, r"fps = -1\.0"),
        ({"optimizer_lr": 0}, r"optimizer_lr = 0\.0"),
        (
            {"input_features": {"observation.state": {"type": "STATE"}}},
            r"input_features\['observation\.state'\]",
        ),
    ],
)
def test_config_validation_names_the_field(
    data: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=message):
        ACTConfig.from_dict(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=rf"bad\.yaml: .*{message}"):
        ACTConfig.from_yaml(path)
