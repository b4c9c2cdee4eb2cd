"""Chunk player node: /policy/action_chunk in, one joint command per control tick out.

The policy runner publishes chunks (H future targets) when it has them; the watchdog wants one
command per tick. This node holds the chunks in the core ChunkPlayer (blending, stale-chunk
discard, dropping the rows whose time has passed) and publishes the row for "now" on
`~/command` (= /chunk_player/command, a source of the watchdog) from a control-rate thread,
so a slow inference never delays a tick. When it has no row for now it publishes nothing and
the watchdog holds after its command timeout. Every rollout strategy reuses this node;
`~/set_enabled` pauses it (DAgger hands control to a human) and drops the chunk in hand, and
after a resume it plays only chunks whose observation was taken after the resume (an inference
that started before it would replay the paused past).
"""

from __future__ import annotations

import threading
from typing import Any

from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool

from lerobot_msgs.msg import ActionChunk
from lerobot_ros.core.inference import Chunk, ChunkPlayer
from lerobot_ros.core.loop import PeriodicThread
from lerobot_ros.core.params import ParamSpec, non_negative, positive
from lerobot_ros.nodes import qos
from lerobot_ros.nodes.base import OK, RT_PRIORITY, WARN, LeRobotNode, run_node

PLAYER_PARAMS = [
    ParamSpec("chunk_topic", "/policy/action_chunk", "ActionChunk input."),
    ParamSpec("rate", 30.0, "Control rate, Hz: one command per tick.", (positive,)),
    RT_PRIORITY,
    ParamSpec(
        "blend_window",
        0,
        "Rows at the start of a new chunk blended linearly with the old chunk (0 = switch).",
        (non_negative,),
    ),
    ParamSpec(
        "max_age",
        10.0,
        "s: rows are not played once the chunk's row 0 is older than this (a stale plan is "
        "worse than none: the watchdog holds). Keep it above horizon x period.",
        (positive,),
    ),
    ParamSpec("enabled", True, "Play at start-up (false: wait for ~/set_enabled)."),
    ParamSpec("diagnostics_period", 1.0, "s between /diagnostics reports.", (positive,)),
]


def _seconds(duration: Any) -> float:
    return duration.sec + duration.nanosec * 1e-9


class ChunkPlayerNode(LeRobotNode):
    PARAMS = PLAYER_PARAMS

    def __init__(self, node_name: str = "chunk_player", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.player = ChunkPlayer(self.p["blend_window"], self.p["max_age"])
        self._lock = threading.Lock()  # the player is shared by the tick thread and callbacks
        self._enabled = bool(self.p["enabled"])
        # Observation time from which chunks count: a chunk predicted from an observation older
        # than the last enable belongs to the time before a pause and is not played.
        self._enabled_at = 0.0
        self._names: list[str] = []
        self.published = 0
        self.predicted_before_enable = 0  # chunks dropped: observed before the last enable
        self._pub = self.create_publisher(JointState, "~/command", qos.COMMAND)
        self.create_subscription(ActionChunk, self.p["chunk_topic"], self._on_chunk, qos.COMMAND)
        self.create_service(SetBool, "~/set_enabled", self._srv_enabled)
        self.create_timer(self.p["diagnostics_period"], self._diagnostics)
        self._loop = PeriodicThread(1.0 / self.p["rate"], self._tick, name="chunk-player")
        self._loop.start()

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_chunk(self, msg: ActionChunk) -> None:
        joints = len(msg.joint_names)
        if joints == 0 or msg.horizon == 0 or len(msg.data) != msg.horizon * joints:
            self.get_logger().warning(
                f"chunk {msg.chunk_id} rejected: data has {len(msg.data)} values for horizon "
                f"{msg.horizon} x {joints} joints",
                throttle_duration_sec=1.0,
            )
            return
        period = _seconds(msg.period)
        if not period > 0:
            self.get_logger().warning(f"chunk {msg.chunk_id} rejected: period {period}")
            return
        observed = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        t0 = observed + _seconds(msg.start_offset)
        actions = [msg.data[i * joints : (i + 1) * joints] for i in range(msg.horizon)]
        chunk = Chunk(actions, t0, period, int(msg.chunk_id))
        with self._lock:
            if not self._enabled:
                return
            if observed < self._enabled_at:
                self.predicted_before_enable += 1
                return
            if list(msg.joint_names) != self._names:
                self._names = list(msg.joint_names)
                self.player.clear()
            self.player.submit(chunk, self._now())

    def _tick(self) -> None:
        with self._lock:
            if not self._enabled:
                return
            action = self.player.action_at(self._now())
            names = self._names
        if action is None:
            return
        out = JointState()
        out.header.stamp = self.get_clock().now().to_msg()
        out.name = names
        out.position = [float(x) for x in action]
        self._pub.publish(out)
        self.published += 1

    def _srv_enabled(self, req: SetBool.Request, res: SetBool.Response) -> SetBool.Response:
        with self._lock:
            previous, self._enabled = self._enabled, bool(req.data)
            self.player.clear()
            if req.data and not previous:
                self._enabled_at = self._now()
        res.success = True
        res.message = f"{'enabled' if req.data else 'disabled'} (was {'on' if previous else 'off'})"
        self.get_logger().info(f"chunk player {res.message}")
        return res

    def _diagnostics(self) -> None:
        with self._lock:
            stats = self.player.stats
            values = {
                "enabled": self._enabled,
                "published": self.published,
                "chunks": stats.submitted,
                "stale_discarded": stats.stale_discarded,
                "dropped_rows": stats.dropped_rows,
                "starved_ticks": stats.starved_ticks,
                "blended_rows": stats.blended_rows,
                "predicted_before_enable": self.predicted_before_enable,
                "overruns": self._loop.overruns,
            }
        level = WARN if self._enabled and stats.submitted == 0 else OK
        message = "no chunk yet" if level == WARN else "playing" if self._enabled else "paused"
        self.publish_diagnostics("playback", level, message, values)

    def shutdown(self) -> None:
        self._loop.stop()


def main(args: list[str] | None = None) -> int:
    return run_node(ChunkPlayerNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
