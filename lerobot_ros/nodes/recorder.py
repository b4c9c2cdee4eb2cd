"""Recorder node: raw subscriptions to the graph's topics, one rosbag2 bag per episode.

Services (lerobot_msgs/srv): `~/start_episode` (task text), `~/stop_episode` (save),
`~/discard_episode`. Every episode event goes out on `~/events` (lerobot_msgs/EpisodeEvent,
reliable + transient-local like the watchdog's) and into the episode's bag: EPISODE_START with
the task is the bag's first message, EPISODE_STOP / EPISODE_DISCARD its last.

Highlights: with `ring_seconds` > 0 the recorder also keeps the last `ring_seconds` (at most
`ring_bytes`) of every recorded topic's raw messages in memory, episode or not, and
`~/save_highlight` (lerobot_msgs/SaveHighlight) writes the last `seconds` of it as a new episode
bag: the layout of any episode (EPISODE_START with the task first, the buffered messages at
their receive times, HIGHLIGHT_SAVED and EPISODE_STOP last), so the converter converts it like any
other. With `continue_recording` the episode stays open and records live until the next
`~/save_highlight` call (or `~/stop_episode`), which closes it. The response comes as soon as
the bag is *queued* for the writer thread, not once it is written (the callback never waits for
the disk): path, times and counts are final then, the bag is complete once its metadata.yaml
appears; `~/events` carries EPISODE_START (and HIGHLIGHT_SAVED + EPISODE_STOP) at once.

Topic types are looked up in the graph (`get_topic_names_and_types`) and retried every
`discovery_period` s until a publisher shows up; each subscription is raw (the CDR bytes go to
the bag untouched, nothing is deserialized) with the publishers' reliability and durability
(best-effort for sensor data, transient-local reliable for events), as rosbag2 does. Disk I/O
happens on the `EpisodeBagWriter` thread only (lerobot_ros/core/recording/bag_writer.py, which
also explains the one-bag-per-episode layout).
"""

from __future__ import annotations

import contextlib
import importlib
from collections import deque
from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message

from lerobot_msgs.msg import EpisodeEvent
from lerobot_msgs.srv import DiscardEpisode, SaveHighlight, StartEpisode, StopEpisode
from lerobot_ros.core.graph import recorded_topics
from lerobot_ros.core.params import (
    ParameterError,
    ParamSpec,
    non_empty,
    non_negative,
    one_of,
    positive,
    unique,
)
from lerobot_ros.core.recording import (
    EpisodeBagWriter,
    EpisodeInfo,
    HighlightError,
    HighlightRing,
    UnknownTypeError,
)
from lerobot_ros.nodes import qos
from lerobot_ros.nodes.base import ERROR, OK, WARN, LeRobotNode, run_node


def _absolute_topics(v: Any) -> str | None:
    bad = [t for t in v if not (isinstance(t, str) and t.startswith("/") and len(t) > 1)]
    return f"topic names must be absolute (start with '/'): {bad}" if bad else None


RECORDER_PARAMS = [
    ParamSpec(
        "output_dir",
        "~/lerobot_ros/recordings",
        "Bags go to <output_dir>/<session stamp>/episode_<NNNNNN>/.",
        (non_empty,),
    ),
    ParamSpec(
        "storage",
        "mcap",
        "rosbag2 storage plugin: mcap or sqlite3.",
        (one_of(["mcap", "sqlite3"]),),
    ),
    ParamSpec(
        "topics",
        recorded_topics(("front",)),
        "Absolute names of the topics to record; types are found in the graph.",
        (non_empty, unique, _absolute_topics),
    ),
    ParamSpec(
        "queue_size",
        2000,
        "Messages waiting for the disk before new ones are dropped.",
        (positive,),
    ),
    ParamSpec(
        "queue_mb", 1024.0, "MiB waiting for the disk before new ones are dropped.", (positive,)
    ),
    ParamSpec(
        "max_episode_s",
        0.0,
        "s: an episode this long is stopped (saved); 0 = no limit.",
        (non_negative,),
    ),
    ParamSpec(
        "shutdown_episode",
        "discard",
        "An episode still open at shutdown: discard (kept on disk, marked discarded: an "
        "interrupted demonstration is not converted) or save (continuous recording: the last "
        "segment is as good as the others).",
        (one_of(["discard", "save"]),),
    ),
    ParamSpec(
        "delete_discarded",
        False,
        "true: remove a discarded episode's bag; false: keep it, marked discarded.",
    ),
    ParamSpec("discovery_period", 0.5, "s between look-ups of topics not found yet.", (positive,)),
    ParamSpec(
        "optional_topics",
        ["/rollout/events"],
        "Those of `topics` that may have no publisher (the rollout's events exist only while a "
        "rollout runs): recorded once they appear, never reported as missing.",
        (unique, _absolute_topics),
    ),
    ParamSpec(
        "ring_seconds",
        0.0,
        "s of every topic kept in memory for ~/save_highlight, episode or not; 0 = off.",
        (non_negative,),
    ),
    ParamSpec(
        "ring_bytes",
        512 * 2**20,
        "Bytes the highlight ring may hold; beyond that the oldest messages go first.",
        (positive,),
    ),
]


