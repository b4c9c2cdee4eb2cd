"""The training data loader (lerobot_ros.core.training.data) on small synthetic v3.0 datasets
written with our writer, whose values are known, plus the converter-made sim dataset."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from lerobot_ros.core.dataset.writer import LeRobotDatasetWriter
from lerobot_ros.core.policies.normalize import Normalizer
from lerobot_ros.core.training.data import (
    ChunkDataset,
    DatasetError,
    DatasetMeta,
    make_dataloader,
    resolve_dataset,
    set_epoch,
)

FPS = 30
CAM = "observation.images.front"
H, W = 64, 96
TASKS = ["pick the red cube", "push the cube left"]


def state_values(index: np.ndarray) -> np.ndarray:
    """Known per-frame values: column d of global frame g is g + d / 10."""
    return index[:, None] + np.arange(3)[None, :] / 10.0


def action_values(index: np.ndarray) -> np.ndarray:
    return -(index[:, None] * 100.0 + np.arange(2)[None, :])


def frame_image(g: int) -> np.ndarray:
    """A frame no other frame resembles: 8 vertical bands that spell g in binary (0 / 255),
    green = 40 * (g % 5): even a lossy codec keeps them far apart."""
    img = np.zeros((H, W, 3), dtype=np.uint8)
    band = W // 8
    for bit in range(8):
        if (g >> bit) & 1:
            img[:, bit * band : (bit + 1) * band, 0] = 255
            img[:, bit * band : (bit + 1) * band, 2] = 255
    img[: H // 2, :, 1] = 40 * (g % 5)
    return img


def write_dataset(
    root: Path, lengths: list[int], *, video: bool = True, **writer_options: object
) -> Path:
    feats: dict[str, dict] = {
        "observation.state": {"dtype": "float32", "shape": [3], "names": ["a", "b", "c"]},
        "action": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
    }
    if video:
        feats[CAM] = {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "c"]}
    wr = LeRobotDatasetWriter(root, "test/loader", FPS, feats, **writer_options)  # type: ignore[arg-type]
    start = 0
    for e, n in enumerate(lengths):
        g = np.arange(start, start + n)
        values = {"observation.state": state_values(g), "action": action_values(g)}
        frames = {CAM: [frame_image(int(i)) for i in g]} if video else None
        wr.add_episode(TASKS[e % 2], values, frames)
        start += n
    wr.finalize()
    return root


@pytest.fixture(scope="module")
def video_ds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 episodes back to back in one mp4 (20, 12, 16 frames)."""
    return write_dataset(tmp_path_factory.mktemp("ds") / "video", [20, 12, 16])


@pytest.fixture(scope="module")
def plain_ds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """No camera: 4 episodes of 5, 7, 4, 9 frames (short ones, so horizons cross their ends)."""
    return write_dataset(tmp_path_factory.mktemp("ds") / "plain", [5, 7, 4, 9], video=False)


# --------------------------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------------------------


def test_meta_reads_what_the_writer_wrote(video_ds: Path) -> None:
    meta = DatasetMeta.load(video_ds)
    assert meta.fps == FPS and meta.video_keys == [CAM] and meta.total_frames == 48
    assert meta.shape(CAM) == (H, W, 3) and meta.shape("action") == (2,)
    assert meta.tasks == TASKS
    assert [(e.from_index, e.to_index, e.length) for e in meta.episodes] == [
        (0, 20, 20),
        (20, 32, 12),
        (32, 48, 16),
    ]
    assert [e.tasks for e in meta.episodes] == [(TASKS[0],), (TASKS[1],), (TASKS[0],)]
    segs = [e.videos[CAM] for e in meta.episodes]
    assert [s.from_timestamp for s in segs] == [0.0, 20 / FPS, 32 / FPS]
    assert len({s.path for s in segs}) == 1 and segs[0].path.is_file()
    raw = json.loads((video_ds / "meta/stats.json").read_text())
    assert meta.stats[CAM]["mean"].shape == (3, 1, 1)
    assert np.array_equal(meta.stats["action"]["max"], np.asarray(raw["action"]["max"]))


