"""The rollout graph (core/graph.py rollout_graph) in simulation, one test per strategy, with the
scripted policy (POLICIES 'scripted': smooth motion from the observed state, no torch):

- base: the policy drives through the watchdog; nothing is recorded; interventions and
  highlights are refused with the reason; the e-stop stops it until reset + /rollout/resume.
- sentry: episodes rotated every `episode_s` (N episodes of ~that length), control never paused.
- highlight: /rollout/save_highlight returns the last N seconds from the recorder's ring.
- dagger: takeover (leader driven to the follower, then released) and release produce no
  commanded step near the watchdog's max_step and no step clip; INTERVENTION_START / END carry
  the watchdog's switch times, and the converted dataset flags exactly the frames in between;
  an e-stop while correcting ends the intervention and hands the watchdog back to the policy;
  leader motion beyond `takeover_motion` takes over by itself.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.ros

from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from lerobot_msgs.msg import EpisodeEvent  # noqa: E402
from lerobot_msgs.srv import (  # noqa: E402
    ResetEstop,
    SaveHighlight,
    SetIntervention,
    TriggerEstop,
)
from lerobot_ros.core.dataset.bag import read_episodes  # noqa: E402
from lerobot_ros.core.dataset.convert import convert_bags  # noqa: E402
from lerobot_ros.core.graph import NodeSpec, RolloutGraphArgs, rollout_graph  # noqa: E402
from lerobot_ros.core.policies.scripted import save_scripted_policy  # noqa: E402
from lerobot_ros.nodes import qos  # noqa: E402
from lerobot_ros.nodes.convert import from_time  # noqa: E402
from lerobot_ros.testing.graph import GraphHarness  # noqa: E402

WIDTH, HEIGHT = 64, 48  # small renders: the sim camera stays cheap on 2 cores
FPS = 30
MAX_STEP = 0.35  # the watchdog's max_step in config/so101.yaml


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_scripted_policy(tmp_path_factory.mktemp("scripted"))


def graph(
    policy: Path, strategy: str, bags: Path | None = None, **overrides: dict[str, Any]
) -> list[NodeSpec]:
    """rollout_graph with small camera images; `overrides` maps a node name to parameters."""
    args = RolloutGraphArgs(
        policy=str(policy), strategy=strategy, output_dir=str(bags or ""), highlight_s=10.0
    )
    out = []
    for s in rollout_graph(args):
        extra = dict(overrides.get(s.name, {}))
        if s.executable == "camera":
            extra.update(width=WIDTH, height=HEIGHT)
        out.append(dataclasses.replace(s, parameters={**s.parameters, **extra}))
    return out


def intervene(h: GraphHarness, active: bool, source: str = "test") -> SetIntervention.Response:
    req = SetIntervention.Request(active=active, source=source)
    return h.call(SetIntervention, "/rollout/set_intervention", req)


def wait_state(h: GraphHarness, states: Any, state: str, timeout: float = 20.0) -> None:
    h.wait(
        lambda: states.last() is not None and states.last().data == state,
        timeout,
        f"rollout state '{state}' (now {getattr(states.last(), 'data', None)})",
    )


def estop(h: GraphHarness, states: Any) -> None:
    assert h.call(TriggerEstop, "/watchdog/trigger_estop", TriggerEstop.Request(reason="test"))
    wait_state(h, states, "stopped", 5.0)


def reset_and_resume(h: GraphHarness, states: Any, resumed: str) -> None:
    refused = h.call(Trigger, "/rollout/resume", Trigger.Request())
    assert not refused.success and "still latched" in refused.message
    assert h.call(ResetEstop, "/watchdog/reset_estop", ResetEstop.Request(reason="test")).success
    h.wait(lambda: not h.nodes["rollout"].core.estop_active, 5.0, "the reset to reach /rollout")
    assert states.last().data == "stopped"  # a reset alone restarts nothing
    res = h.call(Trigger, "/rollout/resume", Trigger.Request())
    assert res.success, res.message
    wait_state(h, states, resumed, 5.0)


def moving(commands: Any, seconds: float) -> bool:
    """The follower's commands changed over the last `seconds` (the policy drives it)."""
    recent = [m.position for t, m in commands.items() if t > time.time() - seconds]
    return len(recent) > 3 and float(np.ptp(np.array(recent), axis=0).max()) > 1e-3


