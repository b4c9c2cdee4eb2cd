"""The converter's per-frame `intervention` flag, ROS-free.

Synthetic bags (rosbags' Writer, as test_convert.py) with joint states, commands, the recorder's
episode events and the rollout's INTERVENTION_START / END on /rollout/events at known stamps:
the flag is true on exactly the frames whose grid time lies in [start, end); an intervention
still open at the end runs to the last frame, one that began before the episode from the first;
`--intervention auto|on|off`; the dataset keeps the v3.0 format (and loads in our loader) with
the bool feature in it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lerobot_ros.core.dataset import cli
from lerobot_ros.core.dataset.bag import Event
from lerobot_ros.core.dataset.convert import convert_bags
from lerobot_ros.core.dataset.intervention import intervention_intervals, intervention_mask
from lerobot_ros.core.dataset.resample import frame_grid
from lerobot_ros.core.robots import SO_ARM_JOINTS

ROOT = Path(__file__).resolve().parents[1]
EVENT_TYPE = "lerobot_msgs/msg/EpisodeEvent"
FPS = 30
NS = 1_000_000_000
BASE = 1_700_000_000 * NS
ON, OFF = 4, 5  # INTERVENTION_START / END


def _at(s: float) -> int:
    return BASE + round(s * NS)


def write_bag(
    path: Path,
    episodes: list[tuple[float, float, str, bool]],  # (start s, stop s, task, discard)
    interventions: list[tuple[float, int]],  # (stamp s, ON | OFF) on /rollout/events
    end: float,
) -> Path:
    """100 Hz state + command from 0 to `end` s, the recorder's events, the rollout's."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    ts.register(
        get_types_from_msg((ROOT / "lerobot_msgs/msg/EpisodeEvent.msg").read_text(), EVENT_TYPE)
    )
    types_ = ts.types

    def header(ns: int) -> object:
        stamp = types_["builtin_interfaces/msg/Time"](sec=ns // NS, nanosec=ns % NS)
        return types_["std_msgs/msg/Header"](stamp=stamp, frame_id="")

    def ev(ns: int, kind: int, i: int, task: str, src: str) -> object:
        return types_[EVENT_TYPE](header(ns), kind, i, task, src, "")

    msgs: list[tuple[int, int, str, object]] = []
    for k in range(round(end * 100)):
        ns = _at(k / 100)
        js = types_["sensor_msgs/msg/JointState"](
            header=header(ns),
            name=list(SO_ARM_JOINTS),
            position=np.full(6, 0.01 * k),
            velocity=np.zeros(0),
            effort=np.zeros(0),
        )
        msgs += [(ns + 2_000_000, 0, "/follower/joint_states", js)]
        msgs += [(ns + 2_000_000, 1, "/follower/command", js)]
    for i, (start, stop, task, discard) in enumerate(episodes):
        msgs.append((_at(start), 2, "/recorder/events", ev(_at(start), 0, i, task, "test")))
        kind = 2 if discard else 1
        msgs.append((_at(stop), 2, "/recorder/events", ev(_at(stop), kind, i, task, "test")))
    for t, kind in interventions:  # logged 3 ms after their stamp, as a subscriber gets them
        msgs.append((_at(t) + 3_000_000, 3, "/rollout/events", ev(_at(t), kind, 0, "", "rollout")))
    msgs.sort(key=lambda m: (m[0], m[1]))
    types = {
        "/follower/joint_states": "sensor_msgs/msg/JointState",
        "/follower/command": "sensor_msgs/msg/JointState",
        "/recorder/events": EVENT_TYPE,
        "/rollout/events": EVENT_TYPE,
    }
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {t: w.add_connection(t, typ, typestore=ts) for t, typ in types.items()}
        for log_ns, _order, topic, msg in msgs:
            w.write(conns[topic], log_ns, ts.serialize_cdr(msg, types[topic]))
    return path


def _table(root: Path) -> dict[str, list]:
    (path,) = sorted((root / "data").glob("*/*.parquet"))
    return pq.read_table(path).to_pydict()


def _expected(start: float, stop: float, spans: list[tuple[float, float]]) -> np.ndarray:
    """Independent of the converter: frame k at start + k/fps (the samples begin at 0 s, so
    the first frame is at EPISODE_START), flagged inside any [a, b)."""
    grid = frame_grid(_at(start), _at(stop), FPS)
    return np.array([any(_at(a) <= t < _at(b) for a, b in spans) for t in grid])


EPISODES = [
    (0.3, 1.3, "a: a 0.3 s takeover", False),
    (1.6, 2.6, "b: takeover until the end", False),
    (2.9, 3.5, "c: junk", True),
    (3.8, 4.6, "d: began before the episode", False),
    (4.9, 5.5, "e: none", False),
]
INTERVENTIONS = [
    (0.5, ON),  # exactly on frame 6 of episode a (0.3 + 6/30): flagged
    (0.8, OFF),  # exactly on frame 15: not flagged ([start, end))
    (2.3, ON),  # never ended: to the end of b
    (2.5, ON),  # a second START while on changes nothing
    (3.0, OFF),  # between episodes
    (3.1, ON),  # in the discarded episode c ...
    (3.6, OFF),  # ... ended after it, before d
    (3.7, ON),  # before d's EPISODE_START: on when d begins
    (4.2, OFF),
]
SPANS = {
    0: [(0.5, 0.8)],
    1: [(2.3, 99.0)],
    2: [(3.7, 4.2)],
    3: [],
}


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, Path]:
    tmp = tmp_path_factory.mktemp("intervention")
    bag = write_bag(tmp / "bag", EPISODES, INTERVENTIONS, end=6.0)
    report = convert_bags([bag], tmp / "ds", "t/iv", fps=FPS, log=lambda _m: None)
    return tmp / "ds", report, bag


