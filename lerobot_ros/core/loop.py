"""A fixed-rate loop in its own thread, on absolute deadlines.

Device I/O runs here rather than in an rclpy timer: measured on this machine, an idle rclpy
timer at 100 Hz has a p99 period error of ~2.7 ms, this loop ~0.5 ms (bench/bus.py).

Real-time priority is a process matter here: `run_node` puts a node's whole process under
SCHED_FIFO (`set_process_fifo`, parameter `rt_priority`), as ros2_control's controller manager
does for its update loop. A FIFO loop thread alone is not enough in Python: it needs the GIL,
which a normal thread of the same process may hold while it waits for a CPU. A loop that runs
FIFO and falls behind still sleeps a tenth of a period per cycle, so it cannot starve the
machine.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress


def set_fifo(priority: int, tid: int = 0) -> str:
    """SCHED_FIFO at `priority` for thread `tid` (0 = the calling thread); "" or why not."""
    try:
        os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError) as exc:  # no privilege, or no such call here
        return f"SCHED_FIFO {priority} refused: {exc}"
    return ""


def set_process_fifo(priority: int) -> str:
    """SCHED_FIFO for every thread of this process (threads started later inherit it from
    their creator). In Python a real-time loop thread alone is not enough: it must take the
    GIL, and a normal thread holding it can be preempted by any other process meanwhile."""
    errors = []
    for tid in sorted(int(t) for t in os.listdir("/proc/self/task")):
        error = set_fifo(priority, tid)
        if error and os.path.exists(f"/proc/self/task/{tid}"):  # not a thread that just ended
            errors.append(error)
    return errors[0] if errors else ""


def _thread_policies() -> dict[int, tuple[int, int]]:
    """{thread id: (policy, priority)} for this process's threads."""
    out = {}
    for name in os.listdir("/proc/self/task"):
        tid = int(name)
        with suppress(OSError):  # the thread may have ended meanwhile
            out[tid] = (os.sched_getscheduler(tid), os.sched_getparam(tid).sched_priority)
    return out


@contextmanager
def no_realtime_leak() -> Iterator[None]:
    """Undo real-time scheduling that a library gives itself inside this block.

    Why: the SVT-AV1 encoder (libsvtav1, through PyAV) switches the thread that opens it, and
    the worker threads it starts, to SCHED_FIFO 99 when the process runs as root. A converter
    or training process would then encode, and later start every other thread, at the highest
    real-time priority. Threads whose policy changed in the block get their old one back; new
    real-time threads get normal scheduling.
    """
    before = _thread_policies() if os.path.isdir("/proc/self/task") else None
    try:
        yield
    finally:
        if before is not None:
            for tid, now in _thread_policies().items():
                if now[0] in (os.SCHED_FIFO, os.SCHED_RR) and before.get(tid) != now:
                    policy, priority = before.get(tid, (os.SCHED_OTHER, 0))
                    with suppress(OSError):
                        os.sched_setscheduler(tid, policy, os.sched_param(priority))


class PeriodicThread:
    """Calls `fn()` every `period` s until stop(); a late cycle does not cause a burst."""

    def __init__(self, period: float, fn: Callable[[], None], name: str = "io") -> None:
        if not period > 0:
            raise ValueError(f"period must be > 0, got {period!r}")
        self.period = period
        self.fn = fn
        self.name = name
        self.overruns = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop and wait for the current cycle to finish (unless called from the loop)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _run(self) -> None:
        deadline = time.perf_counter()
        while not self._stop.is_set():
            deadline += self.period
            delay = deadline - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                if _is_fifo():  # behind: a FIFO thread still leaves the CPU now and then
                    time.sleep(self.period / 10)
                if delay < -self.period:  # more than a cycle behind: skip, don't burst
                    self.overruns += 1
                    deadline = time.perf_counter()
            if self._stop.is_set():
                break
            self.fn()


def _is_fifo() -> bool:
    try:
        return os.sched_getscheduler(0) == os.SCHED_FIFO
    except (OSError, AttributeError):
        return False
