"""Rollout strategies without ROS (lerobot_ros.core.rollout): the effects each input produces,
DAgger's state machine (every transition, every refusal and its reason, late answers, the
e-stop in every state), recording rotation by duration and size, and the rollout graph
description (core/graph.py rollout_graph) per strategy."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lerobot_ros.core.graph import RolloutGraphArgs, recorded_topics, rollout_graph
from lerobot_ros.core.params import ParameterError
from lerobot_ros.core.paths import resolve
from lerobot_ros.core.rollout import (
    DAGGER_REFUSALS,
    DAGGER_TRANSITIONS,
    STRATEGIES,
    AlignLeader,
    DaggerStrategy,
    EventKind,
    Phase,
    PublishEvent,
    RolloutConfig,
    SetPlayer,
    StartRecording,
    StateMachine,
    StopRecording,
    Strategy,
    SwitchSource,
    create_strategy,
)

MiB = 2**20


def only(effects: list, kind: type) -> list:
    return [e for e in effects if isinstance(e, kind)]


def test_registry_names_and_flags() -> None:
    assert STRATEGIES.names() == ["base", "dagger", "highlight", "sentry"]
    flags = {
        n: (c.records_episodes, c.ring_buffer, c.interventions)
        for n in STRATEGIES.names()
        for c in [STRATEGIES.get(n)]
    }
    assert flags == {
        "base": (False, False, False),
        "sentry": (True, False, False),
        "highlight": (False, True, False),
        "dagger": (True, False, True),
    }
    assert all(STRATEGIES.get(n).name == n for n in STRATEGIES.names())


def test_event_kinds_match_the_message_constants() -> None:
    msg = pytest.importorskip("lerobot_msgs.msg")
    assert EventKind.INTERVENTION_START == msg.EpisodeEvent.INTERVENTION_START
    assert EventKind.INTERVENTION_END == msg.EpisodeEvent.INTERVENTION_END


def test_config_rejects_negative_values_and_empty_task() -> None:
    with pytest.raises(ValueError, match="episode_s"):
        RolloutConfig(episode_s=-1.0)
    with pytest.raises(ValueError, match="task"):
        RolloutConfig(task=" ")


def test_state_machine_refuses_with_the_table_reason_or_a_generic_one() -> None:
    m = StateMachine("a", {("a", "go"): "b"}, {("b", "go"): "already gone"})
    assert m.fire("stay") == "'stay' is not allowed in state 'a'" and m.state == "a"
    assert m.fire("go") is None and m.state == "b"
    assert m.fire("go") == "already gone" and m.state == "b"


# --- base / sentry / highlight -----------------------------------------------------------------


def test_base_plays_records_nothing_and_refuses_interventions_and_highlights() -> None:
    s = create_strategy("base")
    assert s.start(0.0) == [SetPlayer(True)]
    assert s.tick(100.0, 10 * 2**30) == []
    reply = s.intervention(True, "keyboard", 1.0)
    assert not reply.ok and reply.state == "running" and "strategy:=dagger" in reply.message
    assert "strategy:=highlight" in (s.highlight_refusal() or "")


@pytest.mark.parametrize("name", ["base", "sentry", "highlight"])
def test_estop_stops_and_only_resume_after_the_reset_restarts(name: str) -> None:
    s = create_strategy(name, RolloutConfig(episode_s=0.0))
    s.start(0.0)
    if s.records_episodes:
        s.request_done(True, "", 0.1)
        s.episode_started(0, "/bags/episode_000000", 0.1)
    effects = s.estop(True, 1.0)
    assert effects[0] == SetPlayer(False) and s.state == "stopped"
    assert only(effects, StopRecording) == ([StopRecording("sentry: stopped")] * s.records_episodes)
    assert s.estop(True, 1.1) == []  # latched again: nothing new
    reply = s.resume(2.0)
    assert not reply.ok and "still latched" in reply.message
    assert s.estop(False, 3.0) == [] and s.state == "stopped"  # a reset alone restarts nothing
    if s.records_episodes:
        s.request_done(True, "", 3.0)
        s.episode_stopped(0)
    reply = s.resume(4.0)
    assert reply.ok and s.state == "running" and reply.effects[0] == SetPlayer(True)
    assert only(list(reply.effects), StartRecording) == (
        [StartRecording("rollout")] * s.records_episodes
    )
    again = s.resume(5.0)
    assert not again.ok and again.message == "not stopped: nothing to resume"


def test_sentry_rotates_by_duration_back_to_back() -> None:
    s = create_strategy("sentry", RolloutConfig(task="watch", episode_s=10.0, episode_mb=0.0))
    assert s.start(0.0) == [SetPlayer(True), StartRecording("watch")]
    assert s.tick(0.05) == []  # one call in flight at a time
    s.episode_started(0, "/b/episode_000000", 0.1)
    s.request_done(True, "", 0.1)
    assert s.tick(10.0) == []  # 9.9 s old
    (stop,) = s.tick(10.2)
    assert isinstance(stop, StopRecording) and "rotated after 10.1 s" in stop.reason
    assert s.tick(10.3) == []
    s.episode_stopped(0)
    s.request_done(True, "", 10.25)
    assert s.tick(10.25) == [StartRecording("watch")]  # the next one at once
    assert s.recording.rotations == 1


def test_sentry_rotates_by_size_and_retries_a_failed_call() -> None:
    s = create_strategy("sentry", RolloutConfig(episode_s=0.0, episode_mb=100.0, retry_s=1.0))
    s.start(0.0)
    s.request_done(False, "service /recorder/start_episode not available", 0.5)
    assert s.recording.last_error.startswith("service")
    assert s.tick(1.0) == []
    assert s.tick(1.6) == [StartRecording("rollout")]
    s.episode_started(3, "/b/episode_000003", 1.7)
    s.request_done(True, "", 1.7)
    assert s.tick(1000.0, 99 * MiB) == []  # episode_s 0: no time limit
    (stop,) = s.tick(1000.0, 100 * MiB)
    assert "rotated at 100.0 MiB" in stop.reason


def test_the_event_time_of_an_episode_start_wins_over_the_answer() -> None:
    s = create_strategy("sentry")
    s.episode_started(2, "", 5.0)  # our answer arrived at 5.0
    s.episode_started(2, "/b/episode_000002", 4.98)  # the recorder's event: started at 4.98
    assert (s.recording.current.started, s.recording.current.path) == (4.98, "/b/episode_000002")
    s.episode_stopped(1)  # another episode: ignored
    assert s.recording.current is not None
    s.episode_stopped(2)
    assert s.recording.current is None


def test_highlight_saves_and_never_touches_an_open_highlight_episode() -> None:
    s = create_strategy("highlight")
    assert s.highlight_refusal() is None
    assert s.start(0.0) == [SetPlayer(True)]
    s.episode_started(0, "/b/episode_000000", 1.0)  # continue_recording left one open
    assert s.tick(100.0) == []
    assert not s.intervention(True, "pedal", 1.0).ok


# --- dagger ------------------------------------------------------------------------------------


def takeover(s: DaggerStrategy, now: float, source: str = "service") -> int:
    """Takeover through the hold, the alignment and up to the switch request to teleop;
    returns that switch's token (its answer makes the state 'correcting')."""
    reply = s.intervention(True, source, now)
    assert reply.ok and reply.state == "paused", reply
    hold = only(list(reply.effects), SwitchSource)[0]
    assert hold.source == "hold"
    (align,) = s.switched(hold.token, True, "", now + 0.01)
    assert isinstance(align, AlignLeader)
    (switch,) = s.aligned(align.token, True, "reached", now + 1.0)
    assert switch.source == "teleop" and s.state == "paused"
    return switch.token


