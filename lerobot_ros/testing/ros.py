"""DDS isolation and probing for tests, benches and the demo.

Every ROS process we start runs with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, its own
ROS_DOMAIN_ID and the shipped Fast DDS profile: traffic stays on loopback and never meets
another graph on the same machine.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from lerobot_ros.core.paths import share_dir


def shipped_profile() -> str:
    """The Fast DDS profile this package ships (config/fastdds_shm.xml)."""
    return str(share_dir() / "config" / "fastdds_shm.xml")


def scheduling() -> str:
    """This process's scheduling policy and niceness (children inherit both), for bench logs."""
    names = {os.SCHED_OTHER: "SCHED_OTHER", os.SCHED_FIFO: "SCHED_FIFO", os.SCHED_RR: "SCHED_RR"}
    policy = os.sched_getscheduler(0)
    prio = os.sched_getparam(0).sched_priority
    name = names.get(policy, str(policy)) + (f" {prio}" if prio else "")
    return f"{name}, nice {os.getpriority(os.PRIO_PROCESS, 0)}"


def isolated_env(domain_id: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a ROS process of an isolated graph (also applied to os.environ)."""
    env = dict(os.environ if base is None else base)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", shipped_profile())
    env.setdefault("MUJOCO_GL", "egl")
    env.setdefault("PYOPENGL_PLATFORM", env["MUJOCO_GL"])
    env["PYTHONUNBUFFERED"] = "1"
    return env


_next_domain = random.Random(os.getpid() ^ time.time_ns()).randint(0, 99)


def pick_domain_id() -> int:
    """A domain id in 1..100, a new one per call (0 is what other graphs use by default)."""
    global _next_domain
    _next_domain = (_next_domain + 1) % 100
    return _next_domain + 1


def isolate_this_process(domain_id: int | None = None) -> int:
    """Apply isolated_env to os.environ before rclpy creates a participant; returns the id."""
    domain_id = pick_domain_id() if domain_id is None else domain_id
    os.environ.update(isolated_env(domain_id))
    return domain_id


def spawn_node(
    module: str,
    ros_args: Sequence[str] = (),
    *,
    domain_id: int,
    extra_env: dict[str, str] | None = None,
    **popen: Any,
) -> subprocess.Popen[str]:
    """Start `python -m <module> --ros-args ...` as its own process in the isolated graph."""
    cmd = [sys.executable, "-m", module]
    if ros_args:
        cmd += ["--ros-args", *ros_args]
    return subprocess.Popen(
        cmd,
        env={**isolated_env(domain_id), **(extra_env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def wait_until(predicate: Callable[[], bool], timeout: float, period: float = 0.01) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return predicate()


class Inbox:
    """Thread-safe list of (receive wall time, message) filled by a subscription."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[float, Any]] = []

    def __call__(self, msg: Any) -> None:
        with self._lock:
            self._items.append((time.time(), msg))

    def items(self) -> list[tuple[float, Any]]:
        with self._lock:
            return list(self._items)

    def messages(self) -> list[Any]:
        return [m for _, m in self.items()]

    def last(self) -> Any | None:
        with self._lock:
            return self._items[-1][1] if self._items else None

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
