"""PeriodicThread (fixed rate, no burst after a stall) and real-time priority for a node's
process: every thread, including those started later, or a refusal that says why. The priority
is tried in a child process, never in the test process."""

from __future__ import annotations

import itertools
import json
import os
import resource
import subprocess
import sys
import threading
import time

import pytest

from lerobot_ros.core.loop import PeriodicThread, set_fifo

CHILD = r"""
import json, os, sys, threading, time
from lerobot_ros.core.loop import PeriodicThread, set_process_fifo

def policies():
    return sorted({os.sched_getscheduler(int(t)) for t in os.listdir("/proc/self/task")})

before = PeriodicThread(0.01, lambda: None, name="before")
before.start()
error = set_process_fifo(int(sys.argv[1]))
after = PeriodicThread(0.01, lambda: None, name="after")  # started later: inherits
after.start()
time.sleep(0.05)
print(json.dumps({"error": error, "policies": policies(), "threads": threading.active_count()}))
"""


def run_child(priority: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(priority)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def may_use_fifo() -> bool:
    """Root, or an rtprio limit: the two ways a process gets SCHED_FIFO on Linux."""
    return os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_RTPRIO)[0] > 0


@pytest.mark.skipif(not may_use_fifo(), reason="this machine may not use SCHED_FIFO")
def test_process_fifo_covers_every_thread_also_later_ones() -> None:
    r = run_child(10)
    assert r["error"] == ""
    assert r["threads"] >= 3
    assert r["policies"] == [os.SCHED_FIFO]


def test_refused_priority_leaves_normal_scheduling_and_says_why() -> None:
    r = run_child(1000)  # outside 1-99: refused even for root
    assert r["error"].startswith("SCHED_FIFO 1000 refused:")
    assert r["policies"] == [os.SCHED_OTHER]


def test_set_fifo_reports_a_refusal() -> None:
    assert set_fifo(1000).startswith("SCHED_FIFO 1000 refused:")
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


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