def correct(s: DaggerStrategy, now: float, source: str = "service") -> None:
    s.switched(takeover(s, now, source), True, "", now + 1.1)
    assert s.state == "correcting"


def test_dagger_takeover_and_release_with_events_stamped_at_the_switches() -> None:
    s = create_strategy("dagger", RolloutConfig(settle_s=0.4))
    assert s.start(0.0) == [SetPlayer(True), StartRecording("rollout")]
    reply = s.intervention(True, "keyboard", 10.0)
    assert reply.ok and reply.state == "paused" and "keyboard" in reply.message
    # The policy stops and the watchdog holds the follower at once (a source nobody publishes).
    assert reply.effects == (SetPlayer(False), SwitchSource("hold", 1))
    assert s.switched(1, True, "active source 'chunk_player' -> 'hold'", 10.01) == [
        AlignLeader(2, 0.4)
    ]
    (switch,) = s.aligned(2, True, "reached within 0.003 rad", 11.0)
    assert switch == SwitchSource("teleop", 3)
    (start,) = s.switched(3, True, "active source 'hold' -> 'teleop'", 11.05)
    assert start == PublishEvent(
        EventKind.INTERVENTION_START, "keyboard", "active source 'hold' -> 'teleop'", 11.05
    )
    assert s.state == "correcting"
    reply = s.intervention(False, "pedal", 20.0)
    assert reply.ok and reply.state == "autonomous"
    assert reply.effects == (SwitchSource("chunk_player", 4),)
    end, play = s.switched(4, True, "back", 20.02)
    assert end == PublishEvent(EventKind.INTERVENTION_END, "release", "back", 20.02)
    assert play == SetPlayer(True)  # the player resumes only once the watchdog forwards it
    assert s.interventions_done == 1


