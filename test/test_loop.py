"""PeriodicThread: fixed rate, no burst after a stall, and the real-time priority of its thread
(granted where the process may, refused with the reason where it may not)."""

from __future__ import annotations

import itertools
import os
import threading
import time

import pytest

from lerobot_ros.core.loop import PeriodicThread


def policy_of_loop(priority: int) -> tuple[PeriodicThread, int, int]:
    """Start a loop, read its thread's policy and the calling thread's, stop it."""
    seen: list[int] = []

    def fn() -> None:
        if not seen:
            seen.append(os.sched_getscheduler(0))

    loop = PeriodicThread(0.005, fn, name="t", priority=priority)
    loop.start()
    try:
        deadline = time.monotonic() + 2.0
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        loop.stop()
    return loop, seen[0], os.sched_getscheduler(0)


def may_use_fifo() -> bool:
    """Root, or an rtprio limit (the two ways a process gets SCHED_FIFO on Linux)."""
    import resource

    return os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_RTPRIO)[0] > 0


def test_priority_zero_keeps_normal_scheduling() -> None:
    loop, policy, _ = policy_of_loop(0)
    assert policy == os.SCHED_OTHER
    assert not loop.realtime and loop.priority_error == ""


@pytest.mark.skipif(not may_use_fifo(), reason="this process may not use SCHED_FIFO")
def test_priority_gives_only_the_loop_thread_fifo() -> None:
    loop, policy, caller = policy_of_loop(10)
    assert loop.realtime and policy == os.SCHED_FIFO
    assert caller == os.SCHED_OTHER  # the process's other threads are left alone


def test_refused_priority_runs_normally_and_says_why() -> None:
    loop, policy, _ = policy_of_loop(1000)  # outside 1-99: refused even for root
    assert not loop.realtime and policy == os.SCHED_OTHER
    assert loop.priority_error.startswith("SCHED_FIFO 1000 refused:")


def test_rate_and_no_burst_after_a_stall() -> None:
    times: list[float] = []
    stall = threading.Event()

    def fn() -> None:
        times.append(time.perf_counter())
        if len(times) == 20:
            stall.set()
            time.sleep(0.1)  # 10 periods late

    loop = PeriodicThread(0.01, fn, name="t")
    loop.start()
    stall.wait(2.0)
    time.sleep(0.2)
    loop.stop()
    gaps = [b - a for a, b in itertools.pairwise(times[20:])]
    assert loop.overruns >= 1
    assert min(gaps) > 0.004, gaps  # after the stall: no catch-up burst of back-to-back calls
