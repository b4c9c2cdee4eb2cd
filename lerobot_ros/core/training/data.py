"""Training samples from a LeRobotDataset v3.0 (ours or upstream's): metadata, action chunks
with ACT semantics, and video frames decoded once instead of one seek per sample.

- `DatasetMeta.load(root)`: info.json, stats.json, tasks and the episodes table, checked; every
  error names the file, the field and the value.
- `resolve_dataset(path_or_repo_id)`: a local root, or a Hub dataset snapshot.
- `ChunkDataset`: observation at frame t, actions t..t+horizon-1 of the same episode (padded with
  the last action past its end, as upstream clamps to the episode), optional normalization.
- `make_dataloader`: one DistributedSampler permutation for any number of processes, so that the
  ranks of a DDP run see, step by step, exactly the batches of the single-process run.

Why the video cache: the files are AV1 with a keyframe every 2 frames; a random frame costs a
container open, a seek and a decoder flush (~1.6 ms at 96x128, ~5 ms at 480x640 on the 2-core
dev machine) while sequential decoding costs ~0.15 / ~0.5 ms per frame. So frames are decoded in
blocks, sequentially from the block's first frame (frame-accurate by pts), and kept as uint8 in a
byte-bounded LRU cache: a block is a whole episode when all selected episodes of a camera fit the
camera's share of the cache (then every frame is decoded once per process), otherwise a single
frame (random access then decodes the least it can; the hit rate is the cached fraction).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from lerobot_ros.core.policies.normalize import Normalizer

CODEBASE_VERSION = "v3.0"
STATE = "observation.state"
ACTION = "action"
# Upstream's tolerance between a queried timestamp and a frame's pts (lerobot tolerance_s).
PTS_TOLERANCE_S = 1e-4
# Open containers kept per process (datasets with one file per episode have many files).
MAX_OPEN_CONTAINERS = 16
# Containers a forked process inherited; never closed there (see VideoFrameCache._forked).
_INHERITED_CONTAINERS: list[Any] = []
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


class DatasetError(ValueError):
    """A dataset that cannot be read as v3.0; the message names the file, field and value."""


# --------------------------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoSegment:
    """Where an episode's frames of one camera are: its file and the file time of frame 0."""

    path: Path
    from_timestamp: float


