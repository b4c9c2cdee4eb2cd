"""A LeRobotDataset v3.0 writer, from scratch (pyarrow + PyAV; no lerobot, no torch).

Layout, schemas and conventions follow upstream lerobot 0.4.4 (see the module tests):
- data/chunk-XXX/file-YYY.parquet: one row group per episode, timestamp = frame_index / fps
  (float32), global contiguous `index`; rollover by (estimated) size.
- videos/<key>/chunk-XXX/file-YYY.mp4: frames go straight from numpy into the encoder (no PNG
  round trip). Episodes are appended to the open file with continuing pts (CFR at fps, stream
  time base 1/(fps*512)); from/to_timestamp are the file times of each episode's first frame and
  end. A new file starts when the file reached `video_files_size_in_mb` (decided before an
  episode, from the bytes written so far plus the previous episode's size).
- meta/episodes/chunk-000/file-000.parquet, meta/tasks.parquet (pandas index of task text),
  meta/stats.json (exact, count-weighted over all frames; image stats (3,1,1) in [0,1] from
  sampled frames, computed on integer histograms so there is no overflow), meta/info.json.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_ros.core.loop import no_realtime_leak

CODEBASE_VERSION = "v3.0"
DEFAULT_CHUNKS_SIZE = 1000
DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{int(q * 100):02d}" for q in QUANTILES)
STAT_KEYS = ("min", "max", "mean", "std", "count", *QUANTILE_KEYS)
DEFAULT_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
CODECS = {  # user name -> (PyAV encoder, info.json video.codec, encoder options)
    "libsvtav1": ("libsvtav1", "av1", {"g": "2", "crf": "30", "preset": "12"}),
    "av1": ("libsvtav1", "av1", {"g": "2", "crf": "30", "preset": "12"}),
    "h264": ("libx264", "h264", {"g": "2", "crf": "30"}),
    "libx264": ("libx264", "h264", {"g": "2", "crf": "30"}),
}
PTS_PER_FRAME = 512  # stream time base 1/(fps*512), as upstream's files (1/15360 at 30 fps)


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def _quantiles_sorted_hist(hist: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """np.quantile(values, q) (linear method) of integer values given by a histogram (bincount)."""
    n = int(hist.sum())
    cum = np.cumsum(hist)
    out = []
    for q in qs:
        pos = q * (n - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        v_lo = int(np.searchsorted(cum, lo, side="right"))
        v_hi = int(np.searchsorted(cum, hi, side="right"))
        out.append(v_lo + (v_hi - v_lo) * (pos - lo))
    return np.array(out)


def vector_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Per-column stats of an (N, D) or (N,) array, exact (numpy), as upstream's keys."""
    a = np.asarray(values)
    a2 = a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(-1, 1)
    f = a2.astype(np.float64)
    stats = {
        "min": a2.min(axis=0),
        "max": a2.max(axis=0),
        "mean": f.mean(axis=0),
        "std": f.std(axis=0),
        "count": np.array([a.shape[0]], dtype=np.int64),
    }
    qv = np.quantile(f, QUANTILES, axis=0)
    for k, v in zip(QUANTILE_KEYS, qv, strict=True):
        stats[k] = v
    return stats


def sample_indices(n: int) -> np.ndarray:
    """Upstream's frame sampling for image stats (about 100 evenly spaced frames)."""
    num = max(min(100, n), min(int(n**0.75), 10_000))
    return np.round(np.linspace(0, n - 1, num)).astype(int)


def downsample(img: np.ndarray, target: int = 150, threshold: int = 300) -> np.ndarray:
    """Upstream's auto_downsample_height_width on an (H, W, C) image."""
    h, w = img.shape[:2]
    if max(h, w) < threshold:
        return img
    f = int(w / target) if w > h else int(h / target)
    return img[::f, ::f]