# --------------------------------------------------------------------------------------------
# Samples
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("episodes", [None, [2, 0]])
def test_action_windows_stay_in_their_episode_and_pad_with_the_last_action(
    plain_ds: Path, episodes: list[int] | None
) -> None:
    meta = DatasetMeta.load(plain_ds)
    horizon = 6
    ds = ChunkDataset(meta, horizon=horizon, episodes=episodes)
    chosen = episodes if episodes is not None else [0, 1, 2, 3]
    expected = [
        g for e in chosen for g in range(meta.episodes[e].from_index, meta.episodes[e].to_index)
    ]
    assert len(ds) == len(expected)
    for i, g in enumerate(expected):
        item = ds[i]
        e = next(k for k, ep in enumerate(meta.episodes) if ep.from_index <= g < ep.to_index)
        end = meta.episodes[e].to_index
        rows = np.minimum(np.arange(g, g + horizon), end - 1)  # never into the next episode
        assert item["action"].dtype == torch.float32 and item["action"].shape == (horizon, 2)
        assert np.array_equal(item["action"].numpy(), action_values(rows).astype(np.float32))
        assert item["action_is_pad"].tolist() == [r >= end for r in range(g, g + horizon)]
        assert np.array_equal(
            item["observation.state"].numpy(), state_values(np.array([g]))[0].astype(np.float32)
        )
        assert int(item["index"]) == g and int(item["episode_index"]) == e
        assert int(item["frame_index"]) == g - meta.episodes[e].from_index
        assert int(item["task_index"]) == e % 2
        assert item["index"].dtype == torch.int64 and item["index"].shape == ()
    assert ds[-1]["index"] == expected[-1]
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_state_and_action_match_the_parquet(video_ds: Path) -> None:
    table = pq.read_table(sorted((video_ds / "data").glob("*/*.parquet"))[0]).to_pydict()
    ds = ChunkDataset(video_ds, horizon=1, image_keys=[])
    assert len(ds) == len(table["index"]) == 48
    for i in range(len(ds)):
        item = ds[i]
        assert set(item) == {
            "observation.state", "action", "action_is_pad", "index", "episode_index",
            "frame_index", "task_index",
        }  # fmt: skip
        assert item["observation.state"].tolist() == pytest.approx(table["observation.state"][i])
        assert item["action"][0].tolist() == pytest.approx(table["action"][i])
        for key in ("index", "episode_index", "frame_index", "task_index"):
            assert int(item[key]) == table[key][i], key


def test_plain_list_columns_load_like_fixed_size_lists(tmp_path: Path, plain_ds: Path) -> None:
    """A data file rewritten with plain pyarrow (list<float>, no huggingface metadata, index as
    a 1-element list) reads the same, as upstream's loader does."""
    import shutil

    root = tmp_path / "ds"
    shutil.copytree(plain_ds, root)
    path = next((root / "data").glob("*/*.parquet"))
    table = pq.read_table(path)
    cols = {}
    for name in table.column_names:
        values = table.column(name).to_pylist()
        if name == "index":
            values = [[v] for v in values]
        cols[name] = pa.array(values)
    pq.write_table(pa.table(cols), path)
    assert pa.types.is_list(pq.read_schema(path).field("action").type)
    a, b = ChunkDataset(plain_ds, horizon=3), ChunkDataset(root, horizon=3)
    for i in (0, 6, 24):
        for key in ("observation.state", "action", "index", "frame_index"):
            assert torch.equal(a[i][key], b[i][key]), key


def test_normalization_matches_stats_json(video_ds: Path) -> None:
    stats = json.loads((video_ds / "meta/stats.json").read_text())
    modes = {"observation.state": "MEAN_STD", "action": "MIN_MAX", CAM: "MEAN_STD"}
    plain = ChunkDataset(video_ds, horizon=4)
    norm = ChunkDataset(video_ds, horizon=4, normalizer=Normalizer(stats, modes))
    s, a, im = (
        {k: np.asarray(v, dtype=np.float32) for k, v in stats[f].items()}
        for f in ("observation.state", "action", CAM)
    )
    for i in (0, 19, 25, 47):
        raw, out = plain[i], norm[i]
        exp_state = (raw["observation.state"].numpy() - s["mean"]) / (s["std"] + 1e-8)
        exp_action = (raw["action"].numpy() - a["min"]) / (a["max"] - a["min"] + 1e-8) * 2 - 1
        exp_img = (raw[CAM].numpy() - im["mean"]) / (im["std"] + 1e-8)
        assert np.allclose(out["observation.state"].numpy(), exp_state, atol=1e-5)
        assert np.allclose(out["action"].numpy(), exp_action, atol=1e-5)
        assert np.allclose(out[CAM].numpy(), exp_img, atol=1e-4)
        assert torch.equal(out["action_is_pad"], raw["action_is_pad"])
        assert out["action"].abs().max() <= 1.0 + 1e-5  # min/max of the whole dataset