def test_the_flag_is_true_exactly_inside_the_interventions(converted) -> None:
    root, report, _bag = converted
    assert [e.status for e in report.episodes] == ["converted"] * 2 + ["discarded"] + [
        "converted"
    ] * 2
    t = _table(root)
    kept = [e for e in EPISODES if not e[3]]
    for ep, (start, stop, _task, _d) in enumerate(kept):
        rows = [i for i, e in enumerate(t["episode_index"]) if e == ep]
        got = np.array([t["intervention"][i] for i in rows])
        want = _expected(start, stop, SPANS[ep])
        assert len(got) == len(want) and np.array_equal(got, want), (ep, got, want)
    a = np.array([t["intervention"][i] for i, e in enumerate(t["episode_index"]) if e == 0])
    assert np.flatnonzero(a).tolist() == list(range(6, 15))  # [0.5, 0.8): frames 6..14
    assert [e.intervention_frames for e in report.converted] == [9, 10, 12, 0]
    assert "9 intervention frames" in str(report.converted[0])


def test_the_dataset_keeps_the_format_with_a_bool_feature(converted) -> None:
    root, report, _bag = converted
    info = json.loads((root / "meta/info.json").read_text())
    assert info["features"]["intervention"] == {"dtype": "bool", "shape": [1], "names": None}
    assert list(info["features"])[:3] == ["action", "observation.state", "intervention"]
    (path,) = sorted((root / "data").glob("*/*.parquet"))
    schema = pq.read_schema(path)
    assert str(schema.field("intervention").type) == "bool"
    hf = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    assert hf["intervention"] == {"dtype": "bool", "_type": "Value"}
    t = _table(root)
    n = info["total_frames"]
    assert t["index"] == list(range(n)) == list(range(sum(e.frames for e in report.converted)))
    for ep in range(info["total_episodes"]):
        rows = [i for i, e in enumerate(t["episode_index"]) if e == ep]
        k = np.arange(len(rows))
        assert [t["frame_index"][i] for i in rows] == k.tolist()
        ts = np.array([t["timestamp"][i] for i in rows], dtype=np.float32)
        assert np.array_equal(ts, (k / FPS).astype(np.float32))
    # Stats: exact, like every other feature; min/max stay bool (upstream's shape for a flag).
    flag = np.array(t["intervention"], dtype=np.float64)
    stats = json.loads((root / "meta/stats.json").read_text())["intervention"]
    assert (stats["min"], stats["max"], stats["count"]) == ([False], [True], [n])
    assert stats["mean"] == pytest.approx([flag.mean()]) and stats["std"] == pytest.approx(
        [flag.std()]
    )
    for q in ("q01", "q10", "q50", "q90", "q99"):
        assert stats[q] == pytest.approx([np.quantile(flag, int(q[1:]) / 100)]), q
    eps = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet")
    assert str(eps.schema.field("stats/intervention/min").type) == "list<element: bool>"
    assert str(eps.schema.field("stats/intervention/mean").type) == "list<element: double>"
    rows = eps.to_pylist()
    assert [r["stats/intervention/max"] for r in rows] == [[True], [True], [True], [False]]
    assert [r["stats/intervention/count"] for r in rows] == [[e.frames] for e in report.converted]
    # Our own training loader reads it (bool column, stats as numbers).
    from lerobot_ros.core.training.data import DatasetMeta

    meta = DatasetMeta.load(root)
    col = meta.read_columns(["intervention"])["intervention"]
    assert col.dtype == bool and col.shape == (n,) and np.array_equal(col, flag.astype(bool))