def test_without_a_hold_source_the_alignment_starts_at_once() -> None:
    s = create_strategy("dagger", RolloutConfig(hold_source="", settle_s=0.3))
    s.start(0.0)
    assert s.intervention(True, "service", 1.0).effects == (SetPlayer(False), AlignLeader(1, 0.3))
    held = create_strategy("dagger")
    held.start(0.0)
    (hold,) = only(list(held.intervention(True, "service", 1.0).effects), SwitchSource)
    (align,) = held.switched(hold.token, False, "unknown source 'hold'", 1.1)
    assert isinstance(align, AlignLeader) and "watchdog holds after its timeout" in held.detail


@pytest.mark.parametrize(
    ("phase", "event", "reason"),
    [
        ("autonomous", "release", "no intervention to end: the policy is driving"),
        ("paused", "takeover", "a takeover is in progress"),
        ("paused", "release", "the leader is being aligned"),
        ("correcting", "takeover", "a human is already correcting"),
        ("stopped", "takeover", "stopped by the e-stop"),
        ("stopped", "release", "stopped by the e-stop"),
    ],
)
def test_dagger_refusals_name_the_reason_and_keep_the_state(
    phase: str, event: str, reason: str
) -> None:
    s = create_strategy("dagger")
    s.start(0.0)
    if phase == "paused":
        s.intervention(True, "service", 1.0)
    if phase == "correcting":
        correct(s, 1.0)
    if phase == "stopped":
        s.estop(True, 1.0)
    assert s.state == phase
    reply = s.intervention(event == "takeover", "pedal", 3.0)
    assert not reply.ok and reason in reply.message and reply.state == phase
    assert reply.effects == () and s.state == phase


def test_dagger_table_covers_every_request_in_every_phase() -> None:
    for phase, event in itertools.product(Phase, ("takeover", "release", "estop", "resume")):
        assert (phase, event) in DAGGER_TRANSITIONS or (phase, event) in DAGGER_REFUSALS, (
            phase,
            event,
        )


def test_failed_alignment_holds_and_release_or_a_new_takeover_recover() -> None:
    s = create_strategy("dagger")
    s.start(0.0)
    s.intervention(True, "service", 1.0)
    (align,) = s.switched(1, True, "", 1.1)
    assert s.aligned(align.token, False, "timed out 0.3 rad from the target", 5.0) == []
    assert s.state == "held" and "timed out" in s.detail
    takeover(s, 6.0)  # retry
    s2 = create_strategy("dagger")
    s2.start(0.0)
    s2.intervention(True, "service", 1.0)
    s2.switched(1, True, "", 1.1)
    s2.aligned(2, False, "leader not inactive", 2.0)
    reply = s2.intervention(False, "service", 3.0)
    assert reply.ok and reply.state == "autonomous" and "failed takeover" in reply.message
    (switch,) = reply.effects[:1]
    # No INTERVENTION_START was published, so no END either: only the player comes back.
    assert s2.switched(switch.token, True, "", 3.1) == [SetPlayer(True)]


def test_a_late_alignment_answer_after_an_estop_is_ignored() -> None:
    s = create_strategy("dagger")
    s.start(0.0)
    s.intervention(True, "service", 1.0)  # hold switch 1
    (align,) = s.switched(1, True, "", 1.1)  # align token 2
    effects = s.estop(True, 1.5)
    assert effects[0] == SetPlayer(False) and s.state == "stopped"
    assert only(effects, SwitchSource)  # the watchdog is put back on the policy's source
    s.estop(False, 2.0)
    assert s.resume(2.5).ok and s.state == "autonomous"
    assert s.aligned(align.token, True, "reached", 3.0) == [] and s.state == "autonomous"
    s.intervention(True, "service", 4.0)
    assert s.aligned(align.token, True, "reached", 5.0) == []  # the old token: ignored
    assert s.state == "paused"


