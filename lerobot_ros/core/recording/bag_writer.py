"""Episode bags, ROS-free: raw CDR messages in, one rosbag2 bag per episode out.

    writer = EpisodeBagWriter("~/recordings", storage="mcap")
    writer.add_topic("/follower/joint_states", "sensor_msgs/msg/JointState")
    writer.start_episode("pick the cube", t_ns)          # EPISODE_START is the bag's first message
    writer.write("/follower/joint_states", cdr_bytes, t_ns)   # never blocks: queued or dropped
    writer.stop_episode(t_ns)                            # EPISODE_STOP last, then closed
    writer.close()

Layout: `<output_dir>/<session stamp>/episode_<NNNNNN>/` (a rosbag2 directory: metadata.yaml +
`episode_<NNNNNN>.mcap` or `.db3`), one session directory per writer, episodes numbered from 0.

Why one bag per episode:
- A crash (SIGKILL, power loss, a full disk) can only cost the episode that is open; every
  earlier bag was closed (index, summary and metadata.yaml written, then fsync'ed) when its
  episode ended. A bag directory is complete exactly when it has metadata.yaml: rosbags writes
  that file last and atomically (temporary file + rename), so a crashed episode is a directory
  without metadata.yaml that readers refuse, never a bag that silently ends early.
- Discarding is a property of one bag: the DISCARD event is its last message and its
  metadata.yaml says `lerobot_ros.status: discarded` (or the directory is removed with
  `delete_discarded`); nothing has to be cut out of a long session bag.
- The dataset converter splits by episode events anyway, so one bag per episode costs it
  nothing, and an episode can be copied, replayed (`ros2 bag play`) or deleted on its own.

Every message of an episode arrives here from a ROS callback: `write()` only appends to a
bounded queue (messages and bytes), and one background thread does every disk operation, so no
callback ever waits for the disk. A full queue drops the new message and counts it. Message
definitions come from rosbags' Kilted typestore (standard types) or from `.msg` files found in
`<root>/<package>/msg/<Type>.msg` under the search roots (lerobot_msgs from this source tree
or an install's `share/`), so readers decode the bags without our packages.

Counters per topic (`stats()`): `received` (offered while an episode was open), `written`,
`dropped` (queue full), `late` (header stamp earlier than the episode's start: captured before
the episode began, e.g. a transient-local event replayed to a late subscriber; not written),
`failed` (disk error), `idle` (arrived while no episode was open; not written).

Highlights (`start_highlight`): an episode made after the fact from the recorder's ring buffer
(lerobot_ros/core/recording/ring.py), same bag layout, with HIGHLIGHT_SAVED before EPISODE_STOP.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EVENT_TYPE = "lerobot_msgs/msg/EpisodeEvent"
EPISODE_START, EPISODE_STOP, EPISODE_DISCARD, HIGHLIGHT_SAVED = 0, 1, 2, 3
# What a queued message is: a live one (bounded by queue_size / queue_bytes, counted), one from
# the highlight ring (counted apart, never dropped) or an episode event (never dropped).
EVENT, LIVE, RING = 0, 1, 2
STATUS_KEY = "lerobot_ros.status"  # metadata.yaml custom_data: saved | discarded
_SOURCE_ROOT = Path(__file__).resolve().parents[3]  # holds lerobot_msgs/msg/*.msg


class UnknownTypeError(LookupError):
    """No message definition found for a type (not in the typestore, no .msg file)."""


def header_stamp_ns(data: bytes | memoryview) -> int | None:
    """Header stamp (ns) of a CDR message whose first field is std_msgs/Header, without
    deserializing it; None when the encapsulation is not one we know."""
    if len(data) < 16:
        return None
    kind = (data[0] << 8) | data[1]
    if kind in (0x0000, 0x0001, 0x0006, 0x0007):  # CDR, XCDR2 plain: struct follows
        offset = 4
    elif kind in (0x0008, 0x0009):  # XCDR2 delimited: a 4-byte DHEADER first
        offset = 8
    else:
        return None
    sec, nanosec = struct.unpack_from("<iI" if kind & 1 else ">iI", data, offset)
    return sec * 1_000_000_000 + nanosec


class TypeRegistry:
    """Message definitions (ros2msg text + RIHS01 hash) for rosbag2 connections."""

    def __init__(self, search_roots: Iterable[str | Path] = ()) -> None:
        from rosbags.typesys import Stores, get_typestore

        self.typestore = get_typestore(Stores.ROS2_KILTED)
        roots = [Path(r) for r in search_roots]
        roots.append(_SOURCE_ROOT)
        for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
            if prefix:
                roots.append(Path(prefix) / "share")
        self.search_roots = roots
        self._defs: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def _find_msg(self, typename: str) -> Path | None:
        pkg, _, name = typename.split("/")
        for root in self.search_roots:
            path = root / pkg / "msg" / f"{name}.msg"
            if path.is_file():
                return path
        return None

    def _ensure(self, typename: str, seen: set[str]) -> None:
        from rosbags.typesys import get_types_from_msg
        from rosbags.typesys.base import Nodetype

        if typename in self.typestore.types or typename in seen:
            return
        seen.add(typename)
        parts = typename.split("/")
        if len(parts) != 3 or parts[1] != "msg":
            raise UnknownTypeError(f"{typename!r} is not a message type name (pkg/msg/Name)")
        path = self._find_msg(typename)
        if path is None:
            roots = ", ".join(str(r) for r in self.search_roots)
            raise UnknownTypeError(f"no definition of {typename} in the typestore or under {roots}")
        types = get_types_from_msg(path.read_text(), typename)
        # Register what it refers to first (nested custom types of the same or another package).
        for _consts, fields_ in types.values():
            for _name, (kind, sub) in fields_:
                ref = sub[0] if kind in (Nodetype.ARRAY, Nodetype.SEQUENCE) else sub
                if isinstance(ref, tuple) and ref and ref[0] == Nodetype.NAME:
                    ref = ref[1]
                if isinstance(ref, str):
                    self._ensure(ref, seen)
        self.typestore.register(types)

    def definition(self, typename: str) -> tuple[str, str]:
        """(msgdef, rihs01) of `typename`; raises UnknownTypeError."""
        with self._lock:
            if typename not in self._defs:
                self._ensure(typename, set())
                msgdef, _ = self.typestore.generate_msgdef(typename, ros_version=2)
                self._defs[typename] = (msgdef, self.typestore.hash_rihs01(typename))
            return self._defs[typename]

    def has_header(self, typename: str) -> bool:
        """True when the first field is `std_msgs/Header header` (its stamp is readable raw)."""
        self.definition(typename)
        fields_ = self.typestore.fielddefs[typename][1]
        if not fields_:
            return False
        name, (_kind, ref) = fields_[0]
        return name == "header" and ref == "std_msgs/msg/Header"

    def serialize(self, typename: str, **values: Any) -> bytes:
        """CDR bytes of a message built from rosbags' classes (exact: rosbags reads it back)."""
        self.definition(typename)
        return bytes(self.typestore.serialize_cdr(self._build(typename, values), typename))

    def _build(self, typename: str, values: dict[str, Any]) -> Any:
        cls = self.typestore.types[typename]
        return cls(**values)

    def event(
        self, kind: int, stamp_ns: int, episode_index: int, task: str, source: str, detail: str
    ) -> bytes:
        header_cls = self.typestore.types["std_msgs/msg/Header"]
        time_cls = self.typestore.types["builtin_interfaces/msg/Time"]
        stamp = time_cls(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
        return self.serialize(
            EVENT_TYPE,
            header=header_cls(stamp=stamp, frame_id=""),
            type=kind,
            episode_index=episode_index,
            task=task,
            source=source,
            detail=detail,
        )


@dataclass
class TopicStats:
    msgtype: str
    received: int = 0
    written: int = 0
    dropped: int = 0
    late: int = 0
    failed: int = 0
    idle: int = 0


@dataclass
class EpisodeInfo:
    """One episode; `message_count` counts the messages accepted into its bag (events too)."""

    index: int
    path: Path
    task: str
    start_ns: int
    stop_ns: int = 0
    message_count: int = 0
    status: str = "recording"  # recording | saved | discarded | failed
    error: str = ""
    # Highlight episodes (start_highlight): HIGHLIGHT_SAVED comes just before EPISODE_STOP.
    highlight: bool = False
    first_ns: int = 0  # receive time of the first / last message saved from the ring
    last_ns: int = 0
    highlight_detail: str = ""
    closed: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def duration_s(self) -> float:
        return max(0, self.stop_ns - self.start_ns) / 1e9 if self.stop_ns else 0.0


def episode_status(path: str | Path) -> str:
    """saved | discarded (from metadata.yaml), or incomplete (no metadata.yaml: crashed)."""
    meta = Path(path) / "metadata.yaml"
    if not meta.is_file():
        return "incomplete"
    info = yaml.safe_load(meta.read_text()).get("rosbag2_bagfile_information", {})
    return (info.get("custom_data") or {}).get(STATUS_KEY, "saved")


class EpisodeBagWriter:
    """One rosbag2 bag per episode, written on a background thread from a bounded queue."""

    def __init__(
        self,
        output_dir: str | Path,
        *,
        storage: str = "mcap",
        queue_size: int = 2000,
        queue_bytes: int = 1 << 30,
        events_topic: str = "/recorder/events",
        session: str | None = None,
        delete_discarded: bool = False,
        fsync: bool = True,
        registry: TypeRegistry | None = None,
    ) -> None:
        from rosbags.rosbag2 import StoragePlugin

        plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
        if storage not in plugins:
            raise ValueError(f"storage {storage!r}: must be one of {sorted(plugins)}")
        if queue_size < 1 or queue_bytes < 1:
            raise ValueError("queue_size and queue_bytes must be >= 1")
        self.storage = storage
        self._plugin = plugins[storage]
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes
        self.events_topic = events_topic
        self.delete_discarded = delete_discarded
        self.fsync = fsync
        self.types = registry or TypeRegistry()
        self.session_dir = self._reserve_session(Path(output_dir).expanduser(), session)

        self._cond = threading.Condition(threading.RLock())  # reentrant: start_highlight
        self._queue: deque[tuple[Any, ...]] = deque()
        self._queued_msgs = 0  # data messages in the queue (events and control items excluded)
        self._queued_bytes = 0
        self._ring_msgs = 0  # highlight-ring messages in the queue (not bounded)
        self._ring_bytes = 0
        self._inflight = 0
        self._stats: dict[str, TopicStats] = {}
        self._stamped: dict[str, bool] = {}
        self._current: EpisodeInfo | None = None
        self._next_index = 0
        self.episodes: list[EpisodeInfo] = []
        self.errors = 0
        self.last_error = ""
        self._closed = False
        self.add_topic(events_topic, EVENT_TYPE)
        self._thread = threading.Thread(target=self._run, name="bag-writer", daemon=True)
        self._thread.start()

    @staticmethod
    def _reserve_session(root: Path, session: str | None) -> Path:
        base = session or time.strftime("%Y%m%d_%H%M%S")
        root.mkdir(parents=True, exist_ok=True)
        for n in range(1000):
            path = root / (base if n == 0 else f"{base}_{n}")
            try:
                path.mkdir()  # atomic: two recorders started in the same second differ
                return path
            except FileExistsError:
                continue
        raise FileExistsError(f"no free session directory for {base!r} under {root}")

    # --- topics ----------------------------------------------------------------------------
    def add_topic(self, topic: str, msgtype: str) -> None:
        """Register a topic (its definition is resolved now); raises UnknownTypeError."""
        self.types.definition(msgtype)
        stamped = self.types.has_header(msgtype)
        with self._cond:
            old = self._stats.get(topic)
            if old is not None and old.msgtype != msgtype:
                raise ValueError(f"{topic}: already registered as {old.msgtype}, not {msgtype}")
            self._stats.setdefault(topic, TopicStats(msgtype))
            self._stamped[topic] = stamped

    @property
    def topics(self) -> dict[str, str]:
        with self._cond:
            return {t: s.msgtype for t, s in self._stats.items()}

    # --- episodes --------------------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self._current is not None

    @property
    def current(self) -> EpisodeInfo | None:
        return self._current

    def _open_episode(
        self,
        task: str,
        t_ns: int,
        source: str,
        detail: str,
        carry: Sequence[tuple[str, bytes]],
    ) -> EpisodeInfo:
        """Number the next episode, make it current and queue its opening (EPISODE_START, then
        the carried state). Called with the lock held."""
        if self._closed:
            raise RuntimeError("writer is closed")
        if self._current is not None:
            raise RuntimeError(f"episode {self._current.index} is still recording")
        index = self._next_index
        self._next_index += 1
        ep = EpisodeInfo(index, self.session_dir / f"episode_{index:06d}", task, t_ns)
        self._current = ep
        self.episodes.append(ep)
        event = self.types.event(EPISODE_START, t_ns, index, task, source, detail)
        self._queue.append(("open", ep))
        self._push_event(ep, event, t_ns)
        self._push_carried(ep, carry, t_ns)
        return ep

    def start_episode(
        self,
        task: str,
        t_ns: int,
        source: str = "",
        detail: str = "",
        carry: Sequence[tuple[str, bytes]] = (),
    ) -> EpisodeInfo:
        """Open the next episode's bag; its first message is EPISODE_START with `task`.
        `carry`: (topic, CDR bytes) of state received before the episode that still holds at
        its start (an intervention in progress): logged right after EPISODE_START with their
        own, earlier stamps, past the `late` rule (see _push_carried)."""
        self._check_topics(topic for topic, _data in carry)
        with self._cond:
            ep = self._open_episode(task, t_ns, source, detail, carry)
            self._cond.notify_all()
        return ep

    def _check_topics(self, topics: Iterable[str]) -> None:
        for topic in set(topics):
            if topic not in self._stamped:
                raise KeyError(f"topic {topic} was not added")

    def _push_carried(self, ep: EpisodeInfo, carry: Sequence[tuple[str, bytes]], t: int) -> None:
        # Logged at the episode's start (so they follow EPISODE_START); never dropped, like
        # events. The converter reads an intervention START stamped before the episode as
        # "on from the first frame".
        for topic, data in carry:
            self._stats[topic].received += 1
            self._queue.append(("msg", topic, t, data, EVENT))
            ep.message_count += 1

    def start_highlight(
        self,
        task: str,
        start_ns: int,
        entries: Sequence[tuple[str, int, bytes]],
        *,
        stop_ns: int | None = None,
        source: str = "",
        detail: str = "",
        highlight_detail: str = "",
        carry: Sequence[tuple[str, bytes]] = (),
    ) -> EpisodeInfo:
        """Open an episode made of messages received before now (the highlight ring buffer).

        Its bag has the layout of any episode, so the converter needs nothing special:
        EPISODE_START (with `task`) stamped `start_ns`, the window's start, and logged at that
        time, so it is the first message; then `entries` (topic, receive time, CDR bytes) in
        arrival order, each logged at its own receive time as a live message would have been.
        With `stop_ns` the episode ends at once: HIGHLIGHT_SAVED, then EPISODE_STOP, both
        stamped `stop_ns` (>= the last entry's receive time, so they come last). Without it the
        episode stays open, live `write()`s go on into it, and `stop_episode` ends it the same
        way (HIGHLIGHT_SAVED with `highlight_detail`, then EPISODE_STOP). `carry`: as in
        start_episode, the state that held at `start_ns`.

        The entries were received already and the ring holds them anyway (the same bytes
        objects): they are queued past the live queue bounds, never dropped, and counted apart
        (`queue_depth` includes them) so that they do not push live messages out.
        """
        if not entries:
            raise ValueError("a highlight needs at least one message")
        self._check_topics([e[0] for e in entries] + [topic for topic, _data in carry])
        with self._cond:
            ep = self._open_episode(task, start_ns, source, detail, carry)
            ep.highlight = True
            ep.first_ns, ep.last_ns = entries[0][1], entries[-1][1]
            ep.highlight_detail = highlight_detail
            for topic, t_ns, data in entries:
                self._stats[topic].received += 1
                self._ring_msgs += 1
                self._ring_bytes += len(data)
                self._queue.append(("msg", topic, t_ns, data, RING))
            ep.message_count += len(entries)
            self._cond.notify_all()
            if stop_ns is not None:  # under the same (reentrant) lock: no live write slips in
                self.stop_episode(max(stop_ns, ep.last_ns), source=source, detail="saved")
        return ep

    def stop_episode(
        self,
        t_ns: int,
        *,
        discard: bool = False,
        source: str = "",
        detail: str = "",
        keep: bool = False,
    ) -> EpisodeInfo:
        """End the episode: EPISODE_STOP (or DISCARD) is its last message; the bag is closed
        (and fsync'ed) on the writer thread; `info.closed` is set once it is on disk. A
        discarded bag is kept and marked, or removed with `delete_discarded` unless `keep`."""
        with self._cond:
            ep = self._current
            if ep is None:
                raise RuntimeError("no episode is recording")
            if ep.highlight and not discard:
                saved = self.types.event(
                    HIGHLIGHT_SAVED, t_ns, ep.index, ep.task, source, ep.highlight_detail
                )
                self._push_event(ep, saved, t_ns)
            kind = EPISODE_DISCARD if discard else EPISODE_STOP
            event = self.types.event(kind, t_ns, ep.index, ep.task, source, detail)
            self._push_event(ep, event, t_ns)
            ep.stop_ns = t_ns
            delete = discard and self.delete_discarded and not keep
            self._queue.append(("close", ep, discard, delete))
            self._current = None
            self._cond.notify_all()
        return ep

    def _push_event(self, ep: EpisodeInfo, data: bytes, t_ns: int) -> None:
        # Events bypass the queue limits: they delimit episodes and are never dropped.
        self._stats[self.events_topic].received += 1
        self._queue.append(("msg", self.events_topic, t_ns, data, EVENT))
        ep.message_count += 1

    # --- messages (the hot path, called from ROS callbacks) ---------------------------------
    def header_stamp(self, topic: str, data: bytes | memoryview) -> int | None:
        """The header stamp of a message of `topic` (None when its type has no header)."""
        stamped = self._stamped.get(topic)
        if stamped is None:
            raise KeyError(f"topic {topic} was not added")
        return header_stamp_ns(data) if stamped else None

    def write(self, topic: str, data: bytes | memoryview, t_ns: int, stamp: int | None = -1) -> str:
        """Queue one raw CDR message received at `t_ns` (bag log time). Never blocks on disk.
        `stamp`: its header stamp when the caller read it already (-1: read it here).
        Returns "queued", "idle" (no episode open), "late" or "dropped"."""
        if stamp == -1:
            stamp = self.header_stamp(topic, data)
        with self._cond:
            st = self._stats[topic]
            ep = self._current
            if ep is None:
                st.idle += 1
                return "idle"
            st.received += 1
            if stamp and stamp < ep.start_ns:
                st.late += 1
                return "late"
            size = len(data)
            if self._queued_msgs >= self.queue_size or self._queued_bytes + size > self.queue_bytes:
                st.dropped += 1
                return "dropped"
            self._queued_msgs += 1
            self._queued_bytes += size
            ep.message_count += 1
            ep.last_ns = t_ns
            self._queue.append(("msg", topic, t_ns, data, LIVE))
            self._cond.notify()
        return "queued"

    # --- state -------------------------------------------------------------------------------
    def stats(self) -> dict[str, TopicStats]:
        with self._cond:
            return {t: TopicStats(**vars(s)) for t, s in self._stats.items()}

    def queue_depth(self) -> tuple[int, int]:
        """(messages, bytes) waiting for the disk (live and highlight-ring messages)."""
        with self._cond:
            return self._queued_msgs + self._ring_msgs, self._queued_bytes + self._ring_bytes

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is on disk (bags of stopped episodes closed)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._inflight, timeout)

    def close(self, timeout: float | None = 30.0, source: str = "shutdown") -> bool:
        """End an open episode as discarded (the operator never confirmed it; its bag is kept
        on disk whatever `delete_discarded` says), write everything queued, stop the thread.
        True when all is on disk within `timeout`."""
        if self._current is not None:
            self.stop_episode(
                time.time_ns(),
                discard=True,
                source=source,
                detail="recorder shut down mid-episode",
                keep=True,
            )
        with self._cond:
            if self._closed:
                return not self._thread.is_alive()
            self._closed = True
            self._queue.append(("quit",))
            self._cond.notify_all()
        self._thread.join(timeout)
        done = not self._thread.is_alive()
        if done:
            with contextlib.suppress(OSError):
                self.session_dir.rmdir()  # only if no episode was ever recorded
        return done

    # --- the writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        bag: Any = None
        conns: dict[str, Any] = {}
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue))
                batch = []
                while self._queue and len(batch) < 64:
                    item = self._queue.popleft()
                    if item[0] == "msg" and item[4] == LIVE:
                        self._queued_msgs -= 1
                        self._queued_bytes -= len(item[3])
                    elif item[0] == "msg" and item[4] == RING:
                        self._ring_msgs -= 1
                        self._ring_bytes -= len(item[3])
                    batch.append(item)
                self._inflight = len(batch)
            written: dict[str, int] = {}
            failed: dict[str, int] = {}
            quit_ = False
            for item in batch:
                kind = item[0]
                if kind == "msg":
                    _, topic, t_ns, data, _kind = item
                    if bag is None:
                        failed[topic] = failed.get(topic, 0) + 1
                        continue
                    try:
                        conn = conns.get(topic)
                        if conn is None:
                            conn = conns[topic] = self._connection(bag, topic)
                        bag.write(conn, t_ns, data)
                        written[topic] = written.get(topic, 0) + 1
                    except Exception as exc:
                        failed[topic] = failed.get(topic, 0) + 1
                        self._error(f"write {topic}: {exc}")
                elif kind == "open":
                    bag, conns = self._open(item[1]), {}
                elif kind == "close":
                    self._close(bag, item[1], item[2], item[3])
                    bag, conns = None, {}
                elif kind == "quit":
                    quit_ = True
            with self._cond:
                for topic, n in written.items():
                    self._stats[topic].written += n
                for topic, n in failed.items():
                    self._stats[topic].failed += n
                self._inflight = 0
                self._cond.notify_all()
            if quit_:
                return

    def _error(self, text: str) -> None:
        with self._cond:
            self.errors += 1
            self.last_error = text

    def _open(self, ep: EpisodeInfo) -> Any:
        from rosbags.rosbag2 import Writer

        try:
            bag = Writer(ep.path, version=9, storage_plugin=self._plugin)
            bag.open()
        except Exception as exc:
            ep.status, ep.error = "failed", f"open {ep.path}: {exc}"
            self._error(ep.error)
            return None
        return bag

    def _connection(self, bag: Any, topic: str) -> Any:
        msgtype = self._stats[topic].msgtype
        msgdef, rihs01 = self.types.definition(msgtype)
        return bag.add_connection(topic, msgtype, msgdef=msgdef, rihs01=rihs01)

    def _close(self, bag: Any, ep: EpisodeInfo, discard: bool, delete: bool) -> None:
        try:
            if bag is not None:
                bag.set_custom_data(STATUS_KEY, "discarded" if discard else "saved")
                bag.set_custom_data("lerobot_ros.task", ep.task)
                bag.set_custom_data("lerobot_ros.episode_index", str(ep.index))
                bag.close()
                if self.fsync:
                    _fsync_tree(ep.path)
                ep.status = "discarded" if discard else "saved"
                if delete:
                    shutil.rmtree(ep.path, ignore_errors=True)
        except Exception as exc:
            ep.status, ep.error = "failed", f"close {ep.path}: {exc}"
            self._error(ep.error)
        finally:
            ep.closed.set()


def _fsync_tree(path: Path) -> None:
    """fsync every file of a bag directory, then the directory and its parent."""
    for p in sorted(path.iterdir()):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for d in (path, path.parent):
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_episode(path: str | Path) -> Sequence[tuple[str, str, int, Any]]:
    """(topic, msgtype, log time ns, deserialized message) of a bag, in log-time order; for
    tests and inspection (the converter streams instead)."""
    from rosbags.highlevel import AnyReader

    out = []
    with AnyReader([Path(path)]) as reader:
        for conn, t_ns, raw in reader.messages():
            out.append((conn.topic, conn.msgtype, t_ns, reader.deserialize(raw, conn.msgtype)))
    return out