def test_auto_on_off(tmp_path: Path, converted) -> None:
    _root, _report, bag = converted
    plain = write_bag(tmp_path / "plain", [(0.2, 0.8, "no takeover", False)], [], end=1.0)
    # A takeover in a discarded episode only: auto leaves the feature out.
    junk = write_bag(
        tmp_path / "junk",
        [(0.2, 0.8, "kept", False), (1.0, 1.5, "junk", True)],
        [(1.1, ON), (1.2, OFF)],
        end=1.6,
    )
    quiet = lambda _m: None  # noqa: E731
    for bags, mode, want in (
        ([plain], "auto", False),
        ([junk], "auto", False),
        ([plain, bag], "auto", True),
        ([plain], "on", True),
        ([bag], "off", False),
    ):
        out = tmp_path / f"ds_{len(list(tmp_path.iterdir()))}"
        report = convert_bags(bags, out, "t/x", fps=FPS, log=quiet, intervention=mode)
        info = json.loads((out / "meta/info.json").read_text())
        assert ("intervention" in info["features"]) is want, (bags, mode)
        if want and bags[0] == plain:
            assert report.converted[0].intervention_frames == 0  # present, all false
    with pytest.raises(ValueError, match="intervention must be one of"):
        convert_bags([plain], tmp_path / "bad", "t/x", intervention="maybe", log=quiet)
    argv = [str(bag), "--output", str(tmp_path / "cli"), "--repo-id", "t/cli", "--no-progress"]
    assert cli.main([*argv, "--intervention", "off"]) == 0
    info = json.loads((tmp_path / "cli/meta/info.json").read_text())
    assert "intervention" not in info["features"]
    with pytest.raises(SystemExit):
        cli.main([*argv, "--intervention", "maybe"])


def test_intervals_state_machine() -> None:
    def ev(t: int, kind: int) -> Event:
        return Event(t, kind, 0, "", "", "", "/rollout/events")

    assert intervention_intervals([]) == []
    assert intervention_intervals([ev(5, ON), ev(3, ON), ev(9, OFF), ev(12, OFF)]) == [(3, 9)]
    lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    assert intervention_intervals([ev(4, OFF), ev(6, ON)]) == [(lo, 4), (6, hi)]
    other = Event(5, 6, 0, "", "", "", "/watchdog/events")  # SOURCE_SWITCH: not a mark
    mask = intervention_mask([ev(10, ON), other, ev(20, OFF)], np.arange(0, 30, 5))
    assert mask.tolist() == [False, False, True, True, False, False]