def test_base_drives_records_nothing_and_stops_on_the_estop(policy: Path, domain_id: int) -> None:
    specs = graph(policy, "base")
    assert "recorder" not in {s.name for s in specs}
    with GraphHarness(specs, domain_id) as h:
        commands = h.inbox(JointState, "/follower/command", qos.COMMAND)
        states = h.inbox(String, "/rollout/state", qos.LATCHED)
        wait_state(h, states, "running")
        h.wait(lambda: moving(commands, 1.0), 30.0, "the policy to move the follower")
        assert h.nodes["watchdog"].core.status().active_source == "chunk_player"

        res = intervene(h, True, "keyboard")
        assert not res.success and res.state == "running" and "strategy:=dagger" in res.message
        hl = h.call(SaveHighlight, "/rollout/save_highlight", SaveHighlight.Request(seconds=1.0))
        assert not hl.success and "strategy:=highlight" in hl.message

        estop(h, states)
        h.wait(lambda: not h.nodes["chunk_player"]._enabled, 5.0, "the chunk player to pause")
        time.sleep(0.5)
        held = [m.position for t, m in commands.items() if t > time.time() - 0.4]
        assert held and np.ptp(np.array(held), axis=0).max() < 1e-9  # the watchdog's hold only
        reset_and_resume(h, states, "running")
        h.wait(lambda: moving(commands, 0.5), 10.0, "the policy to drive again")


def test_sentry_rotates_episodes_without_pausing_control(
    policy: Path, domain_id: int, tmp_path: Path
) -> None:
    episode_s = 1.5
    specs = graph(policy, "sentry", tmp_path, rollout={"episode_s": episode_s})
    with GraphHarness(specs, domain_id) as h:
        rec = h.nodes["recorder"]
        played = h.inbox(JointState, "/chunk_player/command", qos.COMMAND)
        states = h.inbox(String, "/rollout/state", qos.LATCHED)
        h.wait(lambda: len(played) > 10, 30.0, "the chunk player's commands")

        def saved() -> list:
            return [e for e in rec.writer.episodes if e.status == "saved"]

        h.wait(lambda: len(saved()) >= 3, 40.0, "3 rotated episodes")
        t_first = rec.writer.episodes[0].start_ns / 1e9
        t_third = saved()[2].stop_ns / 1e9
        estop(h, states)
        h.wait(lambda: rec.writer.current is None, 5.0, "the e-stop to stop the episode")
        episodes = list(rec.writer.episodes)
        assert rec.writer.flush(10.0)

    durations = [e.duration_s for e in episodes[:3]]
    assert all(abs(d - episode_s) < 0.35 for d in durations), durations
    # Back to back: each episode starts within a few ms of the previous one's end.
    gaps = [(b.start_ns - a.stop_ns) / 1e9 for a, b in itertools.pairwise(episodes)]
    assert all(0 <= g < 0.1 for g in gaps[:2]), gaps
    # Control did not pause around the rotations: the 30 Hz stream has no gap.
    stamps = np.array([t for t, _ in played.items() if t_first <= t <= t_third])
    assert len(stamps) > 0.8 * FPS * (t_third - t_first)
    assert np.diff(stamps).max() < 0.15, np.diff(stamps).max()
    assert all(e.message_count > 50 for e in episodes[:3])


def test_highlight_returns_the_last_seconds(policy: Path, domain_id: int, tmp_path: Path) -> None:
    specs = graph(policy, "highlight", tmp_path)
    assert {s.name: s for s in specs}["recorder"].parameters["ring_seconds"] == 10.0
    with GraphHarness(specs, domain_id) as h:
        rec = h.nodes["recorder"]
        states = h.inbox(String, "/rollout/state", qos.LATCHED)
        h.wait(lambda: not rec.pending, 20.0, "the recorder's topics")
        time.sleep(3.0)
        assert rec.writer.episodes == []  # nothing recorded but the ring
        asked = time.time()
        res = h.call(SaveHighlight, "/rollout/save_highlight", SaveHighlight.Request(seconds=2.0))
        assert res.success, res.message
        assert abs(res.duration_s - 2.0) < 0.1, res
        start, end = from_time(res.start), from_time(res.end)
        assert 1.8 < end - start <= 2.05 and abs(end - asked) < 0.5, (start, end, asked)
        assert res.message_count > 2.0 * 100  # 100 Hz joint states alone
        (ep,) = rec.writer.episodes
        assert (ep.index, str(ep.path), ep.task) == (res.episode_index, res.path, "rollout")
        estop(h, states)  # stops the player; nothing to stop in the recorder
        assert rec.writer.flush(10.0)
    assert (Path(res.path) / "metadata.yaml").is_file()