def test_estop_while_correcting_ends_the_intervention_and_takes_control_back() -> None:
    s = create_strategy("dagger")
    s.start(0.0)
    s.request_done(True, "", 0.1)
    s.episode_started(0, "", 0.1)
    correct(s, 1.0)
    effects = s.estop(True, 7.0)
    assert effects[0] == SetPlayer(False)
    assert effects[1] == PublishEvent(EventKind.INTERVENTION_END, "estop", "e-stop", 7.0)
    assert isinstance(effects[2], SwitchSource) and effects[2].source == "chunk_player"
    assert StopRecording("dagger: stopped") in effects
    assert s.switched(effects[2].token, True, "", 7.1) == []  # no second END, no player
    s.estop(False, 8.0)
    reply = s.resume(9.0)
    assert reply.ok and reply.effects[0] == SetPlayer(True)


def test_a_takeover_switch_answered_after_an_estop_changes_nothing() -> None:
    s = create_strategy("dagger")
    s.start(0.0)
    switch = takeover(s, 1.0)
    effects = s.estop(True, 2.1)
    assert only(effects, SwitchSource)  # sent after the takeover's switch: processed after it
    assert s.switched(switch, True, "", 2.2) == [] and s.state == "stopped"
    assert not only(effects, PublishEvent)  # correction frames never began


def test_leader_motion_takes_over_after_the_rearm_time() -> None:
    s = create_strategy("dagger", RolloutConfig(takeover_motion=0.1, rearm_s=1.0))
    s.start(0.0)
    q = np.zeros(6)
    assert s.leader_sample(q + 0.5, 0.5) == []  # still settling: becomes the reference
    assert s.leader_sample(q + 0.5, 1.2) == []
    assert s.leader_sample(q + 0.58, 1.3) == []  # 0.08 rad: below the threshold
    effects = s.leader_sample(q + 0.5 + np.array([0, 0, 0.12, 0, 0, 0]), 1.4)
    assert effects[:1] == [SetPlayer(False)] and s.state == "paused"
    assert "leader moved 0.120 rad" in s.detail
    off = create_strategy("dagger", RolloutConfig(takeover_motion=0.0))
    off.start(0.0)
    assert off.leader_sample(q + 3.0, 5.0) == [] and off.leader_sample(q, 6.0) == []


def test_corrections_only_recording_wraps_each_correction_with_a_tail() -> None:
    s = create_strategy("dagger", RolloutConfig(record_autonomous=False, tail_s=0.5))
    assert s.start(0.0) == [SetPlayer(True)]  # nothing recorded while the policy drives
    reply = s.intervention(True, "service", 1.0)
    assert StartRecording("rollout") in reply.effects
    s.request_done(True, "", 1.1)
    s.episode_started(0, "", 1.1)
    (align,) = s.switched(1, True, "", 1.2)
    (switch,) = s.aligned(align.token, True, "", 2.0)
    s.switched(switch.token, True, "", 2.1)
    (back,) = s.intervention(False, "service", 10.0).effects
    s.switched(back.token, True, "", 10.05)
    assert s.tick(10.3) == []  # the tail
    assert s.tick(10.6) == [StopRecording("dagger: autonomous")]


def test_dagger_never_rotates_inside_an_intervention() -> None:
    s = create_strategy("dagger", RolloutConfig(episode_s=5.0))
    s.start(0.0)
    s.request_done(True, "", 0.0)
    s.episode_started(0, "", 0.0)
    switch = takeover(s, 4.0)
    assert s.tick(6.0) == []  # paused
    s.switched(switch, True, "", 6.5)
    assert s.tick(8.0) == []  # correcting
    (back,) = s.intervention(False, "service", 9.0).effects
    assert s.tick(9.1) == []  # the release switch is still pending
    s.switched(back.token, True, "", 9.2)
    assert only(s.tick(9.3), StopRecording)


def test_strategies_extend_the_base_class() -> None:
    assert all(issubclass(STRATEGIES.get(n), Strategy) for n in STRATEGIES.names())


# --- the graph description ---------------------------------------------------------------------


def names(specs: list) -> list[str]:
    return [s.fqn for s in specs]


