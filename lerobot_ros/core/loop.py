"""A fixed-rate loop in its own thread, on absolute deadlines.

Device I/O runs here rather than in an rclpy timer: measured on this machine, an idle rclpy
timer at 100 Hz has a p99 period error of ~2.7 ms, this loop ~0.5 ms (bench/bus.py).

With `priority` > 0 the thread asks for SCHED_FIFO at that priority, as ros2_control's
controller manager does for its update loop: on a loaded machine a normal thread waits for a
CPU (the 30 Hz chunk player's p99 tick jitter 1-3 ms while recording), a FIFO one does not.
`run_node` also puts the node's whole process under SCHED_FIFO (`set_process_fifo`), since the
loop needs the GIL from the other threads. Without the right (CAP_SYS_NICE or an `rtprio`
limit) the loop runs at normal priority and `priority_error` says why.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable


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


class PeriodicThread:
    """Calls `fn()` every `period` s until stop(); a late cycle does not cause a burst."""

    def __init__(
        self, period: float, fn: Callable[[], None], name: str = "io", priority: int = 0
    ) -> None:
        if not period > 0:
            raise ValueError(f"period must be > 0, got {period!r}")
        self.period = period
        self.fn = fn
        self.name = name
        self.priority = priority
        self.realtime = False  # SCHED_FIFO granted
        self.priority_error = ""  # why it was not, if asked for
        self.overruns = 0
        self._stop = threading.Event()
        self._scheduled = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread; returns once its scheduling policy is set (or refused)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._scheduled.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        self._scheduled.wait(2.0)

    def _set_priority(self) -> None:
        if self.priority > 0:
            # The calling thread only: the process's other threads stay as they are.
            self.priority_error = set_fifo(self.priority)
            self.realtime = not self.priority_error

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
        self._set_priority()
        self._scheduled.set()
        deadline = time.perf_counter()
        while not self._stop.is_set():
            deadline += self.period
            delay = deadline - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                if self.realtime:  # behind: a FIFO thread still leaves the CPU now and then
                    time.sleep(self.period / 10)
                if delay < -self.period:  # more than a cycle behind: skip, don't burst
                    self.overruns += 1
                    deadline = time.perf_counter()
            if self._stop.is_set():
                break
            self.fn()