# --------------------------------------------------------------------------------------------
# Video frames
# --------------------------------------------------------------------------------------------


def _check_frames(ds: ChunkDataset, first_global: int) -> None:
    """Every sample's image is its own written frame: close to it, far from every other."""
    written = np.stack([frame_image(g) for g in range(ds.meta.total_frames)]).astype(np.float32)
    for i in range(len(ds)):
        item = ds[i]
        img = item[CAM]
        assert img.shape == (3, H, W) and img.dtype == torch.float32
        assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0
        hwc = img.permute(1, 2, 0).numpy() * 255.0
        diffs = np.abs(written - hwc).mean(axis=(1, 2, 3))
        g = int(item["index"])
        assert diffs[g] < 6.0, (g, diffs[g])
        assert int(np.argmin(diffs)) == g, (g, int(np.argmin(diffs)))
        assert np.sort(diffs)[1] > 5 * diffs[g] + 10  # the next best frame is far off
    assert int(ds[0]["index"]) == first_global


@pytest.mark.parametrize("cache_mb", [512, 0.0], ids=["whole-episodes", "frame-by-frame"])
def test_decoded_frames_match_the_written_frames_in_order(video_ds: Path, cache_mb: float) -> None:
    # Episodes 1 and 2 start 20 and 32 frames into the shared mp4 (not the first episode).
    ds = ChunkDataset(video_ds, horizon=2, episodes=[2, 1], video_cache_mb=cache_mb)
    assert ds.video.whole_episode[CAM] is (cache_mb > 0)
    _check_frames(ds, first_global=32)
    if cache_mb:  # each episode decoded once, then served from the cache
        _check_frames(ds, first_global=32)
        assert ds.video.stats["decoded_frames"] == 16 + 12
    else:
        assert ds.video.stats["hits"] == 0


class _RollingWriter(LeRobotDatasetWriter):
    """Starts a new mp4 before the episodes in `roll` (the writer itself rolls over by the
    bytes its encoder has emitted so far, which for tiny episodes depends on encoder timing)."""

    roll: frozenset[int] = frozenset({1})

    def _write_video(self, key: str, frames: object) -> dict:
        if len(self.episodes) in self.roll:
            self._video_last_ep_bytes[key] = 1 << 40
        return super()._write_video(key, frames)  # type: ignore[arg-type]