def _message_class(msgtype: str) -> Any:
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


class RecorderNode(LeRobotNode):
    PARAMS = RECORDER_PARAMS

    def __init__(self, node_name: str = "recorder", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.events_topic = self.resolve_topic_name("~/events")
        try:
            self.writer = EpisodeBagWriter(
                self.p["output_dir"],
                storage=self.p["storage"],
                queue_size=self.p["queue_size"],
                queue_bytes=int(self.p["queue_mb"] * 2**20),
                events_topic=self.events_topic,
                delete_discarded=self.p["delete_discarded"],
            )
        except OSError as exc:
            raise ParameterError("output_dir", self.p["output_dir"], str(exc)) from exc
        self._events = self.create_publisher(EpisodeEvent, "~/events", qos.EVENTS)
        # Topics not subscribed yet; our own events go into the bag directly, not via DDS.
        # `pending` are awaited (and reported); `optional` ones are picked up when they appear.
        wanted = [t for t in self.p["topics"] if t != self.events_topic]
        self.optional: list[str] = [t for t in wanted if t in self.p["optional_topics"]]
        self.pending: list[str] = [t for t in wanted if t not in self.optional]
        self.ring: HighlightRing | None = None
        if self.p["ring_seconds"] > 0:
            self.ring = HighlightRing(self.p["ring_seconds"], self.p["ring_bytes"])
        self.subscribed: dict[str, str] = {}  # topic -> type
        self.unrecordable: dict[str, str] = {}  # topic -> why (type without a definition)
        self._subs: list[Any] = []
        self._ring_evicted = 0  # ring.evicted at the last diagnostics
        # Other nodes' EpisodeEvent topics (/rollout/events ...) and their latest intervention
        # events, (stamp, topic, bytes, type): an intervention in progress when an episode
        # begins is carried into its bag (EpisodeBagWriter.start_episode's `carry`).
        self._event_topics: set[str] = set()
        self._interventions: deque[tuple[int, str, bytes, int]] = deque(maxlen=256)

        self.create_service(StartEpisode, "~/start_episode", self._srv_start)
        self.create_service(StopEpisode, "~/stop_episode", self._srv_stop)
        self.create_service(DiscardEpisode, "~/discard_episode", self._srv_discard)
        self.create_service(SaveHighlight, "~/save_highlight", self._srv_highlight)
        self._discovery = self.create_timer(self.p["discovery_period"], self._discover)
        self._discover()
        self.create_timer(0.1, self._check_duration)
        self.create_timer(1.0, self._diagnostics)
        ring = (
            f"highlight ring {self.p['ring_seconds']:g} s / {self.p['ring_bytes'] / 2**20:.0f} MiB"
            if self.ring is not None
            else "highlight ring off"
        )
        self.get_logger().info(
            f"recorder: {len(self.p['topics'])} topics, {self.p['storage']} bags under "
            f"{self.writer.session_dir}, {ring}"
        )

    # --- discovery ---------------------------------------------------------------------------
    def _discover(self) -> None:
        if not self.pending and not self.optional:
            return
        types = dict(self.get_topic_names_and_types())
        for topic in [*self.pending, *self.optional]:
            names = types.get(topic)
            publishers = self.get_publishers_info_by_topic(topic) if names else []
            if not names or not publishers:
                continue  # retried at the next period
            if len(names) > 1:
                self.get_logger().warning(f"{topic} has several types {names}; using {names[0]}")
            msgtype = names[0]
            try:
                self.writer.add_topic(topic, msgtype)
                msg_class = _message_class(msgtype)
            except (UnknownTypeError, ImportError, AttributeError, ValueError) as exc:
                self.unrecordable[topic] = str(exc)
                self._found(topic)
                self.get_logger().error(f"cannot record {topic} ({msgtype}): {exc}")
                continue
            profile = self._qos(publishers)
            self._subs.append(
                self.create_subscription(
                    msg_class,
                    topic,
                    lambda data, t=topic: self._on_message(t, data),
                    profile,
                    raw=True,
                )
            )
            self.subscribed[topic] = msgtype
            if msgtype == "lerobot_msgs/msg/EpisodeEvent":
                self._event_topics.add(topic)
            self._found(topic)
            self.get_logger().info(
                f"recording {topic} ({msgtype}, {profile.reliability.name.lower()}, "
                f"{profile.durability.name.lower()})"
            )
        if not self.pending and not self.optional:
            self._discovery.cancel()

    def _found(self, topic: str) -> None:
        for waiting in (self.pending, self.optional):
            if topic in waiting:
                waiting.remove(topic)

    @staticmethod
    def _qos(publishers: list[Any]) -> QoSProfile:
        """Match every publisher: reliable only if all are (a reliable reader does not match a
        best-effort writer), transient-local only if all are (so a latched history is
        replayed)."""
        profiles = [p.qos_profile for p in publishers]
        reliable = all(p.reliability == ReliabilityPolicy.RELIABLE for p in profiles)
        latched = all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in profiles)
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=max([10, *(p.depth for p in profiles)]),
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
        )

    # --- the hot path --------------------------------------------------------------------------
    def _on_message(self, topic: str, data: bytes) -> None:
        t_ns = self.get_clock().now().nanoseconds
        stamp = self.writer.header_stamp(topic, data)
        if self.ring is not None:
            self.ring.add(topic, data, t_ns, stamp)
        if topic in self._event_topics:
            self._note_intervention(topic, data, stamp)
        self.writer.write(topic, data, t_ns, stamp)

    def _note_intervention(self, topic: str, data: bytes, stamp: int | None) -> None:
        try:
            kind = deserialize_message(data, EpisodeEvent).type  # rare, small messages
        except Exception:
            return
        if kind in (EpisodeEvent.INTERVENTION_START, EpisodeEvent.INTERVENTION_END):
            self._interventions.append((stamp or 0, topic, data, kind))

    def _open_interventions(self, at_ns: int) -> list[tuple[str, bytes]]:
        """Per topic, its latest intervention event stamped before `at_ns`, if a START (still
        on then). A live episode's `late` rule (and a highlight's) would leave it out."""
        latest: dict[str, tuple[int, bytes, int]] = {}
        for stamp, topic, data, kind in self._interventions:
            if stamp < at_ns and stamp >= latest.get(topic, (-1, b"", 0))[0]:
                latest[topic] = (stamp, data, kind)
        return [
            (topic, data)
            for topic, (_s, data, kind) in latest.items()
            if kind == EpisodeEvent.INTERVENTION_START
        ]

    # --- episodes ------------------------------------------------------------------------------
    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _publish_event(
        self, kind: int, ep: EpisodeInfo, t_ns: int, source: str, detail: str
    ) -> None:
        msg = EpisodeEvent(
            type=kind, episode_index=ep.index, task=ep.task, source=source, detail=detail
        )
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t_ns, 1_000_000_000)
        self._events.publish(msg)

    def start_episode(self, task: str, source: str) -> tuple[bool, str, EpisodeInfo | None]:
        if not task.strip():
            return False, "a task text is required (the episode's language instruction)", None
        current = self.writer.current
        if current is not None:
            return False, f"episode {current.index} is recording: stop or discard it first", None
        t = self._now_ns()
        detail = str(self.writer.session_dir / f"episode_{len(self.writer.episodes):06d}")
        ep = self.writer.start_episode(
            task, t, source=source, detail=detail, carry=self._open_interventions(t)
        )
        self._publish_event(EpisodeEvent.EPISODE_START, ep, t, source, detail)
        self.get_logger().info(f"episode {ep.index} started: {task!r} -> {ep.path}")
        return True, f"episode {ep.index} recording to {ep.path}", ep

    def stop_episode(
        self, source: str, *, discard: bool = False, detail: str = "", keep: bool = False
    ) -> tuple[bool, str, EpisodeInfo | None]:
        if self.writer.current is None:
            return False, "no episode is recording", None
        t = self._now_ns()
        detail = detail or ("discarded" if discard else "saved")
        ep = self.writer.stop_episode(t, discard=discard, source=source, detail=detail, keep=keep)
        if ep.highlight and not discard:
            self._publish_event(EpisodeEvent.HIGHLIGHT_SAVED, ep, t, source, ep.highlight_detail)
        kind = EpisodeEvent.EPISODE_DISCARD if discard else EpisodeEvent.EPISODE_STOP
        self._publish_event(kind, ep, t, source, detail)
        verb = "discarded" if discard else "saved"
        self.get_logger().info(
            f"episode {ep.index} {verb}: {ep.duration_s:.1f} s, {ep.message_count} messages"
        )
        return True, f"episode {ep.index} {verb} ({ep.path})", ep

    def save_highlight(
        self, seconds: float, continue_recording: bool, task: str, source: str
    ) -> tuple[bool, str, EpisodeInfo | None]:
        """Save the ring's last `seconds` (0 = all of it) as a new episode, or close the
        highlight episode that `continue_recording` left open (then the arguments are unused).
        Returns once the bag is queued; refusals say why and change nothing."""
        if self.ring is None:
            return False, "the highlight ring buffer is off: set ring_seconds > 0", None
        current = self.writer.current
        if current is not None and current.highlight:
            ok, _message, ep = self.stop_episode(source, detail="saved: highlight closed")
            if ep is None:
                return ok, _message, None
            return True, f"highlight episode {ep.index} closed ({ep.path})", ep
        if current is not None:
            return (
                False,
                f"episode {current.index} is recording: stop or discard it before saving a "
                "highlight",
                None,
            )
        if not task.strip():
            return False, "task is empty: a task text is required (the episode's instruction)", None
        now = self._now_ns()
        try:
            sel = self.ring.select(now, seconds)
        except HighlightError as exc:
            return False, str(exc), None
        index = len(self.writer.episodes)
        detail = str(self.writer.session_dir / f"episode_{index:06d}")
        window = (now - sel.start_ns) / 1e9
        what = f"{window:.2f} s from the ring buffer" + (
            ", then live" if continue_recording else ""
        )
        ep = self.writer.start_highlight(
            task,
            sel.start_ns,
            [(e.topic, e.t_ns, e.data) for e in sel.entries],
            stop_ns=None if continue_recording else now,
            source=source,
            detail=detail,
            highlight_detail=what,
            carry=self._open_interventions(sel.start_ns),
        )
        self._publish_event(EpisodeEvent.EPISODE_START, ep, sel.start_ns, source, detail)
        if not continue_recording:
            self._publish_event(EpisodeEvent.HIGHLIGHT_SAVED, ep, ep.stop_ns, source, what)
            self._publish_event(EpisodeEvent.EPISODE_STOP, ep, ep.stop_ns, source, "saved")
        late = f", {sel.skipped_late} stamped before the window left out" * (sel.skipped_late > 0)
        verb = "recording on" if continue_recording else "saved"
        self.get_logger().info(
            f"highlight episode {ep.index} {verb}: {what}, {len(sel.entries)} messages{late} "
            f"-> {ep.path}"
        )
        return True, f"highlight episode {ep.index} {verb}: {what} ({ep.path})", ep

    def _srv_highlight(
        self, req: SaveHighlight.Request, res: SaveHighlight.Response
    ) -> SaveHighlight.Response:
        res.success, res.message, ep = self.save_highlight(
            req.seconds, req.continue_recording, req.task, "~/save_highlight"
        )
        if ep is not None:
            end = ep.stop_ns or self._now_ns()
            res.episode_index = ep.index
            res.path = str(ep.path)
            res.start.sec, res.start.nanosec = divmod(ep.first_ns, 1_000_000_000)
            res.end.sec, res.end.nanosec = divmod(ep.last_ns, 1_000_000_000)
            res.duration_s = (end - ep.start_ns) / 1e9
            res.message_count = ep.message_count
        return res

    def _srv_start(
        self, req: StartEpisode.Request, res: StartEpisode.Response
    ) -> StartEpisode.Response:
        res.success, res.message, ep = self.start_episode(req.task, "~/start_episode")
        if ep is not None:
            res.episode_index = ep.index
        return res

    def _srv_stop(
        self, _req: StopEpisode.Request, res: StopEpisode.Response
    ) -> StopEpisode.Response:
        res.success, res.message, ep = self.stop_episode("~/stop_episode")
        if ep is not None:
            res.episode_index = ep.index
            res.path = str(ep.path)
            res.duration_s = ep.duration_s
            res.message_count = ep.message_count
        return res

    def _srv_discard(
        self, _req: DiscardEpisode.Request, res: DiscardEpisode.Response
    ) -> DiscardEpisode.Response:
        res.success, res.message, ep = self.stop_episode("~/discard_episode", discard=True)
        if ep is not None:
            res.episode_index = ep.index
        return res

    def _check_duration(self) -> None:
        ep, limit = self.writer.current, self.p["max_episode_s"]
        if ep is not None and limit > 0 and (self._now_ns() - ep.start_ns) / 1e9 >= limit:
            self.stop_episode("max_episode_s", detail=f"saved: reached max_episode_s = {limit} s")

    # --- diagnostics -----------------------------------------------------------------------
    def _diagnostics(self) -> None:
        stats = self.writer.stats()
        depth, depth_bytes = self.writer.queue_depth()
        ep = self.writer.current
        dropped = sum(s.dropped for s in stats.values())
        if self.writer.errors:
            level, message = ERROR, f"disk errors: {self.writer.last_error}"
        elif dropped or self.unrecordable:
            level = WARN
            message = f"{dropped} messages dropped" if dropped else "topics not recordable"
        elif self.pending:
            level, message = WARN, f"waiting for {len(self.pending)} topics"
        else:
            level, message = OK, "idle"
        ring_values: dict[str, Any] = {}
        if self.ring is not None:
            self.ring.age(self._now_ns())
            n, size, span = self.ring.state()
            ring_values = {
                "ring_messages": n,
                "ring_mb": f"{size / 2**20:.1f}",
                "ring_s": f"{span:.1f}",
                "ring.aged": self.ring.aged,
                "ring.evicted": self.ring.evicted,
                "ring.too_big": self.ring.too_big,
            }
            # The byte bound cut the ring short of ring_seconds: a highlight cannot go that far.
            if self.ring.evicted > self._ring_evicted and level == OK:
                limit = self.p["ring_bytes"] / 2**20
                level, message = WARN, f"highlight ring holds only {span:.1f} s ({limit:.0f} MiB)"
            self._ring_evicted = self.ring.evicted
        if ep is not None and level != ERROR:
            message = f"recording episode {ep.index}" + ("" if level == OK else f"; {message}")
        values: dict[str, Any] = {
            "recording": ep is not None,
            "episode": ep.index if ep is not None else "",
            "task": ep.task if ep is not None else "",
            "episode_s": f"{(self._now_ns() - ep.start_ns) / 1e9:.1f}" if ep is not None else "",
            "episodes": len(self.writer.episodes),
            "session_dir": str(self.writer.session_dir),
            "queue_depth": depth,
            "queue_mb": f"{depth_bytes / 2**20:.1f}",
            "errors": self.writer.errors,
            "waiting_for": ",".join(self.pending),
            "optional_waiting_for": ",".join(self.optional),
            **ring_values,
        }
        for topic, s in stats.items():
            for key in ("received", "written", "dropped", "late", "idle"):
                values[f"{topic}.{key}"] = getattr(s, key)
        for topic, why in self.unrecordable.items():
            values[f"{topic}.error"] = why
        self.publish_diagnostics("recorder", level, message, values)

    def shutdown(self) -> None:
        """An episode still open is ended as `shutdown_episode` says (discarded, kept on disk;
        or saved), and a highlight that `continue_recording` kept open is always saved: its
        operator asked for it. Every bag is closed."""
        current = self.writer.current
        if current is not None:
            with contextlib.suppress(Exception):  # the context may be down already (SIGTERM)
                if current.highlight or self.p["shutdown_episode"] == "save":
                    self.stop_episode("shutdown", detail="saved: recorder shut down")
                else:
                    self.stop_episode(
                        "shutdown", discard=True, detail="recorder shut down mid-episode", keep=True
                    )
        if not self.writer.close(timeout=60.0):
            self.get_logger().error("bag writer did not finish within 60 s")


def main(args: list[str] | None = None) -> int:
    return run_node(RecorderNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
