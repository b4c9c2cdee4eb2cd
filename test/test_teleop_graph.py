"""The simulated SO-101 teleop graph end to end, and what happens when teleop dies."""

from __future__ import annotations

import math
import signal
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros

from lerobot_ros import demo  # noqa: E402
from lerobot_ros.core.robots import SO_ARM_JOINTS  # noqa: E402
from lerobot_ros.testing.graph import FOLLOWER, LEADER, WATCHDOG, GraphHarness, spec  # noqa: E402
from lerobot_ros.testing.ros import spawn_node  # noqa: E402


def test_demo_graph_tracks_streams_and_reports() -> None:
    """What the README's demo command shows: follower tracks leader, camera >= 25 Hz,
    watchdog diagnostics. The scripted leader loops in ~18 s and holds every waypoint 1 s."""
    s = demo.run(duration=14.0, cameras=["front"], verbose=False)
    assert s["steady_samples"] >= 100, s
    assert s["steady_error_max_deg"] < demo.MAX_STEADY_ERROR_DEG, s
    assert s["camera_hz_mean"] >= demo.MIN_CAMERA_HZ, s
    assert s["watchdog_diagnostics"] == 1.0, s


@pytest.mark.parametrize("executor", ["events", "single"])
def test_killing_the_teleop_process_leaves_the_follower_holding(
    executor: str, domain_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On both executors `run_node` offers (the in-process nodes read the same variable)."""
    from sensor_msgs.msg import JointState

    from lerobot_msgs.msg import WatchdogState
    from lerobot_ros.nodes import qos

    monkeypatch.setenv("LEROBOT_ROS_EXECUTOR", executor)
    specs = [spec("follower", FOLLOWER), spec("leader", LEADER), spec("watchdog", WATCHDOG)]
    with GraphHarness(specs, domain_id) as h:
        state = h.inbox(WatchdogState, "/watchdog/state", qos.LATCHED)
        measured = h.inbox(JointState, "/follower/joint_states", qos.SENSOR)
        teleop = spawn_node(
            "lerobot_ros.nodes.teleop",
            domain_id=domain_id,
            extra_env={"LEROBOT_ROS_EXECUTOR": executor},
        )
        try:
            # The teleop process drives the follower through the watchdog.
            h.wait(
                lambda: state.last() is not None and state.last().forwarded > 100,
                20.0,
                "commands forwarded from the teleop process",
            )
            assert not state.last().holding
            teleop.send_signal(signal.SIGKILL)
            teleop.wait(timeout=5)
            t_kill = time.time()
            h.wait(lambda: state.last().holding, 2.0, "the watchdog to hold")
            assert state.last().hold_reason == "stale"
            assert time.time() - t_kill < 0.25 + 0.3  # command_timeout + slack
            time.sleep(0.3)  # let the arm settle on the hold

            def q() -> np.ndarray:
                m = measured.last()
                return np.array([m.position[list(m.name).index(j)] for j in SO_ARM_JOINTS])

            q0 = q()
            time.sleep(1.0)
            drift = np.degrees(np.abs(q() - q0)).max()
            assert drift < 0.5, f"follower moved {drift:.2f} deg after teleop died"
            assert math.isfinite(drift)
        finally:
            if teleop.poll() is None:
                teleop.kill()
            teleop.communicate(timeout=5)
