"""Composition (`compose:=true`): the teleop in the watchdog's process hands its commands over
by a direct call; the graph grouping, the in-process runner and the `container` executable."""

from __future__ import annotations

import dataclasses
import signal
import sys
import time

import numpy as np
import pytest

from lerobot_ros.core.graph import (
    CONTROL_PROCESS,
    NodeSpec,
    RolloutGraphArgs,
    TeleopGraphArgs,
    processes,
    rollout_graph,
    teleop_graph,
)
from lerobot_ros.core.params import ParameterError


def names(groups: list[list[NodeSpec]]) -> list[list[str]]:
    return [[s.name for s in g] for g in groups]


def test_separate_processes_by_default() -> None:
    groups = processes(teleop_graph(TeleopGraphArgs()))
    assert all(len(g) == 1 for g in groups), names(groups)


def test_compose_puts_teleop_and_watchdog_in_one_process() -> None:
    specs = teleop_graph(TeleopGraphArgs.from_strings({"compose": "true"}))
    groups = names(processes(specs))
    assert ["teleop", "watchdog"] in groups
    assert sum(len(g) for g in groups) == len(specs)  # every node still runs, once
    assert {s.name for s in specs if s.process == CONTROL_PROCESS} == {"teleop", "watchdog"}


def test_compose_in_rollouts_only_groups_what_is_there() -> None:
    dagger = rollout_graph(RolloutGraphArgs.from_strings({"strategy": "dagger", "compose": "true"}))
    assert ["teleop", "watchdog"] in names(processes(dagger))
    base = rollout_graph(RolloutGraphArgs.from_strings({"strategy": "base", "compose": "true"}))
    assert all(len(g) == 1 for g in processes(base))  # no teleop: the watchdog runs alone


def test_bad_compose_flag_names_the_argument() -> None:
    with pytest.raises(ParameterError, match="parameter 'compose' = 'maybe'"):
        TeleopGraphArgs.from_strings({"compose": "maybe"})


def test_a_composed_node_cannot_have_remappings_of_its_own() -> None:
    specs = teleop_graph(TeleopGraphArgs(compose=True))
    specs = [
        dataclasses.replace(s, remappings=(("a", "b"),)) if s.name == "teleop" else s for s in specs
    ]
    with pytest.raises(ParameterError, match="composed node 'teleop' cannot have remappings"):
        processes(specs)


@pytest.mark.ros
def test_runner_composes_teleop_into_the_watchdog(domain_id: int) -> None:
    from lerobot_msgs.msg import WatchdogState
    from lerobot_ros.nodes import qos
    from lerobot_ros.testing.graph import GraphHarness

    specs = [
        s
        for s in teleop_graph(TeleopGraphArgs(compose=True, cameras=()))
        if s.in_process is not None
    ]
    with GraphHarness(specs, domain_id) as h:
        from sensor_msgs.msg import JointState

        assert h.graph.wired == [("/teleop/command", "teleop", "watchdog")]
        watchdog = h.nodes["watchdog"]
        topics = {sub.topic_name for sub in watchdog.subscriptions}
        assert "/teleop/command" not in topics  # delivered directly, not taken twice
        assert "/chunk_player/command" in topics  # the other sources still come over DDS
        state = h.inbox(WatchdogState, "/watchdog/state", qos.LATCHED)
        teleop_cmds = h.inbox(JointState, "/teleop/command", qos.COMMAND)
        forwarded = h.inbox(JointState, "/follower/command", qos.COMMAND)
        h.wait(
            lambda: state.last() is not None and state.last().forwarded > 100,
            20.0,
            "commands the composed teleop handed to the watchdog",
        )
        # Observers still see the teleop's commands over DDS, and the follower gets each one.
        h.wait(lambda: len(teleop_cmds) > 20 and len(forwarded) > 20, 5.0, "both topics")
        stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in forwarded.messages()}
        recent = teleop_cmds.messages()[-10:-2]
        seen = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in recent]
        assert all(s in stamps for s in seen)


@pytest.mark.ros
def test_container_process_runs_composed_nodes_and_stops_cleanly(domain_id: int) -> None:
    """The `container` executable, as launch starts it: follower tracks through the composed
    teleop + watchdog; SIGINT shuts both down; the follower then holds."""
    from sensor_msgs.msg import JointState

    from lerobot_msgs.msg import WatchdogState
    from lerobot_ros.core.paths import resolve
    from lerobot_ros.nodes import qos
    from lerobot_ros.testing.graph import FOLLOWER, LEADER, GraphHarness, spec

    with GraphHarness([spec("follower", FOLLOWER), spec("leader", LEADER)], domain_id) as h:
        state = h.inbox(WatchdogState, "/watchdog/state", qos.LATCHED)
        measured = h.inbox(JointState, "/follower/joint_states", qos.SENSOR)
        proc = _spawn_container(domain_id, str(resolve("config/so101.yaml")))
        try:
            h.wait(
                lambda: state.last() is not None and state.last().forwarded > 100,
                30.0,
                "commands forwarded by the container's watchdog",
            )
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=15)
            assert proc.returncode == 0, err
            assert "Traceback" not in err, err
            assert "composed: /teleop/command from 'teleop' by a direct call" in err, err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=5)
        assert h.nodes["follower"].lifecycle_state == "active"  # holding its last target
        time.sleep(0.3)
        q0 = np.array(measured.last().position)
        time.sleep(1.0)
        drift = np.degrees(np.abs(np.array(measured.last().position) - q0)).max()
        assert drift < 0.5, f"follower moved {drift:.2f} deg after the container stopped"


def _spawn_container(domain_id: int, params: str):  # type: ignore[no-untyped-def]
    import subprocess

    from lerobot_ros.testing.ros import isolated_env

    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lerobot_ros.nodes.container",
            "lerobot_ros.nodes.teleop:TeleopNode=teleop",
            "lerobot_ros.nodes.watchdog:WatchdogNode=watchdog",
            "--ros-args",
            "--params-file",
            params,
        ],
        env=isolated_env(domain_id),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        (
            "teleop",
            "parameter 'node' = 'teleop': expected lerobot_ros.<module>:<Class>=<node name>",
        ),
        ("os:system=x", "parameter 'node' = 'os:system=x': expected lerobot_ros."),
        ("lerobot_ros.nodes.teleop:Nope=teleop", "cannot load lerobot_ros.nodes.teleop:Nope"),
    ],
)
def test_container_bad_node_argument_names_it(arg: str, expected: str) -> None:
    from lerobot_ros.nodes.container import factories

    with pytest.raises(ParameterError) as err:
        factories([arg])
    assert expected in str(err.value)


def test_container_refuses_a_name_given_twice() -> None:
    from lerobot_ros.nodes.container import factories

    args = ["lerobot_ros.nodes.teleop:TeleopNode=a", "lerobot_ros.nodes.watchdog:WatchdogNode=a"]
    with pytest.raises(ParameterError, match="node name 'a' is given twice"):
        factories(args)
