"""Record the simulated teleop graph through ROS, convert the bags, check the dataset — and the
same after a recorder killed mid-episode."""

from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.ros

from lerobot_msgs.msg import WatchdogState  # noqa: E402
from lerobot_msgs.srv import DiscardEpisode, StartEpisode, StopEpisode  # noqa: E402
from lerobot_ros.core.dataset.convert import convert_bags  # noqa: E402
from lerobot_ros.core.graph import RecordGraphArgs, record_graph  # noqa: E402
from lerobot_ros.nodes import qos  # noqa: E402
from lerobot_ros.testing.graph import FOLLOWER, LEADER, WATCHDOG, GraphHarness, spec  # noqa: E402
from lerobot_ros.testing.ros import spawn_node  # noqa: E402

FPS = 30
TASKS = ["pick the red cube", "push the cube left"]


def test_recorded_sim_episodes_convert_to_a_lerobot_dataset(domain_id: int, tmp_path: Path) -> None:
    bags = tmp_path / "bags"
    with GraphHarness(record_graph(RecordGraphArgs(output_dir=str(bags))), domain_id) as h:
        rec = h.nodes["recorder"]
        h.wait(lambda: not rec.pending, 20.0, "the recorder to find its topics")
        h.wait(lambda: rec.writer.stats()["/cameras/front/image_raw"].idle > 3, 20.0, "images")
        paths = []
        for i, task in enumerate([TASKS[0], "redo", TASKS[1]]):
            assert h.call(
                StartEpisode, "/recorder/start_episode", StartEpisode.Request(task=task)
            ).success
            time.sleep(2.5)
            if task == "redo":
                assert h.call(
                    DiscardEpisode, "/recorder/discard_episode", DiscardEpisode.Request()
                ).success
            else:
                res = h.call(StopEpisode, "/recorder/stop_episode", StopEpisode.Request())
                assert res.success, res.message
            paths.append(i)
        assert rec.writer.flush(10.0)
    episodes = sorted(p for p in bags.glob("*/episode_*"))
    assert len(episodes) == 3

    out = tmp_path / "dataset"
    report = convert_bags(episodes, out, "local/sim_teleop", fps=FPS, log=lambda _m: None)
    assert [e.status for e in report.episodes] == ["converted", "discarded", "converted"], [
        str(e) for e in report.episodes
    ]

    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == FPS
    assert info["total_episodes"] == 2 and info["total_tasks"] == 2
    assert info["features"]["observation.state"]["names"][0] == "shoulder_pan.pos"
    data = pq.read_table(sorted((out / "data").glob("*/*.parquet"))[0]).to_pydict()
    frames = [e.frames for e in report.converted]
    assert all(n >= 2.0 * FPS for n in frames), frames  # ~2.5 s each
    assert info["total_frames"] == sum(frames) == len(data["index"])
    assert data["index"] == list(range(sum(frames)))
    ep = np.array(data["episode_index"])
    ts = np.array(data["timestamp"], dtype=np.float32)
    for e in (0, 1):
        k = np.arange((ep == e).sum())
        assert np.array_equal(ts[ep == e], (k / FPS).astype(np.float32))  # exactly k/fps

    # Degrees / 0-100 at the dataset boundary: the arm moved (the scripted leader), values sane.
    state = np.array(data["observation.state"])
    assert np.abs(state[:, :5]).max() < 180 and state[:, :5].std(axis=0).max() > 1.0
    # Stats agree with numpy on the raw data.
    stats = json.loads((out / "meta/stats.json").read_text())
    assert np.allclose(stats["observation.state"]["mean"], state.mean(axis=0), atol=1e-4)
    assert np.allclose(stats["observation.state"]["max"], state.max(axis=0), atol=1e-5)
    img = stats["observation.images.front"]
    assert np.array(img["mean"]).shape == (3, 1, 1) and np.array(img["std"]).min() > 0

    # Every video frame decodes; one frame per dataset frame, pts at k/fps.
    video = sorted((out / "videos/observation.images.front").glob("*/*.mp4"))[0]
    with av.open(str(video)) as container:
        decoded = [f for f in container.decode(video=0)]
    assert len(decoded) == sum(frames)
    assert decoded[0].to_ndarray(format="rgb24").shape == (480, 640, 3)
    pts = np.array([float(f.time) for f in decoded])
    assert np.allclose(pts, np.arange(len(decoded)) / FPS, atol=1e-6)

    # Task text comes back as text, the way upstream reads it (pandas index).
    import pandas as pd

    tasks = pd.read_parquet(out / "meta/tasks.parquet")
    assert sorted(tasks.index) == sorted(TASKS)
    assert tasks.iloc[int(data["task_index"][0])].name == TASKS[0]


def test_after_a_sigkill_every_complete_episode_still_converts(
    domain_id: int, tmp_path: Path
) -> None:
    bags = tmp_path / "bags"
    specs = [spec("follower", FOLLOWER), spec("leader", LEADER), spec("watchdog", WATCHDOG)]
    with GraphHarness(specs, domain_id) as h:
        teleop = spawn_node("lerobot_ros.nodes.teleop", domain_id=domain_id)
        proc = spawn_node(
            "lerobot_ros.nodes.recorder",
            [
                "-p",
                f"output_dir:={bags}",
                "-p",
                "topics:=[/follower/joint_states,/leader/joint_states,/follower/command,"
                "/recorder/events]",
            ],
            domain_id=domain_id,
        )
        try:
            # The teleop process drives the follower before the first episode starts: else a
            # slow start leaves that episode without /follower/command (seen once under load).
            state = h.inbox(WatchdogState, "/watchdog/state", qos.LATCHED)
            h.wait(
                lambda: state.last() is not None and state.last().forwarded > 50,
                30.0,
                "commands forwarded from the teleop process",
            )
            req = StartEpisode.Request(task="first")
            deadline = time.time() + 20
            while time.time() < deadline:  # until the recorder process is up and sees topics
                time.sleep(1.0)
                if h.call(StartEpisode, "/recorder/start_episode", req, timeout=10).success:
                    break
            time.sleep(2.0)
            assert h.call(StopEpisode, "/recorder/stop_episode", StopEpisode.Request()).success
            assert h.call(
                StartEpisode, "/recorder/start_episode", StartEpisode.Request(task="second")
            ).success
            time.sleep(1.0)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=5)
        finally:
            for p in (proc, teleop):
                if p.poll() is None:
                    p.kill()
                p.communicate(timeout=5)
    episodes = sorted(bags.glob("*/episode_*"))
    assert len(episodes) == 2
    report = convert_bags(episodes, tmp_path / "ds", "local/killed", fps=FPS, log=lambda _m: None)
    status = {e.task: e.status for e in report.episodes}
    assert status.get("first") == "converted", [str(e) for e in report.episodes]
    assert status.get("second", "incomplete") == "incomplete"
    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    assert info["total_episodes"] == 1 and info["total_frames"] >= math.floor(1.5 * FPS)
