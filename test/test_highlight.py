"""The highlight ring buffer and /recorder/save_highlight.

- HighlightRing (ROS-free): both bounds drop the oldest first and are counted; the window and
  the late rule of `select`; refusals name the problem.
- EpisodeBagWriter.start_highlight (ROS-free): the bag has an ordinary episode's layout
  (EPISODE_START first, HIGHLIGHT_SAVED + EPISODE_STOP last) and converts; continue_recording
  goes on live until stop_episode.
- The recorder node over real DDS with a probe publishing joint states, commands and rollout
  intervention events: save_highlight(seconds=1.0) after ~3 s returns ~1 s and converts to ~30
  frames at 30 fps (with the intervention flag where the probe intervened); continue_recording
  extends an episode; refusals (another episode open, bad seconds, empty task).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from lerobot_ros.core.dataset.convert import convert_bags
from lerobot_ros.core.recording import (
    EpisodeBagWriter,
    HighlightError,
    HighlightRing,
    episode_status,
    read_episode,
)
from lerobot_ros.core.robots import SO_ARM_JOINTS

EVENTS = "/recorder/events"
START, STOP, DISCARD, HIGHLIGHT = 0, 1, 2, 3
INTERVENTION_START, INTERVENTION_END = 4, 5
STATE, COMMAND = "/follower/joint_states", "/follower/command"
FPS = 30
NS = 1_000_000_000


# --- the ring, ROS-free -----------------------------------------------------------------------


def test_ring_bounds_drop_the_oldest_first_and_count_it() -> None:
    ring = HighlightRing(max_seconds=1.0, max_bytes=20_000)
    for i in range(300):  # 3 s at 100 Hz, 100 bytes each: the seconds bound applies
        ring.add("/a", bytes([i % 256]) * 100, i * 10_000_000)
    n, size, span = ring.state()
    assert (n, size, span) == (101, 10_100, 1.0)  # [1.99 s, 2.99 s], both ends held
    assert (ring.aged, ring.evicted, ring.added) == (199, 0, 300)
    sel = ring.select(2_990_000_000, 0)
    assert sel.entries[0].t_ns == 1_990_000_000 and sel.entries[0].data[0] == 199
    ring.age(10 * NS)  # nothing came for a while: everything is too old
    assert ring.state()[0] == 0
    with pytest.raises(HighlightError, match="empty"):
        ring.select(10 * NS, 1.0)

    small = HighlightRing(max_seconds=10.0, max_bytes=1_000)  # the byte bound applies
    for i in range(50):
        small.add("/a", bytes([i]) * 100, i * 10_000_000)
    assert small.state()[:2] == (10, 1_000)
    assert [e.data[0] for e in small.select(490_000_000, 0).entries] == list(range(40, 50))
    assert (small.aged, small.evicted) == (0, 40)
    small.add("/a", b"x" * 1_001, 500_000_000)  # larger than the whole ring: never held
    assert small.too_big == 1 and small.state()[0] == 10
    with pytest.raises(ValueError, match="max_seconds"):
        HighlightRing(0.0, 10)


def test_ring_select_window_late_rule_and_refusals() -> None:
    ring = HighlightRing(max_seconds=5.0, max_bytes=1 << 20)
    for i in range(100):  # 1 s at 100 Hz; a stamped topic lags 25 ms, an unstamped one not
        t = 10 * NS + i * 10_000_000
        ring.add("/stamped", b"s", t, stamp_ns=t - 25_000_000)
        ring.add("/plain", b"p", t)
    now = 11 * NS
    sel = ring.select(now, 0.5)
    assert sel.start_ns == now - NS // 2
    assert all(e.t_ns >= sel.start_ns for e in sel.entries)
    # received in the window but captured before it: left out, as in a live episode
    assert sel.skipped_late == 3
    assert sum(e.topic == "/plain" for e in sel.entries) == 50
    assert sum(e.topic == "/stamped" for e in sel.entries) == 47
    assert [e.t_ns for e in sel.entries] == sorted(e.t_ns for e in sel.entries)
    assert ring.select(now, 100.0).start_ns == 10 * NS  # clamped to what the ring holds
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(HighlightError, match=r"seconds = .*must be a finite number >= 0"):
            ring.select(now, bad)
    with pytest.raises(HighlightError, match=r"no message in the last 0\.001 s"):
        ring.select(now + NS, 0.001)


# --- highlight bags, ROS-free -----------------------------------------------------------------


def _joint_state(w: EpisodeBagWriter, stamp_ns: int, offset: float = 0.0) -> bytes:
    ts = w.types.typestore
    header = ts.types["std_msgs/msg/Header"](
        stamp=ts.types["builtin_interfaces/msg/Time"](sec=stamp_ns // NS, nanosec=stamp_ns % NS),
        frame_id="",
    )
    empty = np.array([], float)
    return w.types.serialize(
        "sensor_msgs/msg/JointState",
        header=header,
        name=list(SO_ARM_JOINTS),
        position=np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.2]) + offset,
        velocity=empty,
        effort=empty,
    )


def _feed(w: EpisodeBagWriter, ring: HighlightRing, t0: int, seconds: float) -> int:
    """State and command at 100 Hz into the ring (and the writer, as the recorder does)."""
    n = round(seconds * 100)
    for i in range(n):
        t = t0 + i * 10_000_000
        for topic in (STATE, COMMAND):
            data = _joint_state(w, t - 2_000_000)  # captured 2 ms before it is received
            ring.add(topic, data, t, w.header_stamp(topic, data))
            w.write(topic, data, t)
    return t0 + n * 10_000_000


def _writer(tmp_path: Path) -> EpisodeBagWriter:
    w = EpisodeBagWriter(tmp_path / "bags", session="s", fsync=False)
    for topic in (STATE, COMMAND):
        w.add_topic(topic, "sensor_msgs/msg/JointState")
    return w


def test_highlight_bag_is_an_ordinary_episode_and_converts(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    ring = HighlightRing(5.0, 1 << 24)
    t0 = 1_700_000_000 * NS
    now = _feed(w, ring, t0, 3.0)
    sel = ring.select(now, 1.0)
    entries = [(e.topic, e.t_ns, e.data) for e in sel.entries]
    ep = w.start_highlight("pick", sel.start_ns, entries, stop_ns=now, highlight_detail="1 s")
    assert w.current is None and ep.stop_ns == now and ep.start_ns == now - NS
    assert ep.message_count == len(entries) + 3  # START, HIGHLIGHT_SAVED, STOP
    assert w.write(STATE, _joint_state(w, now), now) == "idle"  # closed: nothing live goes in
    # continue_recording: the ring's last 0.5 s, then live until stop_episode
    sel2 = ring.select(now, 0.5)
    ep2 = w.start_highlight(
        "place", sel2.start_ns, [(e.topic, e.t_ns, e.data) for e in sel2.entries]
    )
    assert w.current is ep2
    end = _feed(w, ring, now, 1.0)
    assert w.stop_episode(end, source="test") is ep2
    assert w.close()
    stats = w.stats()
    assert stats[STATE].dropped == 0 and stats[STATE].failed == 0
    assert stats[STATE].received == stats[STATE].written + stats[STATE].late

    assert [episode_status(e.path) for e in (ep, ep2)] == ["saved", "saved"]
    msgs = read_episode(ep.path)
    kinds = [(m[0], getattr(m[3], "type", None)) for m in msgs]
    assert kinds[0] == (EVENTS, START) and msgs[0][3].task == "pick"
    assert kinds[-2:] == [(EVENTS, HIGHLIGHT), (EVENTS, STOP)]
    assert msgs[-2][3].detail == "1 s"
    data = [m for m in msgs if m[0] != EVENTS]
    # 1 s of two 100 Hz topics, less the two received at the window's start but captured 2 ms
    # before it (left out, like a `late` message of a live episode)
    assert len(data) == len(entries) == 198 and sel.skipped_late == 2
    assert [m[2] for m in data] == [e[1] for e in entries]  # at their receive times, in order
    msgs2 = read_episode(ep2.path)
    assert [m[3].type for m in msgs2 if m[0] == EVENTS] == [START, HIGHLIGHT, STOP]
    assert sum(m[0] == STATE for m in msgs2) == 149  # 0.5 s from the ring (less 1) + 1 s live

    report = convert_bags([ep.path, ep2.path], tmp_path / "ds", "t/h", fps=FPS, log=lambda _: 0)
    assert [e.status for e in report.episodes] == ["converted", "converted"], [
        str(e) for e in report.episodes
    ]
    # 1.0 s and 1.5 s, from the first sample (8 ms after the window's start) to EPISODE_STOP
    assert [e.frames for e in report.converted] == [30, 45]
    assert json.loads((tmp_path / "ds/meta/info.json").read_text())["total_frames"] == 75


def test_highlight_refusals_of_the_writer(tmp_path: Path) -> None:
    w = _writer(tmp_path)
    with pytest.raises(ValueError, match="at least one message"):
        w.start_highlight("t", 0, [])
    with pytest.raises(KeyError, match="/nope"):
        w.start_highlight("t", 0, [("/nope", 1, b"x")])
    w.start_episode("t", 10)
    with pytest.raises(RuntimeError, match="episode 0 is still recording"):
        w.start_highlight("t", 0, [(STATE, 1, _joint_state(w, 1))])
    w.stop_episode(20, discard=True)
    assert w.close()


# --- the recorder node over real DDS ----------------------------------------------------------


def _stamp(msg: Any) -> int:
    return msg.header.stamp.sec * NS + msg.header.stamp.nanosec


def _flags_expected(msgs: list[Any], n: int, on_ns: int, off_ns: int) -> np.ndarray:
    """The converter's frame times for a one-episode bag, computed from the bag: t_k = t0 +
    k / fps, t0 the later of EPISODE_START and the first state / command sample; flagged in
    [on, off)."""
    t0 = max(
        _stamp(msgs[0][3]),
        *(min(_stamp(m[3]) for m in msgs if m[0] == topic) for topic in (STATE, COMMAND)),
    )
    grid = t0 + (np.arange(n) * NS + FPS // 2) // FPS
    return (grid >= on_ns) & (grid < off_ns)


@pytest.mark.ros
def test_save_highlight_over_dds(domain_id: int, tmp_path: Path) -> None:
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.time import Time
    from sensor_msgs.msg import JointState

    from lerobot_msgs.msg import EpisodeEvent
    from lerobot_msgs.srv import SaveHighlight, StartEpisode, StopEpisode
    from lerobot_ros.nodes import qos
    from lerobot_ros.testing.graph import GraphHarness, spec

    specs = [
        spec(
            "recorder",
            "lerobot_ros.nodes.recorder:RecorderNode",
            output_dir=str(tmp_path / "bags"),
            topics=[STATE, COMMAND, "/rollout/events", EVENTS],
            ring_seconds=2.0,
        )
    ]
    spans: list[tuple[int, int]] = []  # (on, off) of the interventions, one per episode
    with GraphHarness(specs, domain_id) as h:
        rec = h.nodes["recorder"]
        assert h.probe is not None
        pubs = {t: h.publisher(JointState, t, qos.SENSOR) for t in (STATE, COMMAND)}
        rollout = h.publisher(EpisodeEvent, "/rollout/events", qos.EVENTS)
        clock = h.probe.get_clock()

        def tick() -> None:
            msg = JointState(name=list(SO_ARM_JOINTS), position=[0.1, 0.2, 0.3, 0.4, 0.5, 0.2])
            msg.header.stamp = clock.now().to_msg()
            for pub in pubs.values():
                pub.publish(msg)

        def intervention(kind: int) -> int:
            ev = EpisodeEvent(type=kind, source="test")
            now = clock.now()
            ev.header.stamp = now.to_msg()
            rollout.publish(ev)
            return now.nanoseconds

        diags = h.inbox(DiagnosticArray, "/diagnostics")

        def ring_diag(arrays: list[Any]) -> dict[str, str] | None:
            for arr in reversed(arrays):
                for status in arr.status:
                    values = {kv.key: kv.value for kv in status.values}
                    if status.name == "recorder: recorder" and int(values.get("ring.aged", 0)) > 0:
                        return values
            return None

        h.probe.create_timer(0.01, tick)
        h.wait(lambda: not rec.pending and not rec.optional, 10.0, "the recorder to subscribe")
        refused = h.call(SaveHighlight, "/recorder/save_highlight", SaveHighlight.Request())
        assert not refused.success and "task is empty" in refused.message

        # Episode 0, a highlight: an intervention inside its 1 s window.
        time.sleep(2.4)
        on = intervention(INTERVENTION_START)
        time.sleep(0.3)
        spans.append((on, intervention(INTERVENTION_END)))
        time.sleep(0.3)  # ~3 s of traffic; the ring (2 s) dropped the oldest
        req = SaveHighlight.Request(seconds=1.0, task="highlight one")
        t_call = clock.now().nanoseconds
        res = h.call(SaveHighlight, "/recorder/save_highlight", req)
        assert res.success, res.message
        assert 0.95 < res.duration_s < 1.1, res
        start, end = Time.from_msg(res.start).nanoseconds, Time.from_msg(res.end).nanoseconds
        assert t_call - 1.1 * NS < start < end <= clock.now().nanoseconds
        assert 0.9 < (end - start) / 1e9 <= 1.0
        assert res.message_count > 100 and res.path.endswith("episode_000000")
        bad = h.call(
            SaveHighlight, "/recorder/save_highlight", SaveHighlight.Request(seconds=-1.0, task="t")
        )
        assert not bad.success and "seconds = -1.0" in bad.message

        # Episode 1, a live one, begins during an intervention (carried into its bag).
        on = intervention(INTERVENTION_START)
        time.sleep(0.2)
        start_req = StartEpisode.Request(task="live")
        assert h.call(StartEpisode, "/recorder/start_episode", start_req).success
        busy = h.call(SaveHighlight, "/recorder/save_highlight", req)  # another episode open
        assert not busy.success and "episode 1 is recording" in busy.message
        time.sleep(0.3)
        spans.append((on, intervention(INTERVENTION_END)))
        time.sleep(0.3)
        live = h.call(StopEpisode, "/recorder/stop_episode", StopEpisode.Request())
        assert live.success, live.message

        # Episode 2, continue_recording: 0.5 s from the ring, then live until the next call
        # closes it; the intervention began before its window.
        on = intervention(INTERVENTION_START)
        time.sleep(0.7)
        req2 = SaveHighlight.Request(seconds=0.5, continue_recording=True, task="highlight two")
        res2 = h.call(SaveHighlight, "/recorder/save_highlight", req2)
        assert res2.success and res2.episode_index == 2, res2.message
        assert rec.writer.current is not None and rec.writer.current.highlight
        time.sleep(0.5)
        spans.append((on, intervention(INTERVENTION_END)))
        time.sleep(0.5)
        closed = h.call(SaveHighlight, "/recorder/save_highlight", SaveHighlight.Request())
        assert closed.success and closed.episode_index == 2, closed.message
        assert "closed" in closed.message and rec.writer.current is None
        assert 1.4 < closed.duration_s < 2.5, closed
        assert closed.message_count > res2.message_count + 100
        assert rec.writer.flush(10.0)
        stats = rec.writer.stats()
        _n, _size, span = rec.ring.state()
        assert span <= 2.0 and rec.ring.aged > 0
        h.wait(lambda: ring_diag(diags.messages()) is not None, 5.0, "ring diagnostics")
        diag = ring_diag(diags.messages())
        assert float(diag["ring_s"]) <= 2.0 and int(diag["ring.aged"]) > 0, diag
        assert int(diag["ring_messages"]) > 300 and diag["ring.evicted"] == "0", diag

        # A highlight still recording when the recorder shuts down is saved, not discarded.
        req3 = SaveHighlight.Request(seconds=0.3, continue_recording=True, task="left open")
        left_open = h.call(SaveHighlight, "/recorder/save_highlight", req3)
        assert left_open.success, left_open.message
        time.sleep(0.3)
    for topic in (STATE, COMMAND):
        assert stats[topic].dropped == 0 and stats[topic].failed == 0

    paths = [Path(res.path), Path(live.path), Path(closed.path)]
    assert [episode_status(p) for p in paths] == ["saved"] * 3
    assert episode_status(left_open.path) == "saved"
    assert [m[3].type for m in read_episode(left_open.path)[-2:]] == [HIGHLIGHT, STOP]
    bags = [read_episode(p) for p in paths]
    msgs = bags[0]
    assert (msgs[0][0], msgs[0][3].type, msgs[0][3].task) == (EVENTS, START, "highlight one")
    assert [m[3].type for m in msgs[-2:]] == [HIGHLIGHT, STOP]
    assert len(msgs) == res.message_count
    for carried in bags[1:]:  # the intervention START comes right after EPISODE_START
        assert carried[1][0] == "/rollout/events" and carried[1][3].type == INTERVENTION_START
        assert _stamp(carried[1][3]) < _stamp(carried[0][3])  # stamped before the episode

    # (a wider gap tolerance: the probe's 100 Hz timer stalls when the machine is busy)
    report = convert_bags(
        paths, tmp_path / "ds", "t/hl", fps=FPS, max_gap_s=0.5, log=lambda _m: None
    )
    assert [e.status for e in report.episodes] == ["converted"] * 3, [
        str(e) for e in report.episodes
    ]
    frames = [e.frames for e in report.converted]
    assert 27 <= frames[0] <= 31 and 40 <= frames[2] <= 60, frames
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    assert info["features"]["intervention"] == {"dtype": "bool", "shape": [1], "names": None}
    table = pq.read_table(sorted((tmp_path / "ds/data").glob("*/*.parquet"))[0]).to_pydict()
    for ep, (bag, (on, off)) in enumerate(zip(bags, spans, strict=True)):
        rows = [i for i, e in enumerate(table["episode_index"]) if e == ep]
        flags = np.array([table["intervention"][i] for i in rows])
        assert np.array_equal(flags, _flags_expected(bag, len(rows), on, off)), ep
        assert flags.any() and not flags.all(), ep
    assert table["intervention"][0] is False  # episode 0: it began after the window's start
    assert all(table["intervention"][i] for i in (frames[0], frames[0] + frames[1]))  # 1, 2
