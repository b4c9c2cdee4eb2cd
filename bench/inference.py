"""ACT inference latency on the CPU, batch 1, with the shipped configs.

For each config (config/act_small.yaml, config/act.yaml) and camera size (96x128, 480x640), one
SO-101-like policy (6 joints, one camera, random weights: latency does not depend on them):
  predict_chunk  raw numpy observation -> normalize -> network -> unnormalize -> numpy chunk
  forward        the network alone on a ready normalized batch (torch.inference_mode)
  backbone       the baseline: the ResNet-18 alone on the image the network sees (after the
                 config's image_resize), inference_mode. forward / backbone says how much the
                 transformer adds to the CNN; predict_chunk / forward what the numpy <-> torch
                 and normalization steps add.
The three run interleaved (one call of each in turn), so load from other processes hits them
alike. Prints p50 / p99 in ms and the ratios of the p50s; asserts nothing.

Threads: torch.set_num_threads(--threads, default: the CPUs this process may run on) and one
inter-op thread, set before anything runs, so the numbers do not depend on torch's default.

    python bench/inference.py                     # ~1-2 min
    python bench/inference.py --configs act_small --sizes 480x640 --seconds 10 --threads 1
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from lerobot_ros.core.policies.act import ACTConfig, ACTPolicy, read_config_file

REPO = Path(__file__).resolve().parents[1]
JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
NAMES = [f"{j}.pos" for j in JOINTS]
CAM = "observation.images.front"


def busy() -> tuple[float, float]:
    with open("/proc/stat") as f:
        v = [float(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


def make_policy(config_name: str, h: int, w: int) -> ACTPolicy:
    features = {
        "observation.state": {"dtype": "float32", "shape": [6], "names": NAMES},
        "action": {"dtype": "float32", "shape": [6], "names": NAMES},
        CAM: {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"]},
    }
    overrides = read_config_file(REPO / "config" / f"{config_name}.yaml")
    config = ACTConfig.from_dataset(features, 30, **overrides)
    stats = {
        "observation.state": {"mean": [0.0] * 6, "std": [30.0] * 6},
        "action": {"mean": [0.0] * 6, "std": [30.0] * 6},
        CAM: {"mean": [[[0.45]], [[0.45]], [[0.4]]], "std": [[[0.25]], [[0.25]], [[0.25]]]},
    }
    torch.manual_seed(0)
    return ACTPolicy(config, stats).eval()


def measure(
    fns: dict[str, Callable[[], object]], seconds: float, min_n: int = 10
) -> tuple[dict[str, np.ndarray], float]:
    """Interleaved timings in ms per function, and the machine's busy fraction meanwhile."""
    for fn in fns.values():  # warm-up: allocator, oneDNN primitives
        for _ in range(2):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    b0 = busy()
    t_end = time.perf_counter() + seconds
    n = 0
    while n < min_n or time.perf_counter() < t_end:
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) * 1e3)
        n += 1
    b1 = busy()
    load = (b1[0] - b0[0]) / max(1.0, b1[1] - b0[1])
    return {k: np.array(v) for k, v in times.items()}, load


def run_case(config_name: str, h: int, w: int, seconds: float) -> None:
    policy = make_policy(config_name, h, w)
    rng = np.random.default_rng(0)
    observation = {
        "observation.state": rng.normal(0, 30, 6).astype(np.float32),
        CAM: rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
    }
    with torch.inference_mode():
        batch = policy.observation_batch(observation)
        image = batch[CAM]
        if policy.config.image_resize is not None:
            image = torch.nn.functional.interpolate(
                image, size=policy.config.image_resize, mode="bilinear", antialias=True
            )

    def forward() -> object:
        with torch.inference_mode():
            return policy.model(batch)

    def backbone() -> object:
        with torch.inference_mode():
            return policy.model.backbone(image)

    fns = {
        "predict_chunk": lambda: policy.predict_chunk(observation),
        "forward": forward,
        "backbone": backbone,
    }
    times, load = measure(fns, seconds)
    n_params = sum(p.numel() for p in policy.parameters()) / 1e6
    seen = "x".join(map(str, image.shape[-2:]))
    with torch.inference_mode():
        tokens = policy.model.backbone(image).shape[-2:].numel()
    print(
        f"{config_name} ({n_params:.1f} M params), camera {h}x{w}, network sees {seen} "
        f"({tokens} image tokens), chunk {policy.chunk_size}; {len(times['forward'])} rounds, "
        f"machine busy {load:.0%}"
    )
    p50 = {k: float(np.percentile(v, 50)) for k, v in times.items()}
    for name, v in times.items():
        print(f"  {name:14s} p50 {p50[name]:8.2f} ms   p99 {np.percentile(v, 99):8.2f} ms")
    print(
        f"  ratio p50: predict_chunk / backbone {p50['predict_chunk'] / p50['backbone']:.2f}x, "
        f"forward / backbone {p50['forward'] / p50['backbone']:.2f}x, "
        f"predict_chunk / forward {p50['predict_chunk'] / p50['forward']:.2f}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", default="act_small,act", help="shipped config names")
    ap.add_argument("--sizes", default="96x128,480x640", help="camera HxW, comma separated")
    ap.add_argument("--seconds", type=float, default=5.0, help="measured seconds per case")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op thread(s), batch 1")
    for config_name in a.configs.split(","):
        for size in a.sizes.split(","):
            h, w = (int(x) for x in size.split("x"))
            run_case(config_name, h, w, a.seconds)


if __name__ == "__main__":
    main()
