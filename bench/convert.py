"""Converter video path vs an upstream-style baseline, same frames, same run.

ours:     LeRobotDatasetWriter.add_episode: numpy frames -> PyAV encoder (libsvtav1 g=2 crf=30
          preset 12), episodes appended to one open mp4, image stats from histograms.
baseline: what lerobot 0.4.4 does per episode: write every frame as PNG (PIL), read them back,
          encode a temporary per-episode mp4 (same codec settings), compute image stats from
          sampled PNGs (uint8 -> float64), then append it to the file by stream copy (remux).

Prints ms per frame and the ratio; asserts nothing.
    python bench/convert.py [--episodes 3] [--frames 90] [--height 480] [--width 640]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from lerobot_ros.core.dataset.writer import LeRobotDatasetWriter, downsample, sample_indices

FPS = 30


def make_frames(n: int, h: int, w: int, seed: int) -> list[np.ndarray]:
    """Camera-like content: smooth gradients, a moving block, mild sensor noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], -1).astype(np.int16)
    out = []
    for k in range(n):
        img = base + rng.integers(-4, 5, (h, w, 3), dtype=np.int16)
        c = (5 * k) % (w - 60)
        img[h // 3 : h // 3 + 60, c : c + 60] = (200, 40, 40)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def ours(root: Path, episodes: list[list[np.ndarray]]) -> None:
    h, w, _ = episodes[0][0].shape
    names = ["a", "b"]
    feats = {
        "action": {"dtype": "float32", "shape": [2], "names": names},
        "observation.images.front": {
            "dtype": "video",
            "shape": [h, w, 3],
            "names": ["height", "width", "channels"],
        },
    }
    wr = LeRobotDatasetWriter(root, "bench/x", FPS, feats)
    for frames in episodes:
        wr.add_episode(
            "task",
            {"action": np.zeros((len(frames), 2), np.float32)},
            {"observation.images.front": frames},
        )
    wr.finalize()


def _encode(pngs: list[Path], out: Path) -> None:
    with av.open(str(out), "w") as c:
        s = c.add_stream("libsvtav1", rate=FPS, options={"g": "2", "crf": "30", "preset": "12"})
        first = np.asarray(Image.open(pngs[0]).convert("RGB"))
        s.height, s.width = first.shape[:2]
        s.pix_fmt = "yuv420p"
        for k, p in enumerate(pngs):
            f = av.VideoFrame.from_ndarray(np.asarray(Image.open(p).convert("RGB")), "rgb24")
            f.pts, f.time_base = k, Fraction(1, FPS)
            for pkt in s.encode(f):
                c.mux(pkt)
        for pkt in s.encode(None):
            c.mux(pkt)


def _concat(parts: list[Path], out: Path) -> None:
    with av.open(str(out), "w", options={"movflags": "faststart"}) as oc:
        ost = None
        offset = 0
        for part in parts:
            with av.open(str(part)) as ic:
                ist = ic.streams.video[0]
                if ost is None:
                    ost = oc.add_stream_from_template(ist, opaque=True)
                last = 0
                for pkt in ic.demux(ist):
                    if pkt.dts is None:
                        continue
                    pkt.pts += offset
                    pkt.dts += offset
                    last = max(last, pkt.pts + pkt.duration)
                    pkt.stream = ost
                    oc.mux(pkt)
                offset = last


def baseline(root: Path, episodes: list[list[np.ndarray]]) -> None:
    parts = []
    for e, frames in enumerate(episodes):
        d = root / "images" / f"episode-{e:06d}"
        d.mkdir(parents=True)
        pngs = []
        for k, img in enumerate(frames):
            p = d / f"frame-{k:06d}.png"
            Image.fromarray(img).save(p, compress_level=1)  # as upstream
            pngs.append(p)
        part = root / f"ep{e}.mp4"
        _encode(pngs, part)
        sampled = np.stack(
            [downsample(np.asarray(Image.open(pngs[i]))) for i in sample_indices(len(pngs))]
        )
        x = sampled.astype(np.float64) / 255.0
        _ = x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2)), np.quantile(x[..., 0], [0.01, 0.99])
        parts.append(part)
        shutil.rmtree(d)
    _concat(parts, root / "file-000.mp4")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    eps = [make_frames(a.frames, a.height, a.width, s) for s in range(a.episodes)]
    n = a.episodes * a.frames
    best = {"ours": float("inf"), "baseline": float("inf")}
    for _ in range(a.repeat):
        for name, fn in (("baseline", baseline), ("ours", ours)):
            with tempfile.TemporaryDirectory() as tmp:
                root = Path(tmp) / "ds"
                if name == "baseline":
                    root.mkdir()
                t = time.perf_counter()
                fn(root, eps)
                best[name] = min(best[name], time.perf_counter() - t)
    for name, t in best.items():
        print(
            f"{name:9s} {t:7.2f} s  {t / n * 1e3:7.2f} ms/frame  ({n} frames {a.height}x{a.width})"
        )
    print(f"speed-up (baseline / ours per frame): {best['baseline'] / best['ours']:.2f}x")


if __name__ == "__main__":
    main()
