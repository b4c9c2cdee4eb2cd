"""A small LeRobotDataset recorded from the simulated SO-101 teleop graph through real ROS, for
tests that need converter-made data (training, the policy runner)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from lerobot_ros.core.dataset.convert import convert_bags
from lerobot_ros.core.graph import RecordGraphArgs, record_graph

SIM_TASKS = ("pick the red cube", "push the cube left")
REPO_ID = "local/sim_teleop"


def record_sim_dataset(
    root: Path,
    domain_id: int,
    *,
    episodes: int = 3,
    seconds: float = 3.0,
    fps: int = 30,
    camera_width: int = 128,
    camera_height: int = 96,
    vcodec: str = "libsvtav1",
) -> Path:
    """Record `episodes` episodes of `seconds` each (tasks alternate over SIM_TASKS) with the
    scripted leader driving the simulated follower, convert the bags into `root/dataset` and
    return that dataset root. The camera renders at camera_width x camera_height (small
    images keep training tests fast)."""
    from lerobot_msgs.srv import StartEpisode, StopEpisode
    from lerobot_ros.testing.graph import GraphHarness

    root = Path(root)
    bags = root / "bags"
    camera = {"width": camera_width, "height": camera_height, "fps": float(fps)}
    specs = [
        dataclasses.replace(s, parameters={**s.parameters, **camera})
        if s.executable == "camera"
        else s
        for s in record_graph(RecordGraphArgs(output_dir=str(bags)))
    ]
    with GraphHarness(specs, domain_id) as h:
        rec = h.nodes["recorder"]
        h.wait(lambda: not rec.pending, 20.0, "the recorder to find its topics")
        image = "/cameras/front/image_raw"
        h.wait(lambda: rec.writer.stats()[image].idle > 3, 20.0, "camera images")
        for i in range(episodes):
            req = StartEpisode.Request(task=SIM_TASKS[i % len(SIM_TASKS)])
            res = h.call(StartEpisode, "/recorder/start_episode", req)
            if not res.success:
                raise RuntimeError(f"start_episode {i} failed: {res.message}")
            time.sleep(seconds)
            res = h.call(StopEpisode, "/recorder/stop_episode", StopEpisode.Request())
            if not res.success:
                raise RuntimeError(f"stop_episode {i} failed: {res.message}")
        if not rec.writer.flush(10.0):
            raise RuntimeError("the recorder did not flush its bags within 10 s")
    paths = sorted(bags.glob("*/episode_*"))
    out = root / "dataset"
    report = convert_bags(paths, out, REPO_ID, fps=fps, vcodec=vcodec, log=lambda _m: None)
    if len(report.converted) != episodes:
        raise RuntimeError(
            f"{len(report.converted)} of {episodes} episodes converted: "
            + "; ".join(str(e) for e in report.episodes)
        )
    return out