@dataclass
class ImageHistogram:
    """Per-channel pixel histograms of sampled frames; exact stats without overflow."""

    hist: np.ndarray = field(default_factory=lambda: np.zeros((3, 256), dtype=np.int64))
    frames: int = 0

    def add(self, img: np.ndarray) -> None:
        img = downsample(img)
        for c in range(3):
            self.hist[c] += np.bincount(img[..., c].ravel(), minlength=256)
        self.frames += 1

    def merge(self, other: ImageHistogram) -> None:
        self.hist += other.hist
        self.frames += other.frames

    def stats(self) -> dict[str, np.ndarray]:
        v = np.arange(256, dtype=np.float64)
        out: dict[str, list] = {k: [] for k in STAT_KEYS if k != "count"}
        for c in range(3):
            h = self.hist[c]
            n = h.sum()
            nz = np.nonzero(h)[0]
            mean = (h * v).sum() / n
            out["min"].append(nz[0])
            out["max"].append(nz[-1])
            out["mean"].append(mean)
            out["std"].append(math.sqrt(max(0.0, (h * (v - mean) ** 2).sum() / n)))
            for k, q in zip(QUANTILE_KEYS, _quantiles_sorted_hist(h, QUANTILES), strict=True):
                out[k].append(q)
        stats = {
            k: (np.array(x, dtype=np.float64) / 255.0).reshape(3, 1, 1) for k, x in out.items()
        }
        stats["count"] = np.array([self.frames], dtype=np.int64)
        return stats


def _jsonable(stats: dict[str, dict[str, np.ndarray]]) -> dict:
    return {f: {k: np.asarray(v).tolist() for k, v in s.items()} for f, s in stats.items()}


# --------------------------------------------------------------------------------------------
# Video
# --------------------------------------------------------------------------------------------


