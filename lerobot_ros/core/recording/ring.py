"""The highlight ring buffer, ROS-free: the last N seconds of raw messages, kept in memory.

A rollout that just did something worth keeping (a save, a failure, a nice grasp) can be saved
after the fact: the recorder puts every raw CDR message it receives into this ring, whether or not
an episode is open, and `/recorder/save_highlight` turns the ring's last `seconds` into an
episode bag (see EpisodeBagWriter.start_highlight).

Bounds: the ring keeps messages received within `max_seconds` of the newest one and at most
`max_bytes` of payload; whichever bound is hit drops the oldest messages first. The two drop
counters tell them apart: `aged` (older than max_seconds, the normal case) and `evicted` (pushed
out by the byte bound: the ring then holds less than max_seconds, which diagnostics report).

Entries are (topic, receive time ns, header stamp ns or None, bytes). The bytes objects are the
ones the subscription delivered, shared with the bag writer's queue, never copied.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass


class HighlightError(ValueError):
    """A highlight cannot be saved (ring empty, bad `seconds`); the text says why."""


@dataclass(frozen=True)
class RingEntry:
    topic: str
    t_ns: int  # receive (bag log) time
    stamp_ns: int | None  # header stamp, when the type has one
    data: bytes


@dataclass(frozen=True)
class Selection:
    """What a highlight saves: `entries` in arrival order, all received at or after `start_ns`."""

    start_ns: int  # the window's start: the episode's EPISODE_START stamp
    entries: list[RingEntry]
    skipped_late: int  # received in the window but stamped before its start (not saved)

    @property
    def first_ns(self) -> int:
        return self.entries[0].t_ns

    @property
    def last_ns(self) -> int:
        return self.entries[-1].t_ns

    @property
    def bytes(self) -> int:
        return sum(len(e.data) for e in self.entries)


class HighlightRing:
    """Bounded by seconds and bytes; `add` is O(1) amortized and never blocks on anything but a
    short lock (ROS callbacks add, the save service selects)."""

    def __init__(self, max_seconds: float, max_bytes: int) -> None:
        if not (math.isfinite(max_seconds) and max_seconds > 0):
            raise ValueError(f"max_seconds = {max_seconds!r}: must be a finite number > 0")
        if max_bytes < 1:
            raise ValueError(f"max_bytes = {max_bytes!r}: must be >= 1")
        self.max_ns = int(max_seconds * 1e9)
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        self._ring: deque[RingEntry] = deque()
        self._bytes = 0
        self.added = 0
        self.aged = 0  # dropped for being older than max_seconds
        self.evicted = 0  # dropped by the byte bound (the ring then spans less than max_seconds)
        self.too_big = 0  # single messages larger than max_bytes (never held)

    def add(self, topic: str, data: bytes, t_ns: int, stamp_ns: int | None = None) -> None:
        size = len(data)
        with self._lock:
            self.added += 1
            if size > self.max_bytes:
                self.too_big += 1
                return
            self._ring.append(RingEntry(topic, t_ns, stamp_ns, data))
            self._bytes += size
            while self._bytes > self.max_bytes:
                self._bytes -= len(self._ring.popleft().data)
                self.evicted += 1
            self._age(t_ns)

    def _age(self, now_ns: int) -> None:
        cutoff = now_ns - self.max_ns
        while self._ring and self._ring[0].t_ns < cutoff:
            self._bytes -= len(self._ring.popleft().data)
            self.aged += 1

    def age(self, now_ns: int) -> None:
        """Drop what is older than max_seconds at `now_ns` (when nothing came for a while)."""
        with self._lock:
            self._age(now_ns)

    def state(self) -> tuple[int, int, float]:
        """(messages, bytes, seconds spanned) held now."""
        with self._lock:
            span = (self._ring[-1].t_ns - self._ring[0].t_ns) / 1e9 if self._ring else 0.0
            return len(self._ring), self._bytes, span

    def select(self, now_ns: int, seconds: float) -> Selection:
        """The messages of the last `seconds` before `now_ns` (0 = all the ring holds), in
        arrival order. As in a live episode, a message stamped before the window's start (an old
        sample, or a transient-local event replayed late) is left out. The ring keeps them all:
        a highlight can be saved again. Raises HighlightError when nothing would be saved."""
        if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds >= 0):
            raise HighlightError(f"seconds = {seconds!r}: must be a finite number >= 0")
        with self._lock:
            self._age(now_ns)
            if not self._ring:
                raise HighlightError(
                    "the highlight ring buffer is empty (no message received in the last "
                    f"{self.max_ns / 1e9:g} s)"
                )
            oldest = self._ring[0].t_ns
            start = oldest if seconds == 0 else max(oldest, now_ns - int(seconds * 1e9))
            entries, late = [], 0
            # Newest first, stopping at the window's start: a short highlight of a long ring
            # touches only its own messages.
            for e in reversed(self._ring):
                if e.t_ns < start:
                    break
                if e.stamp_ns is not None and e.stamp_ns < start:
                    late += 1
                    continue
                entries.append(e)
        entries.reverse()
        if not entries:
            raise HighlightError(
                f"no message in the last {seconds:g} s of the highlight ring buffer"
            )
        return Selection(start, entries, late)