def test_rollout_graph_nodes_per_strategy() -> None:
    common = ["/follower", "/watchdog", "/cameras/front", "/robot_state_publisher"]
    policy = ["/policy_runner", "/chunk_player"]
    args = RolloutGraphArgs(policy="/ckpt")
    base = rollout_graph(replace(args, strategy="base"))
    assert names(base) == [*common, *policy, "/rollout"]
    watchdog = {s.name: s for s in base}["watchdog"]
    assert watchdog.parameters["active_source"] == "chunk_player"
    sentry = {s.name: s for s in rollout_graph(replace(args, strategy="sentry"))}
    assert names(list(sentry.values())) == [*common, *policy, "/recorder", "/rollout"]
    topics = sentry["recorder"].parameters["topics"]
    assert "/leader/joint_states" not in topics and "/rollout/events" in topics
    assert set(topics) == set(recorded_topics(("front",))) - {"/leader/joint_states"}
    assert "ring_seconds" not in sentry["recorder"].parameters
    highlight = {s.name: s for s in rollout_graph(replace(args, strategy="highlight"))}
    assert highlight["recorder"].parameters["ring_seconds"] == 20.0
    dagger = rollout_graph(replace(args, strategy="dagger", task="fold it"))
    assert names(dagger) == [
        "/follower",
        "/leader",
        "/teleop",
        *common[1:],
        *policy,
        "/recorder",
        "/rollout",
    ]
    by = {s.name: s for s in dagger}
    assert "/leader/joint_states" in by["recorder"].parameters["topics"]
    rollout = by["rollout"].parameters
    assert rollout["strategy"] == "dagger" and rollout["task"] == "fold it"
    assert rollout["takeover_motion"] == 0.0  # the scripted sim leader moves by itself
    assert rollout["hold_source"] == "hold"
    assert by["watchdog"].parameters["sources"] == ["teleop", "chunk_player", "ee_teleop", "hold"]
    assert "sources" not in watchdog.parameters  # only DAgger needs the hold source
    assert rollout["scale"] == [1.0] * 6 and rollout["leader_joints"][0] == "shoulder_pan"
    assert by["policy_runner"].parameters["task"] == "fold it"
    hardware = {s.name: s for s in rollout_graph(replace(args, strategy="dagger", sim=False))}
    assert "takeover_motion" not in hardware["rollout"].parameters
    assert hardware["leader"].parameters["backend"] != "sim"


def test_rollout_copies_the_teleop_mapping_of_the_params_file(tmp_path: Path) -> None:
    text = resolve("config/so101.yaml").read_text()
    custom = tmp_path / "custom.yaml"
    custom.write_text(
        text.replace(
            "offset: [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]", "offset: [0.1, 0.0, 0.0, 0.0, 0.0, 0.0]", 1
        )
    )
    by = {
        s.name: s
        for s in rollout_graph(RolloutGraphArgs(strategy="dagger", params_file=str(custom)))
    }
    assert by["rollout"].parameters["offset"] == [0.1, 0.0, 0.0, 0.0, 0.0, 0.0]


def test_from_strings_maps_inference_to_the_runner_mode() -> None:
    args = RolloutGraphArgs.from_strings(
        {"strategy": "dagger", "policy": "me/act", "inference": "sync", "output_dir": "/tmp/b"}
    )
    assert (args.strategy, args.policy, args.mode, args.output_dir) == (
        "dagger",
        "me/act",
        "sync",
        "/tmp/b",
    )
    runner = {s.name: s for s in rollout_graph(args)}["policy_runner"]
    assert runner.parameters["mode"] == "sync" and runner.parameters["policy"] == "me/act"
    recorder = {s.name: s for s in rollout_graph(args)}["recorder"]
    assert recorder.parameters["output_dir"] == "/tmp/b"
    assert RolloutGraphArgs.from_strings({}) == RolloutGraphArgs()


@pytest.mark.parametrize(
    ("values", "name", "words"),
    [
        ({"strategy": "yolo"}, "strategy", "['base', 'dagger', 'highlight', 'sentry']"),
        ({"inference": "async"}, "inference", "['rate', 'rtc', 'sync']"),
        ({"mode": "rtc"}, "mode", "use the argument 'inference'"),
        ({"highlight_s": "0"}, "highlight_s", "> 0"),
        ({"highlight_s": "lots"}, "highlight_s", "> 0"),
        ({"sim": "maybe"}, "sim", "true or false"),
    ],
)
def test_from_strings_errors_name_the_argument(values: dict, name: str, words: str) -> None:
    with pytest.raises(ParameterError) as info:
        RolloutGraphArgs.from_strings(values)
    assert info.value.name == name and words in str(info.value)