class _VideoFile:
    def __init__(self, path: Path, fps: int, codec: str, width: int, height: int) -> None:
        import av

        encoder, self.codec_name, options = CODECS[codec]
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.container = av.open(str(path), "w", options={"movflags": "faststart"})
        self.stream = self.container.add_stream(encoder, rate=fps, options=dict(options))
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        self.stream.time_base = Fraction(1, fps * PTS_PER_FRAME)
        self.stream.codec_context.time_base = Fraction(1, fps)
        self.fps = fps
        self.frames = 0
        self.bytes = 0

    def encode(self, img: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = self.frames
        frame.time_base = Fraction(1, self.fps)
        self.frames += 1
        if self.frames == 1:  # the codec opens here
            with no_realtime_leak():
                packets = self.stream.encode(frame)
        else:
            packets = self.stream.encode(frame)
        for packet in packets:
            self.bytes += packet.size
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode(None):
            self.bytes += packet.size
            self.container.mux(packet)
        self.container.close()


# --------------------------------------------------------------------------------------------
# Dataset writer
# --------------------------------------------------------------------------------------------


@dataclass
class _Location:
    chunk: int = 0
    file: int = 0

    def advance(self, chunks_size: int) -> None:
        self.file += 1
        if self.file >= chunks_size:
            self.chunk, self.file = self.chunk + 1, 0


def _hf_feature(ft: dict) -> dict:
    value = {"dtype": ft["dtype"], "_type": "Value"}
    if list(ft["shape"]) == [1]:
        return value
    return {"feature": value, "length": int(ft["shape"][0]), "_type": "List"}


class LeRobotDatasetWriter:
    """Write episodes of (vector features, camera frames) as a LeRobotDataset v3.0.

    `features`: the user features in order, e.g. {"action": {"dtype": "float32", "shape": [6],
    "names": [...]}, "observation.images.front": {"dtype": "video", "shape": [H, W, 3],
    "names": ["height", "width", "channels"]}}. The five default features are added.
    """

    def __init__(
        self,
        root: str | Path,
        repo_id: str,
        fps: int,
        features: dict[str, dict],
        *,
        robot_type: str | None = None,
        vcodec: str = "libsvtav1",
        chunks_size: int = DEFAULT_CHUNKS_SIZE,
        data_files_size_in_mb: float = DEFAULT_DATA_FILE_SIZE_IN_MB,
        video_files_size_in_mb: float = DEFAULT_VIDEO_FILE_SIZE_IN_MB,
    ) -> None:
        if vcodec not in CODECS:
            raise ValueError(f"unknown vcodec {vcodec!r} (one of {sorted(CODECS)})")
        if int(fps) != fps or fps <= 0:
            raise ValueError(f"fps must be a positive integer, got {fps}")
        for key in features:
            if "/" in key:
                raise ValueError(f"feature name {key!r} must not contain '/'")
        self.root = Path(root)
        if self.root.exists() and any(self.root.iterdir()):
            raise FileExistsError(f"{self.root} exists and is not empty")
        self.root.mkdir(parents=True, exist_ok=True)
        self.repo_id = repo_id
        self.fps = int(fps)
        self.robot_type = robot_type
        self.vcodec = vcodec
        self.chunks_size = chunks_size
        self.data_mb = data_files_size_in_mb
        self.video_mb = video_files_size_in_mb
        self.features: dict[str, dict] = {k: dict(v) for k, v in features.items()}
        self.features.update({k: dict(v) for k, v in DEFAULT_FEATURES.items()})
        self.video_keys = [k for k, v in self.features.items() if v["dtype"] == "video"]
        self.data_keys = [k for k, v in self.features.items() if v["dtype"] != "video"]
        self.tasks: dict[str, int] = {}
        self.episodes: list[dict[str, Any]] = []
        self.total_frames = 0
        # Data file state.
        self._data_loc = _Location()
        self._data_writer: pq.ParquetWriter | None = None
        self._data_bytes = 0
        self._schema = self._data_schema()
        # Video state per key.
        self._video_loc = {k: _Location() for k in self.video_keys}
        self._video: dict[str, _VideoFile | None] = dict.fromkeys(self.video_keys)
        self._video_last_ep_bytes = dict.fromkeys(self.video_keys, 0)
        # Aggregates for stats.json.
        self._all_values: dict[str, list[np.ndarray]] = {k: [] for k in self.data_keys}
        self._image_hist = {k: ImageHistogram() for k in self.video_keys}
        self._finalized = False

    # ---- schema ------------------------------------------------------------------------------

    def _data_schema(self) -> pa.Schema:
        fields = []
        for key in self.data_keys:
            ft = self.features[key]
            typ = pa.float32() if ft["dtype"] == "float32" else pa.from_numpy_dtype(ft["dtype"])
            if list(ft["shape"]) != [1]:
                typ = pa.list_(typ, int(ft["shape"][0]))
            fields.append(pa.field(key, typ))
        hf = {"info": {"features": {k: _hf_feature(self.features[k]) for k in self.data_keys}}}
        return pa.schema(fields, metadata={"huggingface": json.dumps(hf)})

    # ---- episodes ----------------------------------------------------------------------------

    def add_episode(
        self,
        task: str,
        values: dict[str, np.ndarray],
        frames: dict[str, Sequence[np.ndarray]] | None = None,
    ) -> int:
        """Append one episode. `values`: every non-default, non-video feature as (N, D) arrays;
        `frames`: per video key, N (H, W, 3) uint8 RGB images. Returns the episode index."""
        if self._finalized:
            raise RuntimeError("writer already finalized")
        frames = frames or {}
        user_keys = [k for k in self.data_keys if k not in DEFAULT_FEATURES]
        if set(values) != set(user_keys) or set(frames) != set(self.video_keys):
            raise ValueError(
                f"episode needs values for {user_keys} and frames for {self.video_keys}, "
                f"got {sorted(values)} and {sorted(frames)}"
            )
        lengths = {len(v) for v in values.values()} | {len(f) for f in frames.values()}
        if len(lengths) != 1 or 0 in lengths:
            raise ValueError(f"all features need the same, non-zero frame count, got {lengths}")
        n = lengths.pop()
        ep = len(self.episodes)
        task_index = self.tasks.setdefault(task, len(self.tasks))
        frame_index = np.arange(n, dtype=np.int64)
        cols: dict[str, np.ndarray] = {}
        for key in user_keys:
            ft = self.features[key]
            shape = [] if list(ft["shape"]) == [1] else ft["shape"]  # [1]: a plain column
            cols[key] = np.asarray(values[key], dtype=ft["dtype"]).reshape(n, *shape)
        cols["timestamp"] = (frame_index / self.fps).astype(np.float32)
        cols["frame_index"] = frame_index
        cols["episode_index"] = np.full(n, ep, dtype=np.int64)
        cols["index"] = np.arange(self.total_frames, self.total_frames + n, dtype=np.int64)
        cols["task_index"] = np.full(n, task_index, dtype=np.int64)

        row: dict[str, Any] = {"episode_index": ep, "tasks": [task], "length": n}
        row.update(self._write_data(cols))
        row["dataset_from_index"] = self.total_frames
        row["dataset_to_index"] = self.total_frames + n
        ep_stats: dict[str, dict[str, np.ndarray]] = {}
        for key in self.video_keys:
            row.update(self._write_video(key, frames[key]))
            hist = ImageHistogram()
            for i in sample_indices(n):
                hist.add(np.asarray(frames[key][i]))
            self._image_hist[key].merge(hist)
            ep_stats[key] = hist.stats()
        for key in self.data_keys:
            ep_stats[key] = vector_stats(cols[key])
            self._all_values[key].append(cols[key])
        # Stats columns in feature order.
        for key in self.features:
            for stat in STAT_KEYS:
                row[f"stats/{key}/{stat}"] = ep_stats[key][stat]
        row["meta/episodes/chunk_index"] = 0
        row["meta/episodes/file_index"] = 0
        self.episodes.append(row)
        self.total_frames += n
        return ep

    def _write_data(self, cols: dict[str, np.ndarray]) -> dict[str, int]:
        arrays = []
        for f in self._schema:
            v = cols[f.name]
            if pa.types.is_fixed_size_list(f.type):
                arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), v.shape[1]))
            else:
                arrays.append(pa.array(v, type=f.type))
        table = pa.Table.from_arrays(arrays, schema=self._schema)
        size = table.nbytes
        if self._data_writer is not None and self._data_bytes + size > self.data_mb * 1024**2:
            self._data_writer.close()
            self._data_writer = None
            self._data_loc.advance(self.chunks_size)
        if self._data_writer is None:
            path = self.root / DATA_PATH.format(
                chunk_index=self._data_loc.chunk, file_index=self._data_loc.file
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            self._data_writer = pq.ParquetWriter(path, self._schema, compression="snappy")
            self._data_bytes = 0
        self._data_writer.write_table(table, row_group_size=max(1, table.num_rows))
        self._data_bytes += size
        return {"data/chunk_index": self._data_loc.chunk, "data/file_index": self._data_loc.file}

    def _write_video(self, key: str, frames: Sequence[np.ndarray]) -> dict[str, Any]:
        h, w, _c = self.features[key]["shape"]
        vf = self._video[key]
        limit = self.video_mb * 1024**2
        if vf is not None and vf.bytes + self._video_last_ep_bytes[key] > limit:
            vf.close()
            vf = None
            self._video_loc[key].advance(self.chunks_size)
        if vf is None:
            loc = self._video_loc[key]
            path = self.root / VIDEO_PATH.format(
                video_key=key, chunk_index=loc.chunk, file_index=loc.file
            )
            vf = _VideoFile(path, self.fps, self.vcodec, w, h)
            self._video[key] = vf
        first, before = vf.frames, vf.bytes
        for img in frames:
            img = np.asarray(img)
            if img.shape != (h, w, 3) or img.dtype != np.uint8:
                raise ValueError(
                    f"{key}: frame {img.shape} {img.dtype}, expected ({h}, {w}, 3) uint8"
                )
            vf.encode(img)
        self._video_last_ep_bytes[key] = vf.bytes - before
        if "info" not in self.features[key]:
            self.features[key]["info"] = {
                "video.height": h,
                "video.width": w,
                "video.codec": vf.codec_name,
                "video.pix_fmt": "yuv420p",
                "video.is_depth_map": False,
                "video.fps": self.fps,
                "video.channels": 3,
                "has_audio": False,
            }
        loc = self._video_loc[key]
        return {
            f"videos/{key}/chunk_index": loc.chunk,
            f"videos/{key}/file_index": loc.file,
            f"videos/{key}/from_timestamp": first / self.fps,
            f"videos/{key}/to_timestamp": vf.frames / self.fps,
        }

    # ---- finalize ----------------------------------------------------------------------------

    def finalize(self) -> None:
        """Close the data and video files and write all metadata. Needs >= 1 episode."""
        if self._finalized:
            return
        if not self.episodes:
            raise RuntimeError("no episode was added")
        self._finalized = True
        if self._data_writer is not None:
            self._data_writer.close()
        for vf in self._video.values():
            if vf is not None:
                vf.close()
        meta = self.root / "meta"
        meta.mkdir(exist_ok=True)
        self._write_tasks(meta / "tasks.parquet")
        self._write_episodes()
        stats: dict[str, dict[str, np.ndarray]] = {}
        for key in self.features:
            if key in self._image_hist:
                stats[key] = self._image_hist[key].stats()
            else:
                stats[key] = vector_stats(np.concatenate(self._all_values[key]))
        (meta / "stats.json").write_text(json.dumps(_jsonable(stats), indent=4))
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": len(self.episodes),
            "total_frames": self.total_frames,
            "total_tasks": len(self.tasks),
            "chunks_size": self.chunks_size,
            "data_files_size_in_mb": self.data_mb,
            "video_files_size_in_mb": self.video_mb,
            "fps": self.fps,
            "splits": {"train": f"0:{len(self.episodes)}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.video_keys else None,
            "features": self.features,
        }
        (meta / "info.json").write_text(json.dumps(info, indent=4))

    def abort(self) -> None:
        """Close what is open and delete the dataset directory."""
        self._finalized = True
        if self._data_writer is not None:
            self._data_writer.close()
        for vf in self._video.values():
            if vf is not None:
                vf.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def _write_tasks(self, path: Path) -> None:
        """tasks.parquet as pandas writes a DataFrame indexed by the task text: the column
        `task_index` plus the index `__index_level_0__`, and the pandas metadata that makes
        `pd.read_parquet(path).index` (upstream: `tasks.iloc[i].name`) the text."""
        names = list(self.tasks)
        pandas_meta = {
            "index_columns": ["__index_level_0__"],
            "column_indexes": [
                {
                    "name": None,
                    "field_name": None,
                    "pandas_type": "unicode",
                    "numpy_type": "object",
                    "metadata": {"encoding": "UTF-8"},
                }
            ],
            "columns": [
                {
                    "name": "task_index",
                    "field_name": "task_index",
                    "pandas_type": "int64",
                    "numpy_type": "int64",
                    "metadata": None,
                },
                {
                    "name": None,
                    "field_name": "__index_level_0__",
                    "pandas_type": "unicode",
                    "numpy_type": "object",
                    "metadata": None,
                },
            ],
            "creator": {"library": "pyarrow", "version": pa.__version__},
            "pandas_version": "2.2.3",
        }
        schema = pa.schema(
            [("task_index", pa.int64()), ("__index_level_0__", pa.string())],
            metadata={"pandas": json.dumps(pandas_meta)},
        )
        table = pa.Table.from_arrays(
            [pa.array([self.tasks[t] for t in names], pa.int64()), pa.array(names, pa.string())],
            schema=schema,
        )
        pq.write_table(table, path)

    def _write_episodes(self) -> None:
        columns: dict[str, list] = {k: [] for k in self.episodes[0]}
        for row in self.episodes:
            for k in columns:
                columns[k].append(row[k])
        fields, arrays = [], []
        for name, vals in columns.items():
            if name == "tasks":
                typ = pa.list_(pa.string())
            elif name.startswith("stats/"):
                _, key, stat = name.split("/")
                dtype = self.features[key]["dtype"]
                is_int = stat == "count" or (stat in ("min", "max") and dtype == "int64")
                # min/max of a bool feature stay bool, as upstream writes them (a flag's range).
                is_bool = stat in ("min", "max") and dtype == "bool"
                base = pa.int64() if is_int else pa.bool_() if is_bool else pa.float64()
                if key in self.video_keys and stat != "count":
                    typ = pa.list_(pa.list_(pa.list_(base)))
                else:
                    typ = pa.list_(base)
                vals = [np.asarray(v).tolist() for v in vals]
            elif "timestamp" in name:
                typ = pa.float64()
            else:
                typ = pa.int64()
            fields.append(pa.field(name, typ))
            arrays.append(pa.array(vals, type=typ))
        path = self.root / EPISODES_PATH.format(chunk_index=0, file_index=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), path)