def test_dagger_takeover_release_estop_and_the_intervention_flag(
    policy: Path, domain_id: int, tmp_path: Path
) -> None:
    specs = graph(policy, "dagger", tmp_path, rollout={"episode_s": 0.0})
    with GraphHarness(specs, domain_id) as h:
        watchdog, player = h.nodes["watchdog"], h.nodes["chunk_player"]
        commands = h.inbox(JointState, "/follower/command", qos.COMMAND)
        leader = h.inbox(JointState, "/leader/joint_states", qos.SENSOR)
        follower = h.inbox(JointState, "/follower/joint_states", qos.SENSOR)
        states = h.inbox(String, "/rollout/state", qos.LATCHED)
        events = h.inbox(EpisodeEvent, "/rollout/events", qos.EVENTS)
        switches = h.inbox(EpisodeEvent, "/watchdog/events", qos.EVENTS)
        h.wait(lambda: moving(commands, 1.0), 30.0, "the policy to move the follower")
        h.wait(lambda: h.nodes["recorder"].writer.current is not None, 10.0, "an episode")
        time.sleep(1.0)

        refused = intervene(h, False)
        assert not refused.success and refused.state == "autonomous"
        assert refused.message == "no intervention to end: the policy is driving"
        res = intervene(h, True, "keyboard")
        assert res.success and res.state == "paused", res
        assert not intervene(h, True, "pedal").success  # one takeover at a time
        wait_state(h, states, "correcting")
        assert watchdog.core.status().active_source == "teleop" and not player._enabled
        # The leader was brought to where the follower is before the human got it.
        at = follower.last().position, leader.last().position
        assert np.abs(np.subtract(*at)).max() < 0.08, at
        time.sleep(2.0)
        assert moving(commands, 1.0)  # the human (the scripted leader) drives
        res = intervene(h, False, "pedal")
        assert res.success and res.state == "autonomous", res
        h.wait(lambda: player._enabled, 5.0, "the chunk player to resume")
        assert watchdog.core.status().active_source == "chunk_player"
        h.wait(lambda: player.published > 0 and moving(commands, 0.5), 10.0, "the policy")
        time.sleep(1.0)
        estop(h, states)  # ends the episode (saved); the rollout waits for a resume
        h.wait(lambda: h.nodes["recorder"].writer.current is None, 5.0, "the episode's end")
        episode = h.nodes["recorder"].writer.episodes[0]
        sent = commands.items()
        t_sent = np.array([t for t, _ in sent[1:]])
        steps = np.abs(np.diff([m.position for _, m in sent], axis=0)).max(axis=1)
        first = [(e.type, from_time(e.header.stamp), e.source) for e in events.messages()]
        switch = [
            (e.detail, from_time(e.header.stamp))
            for e in switches.messages()
            if e.type == EpisodeEvent.SOURCE_SWITCH
        ]

        # A second takeover, then the e-stop while correcting.
        reset_and_resume(h, states, "autonomous")
        assert intervene(h, True, "service").success
        wait_state(h, states, "correcting")
        events.clear()
        estop(h, states)
        h.wait(lambda: len(events) >= 1, 5.0, "INTERVENTION_END")
        end = events.messages()[0]
        assert (end.type, end.source) == (EpisodeEvent.INTERVENTION_END, "estop")
        h.wait(
            lambda: watchdog.core.status().active_source == "chunk_player",
            5.0,
            "the watchdog back on the policy's source",
        )
        assert not player._enabled and h.nodes["rollout"].core.state == "stopped"
        assert h.nodes["recorder"].writer.flush(10.0)

    # Paused = the watchdog holds (source 'hold') while the leader is aligned; the events carry
    # the watchdog's switch times to and from teleop, from the source that asked.
    assert switch[:3] == [
        ("chunk_player -> hold", switch[0][1]),
        ("hold -> teleop", first[0][1]),
        ("teleop -> chunk_player", first[1][1]),
    ]
    assert [(k, s) for k, _, s in first] == [
        (EpisodeEvent.INTERVENTION_START, "keyboard"),
        (EpisodeEvent.INTERVENTION_END, "release"),
    ]
    t_start, t_end = first[0][1], first[1][1]
    assert 1.5 < t_end - t_start < 4.0

    # Takeover and release: from the hold through the handover to the aligned leader nothing
    # jumps; at the release the watchdog holds the follower where it is measured, a step of its
    # lag behind the moving leader, well inside max_step. (Elsewhere the watchdog may clip: on
    # this shared machine a stalled leader or follower thread makes a burst of samples.)
    takeover = steps[(t_sent > switch[0][1] - 0.05) & (t_sent < t_start + 1.0)]
    release = steps[(t_sent > t_end - 0.05) & (t_sent < t_end + 1.0)]
    assert len(takeover) > 100 and len(release) > 30
    assert takeover.max() < 0.1, takeover.max()
    assert release.max() < MAX_STEP, release.max()

    # The converted dataset flags exactly the frames inside [takeover switch, release switch).
    (bag,) = [p for p in tmp_path.glob("*/episode_*") if p.name == episode.path.name]
    out = tmp_path / "dataset"
    # A generous gap tolerance: in one process on 2 shared cores the recorder sometimes misses
    # a few tenths of a second of best-effort joint states; the flags do not depend on them.
    report = convert_bags([bag], out, "local/dagger", fps=FPS, max_gap_s=1.0, log=lambda _m: None)
    assert [e.status for e in report.episodes] == ["converted"], report.episodes
    info = json.loads((out / "meta/info.json").read_text())
    assert info["features"]["intervention"]["dtype"] == "bool"
    data = pq.read_table(sorted((out / "data").glob("*/*.parquet"))[0]).to_pydict()
    flags = np.array(data["intervention"]).reshape(-1)
    (ep,) = read_episodes([bag])
    streams = ["/follower/joint_states", "/follower/command", "/cameras/front/image_raw"]
    t0 = max([ep.start_ns] + [min(ep.streams[t].stamps) for t in streams])
    k = np.arange(len(flags), dtype=np.int64)
    grid = (t0 + (k * 1_000_000_000 + FPS // 2) // FPS) / 1e9
    expected = (grid >= t_start) & (grid < t_end)
    assert expected.sum() > 1.5 * FPS
    assert np.array_equal(flags, expected), (np.flatnonzero(flags), np.flatnonzero(expected))


def test_leader_motion_takes_over(policy: Path, domain_id: int) -> None:
    """A threshold well below the scripted leader's motion: the 'human' moving the leader takes
    over by itself once the rearm time has passed."""
    specs = [
        s
        for s in graph(policy, "dagger", rollout={"takeover_motion": 0.05, "rearm_s": 0.5})
        if s.name != "recorder"
    ]
    with GraphHarness(specs, domain_id) as h:
        states = h.inbox(String, "/rollout/state", qos.LATCHED)
        events = h.inbox(EpisodeEvent, "/rollout/events", qos.EVENTS)
        wait_state(h, states, "correcting", 30.0)
        h.wait(lambda: len(events) >= 1, 5.0, "INTERVENTION_START")
        start = events.messages()[0]
        assert (start.type, start.source) == (EpisodeEvent.INTERVENTION_START, "leader_motion")


def test_config_documents_every_rollout_parameter_with_its_default() -> None:
    import yaml

    from lerobot_ros.core.paths import resolve
    from lerobot_ros.nodes.rollout import ROLLOUT_PARAMS

    given = yaml.safe_load(resolve("config/so101.yaml").read_text())["rollout"]["ros__parameters"]
    assert sorted(given) == sorted(p.name for p in ROLLOUT_PARAMS)
    for p in ROLLOUT_PARAMS:
        assert given[p.name] == p.default and type(given[p.name]) is type(p.default), p.name