@dataclass(frozen=True)
class EpisodeInfo:
    """One row of meta/episodes: global frame range [from_index, to_index) and its files."""

    index: int
    length: int
    from_index: int
    to_index: int
    tasks: tuple[str, ...]
    data_path: Path
    videos: Mapping[str, VideoSegment]


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise DatasetError(f"{path}: missing (not a LeRobotDataset v3.0 root?)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from exc


def _read_parquet(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(f"{path}: not a readable parquet file ({exc})") from exc
    if columns is not None:
        missing = [c for c in columns if c not in schema.names]
        if missing:
            raise DatasetError(f"{path}: missing column(s) {missing} (has {schema.names})")
    try:
        return pq.read_table(path, columns=list(columns) if columns is not None else None)
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(f"{path}: not a readable parquet file ({exc})") from exc


def _column_numpy(table: pa.Table, name: str, shape: Sequence[int], where: Path) -> np.ndarray:
    """A scalar or (fixed-size) list column as an (N, *shape) array; `shape` [1] means (N,)."""
    arr = table.column(name).combine_chunks()
    if arr.null_count:
        raise DatasetError(f"{where}: column {name!r} has {arr.null_count} null value(s)")
    n = len(arr)
    if pa.types.is_list(arr.type) or pa.types.is_fixed_size_list(arr.type):
        values = arr.flatten().to_numpy(zero_copy_only=False)
        width = int(np.prod(shape))
        if values.size != n * width:
            raise DatasetError(
                f"{where}: column {name!r} has {values.size} values for {n} rows, "
                f"expected shape {list(shape)} per row (info.json)"
            )
        return values.reshape(n, *shape) if list(shape) != [1] else values.reshape(n)
    if list(shape) != [1]:
        raise DatasetError(f"{where}: column {name!r} is scalar, info.json says shape {shape}")
    return arr.to_numpy(zero_copy_only=False)


@dataclass
class DatasetMeta:
    """The metadata of a v3.0 dataset root; `load` checks it, the loaders trust it."""

    root: Path
    info: dict[str, Any]
    stats: dict[str, dict[str, np.ndarray]]
    tasks: list[str]
    episodes: list[EpisodeInfo]

    # ---- accessors ---------------------------------------------------------------------------

    @property
    def fps(self) -> int:
        return int(self.info["fps"])

    @property
    def robot_type(self) -> str | None:
        return self.info.get("robot_type")

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return self.info["features"]

    @property
    def video_keys(self) -> list[str]:
        return [k for k, v in self.features.items() if v["dtype"] == "video"]

    @property
    def total_frames(self) -> int:
        return int(self.info["total_frames"])

    def shape(self, key: str) -> tuple[int, ...]:
        """Feature shape as info.json gives it (video: H, W, C)."""
        if key not in self.features:
            raise DatasetError(
                f"{self.root / 'meta/info.json'}: no feature {key!r} "
                f"(features: {sorted(self.features)})"
            )
        return tuple(int(s) for s in self.features[key]["shape"])

    # ---- loading -----------------------------------------------------------------------------

    @classmethod
    def load(cls, root: str | Path) -> DatasetMeta:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DatasetError(f"{root}: not a directory")
        info = _check_info(root / "meta/info.json", _read_json(root / "meta/info.json"))
        stats = _load_stats(root / "meta/stats.json")
        tasks = _load_tasks(root / "meta/tasks.parquet")
        meta = cls(root=root, info=info, stats=stats, tasks=tasks, episodes=[])
        meta.episodes = _load_episodes(meta)
        return meta

    def read_columns(
        self, keys: Sequence[str], episodes: Sequence[int] | None = None
    ) -> dict[str, np.ndarray]:
        """Parquet columns `keys` as arrays over ALL frames (row = global `index`); the rows of
        `episodes` (default all) are filled and checked, others stay zero."""
        eps = range(len(self.episodes)) if episodes is None else episodes
        shapes = {k: self.shape(k) for k in keys}
        out = {
            k: np.zeros(
                (self.total_frames, *s) if s != (1,) else self.total_frames,
                dtype=np.dtype(self.features[k]["dtype"]),
            )
            for k, s in shapes.items()
        }
        filled = np.zeros(self.total_frames, dtype=bool)
        paths = list(dict.fromkeys(self.episodes[e].data_path for e in eps))
        for path in paths:
            if not path.is_file():
                raise DatasetError(f"{path}: missing (data file named by meta/episodes)")
            table = _read_parquet(path, ["index", *[k for k in keys if k != "index"]])
            index = _column_numpy(table, "index", (1,), path).astype(np.int64)
            if len(index) and (index.min() < 0 or index.max() >= self.total_frames):
                raise DatasetError(
                    f"{path}: column 'index' has values {index.min()}..{index.max()}, "
                    f"outside 0..{self.total_frames - 1} (info.json total_frames)"
                )
            for key, shape in shapes.items():
                out[key][index] = _column_numpy(table, key, shape, path)
            filled[index] = True
        for e in eps:
            ep = self.episodes[e]
            if not filled[ep.from_index : ep.to_index].all():
                missing = np.flatnonzero(~filled[ep.from_index : ep.to_index]) + ep.from_index
                raise DatasetError(
                    f"{ep.data_path}: episode {e} rows index {missing[:5].tolist()}... missing "
                    f"(meta/episodes says {ep.from_index}..{ep.to_index - 1})"
                )
        return out


def _check_info(path: Path, info: Any) -> dict[str, Any]:
    if not isinstance(info, dict):
        raise DatasetError(f"{path}: expected a JSON object, got {type(info).__name__}")
    version = info.get("codebase_version")
    if version != CODEBASE_VERSION:
        raise DatasetError(
            f"{path}: codebase_version is {version!r}; this loader reads {CODEBASE_VERSION!r} "
            "(convert older datasets with lerobot's conversion script)"
        )
    for key, typ in (
        ("fps", (int, float)),
        ("features", dict),
        ("total_frames", int),
        ("total_episodes", int),
        ("data_path", str),
    ):
        if not isinstance(info.get(key), typ) or isinstance(info.get(key), bool):
            raise DatasetError(f"{path}: field {key!r} is {info.get(key)!r}")
    if info["fps"] <= 0 or int(info["fps"]) != info["fps"]:
        raise DatasetError(f"{path}: field 'fps' is {info['fps']!r}, expected a positive integer")
    for key, ft in info["features"].items():
        where = f"{path}: features[{key!r}]"
        if not isinstance(ft, dict) or not isinstance(ft.get("dtype"), str):
            raise DatasetError(f"{where} has no 'dtype': {ft!r}")
        shape = ft.get("shape")
        if (
            not isinstance(shape, list)
            or not shape
            or not all(isinstance(s, int) and s > 0 for s in shape)
        ):
            raise DatasetError(f"{where}['shape'] is {shape!r}, expected a list of positive ints")
        if ft["dtype"] == "video":
            if len(shape) != 3 or shape[2] != 3:
                raise DatasetError(f"{where}['shape'] is {shape}, expected [height, width, 3]")
            if not isinstance(info.get("video_path"), str):
                raise DatasetError(
                    f"{path}: field 'video_path' is {info.get('video_path')!r} "
                    f"but {key!r} is a video feature"
                )
        elif ft["dtype"] not in ("image", "string"):
            try:
                np.dtype(ft["dtype"])
            except TypeError as exc:
                raise DatasetError(f"{where}['dtype'] is {ft['dtype']!r}") from exc
    return info


def _load_stats(path: Path) -> dict[str, dict[str, np.ndarray]]:
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    stats: dict[str, dict[str, np.ndarray]] = {}
    for key, entry in raw.items():
        if not isinstance(entry, dict):
            raise DatasetError(f"{path}: stats of {key!r} are {entry!r}, expected an object")
        stats[key] = {}
        for name, value in entry.items():
            try:
                stats[key][name] = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise DatasetError(f"{path}: {key!r}/{name} is not numeric: {value!r}") from exc
    return stats


def _load_tasks(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetError(f"{path}: missing")
    table = _read_parquet(path)
    # Upstream: a pandas frame indexed by the task text; a plain `task` column is also accepted.
    text = next((c for c in ("task", "__index_level_0__") if c in table.column_names), None)
    if text is None or "task_index" not in table.column_names:
        raise DatasetError(
            f"{path}: expected columns 'task_index' and the task text ('__index_level_0__' or "
            f"'task'), has {table.column_names}"
        )
    index = table.column("task_index").to_pylist()
    names = table.column(text).to_pylist()
    if sorted(index) != list(range(len(index))):
        raise DatasetError(f"{path}: task_index is {index}, expected 0..{len(index) - 1}")
    tasks = [""] * len(index)
    for i, name in zip(index, names, strict=True):
        tasks[i] = str(name)
    return tasks


def _load_episodes(meta: DatasetMeta) -> list[EpisodeInfo]:
    files = sorted((meta.root / "meta/episodes").glob("*/*.parquet"))
    if not files:
        raise DatasetError(f"{meta.root / 'meta/episodes'}: no chunk-*/file-*.parquet")
    base = [
        "episode_index",
        "length",
        "dataset_from_index",
        "dataset_to_index",
        "data/chunk_index",
        "data/file_index",
    ]
    video = [
        f"videos/{k}/{c}"
        for k in meta.video_keys
        for c in ("chunk_index", "file_index", "from_timestamp")
    ]
    rows: list[tuple[Path, dict[str, Any]]] = []
    for path in files:
        table = _read_parquet(path, base + video)
        has_tasks = "tasks" in pq.read_schema(path).names
        tasks = _read_parquet(path, ["tasks"]).column("tasks").to_pylist() if has_tasks else None
        cols = table.to_pydict()
        for i in range(table.num_rows):
            row = {c: cols[c][i] for c in cols}
            row["tasks"] = tuple(tasks[i] or ()) if tasks is not None else ()
            rows.append((path, row))
    rows.sort(key=lambda r: r[1]["episode_index"])
    info_path = meta.root / "meta/info.json"
    if len(rows) != meta.info["total_episodes"]:
        raise DatasetError(
            f"{meta.root / 'meta/episodes'}: {len(rows)} episode rows, but {info_path} "
            f"total_episodes is {meta.info['total_episodes']}"
        )
    episodes: list[EpisodeInfo] = []
    expected_from = 0
    for e, (path, row) in enumerate(rows):
        where = f"{path}: episode_index {row['episode_index']}"
        if row["episode_index"] != e:
            raise DatasetError(f"{path}: episode_index {row['episode_index']} where {e} expected")
        lo, hi, n = row["dataset_from_index"], row["dataset_to_index"], row["length"]
        if lo != expected_from or hi - lo != n or n <= 0:
            raise DatasetError(
                f"{where}: dataset_from_index {lo}, dataset_to_index {hi}, length {n}; expected "
                f"from {expected_from} and to - from == length > 0"
            )
        expected_from = hi
        data_path = meta.root / meta.info["data_path"].format(
            chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
        )
        videos = {}
        for key in meta.video_keys:
            ts = row[f"videos/{key}/from_timestamp"]
            if ts is None or not math.isfinite(ts) or ts < 0:
                raise DatasetError(f"{where}: videos/{key}/from_timestamp is {ts!r}")
            vpath = meta.root / meta.info["video_path"].format(
                video_key=key,
                chunk_index=row[f"videos/{key}/chunk_index"],
                file_index=row[f"videos/{key}/file_index"],
            )
            videos[key] = VideoSegment(vpath, float(ts))
        episodes.append(EpisodeInfo(e, n, lo, hi, row["tasks"], data_path, videos))
    if expected_from != meta.total_frames:
        raise DatasetError(
            f"{files[-1]}: episodes end at frame {expected_from}, but {info_path} total_frames "
            f"is {meta.total_frames}"
        )
    return episodes


def resolve_dataset(path_or_repo_id: str | Path, revision: str | None = None) -> Path:
    """A local dataset root as is; an `owner/name` that is not a local path is downloaded from
    the Hub (a dataset repo; huggingface_hub is imported only then)."""
    path = Path(path_or_repo_id).expanduser()
    if path.exists():
        if not path.is_dir():
            raise DatasetError(f"dataset {path} is a file, expected a dataset root directory")
        return path
    text = str(path_or_repo_id)
    if not _REPO_ID.fullmatch(text):
        raise DatasetError(f"dataset {text!r} is neither a directory nor a Hub repo id owner/name")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise DatasetError(
            f"dataset {text!r} is not a local directory and huggingface_hub is not installed "
            "(pip install huggingface_hub, or pass a local dataset root)"
        ) from exc
    try:
        return Path(snapshot_download(repo_id=text, repo_type="dataset", revision=revision))
    except Exception as exc:  # network, auth, offline cache miss: all mean "not available"
        raise DatasetError(
            f"dataset {text!r}: not a local directory, and the Hub download failed: {exc}"
        ) from exc


# --------------------------------------------------------------------------------------------
# Video frames
# --------------------------------------------------------------------------------------------


class VideoFrameCache:
    """Decoded uint8 frames (3, H, W) of the given episodes of some video keys, LRU-bounded.

    Per process: DataLoader workers each fill their own, so memory is up to capacity x workers.
    A forked worker keeps the frames decoded before the fork (shared copy-on-write) but never
    touches the parent's open containers: decoder threads do not survive a fork.
    """

    def __init__(
        self,
        meta: DatasetMeta,
        keys: Sequence[str],
        episodes: Sequence[int],
        capacity_bytes: int,
    ) -> None:
        self.meta = meta
        self.keys = list(keys)
        self.capacity = max(0, int(capacity_bytes))
        frames = sum(meta.episodes[e].length for e in episodes)
        share = self.capacity / max(1, len(self.keys))
        # Whole-episode blocks where the camera's selected frames all fit its share.
        self.whole_episode = {k: frames * math.prod(meta.shape(k)) <= share for k in self.keys}
        self.stats = {"hits": 0, "misses": 0, "decoded_frames": 0}
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._blocks: OrderedDict[tuple[str, int, int], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._containers: OrderedDict[Path, Any] = OrderedDict()

    def _forked(self) -> None:
        # Closing an inherited decoder would join threads that only exist in the parent: keep
        # the objects alive, unused, for the life of this process.
        _INHERITED_CONTAINERS.extend(self._containers.values())
        self._containers = OrderedDict()
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        # Workers started with spawn get the metadata only; frames and containers stay here.
        state = self.__dict__.copy()
        for name in ("_blocks", "_containers", "_bytes", "_pid"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def close(self) -> None:
        """Close the open video files (they reopen on demand)."""
        if os.getpid() != self._pid:
            self._forked()
        for container in self._containers.values():
            container.close()
        self._containers.clear()

    def frame(self, key: str, episode: int, k: int) -> np.ndarray:
        """Frame k (0-based within the episode) of camera `key`: (3, H, W) uint8, read-only."""
        if os.getpid() != self._pid:
            self._forked()
        start = 0 if self.whole_episode[key] else k
        block_key = (key, episode, start)
        block = self._blocks.get(block_key)
        if block is not None:
            self._blocks.move_to_end(block_key)
            self.stats["hits"] += 1
            return block[k - start]
        self.stats["misses"] += 1
        stop = self.meta.episodes[episode].length if self.whole_episode[key] else k + 1
        block = self.decode(key, episode, start, stop)
        block.flags.writeable = False
        if block.nbytes <= self.capacity:
            while self._blocks and self._bytes + block.nbytes > self.capacity:
                _, old = self._blocks.popitem(last=False)
                self._bytes -= old.nbytes
            self._blocks[block_key] = block
            self._bytes += block.nbytes
        return block[k - start]

    def _container(self, path: Path) -> Any:
        import av

        container = self._containers.get(path)
        if container is None:
            if not path.is_file():
                raise DatasetError(f"{path}: missing (video file named by meta/episodes)")
            try:
                container = av.open(str(path))
            except av.FFmpegError as exc:
                raise DatasetError(f"{path}: cannot open video ({exc})") from exc
            if not container.streams.video:
                container.close()
                raise DatasetError(f"{path}: no video stream")
            container.streams.video[0].thread_type = "AUTO"
            self._containers[path] = container
            while len(self._containers) > MAX_OPEN_CONTAINERS:
                self._containers.popitem(last=False)[1].close()
        self._containers.move_to_end(path)
        return container

    def decode(self, key: str, episode: int, start: int, stop: int) -> np.ndarray:
        """Frames [start, stop) of an episode, decoded sequentially from the keyframe before
        `start`; a frame's place comes from its pts, never from its position in the stream."""
        seg = self.meta.episodes[episode].videos[key]
        h, w, _ = self.meta.shape(key)
        fps = self.meta.fps
        container = self._container(seg.path)
        stream = container.streams.video[0]
        tb = float(stream.time_base)
        t0 = seg.from_timestamp + start / fps
        out = np.empty((stop - start, 3, h, w), dtype=np.uint8)
        got = np.zeros(stop - start, dtype=bool)
        import av

        try:
            # The keyframe at or before `start`; from the file start if that seek went too far.
            container.seek(max(0, round(t0 / tb)), stream=stream, backward=True)
            if not self._decode_into(out, got, key, episode, start, container, check=True):
                container.seek(0, stream=stream, backward=True)
                self._decode_into(out, got, key, episode, start, container, check=False)
        except av.FFmpegError as exc:
            self._containers.pop(seg.path).close()
            raise DatasetError(
                f"{seg.path}: episode {episode} frame(s) {start}..{stop - 1}: decoding failed "
                f"({exc})"
            ) from exc
        if not got.all():
            missing = (np.flatnonzero(~got) + start).tolist()
            raise DatasetError(
                f"{seg.path}: episode {episode} frame(s) {missing[:5]} not found (from_timestamp "
                f"{seg.from_timestamp}, {fps} fps; file truncated or timestamps shifted?)"
            )
        return out

    def _decode_into(
        self,
        out: np.ndarray,
        got: np.ndarray,
        key: str,
        episode: int,
        start: int,
        container: Any,
        check: bool,
    ) -> bool:
        """Decode from the current position into out[k - start]; False when `check` and the
        first frame is already past frame `start` (the seek went too far)."""
        seg = self.meta.episodes[episode].videos[key]
        stream = container.streams.video[0]
        fps = self.meta.fps
        h, w = out.shape[2:]
        stop = start + len(out)
        first = True
        for frame in container.decode(stream):
            if frame.pts is None:
                raise DatasetError(f"{seg.path}: a decoded frame has no pts")
            t = float(frame.pts * stream.time_base)
            k = round((t - seg.from_timestamp) * fps)
            if first and check and k > start:
                return False
            first = False
            if k < start:
                continue
            if k >= stop:
                break
            if abs(t - seg.from_timestamp - k / fps) > PTS_TOLERANCE_S:
                raise DatasetError(
                    f"{seg.path}: frame at {t:.6f} s is not on the {fps} fps grid of "
                    f"episode {episode} (from_timestamp {seg.from_timestamp})"
                )
            img = frame.reformat(format="rgb24").to_ndarray()
            if img.shape != (h, w, 3):
                raise DatasetError(
                    f"{seg.path}: frames are {img.shape[1]}x{img.shape[0]}, info.json "
                    f"features[{key!r}] says {w}x{h}"
                )
            out[k - start] = img.transpose(2, 0, 1)
            got[k - start] = True
            self.stats["decoded_frames"] += 1
            if k == stop - 1:
                break
        return True


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------


class ChunkDataset(Dataset):
    """Samples for chunking policies (ACT): observation at frame t, actions t..t+horizon-1.

    Item: "observation.state" (S,) float32; each image key (3, H, W) float32 in [0, 1] (or
    normalized); "action" (horizon, A) float32 whose rows past the episode end repeat its last
    action, flagged in "action_is_pad" (horizon,) bool; "index" (global frame), "episode_index",
    "frame_index", "task_index" as 0-d int64. With a `normalizer`, state, action (with the
    "action" statistics) and images are normalized with it.

    `episodes`: the episode indices to sample from (default all); `video_cache_mb`: decoded-frame
    cache per process (see VideoFrameCache).
    """

    def __init__(
        self,
        root_or_meta: str | Path | DatasetMeta,
        *,
        horizon: int,
        normalizer: Normalizer | None = None,
        image_keys: list[str] | None = None,
        episodes: list[int] | None = None,
        video_cache_mb: float = 512,
    ) -> None:
        meta = (
            root_or_meta
            if isinstance(root_or_meta, DatasetMeta)
            else DatasetMeta.load(root_or_meta)
        )
        if int(horizon) != horizon or horizon < 1:
            raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
        info_path = meta.root / "meta/info.json"
        for key in (STATE, ACTION):
            shape = meta.shape(key)
            if len(shape) != 1 or meta.features[key]["dtype"] not in ("float32", "float64"):
                raise DatasetError(
                    f"{info_path}: features[{key!r}] is {meta.features[key]['dtype']} "
                    f"{list(shape)}, expected a float32 vector"
                )
        if image_keys is None:
            image_keys = meta.video_keys
        for key in image_keys:
            if key not in meta.video_keys:
                raise DatasetError(
                    f"{info_path}: image key {key!r} is not a video feature "
                    f"(video features: {meta.video_keys})"
                )
        if episodes is None:
            episodes = list(range(len(meta.episodes)))
        bad = [e for e in episodes if not 0 <= int(e) < len(meta.episodes)]
        if bad or len(set(episodes)) != len(episodes):
            raise ValueError(
                f"episodes {episodes!r}: need distinct indices in 0..{len(meta.episodes) - 1}"
            )
        self.meta = meta
        self.horizon = int(horizon)
        self.normalizer = normalizer
        self.image_keys = list(image_keys)
        self.episodes = [int(e) for e in episodes]

        cols = meta.read_columns(
            [STATE, ACTION, "episode_index", "frame_index", "task_index"], self.episodes
        )
        self._state = cols[STATE].astype(np.float32, copy=False)
        self._action = cols[ACTION].astype(np.float32, copy=False)
        self._task = cols["task_index"].astype(np.int64, copy=False)
        self._ep_end = np.zeros(meta.total_frames, dtype=np.int64)
        self._ep_of = np.zeros(meta.total_frames, dtype=np.int64)
        for e in self.episodes:
            ep = meta.episodes[e]
            sl = slice(ep.from_index, ep.to_index)
            if not (cols["episode_index"][sl] == e).all() or not np.array_equal(
                cols["frame_index"][sl], np.arange(ep.length)
            ):
                raise DatasetError(
                    f"{ep.data_path}: rows {ep.from_index}..{ep.to_index - 1} are not episode {e}"
                    " frames 0..length-1 (columns episode_index / frame_index vs meta/episodes)"
                )
            self._ep_end[sl] = ep.to_index
            self._ep_of[sl] = e
        self._samples = np.concatenate(
            [np.arange(meta.episodes[e].from_index, meta.episodes[e].to_index) for e in episodes]
        ).astype(np.int64)
        self.video = VideoFrameCache(
            meta, self.image_keys, self.episodes, int(video_cache_mb * 1024**2)
        )

    @property
    def state_dim(self) -> int:
        return self._state.shape[1]

    @property
    def action_dim(self) -> int:
        return self._action.shape[1]

    def __len__(self) -> int:
        return len(self._samples)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        n = len(self._samples)
        if not -n <= i < n:
            raise IndexError(f"sample {i} out of range for {n} samples")
        g = int(self._samples[i])
        end = int(self._ep_end[g])
        e = int(self._ep_of[g])
        rows = np.arange(g, g + self.horizon)
        pad = rows >= end
        action = torch.from_numpy(self._action[np.minimum(rows, end - 1)])
        item: dict[str, torch.Tensor] = {STATE: torch.from_numpy(self._state[g].copy())}
        first = self.meta.episodes[e].from_index
        for key in self.image_keys:
            # numpy, not torch: single-threaded, so a busy machine cannot stall the conversion
            # on a straggling intra-op thread (measured 0.4 ms vs up to 15 ms at 480x640).
            frame = self.video.frame(key, e, g - first)
            item[key] = torch.from_numpy(np.divide(frame, np.float32(255.0), dtype=np.float32))
        item[ACTION] = action
        if self.normalizer is not None:
            item = self.normalizer.normalize_batch(item)
        item["action_is_pad"] = torch.from_numpy(pad)
        item["index"] = torch.tensor(g, dtype=torch.int64)
        item["episode_index"] = torch.tensor(e, dtype=torch.int64)
        item["frame_index"] = torch.tensor(g - first, dtype=torch.int64)
        item["task_index"] = torch.tensor(int(self._task[g]), dtype=torch.int64)
        return item


# --------------------------------------------------------------------------------------------
# Loader
# --------------------------------------------------------------------------------------------


def make_dataloader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = True,
) -> DataLoader:
    """A DataLoader whose order is a DistributedSampler's (seed, epoch) permutation, also for a
    single process (num_replicas=1): rank r of W processes with per-rank `batch_size` b sees at
    step k perm[r::W][k*b:(k+1)*b], whose union over the ranks is perm[k*W*b:(k+1)*W*b], the
    k-th batch of a single process with batch size W*b. With drop_last=True both have
    len(dataset) // (W*b) steps and the property is exact; with drop_last=False the sampler pads
    the last step with repeated samples.

    Call `set_epoch(loader, epoch)` (i.e. loader.sampler.set_epoch) on every rank before each
    epoch; without it every epoch repeats the epoch-0 order. Workers are persistent so their
    video caches survive epochs.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} not in 0..{world_size - 1} (world_size {world_size})")
    n = len(dataset)  # type: ignore[arg-type]
    if drop_last and n // world_size < batch_size:
        raise ValueError(
            f"{n} samples give no full batch of {batch_size} per rank for {world_size} rank(s)"
        )
    sampler = DistributedSampler(
        dataset,
        num_replicas=world_size,
        rank=rank,
        shuffle=shuffle,
        seed=seed,
        drop_last=drop_last,
    )
    generator = torch.Generator()
    generator.manual_seed(seed * 1009 + rank)  # worker base seeds; distinct per rank
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=drop_last,
        generator=generator,
        persistent_workers=num_workers > 0,
    )


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Reshuffle for `epoch` (the same permutation on every rank, a new one per epoch)."""
    sampler = loader.sampler
    if not isinstance(sampler, DistributedSampler):
        raise TypeError("set_epoch needs a loader from make_dataloader")
    sampler.set_epoch(epoch)


def iterate_forever(loader: DataLoader, start_epoch: int = 0) -> Iterator[dict[str, Any]]:
    """Batches across epochs with set_epoch called before each, for step-based training."""
    epoch = start_epoch
    while True:
        set_epoch(loader, epoch)
        yield from loader
        epoch += 1
