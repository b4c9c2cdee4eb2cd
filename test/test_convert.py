"""ROS bags -> LeRobotDataset v3.0 (lerobot_ros.core.dataset), ROS-free.

Synthetic rosbag2 recordings are written with rosbags' Writer (MCAP and sqlite3), the
EpisodeEvent type registered from lerobot_msgs/msg/EpisodeEvent.msg, and converted.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from lerobot_ros.core.dataset import cli
from lerobot_ros.core.dataset.convert import convert_bags
from lerobot_ros.core.dataset.profile import so101_profile
from lerobot_ros.core.dataset.resample import ResampleError, frame_grid, resample
from lerobot_ros.core.robots import SO_ARM_JOINTS

ROOT = Path(__file__).resolve().parents[1]
EVENT_MSG = (ROOT / "lerobot_msgs/msg/EpisodeEvent.msg").read_text()
EVENT_TYPE = "lerobot_msgs/msg/EpisodeEvent"
FPS = 30
BASE_NS = 1_700_000_000_000_000_000
NS = 1_000_000_000


def _typestore():
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    ts.register(get_types_from_msg(EVENT_MSG, EVENT_TYPE))
    return ts


@dataclass
class Spec:
    """One episode of a synthetic bag (times in seconds from BASE)."""

    start: float
    stop: float | None  # None: no EPISODE_STOP
    task: str
    discard: bool = False
    camera_gap: tuple[float, float] | None = None  # no camera message in [a, b)


@dataclass
class BagTruth:
    path: Path
    specs: list[Spec]
    follower: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # stamps ns
    camera: list[tuple[int, int]] = field(default_factory=list)  # (stamp ns, gray level)


def follower_position(stamp: int) -> np.ndarray:
    """Joint positions (rad) that encode their own stamp in shoulder_pan (s since BASE / 10)."""
    s = (stamp - BASE_NS) / NS
    return np.array([s / 10.0, 0.3 * math.sin(s), -0.2, 0.1 * s, 0.5, 0.2 + 0.1 * math.sin(3 * s)])


def gray(i: int) -> int:
    return 20 + (i * 13) % 200


def write_bag(
    path: Path,
    specs: list[Spec],
    *,
    storage: str = "mcap",
    size: tuple[int, int] = (48, 64),
    end: float | None = None,
    seed: int = 0,
) -> BagTruth:
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = _typestore()
    rng = np.random.default_rng(seed)
    types_ = ts.types
    header_t, time_t = types_["std_msgs/msg/Header"], types_["builtin_interfaces/msg/Time"]
    js_t, image_t = types_["sensor_msgs/msg/JointState"], types_["sensor_msgs/msg/Image"]
    ev_t = types_[EVENT_TYPE]

    def header(ns: int):
        return header_t(stamp=time_t(sec=ns // NS, nanosec=ns % NS), frame_id="")

    end = end if end is not None else max((s.stop or s.start) for s in specs) + 0.6
    msgs: list[tuple[int, int, str, object]] = []  # (log ns, order, topic, msg)
    truth = BagTruth(path, specs)

    def js(ns: int, pos: np.ndarray):
        return js_t(
            header=header(ns),
            name=list(SO_ARM_JOINTS),
            position=pos,
            velocity=np.zeros(0),
            effort=np.zeros(0),
        )

    follower = []
    t = 0.0
    while t < end:  # ~100 Hz with jitter, log time = stamp + 1..3 ms
        ns = BASE_NS + int((t + rng.uniform(-0.002, 0.002)) * NS)
        follower.append(ns)
        lag = int(rng.uniform(0.001, 0.003) * NS)
        msgs.append((ns + lag, 0, "/follower/joint_states", js(ns, follower_position(ns))))
        cmd = follower_position(ns) + 0.05
        msgs.append((ns + lag, 1, "/follower/command", js(ns, cmd)))
        msgs.append((ns + lag, 2, "/leader/joint_states", js(ns, cmd - 0.01)))
        t += 0.01
    truth.follower = np.sort(np.array(follower, dtype=np.int64))
    h, w = size
    ramp = (np.arange(w, dtype=np.int64)[None, :] * 2 + np.arange(h)[:, None]) % 40
    i, t = 0, 0.0
    while t < end:  # ~30 Hz camera, 5 ms jitter, 10-25 ms transport lag
        if not any(a <= t < b for s in specs if s.camera_gap for a, b in [s.camera_gap]):
            ns = BASE_NS + int((t + rng.uniform(-0.005, 0.005)) * NS)
            img = np.empty((h, w, 3), np.uint8)
            g = gray(i)
            img[..., 0] = g
            img[..., 1] = np.clip(g + ramp, 0, 255)
            img[..., 2] = 255 - g
            enc = "rgb8"
            if i % 7 == 3:  # some frames as bgr8: the reader must swap them back
                img, enc = img[..., ::-1].copy(), "bgr8"
            msg = image_t(
                header=header(ns),
                height=h,
                width=w,
                encoding=enc,
                is_bigendian=0,
                step=w * 3,
                data=img.reshape(-1),
            )
            msgs.append(
                (ns + int(rng.uniform(0.01, 0.025) * NS), 3, "/cameras/front/image_raw", msg)
            )
            truth.camera.append((ns, g))
            i += 1
        t += 1 / 30
    truth.camera.sort()
    for k, s in enumerate(specs):
        ns = BASE_NS + int(s.start * NS)
        msgs.append((ns, 4, "/recorder/events", ev_t(header(ns), 0, k, s.task, "test", "")))
        msgs.append((ns + 5, 4, "/watchdog/events", ev_t(header(ns), 6, 0, "", "watchdog", "x")))
        if s.stop is not None:
            ns = BASE_NS + int(s.stop * NS)
            kind = 2 if s.discard else 1
            msgs.append((ns, 4, "/recorder/events", ev_t(header(ns), kind, k, "", "test", "")))
    msgs.sort(key=lambda m: (m[0], m[1]))
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    types = {
        "/follower/joint_states": js_t.__msgtype__,
        "/follower/command": js_t.__msgtype__,
        "/leader/joint_states": js_t.__msgtype__,
        "/cameras/front/image_raw": image_t.__msgtype__,
        "/recorder/events": EVENT_TYPE,
        "/watchdog/events": EVENT_TYPE,
    }
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conns = {tp: writer.add_connection(tp, typ, typestore=ts) for tp, typ in types.items()}
        for log_ns, _o, topic, msg in msgs:
            writer.write(conns[topic], log_ns, ts.serialize_cdr(msg, types[topic]))
    return truth


SPECS = [
    Spec(0.3, 1.3, "pick the red cube"),
    Spec(1.6, 2.2, "junk", discard=True),
    Spec(2.5, 3.7, "place the cube in the bin"),
]


@pytest.fixture(scope="module")
def mcap_dataset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mcap")
    truth = write_bag(tmp / "bag", SPECS)
    logs: list[str] = []
    report = convert_bags([truth.path], tmp / "ds", "test/so101", fps=FPS, log=logs.append)
    return truth, tmp / "ds", report, logs


def _episodes(root: Path):
    return pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()


def _data(root: Path):
    files = sorted((root / "data").glob("*/*.parquet"))
    return [pq.ParquetFile(f) for f in files]


def test_report_and_layout(mcap_dataset):
    _truth, root, report, logs = mcap_dataset
    statuses = [e.status for e in report.episodes]
    assert statuses == ["converted", "discarded", "converted"], [str(e) for e in report.episodes]
    assert "discarded" in report.episodes[1].message
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == [
        "data/chunk-000/file-000.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
        "meta/info.json",
        "meta/stats.json",
        "meta/tasks.parquet",
        "videos/observation.images.front/chunk-000/file-000.mp4",
    ]
    conv = report.converted
    assert [e.frames for e in conv] == [31, 37]  # 1.0 s and 1.2 s at 30 fps, both ends included
    for e in conv:
        names = {s.name for s in e.streams}
        assert names == {"/follower/joint_states", "/follower/command", "/cameras/front/image_raw"}
        for s in e.streams:
            assert s.frames == e.frames and 0 <= s.max_sync_error_s <= s.max_gap_s < 0.1
    assert any("episode 1" in line for line in logs)


def test_info_json(mcap_dataset):
    _truth, root, _report, _ = mcap_dataset
    info = json.loads((root / "meta/info.json").read_text())
    assert list(info) == [
        "codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks",
        "chunks_size", "data_files_size_in_mb", "video_files_size_in_mb", "fps", "splits",
        "data_path", "video_path", "features",
    ]  # fmt: skip
    assert info["codebase_version"] == "v3.0"
    assert info["robot_type"] == "so101_follower"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (2, 68, 2)
    assert info["fps"] == 30 and isinstance(info["fps"], int)
    assert info["splits"] == {"train": "0:2"}
    assert info["chunks_size"] == 1000
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == (
        "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    )
    feats = info["features"]
    assert list(feats) == [
        "action", "observation.state", "observation.images.front",
        "timestamp", "frame_index", "episode_index", "index", "task_index",
    ]  # fmt: skip
    names = [f"{j}.pos" for j in SO_ARM_JOINTS]
    assert feats["action"] == {"dtype": "float32", "shape": [6], "names": names}
    assert feats["observation.state"] == {"dtype": "float32", "shape": [6], "names": names}
    img = feats["observation.images.front"]
    assert img["dtype"] == "video" and img["shape"] == [48, 64, 3]
    assert img["names"] == ["height", "width", "channels"]
    assert img["info"] == {
        "video.height": 48, "video.width": 64, "video.codec": "av1", "video.pix_fmt": "yuv420p",
        "video.is_depth_map": False, "video.fps": 30, "video.channels": 3, "has_audio": False,
    }  # fmt: skip
    assert feats["timestamp"] == {"dtype": "float32", "shape": [1], "names": None}
    assert feats["index"] == {"dtype": "int64", "shape": [1], "names": None}


def test_data_parquet(mcap_dataset):
    _truth, root, _report, _ = mcap_dataset
    (pf,) = _data(root)
    schema = pf.schema_arrow
    assert [f.name for f in schema] == [
        "action", "observation.state", "timestamp", "frame_index", "episode_index", "index",
        "task_index",
    ]  # fmt: skip
    for key in ("action", "observation.state"):
        typ = schema.field(key).type
        assert typ.list_size == 6 and str(typ.value_type) == "float", typ  # fixed_size_list
    assert str(schema.field("timestamp").type) == "float"
    assert str(schema.field("index").type) == "int64"
    assert b"huggingface" in schema.metadata
    assert [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)] == [31, 37]
    t = pf.read().to_pydict()
    assert t["index"] == list(range(68))
    assert t["episode_index"] == [0] * 31 + [1] * 37
    assert t["task_index"] == [0] * 31 + [1] * 37
    for ep, n in ((0, 31), (1, 37)):
        rows = [i for i, e in enumerate(t["episode_index"]) if e == ep]
        assert [t["frame_index"][i] for i in rows] == list(range(n))
        ts = np.array([t["timestamp"][i] for i in rows], dtype=np.float32)
        assert np.array_equal(ts, (np.arange(n) / FPS).astype(np.float32))


def test_observations_never_use_the_future(mcap_dataset):
    truth, root, _report, _ = mcap_dataset
    t = _data(root)[0].read().to_pydict()
    state = np.array(t["observation.state"], dtype=np.float64)
    action = np.array(t["action"], dtype=np.float64)
    for ep, spec in enumerate(s for s in SPECS if not s.discard):
        rows = [i for i, e in enumerate(t["episode_index"]) if e == ep]
        t0 = BASE_NS + int(spec.start * NS)
        grid = frame_grid(t0, BASE_NS + int(spec.stop * NS), FPS)
        # shoulder_pan (deg) encodes the stamp of the sample used: rad = (stamp - BASE)/10 s.
        used = BASE_NS + np.deg2rad(state[rows, 0]) * 10 * NS
        expected = truth.follower[np.searchsorted(truth.follower, grid, side="right") - 1]
        assert np.all(used <= grid + 2e4)  # float32 resolution of the encoded stamp: ~10 us
        assert np.allclose(used, expected, atol=2e4, rtol=0)
        # action = command = follower + 0.05 rad, held the same way (default policy: hold)
        assert np.allclose(action[rows, 1], state[rows, 1] + np.rad2deg(0.05), atol=1e-3)
    # gripper: 0..100 over the URDF limits, wrist_roll in degrees
    lo, hi = so101_profile().range_joints["gripper"]
    g_rad = state[:, 5] / 100 * (hi - lo) + lo
    assert np.all((g_rad > 0.09) & (g_rad < 0.31))
    assert np.allclose(state[:, 4], np.rad2deg(0.5), atol=1e-4)


def test_video_frames_and_timestamps(mcap_dataset):
    truth, root, _report, _ = mcap_dataset
    eps = _episodes(root)
    key = "videos/observation.images.front"
    assert [(e[f"{key}/from_timestamp"], e[f"{key}/to_timestamp"]) for e in eps] == [
        (0.0, 31 / 30),
        (31 / 30, 68 / 30),
    ]
    path = root / "videos/observation.images.front/chunk-000/file-000.mp4"
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name in ("libdav1d", "libaom-av1", "av1")
        assert s.average_rate == 30
        frames = list(c.decode(s))
        pts = [float(f.pts * s.time_base) for f in frames]
        imgs = [f.to_ndarray(format="rgb24") for f in frames]
    assert len(frames) == 68
    assert np.allclose(pts, np.arange(68) / 30, atol=1e-6)
    # content: frame k shows the latest camera image captured at or before t_k
    cam_ns = np.array([c[0] for c in truth.camera])
    levels = np.array([c[1] for c in truth.camera])
    k = 0
    for spec in (s for s in SPECS if not s.discard):
        grid = frame_grid(BASE_NS + int(spec.start * NS), BASE_NS + int(spec.stop * NS), FPS)
        want = levels[np.searchsorted(cam_ns, grid, side="right") - 1]
        for g in want:
            red = imgs[k][..., 0].mean()
            blue = imgs[k][..., 2].mean()
            assert abs(red - g) < 6 and abs(blue - (255 - g)) < 6, (k, red, blue, g)
            k += 1


def test_tasks_parquet(mcap_dataset):
    _truth, root, _report, _ = mcap_dataset
    table = pq.read_table(root / "meta/tasks.parquet")
    assert table.column_names == ["task_index", "__index_level_0__"]
    meta = json.loads(table.schema.metadata[b"pandas"])
    assert meta["index_columns"] == ["__index_level_0__"]
    assert table.column("__index_level_0__").to_pylist() == [
        "pick the red cube",
        "place the cube in the bin",
    ]
    eps = _episodes(root)
    assert [e["tasks"] for e in eps] == [["pick the red cube"], ["place the cube in the bin"]]
    pd = pytest.importorskip("pandas")
    df = pd.read_parquet(root / "meta/tasks.parquet")
    assert list(df.columns) == ["task_index"]
    assert df.iloc[1].name == "place the cube in the bin"  # what upstream's loader uses
    assert df.loc["pick the red cube", "task_index"] == 0


def _np_stats(a: np.ndarray) -> dict:
    return {
        "min": a.min(0), "max": a.max(0), "mean": a.mean(0), "std": a.std(0),
        **{k: np.quantile(a, q, axis=0) for k, q in
           (("q01", .01), ("q10", .1), ("q50", .5), ("q90", .9), ("q99", .99))},
    }  # fmt: skip


def test_stats(mcap_dataset):
    _truth, root, _report, _ = mcap_dataset
    t = _data(root)[0].read().to_pydict()
    stats = json.loads((root / "meta/stats.json").read_text())
    eps = _episodes(root)
    for key in ("observation.state", "action", "timestamp", "index", "frame_index"):
        col = np.array(t[key], dtype=np.float64).reshape(68, -1)
        for stat, want in _np_stats(col).items():
            assert np.allclose(stats[key][stat], want, rtol=1e-6, atol=1e-6), (key, stat)
        assert stats[key]["count"] == [68]
        for ep, row in enumerate(eps):
            sel = col[np.array(t["episode_index"]) == ep]
            for stat, want in _np_stats(sel).items():
                got = row[f"stats/{key}/{stat}"]
                assert np.allclose(got, want, rtol=1e-6, atol=1e-6), (ep, key, stat)
            assert row[f"stats/{key}/count"] == [len(sel)]
    img = stats["observation.images.front"]
    for stat in ("min", "max", "mean", "std", "q01", "q10", "q50", "q90", "q99"):
        v = np.array(img[stat])
        assert v.shape == (3, 1, 1) and np.all((v >= 0) & (v <= 1)), stat
    assert np.all(np.array(img["std"]) > 0.05)
    assert img["count"] == [68]
    assert np.all(np.array(img["min"]) <= np.array(img["q50"]))
    ep_img = np.array(eps[0]["stats/observation.images.front/mean"])
    assert ep_img.shape == (3, 1, 1)
    schema = pq.read_schema(root / "meta/episodes/chunk-000/file-000.parquet")
    assert str(schema.field("stats/index/min").type) == "list<element: int64>"
    assert str(schema.field("stats/index/count").type) == "list<element: int64>"
    assert str(schema.field("stats/action/mean").type) == "list<element: double>"
    assert "list<element: list<element: list<element: double>>>" in str(
        schema.field("stats/observation.images.front/std").type
    )
    assert schema.names[:7] == [
        "episode_index", "tasks", "length", "data/chunk_index", "data/file_index",
        "dataset_from_index", "dataset_to_index",
    ]  # fmt: skip
    assert schema.names[-2:] == ["meta/episodes/chunk_index", "meta/episodes/file_index"]
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in eps] == [(0, 31), (31, 68)]


def test_sqlite_and_several_bags_leader_action_h264(tmp_path):
    a = write_bag(tmp_path / "a", SPECS[:1], storage="sqlite3", seed=1)
    b = write_bag(tmp_path / "b", [Spec(0.2, 0.9, "second"), Spec(1.1, 1.5, "third")], seed=2)
    rep = convert_bags(
        [a.path, b.path], tmp_path / "ds", "x/y", action="leader", vcodec="h264", log=lambda m: None
    )
    assert [e.frames for e in rep.converted] == [31, 22, 13]
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    assert info["total_episodes"] == 3 and info["total_tasks"] == 3
    assert info["features"]["observation.images.front"]["info"]["video.codec"] == "h264"
    t = _data(tmp_path / "ds")[0].read().to_pydict()
    state, action = np.array(t["observation.state"]), np.array(t["action"])
    assert np.allclose(action[:, 1], state[:, 1] + np.rad2deg(0.04), atol=1e-3)  # leader
    with av.open(str(tmp_path / "ds/videos/observation.images.front/chunk-000/file-000.mp4")) as c:
        s = c.streams.video[0]
        pts = [float(f.pts * s.time_base) for f in c.decode(s)]
    assert np.allclose(pts, np.arange(66) / 30, atol=1e-6)


def test_gap_fails_only_that_episode(tmp_path):
    specs = [Spec(0.3, 1.3, "ok"), Spec(1.6, 2.8, "gappy", camera_gap=(2.0, 2.4))]
    truth = write_bag(tmp_path / "bag", specs)
    rep = convert_bags([truth.path], tmp_path / "ds", "x/y", log=lambda m: None)
    assert [e.status for e in rep.episodes] == ["converted", "failed"]
    msg = rep.episodes[1].message
    assert "episode 1" in msg and "gappy" in msg and "/cameras/front/image_raw" in msg
    assert "gap of 0.4" in msg
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    assert info["total_episodes"] == 1
    # a larger tolerance converts it
    rep = convert_bags([truth.path], tmp_path / "ds2", "x/y", max_gap_s=0.5, log=lambda m: None)
    assert [e.status for e in rep.episodes] == ["converted", "converted"]


def test_truncated_mcap_converts_complete_episodes(tmp_path):
    specs = [Spec(0.3, 1.3, "first"), Spec(1.6, 4.6, "cut off")]
    truth = write_bag(tmp_path / "bag", specs, size=(120, 160))
    (mcap,) = list(truth.path.glob("*.mcap"))
    (truth.path / "metadata.yaml").unlink()  # the recorder was killed
    data = mcap.read_bytes()
    mcap.write_bytes(data[: int(len(data) * 0.6)])
    logs: list[str] = []
    rep = convert_bags([truth.path], tmp_path / "ds", "x/y", log=logs.append)
    assert [e.status for e in rep.episodes] == ["converted", "incomplete"]
    assert "without EPISODE_STOP" in rep.episodes[1].message
    assert any("truncated" in line for line in logs)
    assert rep.converted[0].frames == 31
    # the bare file works as input too
    rep = convert_bags([mcap], tmp_path / "ds2", "x/y", log=lambda m: None)
    assert [e.status for e in rep.episodes] == ["converted", "incomplete"]


def test_resample_policies():
    stamps = np.array([0, 10, 20, 35, 50], dtype=np.int64)
    grid = np.array([5, 10, 34, 60], dtype=np.int64)
    hold = resample("s", stamps, grid, "hold")
    assert hold.i0.tolist() == [0, 1, 2, 4]
    assert np.all(stamps[hold.i0] <= grid)
    assert hold.report.max_sync_error_s == pytest.approx(14e-9)
    assert hold.report.max_gap_s == pytest.approx(15e-9)
    vals = np.array([[0.0], [10.0], [20.0], [35.0], [50.0]])
    lin = resample("a", stamps, grid, "linear", observation=False)
    assert lin.apply(vals)[:, 0].tolist() == pytest.approx([5, 10, 34, 50])
    near = resample("a", stamps, grid, "nearest", observation=False)
    assert near.i0.tolist() == [0, 1, 3, 4]
    with pytest.raises(ValueError, match="future"):
        resample("obs", stamps, grid, "linear", observation=True)
    with pytest.raises(ResampleError, match="before the first frame"):
        resample("s", stamps + 6, grid, "hold")
    with pytest.raises(ResampleError, match=r"gap of 1\.0"):
        resample("s", np.array([0, 10**9 + 10]), np.array([0, 10**9 + 10]), max_gap_s=0.2)


def test_cli(tmp_path, monkeypatch, capsys):
    truth = write_bag(tmp_path / "bag", SPECS[:1])
    pushed = {}

    def fake_push(root, repo_id, *, private=False):
        pushed.update(root=Path(root), repo_id=repo_id, private=private)
        return "https://hub/commit"

    monkeypatch.setattr(cli, "push_to_hub", fake_push)
    argv = [str(truth.path), "--output", str(tmp_path / "ds"), "--repo-id", "me/ds"]
    assert cli.main([*argv, "--push-to-hub", "--max-gap", "0.3"]) == 0
    assert pushed == {"root": tmp_path / "ds", "repo_id": "me/ds", "private": False}
    captured = capsys.readouterr()
    out = captured.out
    assert "1 of 1 episodes converted, 31 frames" in out and "max sync error" in out
    assert "converting: " in captured.err and "1episode" in captured.err.replace(" ", "")
    assert "frames=31" in captured.err  # the progress bar counts the written frames
    # existing output refused; no episode converted -> exit code 1 and nothing left behind
    assert cli.main(argv) == 2
    discarded = write_bag(tmp_path / "d", [Spec(0.3, 1.0, "x", discard=True)])
    argv = [str(discarded.path), "--output", str(tmp_path / "none"), "--repo-id", "me/ds"]
    assert cli.main(argv) == 1
    assert not (tmp_path / "none").exists()


def test_push_to_hub_without_hub(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(RuntimeError, match="huggingface_hub"):
        cli.push_to_hub(tmp_path, "me/ds")
