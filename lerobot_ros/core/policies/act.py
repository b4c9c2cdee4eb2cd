"""ACT (Action Chunking Transformer, Zhao et al. 2023) in plain torch, no torchvision.

The network follows upstream LeRobot 0.4.4's `lerobot/policies/act` (same module and parameter
names, so `model.safetensors` keys are `model.backbone.conv1.weight`, `model.encoder.layers.0...`
as upstream's): a ResNet-18 per camera -> feature-map tokens, plus a latent token and a state
token, through a transformer encoder; a DETR-style decoder turns `chunk_size` learned queries
into `chunk_size` action rows. In training, a VAE encoder over [cls, state, actions] gives the
latent (loss = L1 + kl_weight * KL); at inference the latent is zero.

Two deliberate properties:
* Batch-composition independence: the backbone uses FrozenBatchNorm2d (fixed affine and running
  statistics, as upstream), so in train mode each sample's output depends only on that sample;
  the losses are plain means over samples. Two processes on half batches (DDP) therefore train
  like one process on the whole batch. With dropout 0 and use_vae false (or `latent_noise`
  passed in), training is deterministic.
* Checkpoints in LeRobot's `pretrained_model` layout, without pickle:
    config.json              type "act", IMPLEMENTATION_KEY, every ACTConfig field
    model.safetensors        the network's state dict (no normalization statistics)
    normalizer.safetensors   NORMALIZER_NAME: the dataset statistics the policy normalizes
                             with, flat "<feature>.<stat>" keys (upstream's normalizer processor
                             layout); modes follow config.json's normalization_mapping.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from lerobot_ros import __version__
from lerobot_ros.core.policies.base import (
    CONFIG_NAME,
    IMPLEMENTATION_KEY,
    POLICIES,
    WEIGHTS_NAME,
    CheckpointError,
)
from lerobot_ros.core.policies.normalize import MODES, Normalizer

POLICY_TYPE = "act"
NORMALIZER_NAME = "normalizer.safetensors"
STATE_KEY = "observation.state"
ACTION_KEY = "action"
IMAGE_PREFIX = "observation.images."
FEATURE_TYPES = ("STATE", "VISUAL", "ACTION")
ACTIVATIONS = ("relu", "gelu")
BACKBONES = ("resnet18",)
# Keys of a torchvision resnet18 state dict that the backbone does not use.
_TORCHVISION_IGNORED = ("fc.weight", "fc.bias")


def _default_mapping() -> dict[str, str]:
    return {"VISUAL": "MEAN_STD", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"}


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass
class ACTConfig:
    """Every setting of an ACT policy; field names follow upstream's ACTConfig.

    Features say what the policy reads and writes: key -> {"type": STATE|VISUAL|ACTION,
    "shape": [...]} (VISUAL shapes are [3, H, W], channels first, as upstream's config.json).
    A config without features (a YAML of hyperparameters) is valid; ACTPolicy requires them.
    """

    input_features: dict[str, dict[str, Any]] = field(default_factory=dict)
    output_features: dict[str, dict[str, Any]] = field(default_factory=dict)
    state_names: list[str] = field(default_factory=list)
    action_names: list[str] = field(default_factory=list)
    fps: float = 30.0
    chunk_size: int = 100
    n_action_steps: int = 100
    normalization_mapping: dict[str, str] = field(default_factory=_default_mapping)
    vision_backbone: str = "resnet18"
    pretrained_backbone_weights: str | None = None
    replace_final_stride_with_dilation: bool = False
    image_resize: list[int] | None = None
    pre_norm: bool = False
    dim_model: int = 512
    n_heads: int = 8
    dim_feedforward: int = 3200
    feedforward_activation: str = "relu"
    n_encoder_layers: int = 4
    n_decoder_layers: int = 1
    use_vae: bool = True
    latent_dim: int = 32
    n_vae_encoder_layers: int = 4
    dropout: float = 0.1
    kl_weight: float = 10.0
    optimizer_lr: float = 1e-5
    optimizer_weight_decay: float = 1e-4
    optimizer_lr_backbone: float = 1e-5

    def __post_init__(self) -> None:
        """Types first (ints accepted for floats, tuples for lists), then values."""
        hints = _hints()
        for f in dataclasses.fields(self):
            setattr(self, f.name, _typed(f.name, getattr(self, f.name), hints[f.name]))
        self.validate()

    # ---- derived views ----------------------------------------------------------------------

    @property
    def image_keys(self) -> list[str]:
        return [k for k, f in self.input_features.items() if f["type"] == "VISUAL"]

    @property
    def state_dim(self) -> int | None:
        feature = self.input_features.get(STATE_KEY)
        return int(feature["shape"][0]) if feature else None

    @property
    def action_dim(self) -> int:
        return int(self.output_features[ACTION_KEY]["shape"][0])

    @property
    def action_delta_indices(self) -> list[int]:
        """Frame offsets of the action rows a training sample needs (upstream's property)."""
        return list(range(self.chunk_size))

    def feature_modes(self) -> dict[str, str]:
        """feature key -> normalization mode, from normalization_mapping and feature types."""
        features = {**self.input_features, **self.output_features}
        return {k: self.normalization_mapping[f["type"]] for k, f in features.items()}

    # ---- validation -------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise ValueError naming the field and value of the first bad setting."""

        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"ACT config: {name} = {getattr(self, name)!r}: {why}")

        positive = ("chunk_size", "n_action_steps", "dim_model", "n_heads", "dim_feedforward")
        positive += ("n_encoder_layers", "n_decoder_layers", "latent_dim")
        for name in positive:
            if getattr(self, name) < 1:
                raise bad(name, "must be >= 1")
        if self.use_vae and self.n_vae_encoder_layers < 1:
            raise bad("n_vae_encoder_layers", "must be >= 1 when use_vae is true")
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise bad("fps", "must be a finite number > 0")
        if self.n_action_steps > self.chunk_size:
            raise bad("n_action_steps", f"must be <= chunk_size ({self.chunk_size})")
        if self.dim_model % self.n_heads:
            raise bad("dim_model", f"must be a multiple of n_heads ({self.n_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise bad("dropout", "must be in [0, 1)")
        for name in ("kl_weight", "optimizer_weight_decay", "optimizer_lr_backbone"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise bad(name, "must be a finite number >= 0")
        if not (math.isfinite(self.optimizer_lr) and self.optimizer_lr > 0):
            raise bad("optimizer_lr", "must be a finite number > 0")
        if self.feedforward_activation not in ACTIVATIONS:
            raise bad("feedforward_activation", f"must be one of {ACTIVATIONS}")
        if self.vision_backbone not in BACKBONES:
            raise bad("vision_backbone", f"must be one of {BACKBONES}")
        if self.pretrained_backbone_weights == "":
            raise bad("pretrained_backbone_weights", "must be null or a safetensors file path")
        if self.image_resize is not None and (
            len(self.image_resize) != 2 or min(self.image_resize) < 1
        ):
            raise bad("image_resize", "must be null or [height, width], both >= 1")
        if set(self.normalization_mapping) != set(FEATURE_TYPES):
            raise bad("normalization_mapping", f"must have exactly the keys {FEATURE_TYPES}")
        for kind, mode in self.normalization_mapping.items():
            if mode not in MODES:
                raise bad("normalization_mapping", f"mode of {kind} must be one of {MODES}")
        self._validate_features()

    def _validate_features(self) -> None:
        for name, allowed in (
            ("input_features", ("STATE", "VISUAL")),
            ("output_features", ("ACTION",)),
        ):
            for key, feature in getattr(self, name).items():
                where = f"ACT config: {name}[{key!r}]"
                if not isinstance(feature, Mapping) or set(feature) != {"type", "shape"}:
                    raise ValueError(
                        f"{where} = {feature!r}: must be {{'type': ..., 'shape': [...]}}"
                    )
                kind, shape = feature["type"], feature["shape"]
                if kind not in allowed:
                    raise ValueError(f"{where}: type {kind!r} must be one of {allowed}")
                if (
                    not isinstance(shape, list)
                    or not shape
                    or not all(type(d) is int and d >= 1 for d in shape)
                ):
                    raise ValueError(f"{where}: shape {shape!r} must be a list of ints >= 1")
                if kind == "STATE" and (key != STATE_KEY or len(shape) != 1):
                    raise ValueError(f"{where}: a STATE feature must be {STATE_KEY!r}, shape [S]")
                if kind == "ACTION" and (key != ACTION_KEY or len(shape) != 1):
                    raise ValueError(
                        f"{where}: an ACTION feature must be {ACTION_KEY!r}, shape [A]"
                    )
                if kind == "VISUAL" and (
                    not key.startswith(IMAGE_PREFIX) or len(shape) != 3 or shape[0] != 3
                ):
                    raise ValueError(
                        f"{where}: a VISUAL feature must be {IMAGE_PREFIX}<name>, shape [3, H, W]"
                    )
        action = self.output_features.get(ACTION_KEY)
        for names_field, dim, key in (
            ("state_names", self.state_dim, STATE_KEY),
            ("action_names", action["shape"][0] if action else None, ACTION_KEY),
        ):
            names = getattr(self, names_field)
            if dim is None and not names:
                continue
            if dim is None:
                raise ValueError(f"ACT config: {names_field} = {names!r} but no {key!r} feature")
            if len(names) != dim:
                raise ValueError(
                    f"ACT config: {names_field} has {len(names)} names {names!r}, "
                    f"but {key!r} has shape [{dim}]"
                )
            if len(set(names)) != len(names) or not all(names):
                raise ValueError(f"ACT config: {names_field} = {names!r}: empty or duplicate names")
        if self.image_keys and self.dim_model % 4:
            raise ValueError(
                f"ACT config: dim_model = {self.dim_model}: must be a multiple of 4 with images "
                "(2D sine position embedding)"
            )

    def require_features(self) -> None:
        """A policy needs an action and at least one input; raise ValueError otherwise."""
        if ACTION_KEY not in self.output_features:
            raise ValueError(f"ACT config: output_features lack {ACTION_KEY!r}")
        if not self.input_features:
            raise ValueError(f"ACT config: input_features need {STATE_KEY!r} and/or images")

    # ---- dict / YAML / dataset --------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def check_values(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        """Known keys with values of the right type (ints accepted for floats), else ValueError
        naming the key; the result is a plain dict ready for ACTConfig(**result)."""
        known = cls.field_names()
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"ACT config: unknown key(s) {unknown}; known keys: {known}")
        hints = _hints()
        return {name: _typed(name, value, hints[name]) for name, value in data.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ACTConfig:
        """From to_dict() output or a checkpoint's config.json (its `type` must be "act")."""
        data = dict(data)
        kind = data.pop("type", POLICY_TYPE)
        if kind != POLICY_TYPE:
            raise ValueError(f"ACT config: type = {kind!r}, expected {POLICY_TYPE!r}")
        data.pop(IMPLEMENTATION_KEY, None)
        return cls(**cls.check_values(data))

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> ACTConfig:
        """A YAML file of fields (e.g. config/act.yaml), then `overrides` on top."""
        data = {**read_config_file(path), **overrides}
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc

    @classmethod
    def from_dataset(
        cls, features: Mapping[str, Mapping[str, Any]], fps: float, **overrides: Any
    ) -> ACTConfig:
        """Features from a LeRobotDataset's meta/info.json `features`: observation.state, action
        and every observation.images.* video/image; `overrides` set the other fields (e.g. the
        dict read_config_file() returns)."""
        inputs: dict[str, dict[str, Any]] = {}
        outputs: dict[str, dict[str, Any]] = {}
        names: dict[str, list[str]] = {}
        for key, feature in features.items():
            if key in (STATE_KEY, ACTION_KEY):
                shape = [int(d) for d in feature["shape"]]
                kind = "STATE" if key == STATE_KEY else "ACTION"
                (inputs if key == STATE_KEY else outputs)[key] = {"type": kind, "shape": shape}
                names[key] = _feature_names(key, feature)
            elif key.startswith(IMAGE_PREFIX) and feature.get("dtype") in ("video", "image"):
                inputs[key] = {"type": "VISUAL", "shape": _chw(key, feature)}
        if ACTION_KEY not in outputs:
            raise ValueError(f"dataset features lack {ACTION_KEY!r}: {sorted(features)}")
        data: dict[str, Any] = {
            "input_features": inputs,
            "output_features": outputs,
            "state_names": names.get(STATE_KEY, []),
            "action_names": names[ACTION_KEY],
            "fps": float(fps),
        }
        data.update(overrides)
        return cls.from_dict(data)


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(ACTConfig)


def _typed(name: str, value: Any, hint: Any) -> Any:
    """`value` checked against the type hint `hint` (a small subset of typing), or ValueError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = (a for a in args if a is not type(None))
        return _typed(name, value, inner)
    ok = False
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    elif origin is list:
        ok = isinstance(value, (list, tuple))
        if ok:
            return [_typed(f"{name}[{i}]", v, args[0]) for i, v in enumerate(value)]
    elif origin is dict:
        ok = isinstance(value, Mapping) and all(isinstance(k, str) for k in value)
        if ok:
            return {k: _typed(f"{name}[{k!r}]", v, args[1]) for k, v in value.items()}
    elif hint is Any:
        return _plain(value)
    if not ok:
        want = getattr(hint, "__name__", str(hint))
        raise ValueError(
            f"ACT config: {name} = {value!r} ({type(value).__name__}): expected {want}"
        )
    return value


def _plain(value: Any) -> Any:
    """JSON-like copy: tuples become lists (shapes read from YAML or info.json)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _feature_names(key: str, feature: Mapping[str, Any]) -> list[str]:
    names = feature.get("names")
    if isinstance(names, Mapping) and len(names) == 1:  # older datasets: {"motors": [...]}
        names = next(iter(names.values()))
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"dataset feature {key!r} has no list of names: {names!r}")
    return list(names)


def _chw(key: str, feature: Mapping[str, Any]) -> list[int]:
    shape = [int(d) for d in feature["shape"]]
    names = list(feature.get("names") or ["height", "width", "channels"])
    if len(shape) != 3 or len(names) != 3:
        raise ValueError(f"dataset image feature {key!r}: shape {shape} is not 3-D")
    if names[0] in ("channels", "channel", "c"):
        return shape
    return [shape[2], shape[0], shape[1]]


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-5` as a float (YAML 1.1 wants `1.0e-5`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The fields of an ACT YAML (or JSON) config file, type-checked; ValueError names the file
    and the key. Use as overrides: ACTConfig.from_dataset(features, fps, **read_config_file(p))."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(), Loader=_Loader)  # _Loader is a SafeLoader
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"ACT config file {path}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"ACT config file {path}: expected a mapping, got {type(data).__name__}")
    try:
        return ACTConfig.check_values(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


# --------------------------------------------------------------------------------------------
# ResNet-18 (torchvision's layout and key names, FrozenBatchNorm2d)
# --------------------------------------------------------------------------------------------


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine (buffers, not parameters): per-sample, so a
    sample's output never depends on the rest of the batch (torchvision's semantics)."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        state_dict.pop(prefix + "num_batches_tracked", None)  # from a regular BatchNorm
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)


class BasicBlock(nn.Module):
    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, dilation, dilation, bias=False)
        self.bn1 = FrozenBatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, dilation, dilation, bias=False)
        self.bn2 = FrozenBatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """torchvision's resnet18 up to layer4 (no avgpool / fc): (B, 3, H, W) -> (B, 512, H/32,
    W/32), or H/16 with `dilate_last` (layer4's stride replaced by dilation 2)."""

    out_channels = 512

    def __init__(self, dilate_last: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = FrozenBatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._layer(64, 64, 1)
        self.layer2 = self._layer(64, 128, 2)
        self.layer3 = self._layer(128, 256, 2)
        self.layer4 = self._layer(256, 512, 2, dilate=dilate_last)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _layer(inplanes: int, planes: int, stride: int, dilate: bool = False) -> nn.Sequential:
        dilation = 1
        if dilate:  # torchvision: the first block keeps the previous dilation, later ones use 2
            dilation, stride = stride, 1
        downsample = None
        if stride != 1 or inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), FrozenBatchNorm2d(planes)
            )
        return nn.Sequential(
            BasicBlock(inplanes, planes, stride, downsample),
            BasicBlock(planes, planes, dilation=dilation),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def load_backbone_weights(backbone: ResNet18, path: str | Path) -> None:
    """Load a safetensors file with torchvision resnet18 key names (conv1.weight, bn1.running_mean,
    layer1.0.conv1.weight, ...; fc.* and num_batches_tracked are ignored). Convert torchvision's
    weights once with `safetensors.torch.save_file(resnet18(weights=...).state_dict(), path)`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"pretrained_backbone_weights: missing file {path}")
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"pretrained_backbone_weights {path}: unreadable ({exc})") from exc
    tensors = {
        k: v
        for k, v in tensors.items()
        if k not in _TORCHVISION_IGNORED and not k.endswith("num_batches_tracked")
    }
    _check_state(f"pretrained_backbone_weights {path}", backbone.state_dict(), tensors)
    backbone.load_state_dict(tensors)


def _check_state(what: str, expected: Mapping[str, Tensor], found: Mapping[str, Tensor]) -> None:
    """CheckpointError naming missing / unexpected keys and shape mismatches."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_few(unexpected)}")
        raise CheckpointError(f"{what}: {'; '.join(parts)}")
    wrong = [
        f"{key} has shape {tuple(found[key].shape)}, expected {tuple(value.shape)}"
        for key, value in expected.items()
        if tuple(found[key].shape) != tuple(value.shape)
    ]
    if wrong:
        raise CheckpointError(f"{what}: {'; '.join(wrong[:8])}")


def _few(keys: Sequence[str], n: int = 8) -> str:
    shown = ", ".join(keys[:n])
    return f"[{shown}{f', ... ({len(keys)} in all)' if len(keys) > n else ''}]"


# --------------------------------------------------------------------------------------------
# Transformer
# --------------------------------------------------------------------------------------------


def _activation(name: str) -> typing.Callable[[Tensor], Tensor]:
    return F.relu if name == "relu" else F.gelu


class EncoderLayer(nn.Module):
    """Post-norm (or pre-norm) self-attention block; sequences are (S, B, D), as upstream."""

    def __init__(self, c: ACTConfig) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(c.dim_model, c.n_heads, dropout=c.dropout)
        self.linear1 = nn.Linear(c.dim_model, c.dim_feedforward)
        self.dropout = nn.Dropout(c.dropout)
        self.linear2 = nn.Linear(c.dim_feedforward, c.dim_model)
        self.norm1 = nn.LayerNorm(c.dim_model)
        self.norm2 = nn.LayerNorm(c.dim_model)
        self.dropout1 = nn.Dropout(c.dropout)
        self.dropout2 = nn.Dropout(c.dropout)
        self.activation = _activation(c.feedforward_activation)
        self.pre_norm = c.pre_norm

    def forward(
        self, x: Tensor, pos_embed: Tensor | None = None, key_padding_mask: Tensor | None = None
    ) -> Tensor:
        skip = x
        if self.pre_norm:
            x = self.norm1(x)
        q = k = x if pos_embed is None else x + pos_embed
        x = self.self_attn(q, k, x, key_padding_mask=key_padding_mask, need_weights=False)[0]
        x = skip + self.dropout1(x)
        if self.pre_norm:
            skip, x = x, self.norm2(x)
        else:
            x = skip = self.norm1(x)
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        x = skip + self.dropout2(x)
        return x if self.pre_norm else self.norm2(x)


class Encoder(nn.Module):
    def __init__(self, c: ACTConfig, n_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(c) for _ in range(n_layers))
        self.norm: nn.Module = nn.LayerNorm(c.dim_model) if c.pre_norm else nn.Identity()

    def forward(
        self, x: Tensor, pos_embed: Tensor | None = None, key_padding_mask: Tensor | None = None
    ) -> Tensor:
        for layer in self.layers:
            x = layer(x, pos_embed, key_padding_mask)
        return self.norm(x)


class DecoderLayer(nn.Module):
    def __init__(self, c: ACTConfig) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(c.dim_model, c.n_heads, dropout=c.dropout)
        self.multihead_attn = nn.MultiheadAttention(c.dim_model, c.n_heads, dropout=c.dropout)
        self.linear1 = nn.Linear(c.dim_model, c.dim_feedforward)
        self.dropout = nn.Dropout(c.dropout)
        self.linear2 = nn.Linear(c.dim_feedforward, c.dim_model)
        self.norm1 = nn.LayerNorm(c.dim_model)
        self.norm2 = nn.LayerNorm(c.dim_model)
        self.norm3 = nn.LayerNorm(c.dim_model)
        self.dropout1 = nn.Dropout(c.dropout)
        self.dropout2 = nn.Dropout(c.dropout)
        self.dropout3 = nn.Dropout(c.dropout)
        self.activation = _activation(c.feedforward_activation)
        self.pre_norm = c.pre_norm

    def forward(self, x: Tensor, memory: Tensor, query_pos: Tensor, memory_pos: Tensor) -> Tensor:
        skip = x
        if self.pre_norm:
            x = self.norm1(x)
        q = k = x + query_pos
        x = skip + self.dropout1(self.self_attn(q, k, x, need_weights=False)[0])
        if self.pre_norm:
            skip, x = x, self.norm2(x)
        else:
            x = skip = self.norm1(x)
        x = self.multihead_attn(x + query_pos, memory + memory_pos, memory, need_weights=False)[0]
        x = skip + self.dropout2(x)
        if self.pre_norm:
            skip, x = x, self.norm3(x)
        else:
            x = skip = self.norm2(x)
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        x = skip + self.dropout3(x)
        return x if self.pre_norm else self.norm3(x)


class Decoder(nn.Module):
    def __init__(self, c: ACTConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(c) for _ in range(c.n_decoder_layers))
        self.norm = nn.LayerNorm(c.dim_model)

    def forward(self, x: Tensor, memory: Tensor, query_pos: Tensor, memory_pos: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x, memory, query_pos, memory_pos)
        return self.norm(x)


def sine_embedding_1d(n: int, dim: int) -> Tensor:
    """(n, dim) fixed sinusoidal position embedding (Attention Is All You Need)."""
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(dim)
    angle = pos / torch.pow(10000.0, (2 * (j // 2)).double() / dim)
    out = torch.where(j % 2 == 0, angle.sin(), angle.cos())
    return out.float()


def sine_embedding_2d(h: int, w: int, dim: int, device: torch.device) -> Tensor:
    """(1, dim, h, w): dim/2 channels encode the row, dim/2 the column; positions scaled to
    (0, 2π] with interleaved sin/cos (upstream's ACTSinusoidalPositionEmbedding2d)."""
    half = dim // 2
    eps, two_pi = 1e-6, 2 * math.pi
    y = torch.arange(1, h + 1, dtype=torch.float32, device=device)
    x = torch.arange(1, w + 1, dtype=torch.float32, device=device)
    y = (y / (h + eps) * two_pi)[:, None].expand(h, w)
    x = (x / (w + eps) * two_pi)[None, :].expand(h, w)
    freq = 10000 ** (2 * (torch.arange(half, dtype=torch.float32, device=device) // 2) / half)

    def interleave(v: Tensor) -> Tensor:
        a = v[..., None] / freq  # (h, w, half)
        return torch.stack((a[..., 0::2].sin(), a[..., 1::2].cos()), dim=-1).flatten(2)

    return torch.cat((interleave(y), interleave(x)), dim=2).permute(2, 0, 1)[None]


class ACT(nn.Module):
    """The network. Inputs normalized; sequences inside are (S, B, D) as upstream's."""

    def __init__(self, c: ACTConfig) -> None:
        super().__init__()
        self.config = c
        d = c.dim_model
        has_state = c.state_dim is not None
        if c.use_vae:
            self.vae_encoder = Encoder(c, c.n_vae_encoder_layers)
            self.vae_encoder_cls_embed = nn.Embedding(1, d)
            if has_state:
                self.vae_encoder_robot_state_input_proj = nn.Linear(c.state_dim, d)
            self.vae_encoder_action_input_proj = nn.Linear(c.action_dim, d)
            self.vae_encoder_latent_output_proj = nn.Linear(d, c.latent_dim * 2)
            n_tokens = 1 + int(has_state) + c.chunk_size
            self.register_buffer("vae_encoder_pos_enc", sine_embedding_1d(n_tokens, d)[None])
        if c.image_keys:
            self.backbone = ResNet18(c.replace_final_stride_with_dilation)
        self.encoder = Encoder(c, c.n_encoder_layers)
        self.decoder = Decoder(c)
        if has_state:
            self.encoder_robot_state_input_proj = nn.Linear(c.state_dim, d)
        self.encoder_latent_input_proj = nn.Linear(c.latent_dim, d)
        if c.image_keys:
            self.encoder_img_feat_input_proj = nn.Conv2d(ResNet18.out_channels, d, 1)
        self.encoder_1d_feature_pos_embed = nn.Embedding(1 + int(has_state), d)
        self.decoder_pos_embed = nn.Embedding(c.chunk_size, d)
        self.action_head = nn.Linear(d, c.action_dim)
        for p in (*self.encoder.parameters(), *self.decoder.parameters()):
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(
        self,
        batch: Mapping[str, Tensor],
        latent_noise: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """-> actions (B, chunk, A), and the latent's mu and log(sigma^2) (B, L) in VAE training
        (None otherwise)."""
        c = self.config
        first = batch[STATE_KEY] if c.state_dim is not None else batch[c.image_keys[0]]
        bsz, device = first.shape[0], first.device
        mu = log_sigma_x2 = None
        if c.use_vae and self.training:
            tokens = [self.vae_encoder_cls_embed.weight.expand(bsz, 1, -1)]
            if c.state_dim is not None:
                tokens.append(self.vae_encoder_robot_state_input_proj(batch[STATE_KEY])[:, None])
            tokens.append(self.vae_encoder_action_input_proj(batch[ACTION_KEY]))
            vae_in = torch.cat(tokens, dim=1).transpose(0, 1)
            pad = batch.get("action_is_pad")
            if pad is None:
                pad = torch.zeros(bsz, c.chunk_size, dtype=torch.bool, device=device)
            n_lead = 1 + int(c.state_dim is not None)
            lead = torch.zeros(bsz, n_lead, dtype=torch.bool, device=device)
            mask = torch.cat([lead, pad.bool()], dim=1)
            pos = self.vae_encoder_pos_enc.transpose(0, 1)
            cls_out = self.vae_encoder(vae_in, pos, key_padding_mask=mask)[0]
            params = self.vae_encoder_latent_output_proj(cls_out)
            mu, log_sigma_x2 = params[:, : c.latent_dim], params[:, c.latent_dim :]
            noise = torch.randn_like(mu) if latent_noise is None else latent_noise.to(mu)
            latent = mu + (log_sigma_x2 / 2).exp() * noise
        else:
            latent = torch.zeros(bsz, c.latent_dim, device=device, dtype=first.dtype)

        tokens_1d = [self.encoder_latent_input_proj(latent)]
        if c.state_dim is not None:
            tokens_1d.append(self.encoder_robot_state_input_proj(batch[STATE_KEY]))
        tokens = [torch.stack(tokens_1d, dim=0)]  # (n_1d, B, D)
        pos = [self.encoder_1d_feature_pos_embed.weight[:, None]]  # (n_1d, 1, D)
        for key in c.image_keys:
            image = batch[key]
            if c.image_resize is not None and list(image.shape[-2:]) != c.image_resize:
                image = F.interpolate(
                    image,
                    size=c.image_resize,
                    mode="bilinear",
                    align_corners=False,
                    antialias=True,
                )
            fmap = self.backbone(image)
            cam_pos = sine_embedding_2d(*fmap.shape[-2:], c.dim_model, fmap.device)
            fmap = self.encoder_img_feat_input_proj(fmap)
            tokens.append(fmap.flatten(2).permute(2, 0, 1))  # (h*w, B, D)
            pos.append(cam_pos.to(fmap.dtype).flatten(2).permute(2, 0, 1))  # (h*w, 1, D)
        enc_in, enc_pos = torch.cat(tokens, dim=0), torch.cat(pos, dim=0)
        memory = self.encoder(enc_in, enc_pos)
        queries = torch.zeros(c.chunk_size, bsz, c.dim_model, device=device, dtype=memory.dtype)
        out = self.decoder(queries, memory, self.decoder_pos_embed.weight[:, None], enc_pos)
        return self.action_head(out.transpose(0, 1)), mu, log_sigma_x2


# --------------------------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------------------------


def make_normalizer(config: ACTConfig, stats: Mapping[str, Mapping[str, Any]]) -> Normalizer:
    """The Normalizer of a policy: every input / output feature with its normalization_mapping
    mode, statistics from a dataset's stats.json dict. The training loader builds its own with
    this function, so training and inference normalize alike."""
    normalizer = Normalizer(stats, config.feature_modes())
    _check_stat_shapes(config, normalizer.to_tensors(), "statistics")
    return normalizer


def _expected_stat_shapes(config: ACTConfig) -> dict[str, tuple[int, ...]]:
    """flat "<feature>.<stat>" -> shape the Normalizer keeps for this config."""
    out = {}
    features = {**config.input_features, **config.output_features}
    for key, mode in config.feature_modes().items():
        if mode == "IDENTITY":
            continue
        shape = features[key]["shape"]
        stat_shape = (shape[0], 1, 1) if features[key]["type"] == "VISUAL" else tuple(shape)
        for name in ("mean", "std") if mode == "MEAN_STD" else ("min", "max"):
            out[f"{key}.{name}"] = stat_shape
    return out


def _check_stat_shapes(config: ACTConfig, tensors: Mapping[str, Tensor], what: str) -> None:
    expected = _expected_stat_shapes(config)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{what}: missing {_few(missing)}, unexpected {_few(unexpected)} "
            f"(features {sorted(config.feature_modes())})"
        )
    for key, shape in expected.items():
        if tuple(tensors[key].shape) != shape:
            raise CheckpointError(
                f"{what}: {key} has shape {tuple(tensors[key].shape)}, expected {shape}"
            )


@POLICIES.register(POLICY_TYPE)
class ACTPolicy(nn.Module):
    """ACT as a ChunkPolicy (base.py), trainable as an nn.Module.

    `stats`: the dataset's stats.json dict (or a ready Normalizer). `forward` takes a batch that
    is already normalized (the loader uses make_normalizer); `predict_chunk` takes raw LeRobot
    units and returns raw LeRobot units.
    """

    def __init__(
        self,
        config: ACTConfig,
        stats: Mapping[str, Mapping[str, Any]] | Normalizer,
        *,
        policy_id: str = "",
        pretrained_backbone: bool = True,
    ) -> None:
        super().__init__()
        config.require_features()
        self.config = config
        if isinstance(stats, Normalizer):
            _check_stat_shapes(config, stats.to_tensors(), "statistics")
            if stats.modes != config.feature_modes():
                raise CheckpointError(
                    f"normalizer modes {stats.modes} != config modes {config.feature_modes()}"
                )
            self.normalizer = stats
        else:
            self.normalizer = make_normalizer(config, stats)
        self.model = ACT(config)
        if config.pretrained_backbone_weights and config.image_keys and pretrained_backbone:
            load_backbone_weights(self.model.backbone, config.pretrained_backbone_weights)
        self.policy_id = policy_id
        self.state_names = list(config.state_names)
        self.action_names = list(config.action_names)
        self.image_keys = config.image_keys
        self.chunk_size = config.chunk_size
        self.fps = config.fps

    # ---- training ---------------------------------------------------------------------------

    def forward(
        self, batch: Mapping[str, Tensor], latent_noise: Tensor | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Loss of a normalized batch: "observation.state" (B, S), image keys (B, 3, H, W),
        "action" (B, chunk, A), "action_is_pad" (B, chunk) bool (missing = no padding).

        loss = mean |action - predicted| over all B*chunk*A entries, padded rows counted as 0
        (upstream's), + kl_weight * KL summed over the latent and averaged over samples. Both are
        means of per-sample terms, so half batches on two ranks average to the full batch's
        loss. `latent_noise` (B, latent_dim) replaces the VAE's random draw (deterministic runs).
        """
        missing = [k for k in (*self.input_keys, ACTION_KEY) if k not in batch]
        if missing:
            raise KeyError(f"ACT batch lacks {missing} (has {sorted(batch)})")
        actions_hat, mu, log_sigma_x2 = self.model(batch, latent_noise)
        target = batch[ACTION_KEY]
        if target.shape != actions_hat.shape:
            raise ValueError(
                f"ACT batch: action {tuple(target.shape)}, expected "
                f"{tuple(actions_hat.shape)} (B, chunk_size, action dim)"
            )
        err = F.l1_loss(actions_hat, target, reduction="none")
        pad = batch.get("action_is_pad")
        if pad is not None:
            err = err * (~pad.bool())[..., None]
        l1 = err.mean()
        logs = {"l1_loss": l1.item()}
        loss = l1
        if mu is not None and log_sigma_x2 is not None:
            kld = (-0.5 * (1 + log_sigma_x2 - mu.pow(2) - log_sigma_x2.exp())).sum(-1).mean()
            logs["kld_loss"] = kld.item()
            loss = l1 + self.config.kl_weight * kld
        logs["loss"] = loss.item()
        return loss, logs

    @property
    def input_keys(self) -> list[str]:
        return list(self.config.input_features)

    def optimizer_param_groups(self) -> list[dict[str, Any]]:
        """AdamW groups: the backbone at optimizer_lr_backbone, the rest at optimizer_lr, both with
        optimizer_weight_decay (upstream's get_optim_params); empty groups left out."""
        c = self.config
        rest, backbone = [], []
        for name, p in self.named_parameters():
            if p.requires_grad:
                (backbone if name.startswith("model.backbone.") else rest).append(p)
        groups = [
            {"params": rest, "lr": c.optimizer_lr, "weight_decay": c.optimizer_weight_decay},
            {
                "params": backbone,
                "lr": c.optimizer_lr_backbone,
                "weight_decay": c.optimizer_weight_decay,
            },
        ]
        return [g for g in groups if g["params"]]

    # ---- inference --------------------------------------------------------------------------

    def predict_chunk(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """Raw observation -> (chunk_size, A) float32 actions in LeRobot units."""
        was_training = self.training
        if was_training:  # the latent is zero and dropout off only in eval mode
            self.eval()
        try:
            with torch.inference_mode():
                batch = self.observation_batch(observation)
                actions = self.model(batch)[0]
                actions = self.normalizer.unnormalize(ACTION_KEY, actions)
        finally:
            if was_training:
                self.train()
        return actions[0].cpu().numpy().astype(np.float32, copy=False)

    def observation_batch(self, observation: Mapping[str, np.ndarray]) -> dict[str, Tensor]:
        """Raw observation -> normalized batch of one on the policy's device (shapes checked)."""
        device = self.model.action_head.weight.device
        batch = {}
        for key, feature in self.config.input_features.items():
            if key not in observation:
                raise ValueError(f"observation lacks {key!r} (policy inputs: {self.input_keys})")
            value = np.asarray(observation[key])
            if feature["type"] == "VISUAL":
                c, h, w = feature["shape"]
                if value.shape != (h, w, c) or value.dtype != np.uint8:
                    raise ValueError(
                        f"observation {key!r}: {value.dtype} {value.shape}, expected uint8 "
                        f"{(h, w, c)} (H, W, 3) RGB"
                    )
                x = torch.from_numpy(value).to(device).permute(2, 0, 1).float().div_(255.0)
            else:
                if value.shape != tuple(feature["shape"]):
                    raise ValueError(
                        f"observation {key!r}: shape {value.shape}, expected "
                        f"{tuple(feature['shape'])} ({self.state_names})"
                    )
                x = torch.from_numpy(value.astype(np.float32, copy=False)).to(device)
            batch[key] = self.normalizer.normalize(key, x)[None]
        return batch

    def reset(self) -> None:
        """ACT keeps no state between chunks (no temporal ensembling here: the engines blend)."""

    # ---- checkpoints ------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config.json, model.safetensors and normalizer.safetensors into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "type": POLICY_TYPE,
            IMPLEMENTATION_KEY: f"lerobot_ros/{__version__}",
            **self.config.to_dict(),
        }
        (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        weights = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(weights, directory / WEIGHTS_NAME, metadata={"format": "pt"})
        save_file(self.normalizer.to_tensors(), directory / NORMALIZER_NAME)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str = "cpu") -> ACTPolicy:
        """Load and validate a save_pretrained() directory; CheckpointError names what is wrong.
        policy_id stays empty (load_policy sets it to the source it was given)."""
        directory = Path(directory)
        config_path = directory / CONFIG_NAME
        if not config_path.is_file():
            raise CheckpointError(f"checkpoint {directory}: missing {CONFIG_NAME}")
        try:
            raw = json.loads(config_path.read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"checkpoint {config_path}: not valid JSON ({exc})") from exc
        if not isinstance(raw, dict):
            raise CheckpointError(f"checkpoint {config_path}: not a JSON object")
        try:
            config = ACTConfig.from_dict(raw)
            config.require_features()
        except ValueError as exc:
            raise CheckpointError(f"checkpoint {config_path}: {exc}") from exc
        tensors = {}
        for name in (WEIGHTS_NAME, NORMALIZER_NAME):
            path = directory / name
            if not path.is_file():
                raise CheckpointError(f"checkpoint {directory}: missing {name}")
            try:
                tensors[name] = load_file(path)
            except (SafetensorError, OSError) as exc:
                raise CheckpointError(f"checkpoint {path}: unreadable ({exc})") from exc
        stats = tensors[NORMALIZER_NAME]
        _check_stat_shapes(config, stats, f"checkpoint {directory / NORMALIZER_NAME}")
        try:
            normalizer = Normalizer.from_tensors(stats, config.feature_modes())
        except ValueError as exc:
            raise CheckpointError(f"checkpoint {directory / NORMALIZER_NAME}: {exc}") from exc
        policy = cls(config, normalizer, pretrained_backbone=False)
        weights = tensors[WEIGHTS_NAME]
        _check_state(f"checkpoint {directory / WEIGHTS_NAME}", policy.state_dict(), weights)
        for key, value in weights.items():
            if not value.is_floating_point() or not torch.isfinite(value).all():
                raise CheckpointError(
                    f"checkpoint {directory / WEIGHTS_NAME}: {key} is not finite floating point"
                )
        policy.load_state_dict(weights)
        return policy.to(device).eval()