def test_frames_across_chunks_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Data in one file per episode, two files per chunk; episode 1 starts file-001 of the
    video and episode 2 follows it there: paths and file times come from the episodes table."""
    monkeypatch.setattr(sys.modules[__name__], "LeRobotDatasetWriter", _RollingWriter)
    root = write_dataset(tmp_path / "ds", [6, 5, 7], chunks_size=2, data_files_size_in_mb=1e-9)
    meta = DatasetMeta.load(root)
    videos = [e.videos[CAM] for e in meta.episodes]
    assert [v.path.parent.name + "/" + v.path.name for v in videos] == [
        "chunk-000/file-000.mp4",
        "chunk-000/file-001.mp4",
        "chunk-000/file-001.mp4",
    ]
    assert [v.from_timestamp for v in videos] == [0.0, 0.0, 5 / FPS]
    assert "chunk-001/file-000" in str(meta.episodes[2].data_path)
    ds = ChunkDataset(meta, horizon=3, episodes=[1, 2])
    _check_frames(ds, first_global=6)
    assert ds[len(ds) - 1]["action"].tolist() == [action_values(np.array([17]))[0].tolist()] * 3


def test_workers_give_the_same_batches_as_the_main_process(video_ds: Path) -> None:
    """A forked worker decodes with its own cache (never the parent's decoder state)."""
    ds = ChunkDataset(video_ds, horizon=5)
    ds[30]  # the parent has decoded (and holds an open container) before the fork
    ref = list(make_dataloader(ds, 8, shuffle=True, seed=3))
    got = list(make_dataloader(ds, 8, shuffle=True, seed=3, num_workers=1))
    assert len(ref) == len(got) == 6
    for a, b in zip(ref, got, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shuffle", [True, False])
def test_two_ranks_see_the_single_process_batches_step_by_step(
    plain_ds: Path, shuffle: bool
) -> None:
    ds = ChunkDataset(plain_ds, horizon=2)  # 25 samples
    per_rank, world = 3, 2
    single = make_dataloader(ds, per_rank * world, shuffle=shuffle, seed=7)
    ranks = [
        make_dataloader(ds, per_rank, shuffle=shuffle, seed=7, rank=r, world_size=world)
        for r in range(world)
    ]
    orders = []
    for epoch in (0, 1):
        for loader in (single, *ranks):
            set_epoch(loader, epoch)
        steps = [b["index"].tolist() for b in single]
        per = [[b["index"].tolist() for b in loader] for loader in ranks]
        assert len(steps) == len(per[0]) == len(per[1]) == 25 // 6
        for k, batch in enumerate(steps):
            assert len(batch) == 6 and all(len(p[k]) == per_rank for p in per)
            assert sorted(batch) == sorted(per[0][k] + per[1][k]), (epoch, k)
            assert not set(per[0][k]) & set(per[1][k])
        orders.append([i for b in steps for i in b])
    assert (orders[0] != orders[1]) is shuffle  # set_epoch reshuffles
    again = make_dataloader(ds, 6, shuffle=shuffle, seed=7)
    assert [i for b in again for i in b["index"].tolist()] == orders[0]  # seeded


def test_dataloader_rejects_what_would_train_on_nothing(plain_ds: Path) -> None:
    ds = ChunkDataset(plain_ds, horizon=2)
    with pytest.raises(ValueError, match="no full batch"):
        make_dataloader(ds, 20, shuffle=True, seed=0, world_size=2)
    with pytest.raises(ValueError, match="rank 2"):
        make_dataloader(ds, 2, shuffle=True, seed=0, rank=2, world_size=2)


# --------------------------------------------------------------------------------------------
# Errors and resolution
# --------------------------------------------------------------------------------------------


def _edit_json(path: Path, edit: object) -> None:
    data = json.loads(path.read_text())
    edit(data)  # type: ignore[operator]
    path.write_text(json.dumps(data))


def _drop_episode_column(root: Path, column: str) -> None:
    path = next((root / "meta/episodes").glob("*/*.parquet"))
    table = pq.read_table(path)
    pq.write_table(table.drop_columns([column]), path)


def _shift_episode_range(root: Path) -> None:
    path = next((root / "meta/episodes").glob("*/*.parquet"))
    table = pq.read_table(path)
    col = table.column("dataset_to_index").to_pylist()
    col[0] += 1
    i = table.column_names.index("dataset_to_index")
    pq.write_table(table.set_column(i, "dataset_to_index", pa.array(col, pa.int64())), path)


BROKEN = {
    "no info.json": (lambda r: (r / "meta/info.json").unlink(), "info.json: missing"),
    "old codebase": (
        lambda r: _edit_json(r / "meta/info.json", lambda d: d.update(codebase_version="v2.1")),
        "codebase_version is 'v2.1'",
    ),
    "bad fps": (
        lambda r: _edit_json(r / "meta/info.json", lambda d: d.update(fps=0)),
        "field 'fps' is 0",
    ),
    "bad shape": (
        lambda r: _edit_json(
            r / "meta/info.json", lambda d: d["features"]["action"].update(shape="2")
        ),
        "features['action']['shape'] is '2'",
    ),
    "no state feature": (
        lambda r: _edit_json(
            r / "meta/info.json", lambda d: d["features"].pop("observation.state")
        ),
        "no feature 'observation.state'",
    ),
    "stats not JSON": (
        lambda r: (r / "meta/stats.json").write_text("{"),
        "stats.json: not valid JSON",
    ),
    "stats not numeric": (
        lambda r: _edit_json(r / "meta/stats.json", lambda d: d["action"].update(mean=["a", "b"])),
        "'action'/mean is not numeric",
    ),
    "no tasks": (lambda r: (r / "meta/tasks.parquet").unlink(), "tasks.parquet: missing"),
    "episodes column": (
        lambda r: _drop_episode_column(r, f"videos/{CAM}/from_timestamp"),
        f"missing column(s) ['videos/{CAM}/from_timestamp']",
    ),
    "episode range": (_shift_episode_range, "dataset_to_index 21, length 20"),
    "episode count": (
        lambda r: _edit_json(r / "meta/info.json", lambda d: d.update(total_episodes=4)),
        "total_episodes is 4",
    ),
    "data file missing": (
        lambda r: next((r / "data").glob("*/*.parquet")).unlink(),
        "file-000.parquet: missing (data file",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_malformed_datasets_fail_naming_the_field(
    tmp_path: Path, video_ds: Path, case: str
) -> None:
    import shutil

    root = tmp_path / "ds"
    shutil.copytree(video_ds, root)
    breaker, message = BROKEN[case]
    breaker(root)
    with pytest.raises(DatasetError) as exc:
        ChunkDataset(root, horizon=2)
    assert message in str(exc.value)


def test_missing_or_truncated_video_names_the_file(tmp_path: Path, video_ds: Path) -> None:
    import shutil

    root = tmp_path / "ds"
    shutil.copytree(video_ds, root)
    mp4 = next((root / "videos").glob("*/*/*.mp4"))
    ds = ChunkDataset(root, horizon=2)
    mp4.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 3])
    with pytest.raises(DatasetError, match=r"file-000\.mp4: episode 2 frame\(s\)"):
        ds[47]
    mp4.unlink()
    with pytest.raises(DatasetError, match=r"file-000\.mp4: missing"):
        ChunkDataset(root, horizon=2)[0]
    with pytest.raises(DatasetError, match=r"image key 'observation\.images\.wrist'"):
        ChunkDataset(root, horizon=2, image_keys=["observation.images.wrist"])
    with pytest.raises(ValueError, match="episodes"):
        ChunkDataset(root, horizon=2, episodes=[0, 3])
    with pytest.raises(ValueError, match="horizon"):
        ChunkDataset(root, horizon=0)


def test_resolve_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_dataset(tmp_path) == tmp_path
    with pytest.raises(DatasetError, match="neither a directory nor a Hub repo id"):
        resolve_dataset(tmp_path / "missing" / "dir")
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    with pytest.raises(DatasetError, match="huggingface_hub is not installed"):
        resolve_dataset("someone/some_dataset")
    calls = []

    def snapshot_download(**kwargs: object) -> str:
        calls.append(kwargs)
        return str(tmp_path)

    fake = types.ModuleType("huggingface_hub")
    fake.snapshot_download = snapshot_download  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "huggingface_hub", fake)
    assert resolve_dataset("someone/some_dataset", revision="v1") == tmp_path
    assert calls == [{"repo_id": "someone/some_dataset", "repo_type": "dataset", "revision": "v1"}]


# --------------------------------------------------------------------------------------------
# The converter-made dataset of the simulated teleop graph
# --------------------------------------------------------------------------------------------


@pytest.mark.ros
def test_sim_dataset_yields_samples_of_the_right_shapes(sim_dataset: Path) -> None:
    meta = DatasetMeta.load(sim_dataset)
    assert meta.video_keys == [CAM] and meta.shape(CAM) == (96, 128, 3)
    assert len(meta.episodes) == 3 and len(meta.tasks) >= 2
    stats = dict(meta.stats)
    modes = {"observation.state": "MEAN_STD", "action": "MEAN_STD", CAM: "MEAN_STD"}
    ds = ChunkDataset(meta, horizon=20, normalizer=Normalizer(stats, modes))
    assert len(ds) == meta.total_frames >= 3 * 2 * FPS
    batch = next(iter(make_dataloader(ds, 4, shuffle=True, seed=0)))
    assert batch["observation.state"].shape == (4, 6)
    assert batch["action"].shape == (4, 20, 6) and batch["action_is_pad"].shape == (4, 20)
    assert batch[CAM].shape == (4, 3, 96, 128) and batch[CAM].dtype == torch.float32
    assert all(torch.isfinite(batch[k]).all() for k in ("observation.state", "action", CAM))
    last = ds[meta.episodes[0].to_index - 1]  # the last frame of episode 0: all but one padded
    assert last["action_is_pad"].tolist() == [False] + [True] * 19
    assert ds.video.whole_episode[CAM]
