"""Bags -> LeRobotDataset v3.0: split episodes, resample onto the frame grid, write.

Each episode converts or fails on its own (a gap beyond tolerance, a missing stream, ...): the
report says which and why, and the other episodes still convert.

`intervention` ("auto" | "on" | "off"): the per-frame bool feature `intervention` (see
intervention.py) marks the frames a human drove. "auto" adds it to every episode when any episode
to convert (complete, not discarded) has INTERVENTION_START/END events; finding that out takes
a quick first pass over the bags' EpisodeEvent messages only. "on" always adds it, "off" never.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lerobot_ros.core.dataset import intervention as iv
from lerobot_ros.core.dataset.bag import Episode, read_episodes
from lerobot_ros.core.dataset.profile import DatasetProfile, so101_profile
from lerobot_ros.core.dataset.resample import (
    Resampled,
    ResampleError,
    StreamReport,
    frame_grid,
    resample,
)
from lerobot_ros.core.dataset.writer import LeRobotDatasetWriter

ACTION_SOURCES = ("command", "leader")


@dataclass
class EpisodeReport:
    name: str
    task: str
    status: str  # converted | failed | incomplete | discarded
    message: str = ""
    frames: int = 0
    episode_index: int | None = None  # index in the dataset when converted
    streams: list[StreamReport] = field(default_factory=list)
    intervention_frames: int | None = None  # frames flagged `intervention` (None: no feature)

    def __str__(self) -> str:
        head = f"[{self.status}] {self.name}"
        if self.status == "converted":
            head += f" -> dataset episode {self.episode_index}, {self.frames} frames"
            if self.intervention_frames:
                head += f" ({self.intervention_frames} intervention frames)"
        lines = [head] + ([f"    {self.message}"] if self.message else [])
        lines += [f"    {s}" for s in self.streams]
        return "\n".join(lines)


@dataclass
class ConversionReport:
    output: Path
    episodes: list[EpisodeReport] = field(default_factory=list)

    @property
    def converted(self) -> list[EpisodeReport]:
        return [e for e in self.episodes if e.status == "converted"]


class EpisodeFailedError(Exception):
    pass


def _prepare(
    ep: Episode,
    profile: DatasetProfile,
    fps: int,
    action_topic: str,
    action_policy: str,
    max_gap_s: float,
    cameras: dict[str, str] | None,
) -> tuple[
    dict[str, np.ndarray],
    dict[str, list[np.ndarray]],
    list[StreamReport],
    dict[str, str],
    np.ndarray,
]:
    """Resample one episode. cameras: feature key -> topic (None: take the episode's).
    Returns (values, frames, stream reports, cameras used, the frame grid in ns)."""
    if cameras is None:
        cameras = {}
        for topic in sorted(ep.streams):
            name = profile.camera_name(topic)
            if name and ep.streams[topic].msgtype.endswith("/Image"):
                cameras[f"observation.images.{name}"] = topic
    wanted = {
        "observation.state": (profile.state_topic, "hold", True),
        "action": (action_topic, action_policy, False),
    }
    wanted.update({key: (topic, "hold", True) for key, topic in cameras.items()})
    data: dict[str, tuple[np.ndarray, list[Any]]] = {}
    for key, (topic, _p, _o) in wanted.items():
        if topic not in ep.streams or not ep.streams[topic].stamps:
            raise EpisodeFailedError(f"{ep.name}: no messages on {topic} (for {key})")
        data[key] = ep.streams[topic].sorted()
    assert ep.stop_ns is not None
    t0 = max([ep.start_ns] + [int(st[0]) for st, _ in data.values()])
    grid = frame_grid(t0, ep.stop_ns, fps)
    if grid.size == 0:
        raise EpisodeFailedError(f"{ep.name}: no frame between the first samples and EPISODE_STOP")
    reports: list[StreamReport] = []
    plans: dict[str, Resampled] = {}
    for key, (topic, policy, observation) in wanted.items():
        stamps, _ = data[key]
        try:
            plans[key] = resample(
                topic, stamps, grid, policy, observation=observation, max_gap_s=max_gap_s
            )
        except ResampleError as e:
            raise EpisodeFailedError(f"{ep.name}: stream {e}") from None
        reports.append(plans[key].report)
    values: dict[str, np.ndarray] = {}
    for key in ("action", "observation.state"):
        try:
            vec = np.stack([profile.joints_to_lerobot(s.names, s.position) for s in data[key][1]])
        except ValueError as e:
            raise EpisodeFailedError(f"{ep.name}: {wanted[key][0]}: {e}") from None
        values[key] = plans[key].apply(vec.astype(np.float64)).astype(np.float32)
    frames = {key: [data[key][1][i] for i in plans[key].i0] for key in cameras}
    return values, frames, reports, cameras, grid


def convert_bags(
    bags: Sequence[str | Path],
    output: str | Path,
    repo_id: str,
    *,
    fps: int = 30,
    action: str = "command",
    action_policy: str = "hold",
    vcodec: str = "libsvtav1",
    max_gap_s: float = 0.2,
    profile: DatasetProfile | None = None,
    event_topic: str | None = "/recorder/events",
    log: Callable[[str], None] = print,
    progress: bool = False,
    intervention: str = "auto",
    **writer_options: Any,
) -> ConversionReport:
    """Convert bags into a LeRobotDataset v3.0 at `output`. When no episode converts, nothing
    is left at `output` and the report's `converted` is empty. `progress` shows a bar (episodes
    read, frames written) on stderr; log lines are printed above it. `intervention`: auto | on
    | off, whether episodes get the per-frame `intervention` flag (module docstring)."""
    if action not in ACTION_SOURCES:
        raise ValueError(f"action must be one of {ACTION_SOURCES}, got {action!r}")
    if intervention not in iv.MODES:
        raise ValueError(f"intervention must be one of {iv.MODES}, got {intervention!r}")
    if intervention == "auto":
        flag = any(
            ep.status == "complete" and iv.has_interventions(ep.events)
            for ep in read_episodes(bags, event_topic=event_topic, events_only=True)
        )
        log(
            f"intervention flag: {'on' if flag else 'off'} (auto: {'some' if flag else 'no'} "
            "episode has intervention events)"
        )
    else:
        flag = intervention == "on"
    profile = profile or so101_profile()
    action_topic = profile.command_topic if action == "command" else profile.leader_topic
    report = ConversionReport(Path(output))
    writer: LeRobotDatasetWriter | None = None
    cameras: dict[str, str] | None = None
    names = profile.feature_names
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(desc="converting", unit="episode", dynamic_ncols=True)
        log = _above_bar(bar, log)
    for ep in read_episodes(bags, event_topic=event_topic, log=log):
        if ep.status != "complete":
            rep = EpisodeReport(ep.name, ep.task, ep.status, ep.message)
        else:
            try:
                values, frames, streams, used, grid = _prepare(
                    ep, profile, fps, action_topic, action_policy, max_gap_s, cameras
                )
                if flag:
                    values[iv.FEATURE] = iv.intervention_mask(ep.events, grid)
                if writer is None:
                    cameras = used
                    features: dict[str, dict] = {
                        "action": {"dtype": "float32", "shape": [len(names)], "names": names},
                        "observation.state": {
                            "dtype": "float32",
                            "shape": [len(names)],
                            "names": names,
                        },
                    }
                    if flag:
                        features[iv.FEATURE] = dict(iv.SPEC)
                    for key, fr in frames.items():
                        features[key] = {
                            "dtype": "video",
                            "shape": list(fr[0].shape),
                            "names": ["height", "width", "channels"],
                        }
                    writer = LeRobotDatasetWriter(
                        output,
                        repo_id,
                        fps,
                        features,
                        robot_type=profile.robot_type,
                        vcodec=vcodec,
                        **writer_options,
                    )
                for key, fr in frames.items():
                    if list(fr[0].shape) != writer.features[key]["shape"]:
                        raise EpisodeFailedError(
                            f"{ep.name}: {used[key]} frames are "
                            f"{fr[0].shape}, the dataset's are {writer.features[key]['shape']}"
                        )
                index = writer.add_episode(ep.task, values, frames)
                n = len(values["action"])
                rep = EpisodeReport(ep.name, ep.task, "converted", "", n, index, streams)
                if flag:
                    rep.intervention_frames = int(values[iv.FEATURE].sum())
            except EpisodeFailedError as e:
                rep = EpisodeReport(ep.name, ep.task, "failed", str(e))
        report.episodes.append(rep)
        log(f"episode {len(report.episodes)}: {rep}")
        if bar is not None:
            bar.update(1)
            bar.set_postfix(frames=sum(e.frames for e in report.converted))
        del ep
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.finalize()
    return report


def _above_bar(bar: Any, log: Callable[[str], None]) -> Callable[[str], None]:
    """Print log lines above the progress bar instead of through it."""

    def write(message: str) -> None:
        bar.clear()
        log(message)
        bar.refresh()

    return write
