"""Training-loader throughput: ChunkDataset through make_dataloader vs per-sample seeking.

ours:     lerobot_ros.core.training.data.ChunkDataset (frames decoded per episode, sequentially,
          into the LRU cache when the selected frames fit `video_cache_mb`; frame by frame from
          an open container otherwise), make_dataloader(batch 8, shuffle, seed 0).
baseline: the same dataset class and loader, but each sample's image is decoded the naive way
          (what a per-sample video backend does): open the mp4, seek to the keyframe before
          from_timestamp + k / fps, decode up to the frame with that pts, convert to RGB (same
          PyAV conversion as ours), close.
no video: the same samples without images (the ceiling set by actions, state and collation).

Datasets are written first with LeRobotDatasetWriter (AV1, g=2, crf 30: upstream's defaults),
camera-like frames (gradients, noise, a moving block). Prints samples/s per row and the ratio
ours / baseline; asserts nothing. "cold" = a fresh dataset's first pass (includes decoding into
the cache), "warm" = the next epoch. Horizon 100, num_workers 0, 6 actions and states.

    python bench/loader.py                         # ~1 min: 96x128 and 480x640
    python bench/loader.py --only large --large-episodes 10 --threads 1
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert import make_frames

from lerobot_ros.core.dataset.writer import LeRobotDatasetWriter
from lerobot_ros.core.training.data import (
    ChunkDataset,
    DatasetMeta,
    make_dataloader,
    set_epoch,
)

CAM = "observation.images.front"
FPS = 30
BATCH = 8
HORIZON = 100


def write(root: Path, episodes: int, frames: int, h: int, w: int) -> DatasetMeta:
    feats = {
        "observation.state": {"dtype": "float32", "shape": [6], "names": None},
        "action": {"dtype": "float32", "shape": [6], "names": None},
        CAM: {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"]},
    }
    wr = LeRobotDatasetWriter(root, "bench/loader", FPS, feats)
    rng = np.random.default_rng(0)
    for e in range(episodes):
        values = {k: rng.normal(size=(frames, 6)) for k in ("observation.state", "action")}
        wr.add_episode("task", values, {CAM: make_frames(frames, h, w, seed=e)})
    wr.finalize()
    return DatasetMeta.load(root)


class NaiveFrames:
    """Per-sample open + seek + decode (the baseline's video path)."""

    def __init__(self, meta: DatasetMeta) -> None:
        self.meta = meta

    def frame(self, key: str, episode: int, k: int) -> np.ndarray:
        seg = self.meta.episodes[episode].videos[key]
        t = seg.from_timestamp + k / self.meta.fps
        with av.open(str(seg.path)) as container:
            stream = container.streams.video[0]
            container.seek(round(t / float(stream.time_base)), stream=stream, backward=True)
            for frame in container.decode(stream):
                if float(frame.pts * stream.time_base) >= t - 1e-4:
                    return frame.reformat(format="rgb24").to_ndarray().transpose(2, 0, 1)
        raise RuntimeError(f"frame {k} of episode {episode} not found")


def busy() -> tuple[float, float]:
    with open("/proc/stat") as f:
        v = [float(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


def rate(ds: ChunkDataset, samples: int, epoch: int = 0) -> tuple[float, float]:
    """(samples/s, machine busy fraction) over the first `samples` samples of an epoch."""
    loader = make_dataloader(ds, BATCH, shuffle=True, seed=0)
    set_epoch(loader, epoch)
    b0, t0 = busy(), time.perf_counter()
    n = 0
    for batch in loader:
        n += len(batch["index"])
        if n >= samples:
            break
    dt = time.perf_counter() - t0
    b1 = busy()
    return n / dt, (b1[0] - b0[0]) / max(1.0, b1[1] - b0[1])


def row(name: str, fn: Callable[[], tuple[float, float]]) -> float:
    r, b = fn()
    print(f"  {name:44s} {r:9.1f} samples/s  {1e3 / r:7.2f} ms/sample   machine busy {b:4.0%}")
    return r


def run(label: str, meta: DatasetMeta, samples: int, cache_mbs: list[float]) -> None:
    h, w, _ = meta.shape(CAM)
    frames = meta.total_frames
    print(
        f"\n{label}: {len(meta.episodes)} episodes x {frames // len(meta.episodes)} frames, "
        f"{w}x{h}, {frames * h * w * 3 / 2**20:.0f} MiB decoded; first {samples} samples"
    )
    row("no video", lambda: rate(ChunkDataset(meta, horizon=HORIZON, image_keys=[]), samples))
    base = ChunkDataset(meta, horizon=HORIZON, video_cache_mb=0)
    base.video = NaiveFrames(meta)  # type: ignore[assignment]
    rb = row("baseline (open+seek+decode per sample)", lambda: rate(base, samples))
    for mb in cache_mbs:
        ds = ChunkDataset(meta, horizon=HORIZON, video_cache_mb=mb)
        mode = "whole episodes" if ds.video.whole_episode[CAM] else "frame by frame"
        cold = row(f"ours cache {mb:g} MiB ({mode}), cold", lambda ds=ds: rate(ds, samples))
        warm = row(f"ours cache {mb:g} MiB ({mode}), warm", lambda ds=ds: rate(ds, samples, 1))
        print(f"  ratio ours / baseline: cold {cold / rb:.1f}x, warm {warm / rb:.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=("small", "large"), default=None)
    ap.add_argument("--samples", type=int, default=3000, help="samples per row (96x128)")
    ap.add_argument("--large-samples", type=int, default=600, help="samples per row (480x640)")
    ap.add_argument("--large-episodes", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(
        f"loader bench: batch {BATCH}, horizon {HORIZON}, num_workers 0, torch threads "
        f"{__import__('torch').get_num_threads()}, {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory() as tmp:
        if a.only in (None, "small"):
            t = time.perf_counter()
            meta = write(Path(tmp) / "small", 10, 300, 96, 128)
            print(f"(wrote the 96x128 dataset in {time.perf_counter() - t:.1f} s)")
            run("96x128", meta, a.samples, [512])
        if a.only in (None, "large"):
            t = time.perf_counter()
            meta = write(Path(tmp) / "large", a.large_episodes, 300, 480, 640)
            print(f"(wrote the 480x640 dataset in {time.perf_counter() - t:.1f} s)")
            fit = meta.total_frames * 480 * 640 * 3 / 2**20 + 16
            run("480x640", meta, a.large_samples, [512, float(np.ceil(fit))])


if __name__ == "__main__":
    main()
