"""Bad parameters stop a node at start-up with one line naming the parameter and the value."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.ros

from lerobot_ros.testing.ros import spawn_node  # noqa: E402


@pytest.mark.parametrize(
    ("module", "args", "expected"),
    [
        ("lerobot_ros.nodes.watchdog", ["-p", "robot:=ur5"], "parameter 'robot' = 'ur5'"),
        (
            "lerobot_ros.nodes.watchdog",
            ["-p", "urdf:=/nonexistent/arm.urdf"],
            "parameter 'urdf' = '/nonexistent/arm.urdf': file does not exist",
        ),
        (
            "lerobot_ros.nodes.watchdog",
            [
                "-p",
                "lower_limits:=[0.0,0.0,0.5,0.0,0.0,0.0]",
                "-p",
                "upper_limits:=[1.0,1.0,0.2,1.0,1.0,1.0]",
            ],
            "joint 'elbow_flex': lower 0.5000 > upper 0.2000",
        ),
        ("lerobot_ros.nodes.watchdog", ["-p", "max_step:=-1.0"], "parameter 'max_step' = -1.0"),
        (
            "lerobot_ros.nodes.watchdog",
            ["-p", "active_source:=joystick"],
            "parameter 'active_source' = 'joystick'",
        ),
        (
            "lerobot_ros.nodes.watchdog",
            ["-p", "command_timeout:=1"],
            "parameter 'command_timeout' = 1: expected type float",
        ),
        ("lerobot_ros.nodes.arm", ["-p", "robot:=ur5"], "parameter 'robot' = 'ur5'"),
        ("lerobot_ros.nodes.arm", ["-p", "backend:=can_bus"], "parameter 'backend' = 'can_bus'"),
        ("lerobot_ros.nodes.arm", ["-p", "rt_priority:=100"], "parameter 'rt_priority' = 100"),
        ("lerobot_ros.nodes.camera", ["-p", "fps:=0.0"], "parameter 'fps' = 0.0"),
        ("lerobot_ros.nodes.teleop", ["-p", "scale:=[1.0,2.0]"], "parameter 'scale' = [1.0, 2.0]"),
    ],
)
def test_bad_parameter_stops_the_node_with_a_clear_message(
    module: str, args: list[str], expected: str, domain_id: int
) -> None:
    proc = spawn_node(module, args, domain_id=domain_id)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, f"rc={proc.returncode}\nstdout:{out}\nstderr:{err}"
    assert expected in err, err
    assert "Traceback" not in err, err


def test_unknown_executor_stops_the_node_before_it_is_built(domain_id: int) -> None:
    proc = spawn_node(
        "lerobot_ros.nodes.arm", domain_id=domain_id, extra_env={"LEROBOT_ROS_EXECUTOR": "multi"}
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, f"rc={proc.returncode}\nstdout:{out}\nstderr:{err}"
    assert "parameter 'LEROBOT_ROS_EXECUTOR' = 'multi'" in err, err
    assert "configured" not in err, err  # stopped before the arm was even connected


SIGINT_DURING_CONSTRUCTION = r"""
import os, signal, sys
from lerobot_ros.nodes.base import LeRobotNode, run_node

class Node(LeRobotNode):
    def __init__(self):
        super().__init__("sigint_probe")
        os.kill(os.getpid(), signal.SIGINT)  # e.g. Ctrl-C right after a follower's torque-on
        print("constructed", flush=True)

    def shutdown(self):
        print("shutdown ran", flush=True)

sys.exit(run_node(Node, []))
"""


def test_sigint_while_the_node_is_built_still_runs_its_shutdown(domain_id: int) -> None:
    import os
    import subprocess
    import sys

    from lerobot_ros.testing.ros import isolated_env

    proc = subprocess.run(
        [sys.executable, "-c", SIGINT_DURING_CONSTRUCTION],
        env={**os.environ, **isolated_env(domain_id)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["constructed", "shutdown", "ran"], proc.stdout + proc.stderr
