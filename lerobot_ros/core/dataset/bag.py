"""Read rosbag2 recordings without ROS (pure-Python `rosbags`) and split them into episodes.

A *bag* is a rosbag2 directory (with metadata.yaml; MCAP or sqlite3 storage, read through
`rosbags.highlevel.AnyReader`) or a bare `.mcap` / `.db3` file, or a directory holding such files
without metadata.yaml (a recorder that was killed never writes it). Bare files are read by a
tolerant scanner that keeps every complete record and reports where a truncated file ends, so a
killed recording still yields its complete episodes.

Episodes are delimited by `lerobot_msgs/msg/EpisodeEvent` messages (EPISODE_START carries the task,
EPISODE_STOP ends a saved episode, EPISODE_DISCARD drops it). Message types are decoded from the
definitions the bag stores; types without a stored definition fall back to the ROS 2 Kilted
typestore. Episode membership and all stamps use the *header* stamps (capture time), not the log
time. The whole bag is streamed in log order and only the current episode is held in memory.
"""

from __future__ import annotations

import sqlite3
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

# lerobot_msgs/msg/EpisodeEvent constants (kept in sync with lerobot_msgs/msg/EpisodeEvent.msg).
EPISODE_START = 0
EPISODE_STOP = 1
EPISODE_DISCARD = 2
HIGHLIGHT_SAVED = 3
INTERVENTION_START = 4
INTERVENTION_END = 5

JOINT_STATE = "sensor_msgs/msg/JointState"
IMAGE = "sensor_msgs/msg/Image"
EVENT_SUFFIX = "/EpisodeEvent"

# After EPISODE_STOP, keep collecting messages (by log time) this long: samples captured before
# the stop may be logged slightly after it.
STOP_GRACE_NS = 500_000_000


class BagError(Exception):
    """A bag cannot be opened or read at all."""


@dataclass
class Stream:
    """Samples of one topic: header stamps (ns) and decoded values, in arrival order."""

    msgtype: str
    stamps: list[int] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)

    def add(self, stamp: int, value: Any) -> None:
        self.stamps.append(stamp)
        self.values.append(value)

    def sorted(self) -> tuple[np.ndarray, list[Any]]:
        """(stamps int64, values), ordered by stamp (stable for equal stamps)."""
        stamps = np.asarray(self.stamps, dtype=np.int64)
        order = np.argsort(stamps, kind="stable")
        return stamps[order], [self.values[i] for i in order]


@dataclass
class JointSample:
    names: tuple[str, ...]
    position: np.ndarray  # float64, radians (or metres)


@dataclass
class Event:
    stamp_ns: int
    type: int
    episode_index: int
    task: str
    source: str
    detail: str
    topic: str


@dataclass
class Episode:
    """One episode of one bag. `status` is "complete", "incomplete" or "discarded"."""

    source: str
    bag_episode_index: int  # the recorder's episode counter from the events
    task: str
    start_ns: int
    stop_ns: int | None
    status: str = "complete"
    message: str = ""
    streams: dict[str, Stream] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.source} episode {self.bag_episode_index} ({self.task!r})"


# --------------------------------------------------------------------------------------------
# Message decoding
# --------------------------------------------------------------------------------------------


def stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def image_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB. rgb8, bgr8, rgba8, bgra8, mono8 are supported."""
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    enc = str(msg.encoding).lower()
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8uc1": 1, "8uc3": 3}
    if enc not in channels:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}")
    c = channels[enc]
    data = np.asarray(msg.data, dtype=np.uint8)
    if step < w * c or data.size < h * step:
        raise ValueError(f"image {w}x{h} {enc}: step {step} / {data.size} bytes do not fit")
    img = data[: h * step].reshape(h, step)[:, : w * c].reshape(h, w, c)
    if c == 1:
        return np.repeat(img, 3, axis=2)
    if enc.startswith("bgr"):
        img = img[:, :, 2::-1]
    elif c == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img)


def _decode(msgtype: str, msg: Any, topic: str) -> tuple[int, Any]:
    if msgtype == JOINT_STATE:
        return stamp_ns(msg.header), JointSample(
            tuple(msg.name), np.asarray(msg.position, dtype=np.float64).copy()
        )
    if msgtype == IMAGE:
        return stamp_ns(msg.header), image_to_rgb(msg)
    if msgtype.endswith(EVENT_SUFFIX):
        st = stamp_ns(msg.header)
        return st, Event(
            st, int(msg.type), int(msg.episode_index), msg.task, msg.source, msg.detail, topic
        )
    raise AssertionError(msgtype)


def _wanted(msgtype: str) -> bool:
    return msgtype in (JOINT_STATE, IMAGE) or msgtype.endswith(EVENT_SUFFIX)


def _event_only(msgtype: str) -> bool:
    return msgtype.endswith(EVENT_SUFFIX)


# --------------------------------------------------------------------------------------------
# Raw sources: (topic, msgtype, log_time, rawdata) + a typestore
# --------------------------------------------------------------------------------------------


@dataclass
class _Raw:
    name: str
    topics: dict[str, str]  # topic -> msgtype
    typestore: Any
    messages: Callable[[], Iterator[tuple[str, int, bytes]]]
    warnings: list[str]


def _typestore_from_defs(defs: Sequence[tuple[str, str, str]]) -> Any:
    """ROS 2 Kilted typestore plus the types defined in the bag ((msgtype, encoding, text))."""
    from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types: dict[str, Any] = {}
    for msgtype, encoding, text in defs:
        if not text:
            continue
        if encoding in ("ros2idl", "omgidl", "idl"):
            sep = "=" * 80 + "\n"
            if text.startswith(f"{sep}IDL: "):
                for part in text.split(sep)[1:]:
                    types.update(get_types_from_idl(part.split("\n", 1)[1]))
            else:
                types.update(get_types_from_idl(text))
        else:
            types.update(get_types_from_msg(text, msgtype))
    # Custom types (lerobot_msgs) come from the bag; standard ones keep the built-in definition.
    store.register({k: v for k, v in types.items() if k not in store.fielddefs})
    return store


def _anyreader_source(path: Path, wanted: Callable[[str], bool] = _wanted) -> _Raw:
    from rosbags.highlevel import AnyReader

    reader = AnyReader([path])
    try:
        reader.open()
    except Exception as e:
        raise BagError(f"{path}: cannot open bag: {e}") from None
    topics = {c.topic: c.msgtype for c in reader.connections}

    def messages() -> Iterator[tuple[str, int, bytes]]:
        try:
            conns = [c for c in reader.connections if wanted(c.msgtype)]
            for conn, t, raw in reader.messages(connections=conns):
                yield conn.topic, t, raw
        finally:
            reader.close()

    return _Raw(str(path), topics, reader.typestore, messages, [])


_MCAP_MAGIC = b"\x89MCAP0\r\n"


class _TruncatedError(Exception):
    pass


def _take(bio: BytesIO | Any, n: int) -> bytes:
    data = bio.read(n)
    if len(data) != n:
        raise _TruncatedError
    return data


def _mcap_string(rec: BytesIO) -> str:
    (n,) = struct.unpack("<I", _take(rec, 4))
    return _take(rec, n).decode()


def _mcap_decompress(data: bytes, compression: str, size: int) -> bytes:
    if compression == "":
        return data
    if compression == "zstd":
        try:
            from compression import zstd  # Python >= 3.14
        except ImportError:
            from backports import zstd  # what rosbags depends on

        return zstd.decompress(data)
    if compression == "lz4":
        from lz4.frame import decompress

        return decompress(data)
    raise BagError(f"unsupported MCAP chunk compression {compression!r}")


def _mcap_source(path: Path, wanted: Callable[[str], bool] = _wanted) -> _Raw:
    """Tolerant MCAP scanner: reads records in file order, stops cleanly at a truncated end."""
    warnings: list[str] = []
    schemas: dict[int, tuple[str, str, str]] = {}
    channels: dict[int, tuple[str, str]] = {}  # id -> (topic, msgtype)
    records: list[tuple[int, int, bytes]] = []  # (channel, log_time, data) of wanted channels

    def scan_records(bio: Any, end: int | None, top: bool) -> bool:
        """Returns False when the data section ended (DataEnd / Footer)."""
        while end is None or bio.tell() < end:
            op_b = bio.read(1)
            if not op_b:
                if top:
                    raise _TruncatedError
                return True
            op = op_b[0]
            (length,) = struct.unpack("<Q", _take(bio, 8))
            body = _take(bio, length)
            rec = BytesIO(body)
            if op == 0x03:  # Schema
                (sid,) = struct.unpack("<H", _take(rec, 2))
                name, enc = _mcap_string(rec), _mcap_string(rec)
                (n,) = struct.unpack("<I", _take(rec, 4))
                schemas[sid] = (name, enc, _take(rec, n).decode())
            elif op == 0x04:  # Channel
                cid, sid = struct.unpack("<HH", _take(rec, 4))
                topic = _mcap_string(rec)
                channels[cid] = (topic, schemas.get(sid, ("", "", ""))[0])
            elif op == 0x05:  # Message
                cid, _seq, log_time, _pub = struct.unpack("<HIQQ", _take(rec, 22))
                ch = channels.get(cid)
                if ch and wanted(ch[1]):
                    records.append((cid, log_time, body[22:]))
            elif op == 0x06:  # Chunk
                _s, _e, usize, _crc = struct.unpack("<QQQI", _take(rec, 28))
                comp = _mcap_string(rec)
                (csize,) = struct.unpack("<Q", _take(rec, 8))
                inner = _mcap_decompress(_take(rec, csize), comp, usize)
                before = len(records)
                scan_records(BytesIO(inner), len(inner), top=False)
                # MCAP orders messages by log time only within what the writer chose; sort a chunk.
                records[before:] = sorted(records[before:], key=lambda r: r[1])
            elif op in (0x0F, 0x02):  # DataEnd, Footer
                return False
        return True

    with path.open("rb") as f:
        if f.read(8) != _MCAP_MAGIC:
            raise BagError(f"{path}: not an MCAP file (bad magic)")
        try:
            scan_records(f, None, top=True)
        except (_TruncatedError, zlib.error, ValueError, struct.error) as e:
            warnings.append(
                f"{path}: file ends without MCAP footer (truncated at byte {f.tell()}, "
                f"{type(e).__name__}); read {len(records)} complete messages before the cut"
            )
        except Exception as e:  # a corrupt chunk: keep what was read
            warnings.append(f"{path}: unreadable data after byte {f.tell()}: {e}")
    store = _typestore_from_defs(
        [(name, enc, text) for name, enc, text in schemas.values() if _wanted(name)]
    )
    topics = {topic: msgtype for topic, msgtype in channels.values()}

    def messages() -> Iterator[tuple[str, int, bytes]]:
        for cid, t, data in records:
            yield channels[cid][0], t, data

    return _Raw(str(path), topics, store, messages, warnings)


def _sqlite_source(path: Path, wanted_type: Callable[[str], bool] = _wanted) -> _Raw:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        topic_rows = db.execute("SELECT id, name, type FROM topics").fetchall()
    except sqlite3.Error as e:
        raise BagError(f"{path}: cannot read sqlite3 bag: {e}") from None
    defs: list[tuple[str, str, str]] = []
    try:
        for msgtype, enc, text in db.execute(
            "SELECT topic_type, encoding, encoded_message_definition FROM message_definitions"
        ):
            if _wanted(msgtype):
                defs.append((msgtype, enc, text))
    except sqlite3.Error:
        pass  # older bags: no stored definitions
    ids = {i: (name, typ) for i, name, typ in topic_rows}
    wanted = [i for i, (_n, typ) in ids.items() if wanted_type(typ)]

    def messages() -> Iterator[tuple[str, int, bytes]]:
        try:
            if wanted:
                q = (
                    "SELECT topic_id, timestamp, data FROM messages WHERE topic_id IN "
                    f"({','.join('?' * len(wanted))}) ORDER BY timestamp"
                )
                for tid, t, data in db.execute(q, wanted):
                    yield ids[tid][0], int(t), bytes(data)
        finally:
            db.close()

    return _Raw(
        str(path), {n: t for n, t in ids.values()}, _typestore_from_defs(defs), messages, []
    )


def _open_sources(path: Path, wanted: Callable[[str], bool] = _wanted) -> list[_Raw]:
    if not path.exists():
        raise BagError(f"{path}: no such bag")
    if path.is_dir():
        if (path / "metadata.yaml").exists():
            return [_anyreader_source(path, wanted)]
        files = sorted(path.glob("*.mcap")) + sorted(path.glob("*.db3"))
        if not files:
            raise BagError(f"{path}: directory holds no metadata.yaml, .mcap or .db3 file")
        sources = [_open_sources(f, wanted)[0] for f in files]
        sources[0].warnings.insert(
            0, f"{path}: no metadata.yaml (recorder killed?); reading the storage files directly"
        )
        return sources
    if path.suffix == ".mcap":
        return [_mcap_source(path, wanted)]
    if path.suffix == ".db3":
        return [_sqlite_source(path, wanted)]
    raise BagError(f"{path}: not a rosbag2 directory, .mcap or .db3 file")


# --------------------------------------------------------------------------------------------
# Episode splitting
# --------------------------------------------------------------------------------------------


def read_episodes(
    paths: Sequence[str | Path],
    *,
    event_topic: str | None = "/recorder/events",
    log: Callable[[str], None] | None = None,
    events_only: bool = False,
) -> Iterator[Episode]:
    """Yield every episode of the bags in order: complete ones with their streams, and
    incomplete / discarded ones (without streams) with a `message` saying why.

    `event_topic` is the topic whose EPISODE_START/STOP/DISCARD split episodes (None: any
    EpisodeEvent topic). Events of all EpisodeEvent topics (/recorder/events, /rollout/events,
    /watchdog/events, ...) are kept in `Episode.events`: those stamped within the episode, and
    an intervention still open when it began (INTERVENTION_START without END before its
    EPISODE_START in the same bag). `events_only`: read EpisodeEvent messages only (no streams;
    a quick first pass, e.g. to find out whether any episode has interventions).
    """
    say = log or (lambda _m: None)
    for p in paths:
        try:
            sources = list(_open_sources(Path(p), _event_only if events_only else _wanted))
        except BagError as e:
            # e.g. the bag of an episode whose recorder was killed before anything reached
            # the disk: report it, and convert the others (recorded data is never given up).
            say(f"warning: skipped unreadable bag: {e}")
            yield Episode(
                source=str(p),
                bag_episode_index=0,
                task="",
                start_ns=0,
                stop_ns=0,
                status="incomplete",
                message=f"unreadable bag: {e}",
            )
            continue
        for src in sources:
            for w in src.warnings:
                say(f"warning: {w}")
            yield from _split(src, event_topic, say)


def _split(src: _Raw, event_topic: str | None, say: Callable[[str], None]) -> Iterator[Episode]:
    current: Episode | None = None
    pending: list[tuple[int, Episode]] = []  # (log time after which it is final, episode)
    last: dict[str, tuple[int, Any]] = {}  # latest sample per topic (pre-roll for hold)
    last_intervention: Event | None = None  # latest INTERVENTION_START/END (any topic)
    store = src.typestore
    has_split_topic = event_topic is None or event_topic in src.topics

    def is_split(topic: str) -> bool:
        return event_topic is None or not has_split_topic or topic == event_topic

    def close_incomplete(ep: Episode, why: str) -> Episode:
        ep.status, ep.message, ep.streams = "incomplete", why, {}
        return ep

    for topic, log_time, raw in src.messages():
        msgtype = src.topics[topic]
        try:
            msg = store.deserialize_cdr(raw, msgtype)
            stamp, value = _decode(msgtype, msg, topic)
        except Exception as e:
            say(f"warning: {src.name}: cannot decode a {msgtype} on {topic}: {e}")
            continue
        while pending and log_time > pending[0][0]:
            yield pending.pop(0)[1]
        if isinstance(value, Event):
            for _, ep in pending:
                # Other nodes' events (interventions) carry no episode index of ours: they
                # belong to an episode by stamp. Ours also by index (a late DISCARD).
                within = ep.stop_ns is not None and ep.start_ns <= stamp <= ep.stop_ns
                ours = value.episode_index == ep.bag_episode_index and stamp >= ep.start_ns
                if within or (ours and is_split(topic)):
                    ep.events.append(value)
            if current is not None:
                current.events.append(value)
            if value.type in (INTERVENTION_START, INTERVENTION_END):
                last_intervention = value
            if not is_split(topic):
                continue
            if value.type == EPISODE_START:
                if current is not None:
                    yield close_incomplete(
                        current,
                        f"{current.name}: no EPISODE_STOP before the next EPISODE_START; skipped",
                    )
                current = Episode(src.name, value.episode_index, value.task, stamp, None)
                if last_intervention is not None and last_intervention.type == INTERVENTION_START:
                    current.events.append(last_intervention)  # still on as the episode begins
                current.events.append(value)
                for t, (st, v) in last.items():
                    current.streams.setdefault(t, Stream(src.topics[t])).add(st, v)
            elif value.type == EPISODE_STOP and current is not None:
                current.stop_ns = stamp
                pending.append((log_time + STOP_GRACE_NS, current))
                current = None
            elif value.type == EPISODE_DISCARD:
                targets = [ep for _, ep in pending if ep.bag_episode_index == value.episode_index]
                if current is not None:
                    targets.append(current)
                    current = None
                for ep in targets:
                    ep.status, ep.streams = "discarded", {}
                    ep.message = f"{ep.name}: discarded (EPISODE_DISCARD)"
                    if ep in [e for _, e in pending]:
                        pending = [(t, e) for t, e in pending if e is not ep]
                    yield ep
            continue
        last[topic] = (stamp, value)
        if current is not None:
            current.streams.setdefault(topic, Stream(msgtype)).add(stamp, value)
        for _, ep in pending:
            if ep.stop_ns is not None and stamp <= ep.stop_ns:
                ep.streams.setdefault(topic, Stream(msgtype)).add(stamp, value)
    for _, ep in pending:
        yield ep
    if current is not None:
        yield close_incomplete(
            current, f"{current.name}: the bag ends without EPISODE_STOP (incomplete); skipped"
        )
