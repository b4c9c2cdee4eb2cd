"""Rollout node: runs one strategy (base, sentry, highlight, dagger) over the policy runner, the
chunk player, the watchdog and the recorder.

The strategy (lerobot_ros/core/rollout.py) decides; this node only carries out its effects with
asynchronous service calls (call_async + done callbacks: no callback ever waits) and feeds the
outcomes back:

- SetPlayer      -> /chunk_player/set_enabled (std_srvs/SetBool)
- SwitchSource   -> /watchdog/set_active_source (chunk_player, teleop, or the silent `hold`
                    source while the leader is aligned); the outcome is stamped with the
                    watchdog's own SOURCE_SWITCH event (/watchdog/events), so
                    INTERVENTION_START / END mark exactly the frames the human drove
- AlignLeader    -> after `settle_s`, /leader/move_to_pose to the follower's measured pose mapped
                    through the teleop mapping, release=true (torque off at the end)
- Start/StopRecording -> /recorder/start_episode, /recorder/stop_episode
- PublishEvent   -> ~/events (lerobot_msgs/EpisodeEvent, recorded: the converter's
                    `intervention` flag)

Services: ~/set_intervention (lerobot_msgs/SetIntervention), ~/save_highlight (SaveHighlight,
forwarded to /recorder/save_highlight), ~/resume (std_srvs/Trigger, after an e-stop reset).
Topics: ~/state (std_msgs/String, latched), ~/events. The node never commands the follower:
the watchdog stays the only path to it, and its latched e-stop stops every strategy.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.client import Client
from rclpy.task import Future
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from lerobot_msgs.msg import EpisodeEvent, WatchdogState
from lerobot_msgs.srv import (
    MoveToPose,
    SaveHighlight,
    SetActiveSource,
    SetIntervention,
    StartEpisode,
    StopEpisode,
)
from lerobot_ros.core.params import (
    ParameterError,
    ParamSpec,
    all_finite,
    non_empty,
    non_negative,
    one_of,
    positive,
    unique,
)
from lerobot_ros.core.robots import SO_ARM_JOINTS
from lerobot_ros.core.rollout import (
    STRATEGIES,
    AlignLeader,
    Effect,
    PublishEvent,
    RolloutConfig,
    SetPlayer,
    StartRecording,
    StopRecording,
    Strategy,
    SwitchSource,
    create_strategy,
)
from lerobot_ros.nodes import qos
from lerobot_ros.nodes.base import OK, WARN, LeRobotNode, run_node
from lerobot_ros.nodes.convert import from_time, positions_by_name, to_time

DEFAULT_TASK = "rollout"


def _nonzero(v: Any) -> str | None:
    return None if all(x != 0 for x in v) else "every element must be non-zero"


ROLLOUT_PARAMS = [
    ParamSpec("strategy", "base", "Rollout strategy.", (one_of(STRATEGIES.names),)),
    ParamSpec(
        "task", "", f"Task text of recorded episodes and highlights; empty = '{DEFAULT_TASK}'."
    ),
    ParamSpec(
        "episode_s",
        60.0,
        "sentry / dagger: s after which an episode is rotated (saved, the next started without "
        "pausing control); 0 = never.",
        (non_negative,),
    ),
    ParamSpec(
        "episode_mb",
        2048.0,
        "sentry / dagger: MiB of bag on disk after which an episode is rotated; 0 = never.",
        (non_negative,),
    ),
    ParamSpec(
        "record_autonomous",
        True,
        "dagger: record the policy's frames too (episodes as in sentry); false: an episode per "
        "correction, from the takeover to tail_s after the release.",
    ),
    ParamSpec(
        "tail_s", 0.5, "dagger, corrections only: s recorded after a release.", (non_negative,)
    ),
    ParamSpec(
        "settle_s",
        0.3,
        "dagger: s between the hold and reading the follower's pose for the leader (the "
        "follower comes to rest; without a hold source, keep it above command_timeout).",
        (non_negative,),
    ),
    ParamSpec(
        "takeover_motion",
        0.2,
        "dagger: rad a leader joint must move from where it rested to take over; 0 = off. The "
        "sim graph sets 0 (its scripted leader moves by itself).",
        (non_negative,),
    ),
    ParamSpec(
        "rearm_s",
        1.0,
        "dagger: s after autonomy (re)starts during which leader motion is ignored.",
        (non_negative,),
    ),
    ParamSpec(
        "align_velocity",
        0.8,
        "dagger: rad/s cap while the leader is driven to the follower's pose (0 = the leader's).",
        (non_negative,),
    ),
    ParamSpec("align_timeout", 10.0, "dagger: s allowed for the leader to arrive.", (positive,)),
    ParamSpec(
        "hold_source",
        "hold",
        "dagger: a watchdog source nobody publishes; switching to it holds the follower at once "
        "while the leader is aligned (rollout.launch.py adds it to the watchdog's sources). "
        "Empty: the watchdog holds after its command_timeout.",
    ),
    ParamSpec(
        "leader_joints",
        list(SO_ARM_JOINTS),
        "Teleop mapping (rollout.launch.py copies /teleop's): leader joint names.",
        (non_empty, unique),
    ),
    ParamSpec(
        "follower_joints",
        list(SO_ARM_JOINTS),
        "Teleop mapping: follower joint names, paired by index with leader_joints.",
        (non_empty, unique),
    ),
    ParamSpec(
        "scale",
        [1.0] * 6,
        "Teleop mapping: follower = scale * leader + offset.",
        (all_finite, _nonzero),
    ),
    ParamSpec("offset", [0.0] * 6, "Teleop mapping: per joint offset, rad.", (all_finite,)),
    ParamSpec(
        "service_timeout",
        5.0,
        "s to wait for a service to appear, and for its answer.",
        (positive,),
    ),
    ParamSpec("tick_rate", 10.0, "Hz at which recording (rotation) is reconciled.", (positive,)),
]


@dataclass
class _SwitchWait:
    """A source switch the watchdog confirmed whose SOURCE_SWITCH event has not arrived yet."""

    token: int
    detail: str  # "<previous> -> <source>"
    sent: float
    answered: float
    message: str


class RolloutNode(LeRobotNode):
    PARAMS = ROLLOUT_PARAMS

    def __init__(self, node_name: str = "rollout", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        p = self.p
        n = len(p["leader_joints"])
        for key in ("follower_joints", "scale", "offset"):
            if len(p[key]) != n:
                raise ParameterError(key, p[key], f"needs {n} entries, like leader_joints")
        try:
            config = RolloutConfig(
                task=p["task"] or DEFAULT_TASK,
                episode_s=p["episode_s"],
                episode_mb=p["episode_mb"],
                record_autonomous=p["record_autonomous"],
                tail_s=p["tail_s"],
                settle_s=p["settle_s"],
                takeover_motion=p["takeover_motion"],
                rearm_s=p["rearm_s"],
                hold_source=p["hold_source"],
            )
        except ValueError as exc:
            raise ParameterError("task", p["task"], str(exc)) from exc
        self.core: Strategy = create_strategy(p["strategy"], config)
        self._scale = np.asarray(p["scale"], float)
        self._offset = np.asarray(p["offset"], float)
        self._follower: JointState | None = None
        self._recent_switches: deque[tuple[float, str]] = deque(maxlen=32)
        self._switch_waits: list[_SwitchWait] = []
        self._episode_bytes = 0
        self._bytes_checked = 0.0
        self._published_state = ""
        self.errors = 0
        self.last_error = ""
        self._handlers: dict[type, Callable[[Any], None]] = {
            SetPlayer: self._do_set_player,
            SwitchSource: self._do_switch,
            AlignLeader: self._do_align,
            PublishEvent: self._do_publish,
            StartRecording: self._do_start,
            StopRecording: self._do_stop,
        }

        # Clients and the forwarding service get their own reentrant group: the awaiting
        # save_highlight coroutine must not keep the recorder's answer (or anything else) out.
        calls = ReentrantCallbackGroup()

        def client(srv: Any, name: str) -> Client:
            return self.create_client(srv, name, callback_group=calls)

        self._player = client(SetBool, "/chunk_player/set_enabled")
        self._source = client(SetActiveSource, "/watchdog/set_active_source")
        self._leader = client(MoveToPose, "/leader/move_to_pose")
        self._start_ep = client(StartEpisode, "/recorder/start_episode")
        self._stop_ep = client(StopEpisode, "/recorder/stop_episode")
        self._highlight = client(SaveHighlight, "/recorder/save_highlight")

        self._events = self.create_publisher(EpisodeEvent, "~/events", qos.EVENTS)
        self._state_pub = self.create_publisher(String, "~/state", qos.LATCHED)
        self.create_subscription(WatchdogState, "/watchdog/state", self._on_watchdog, qos.LATCHED)
        self.create_subscription(
            EpisodeEvent, "/watchdog/events", self._on_watchdog_event, qos.EVENTS
        )
        if self.core.records_episodes or self.core.ring_buffer:
            self.create_subscription(
                EpisodeEvent, "/recorder/events", self._on_recorder_event, qos.EVENTS
            )
        if self.core.interventions:
            self.create_subscription(
                JointState, "/follower/joint_states", self._on_follower, qos.SENSOR
            )
            if config.takeover_motion > 0:
                self.create_subscription(
                    JointState, "/leader/joint_states", self._on_leader, qos.SENSOR
                )
        self.create_service(SetIntervention, "~/set_intervention", self._srv_intervention)
        self.create_service(Trigger, "~/resume", self._srv_resume)
        self.create_service(
            SaveHighlight, "~/save_highlight", self._srv_highlight, callback_group=calls
        )
        self.create_timer(1.0 / p["tick_rate"], self._tick)
        self.create_timer(1.0, self._diagnostics)
        self.get_logger().info(
            f"rollout: strategy '{self.core.name}' ({self.core.summary}), task {config.task!r}"
        )
        self._apply(self.core.start(self._now()))

    # --- plumbing ---------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _apply(self, effects: list[Effect] | tuple[Effect, ...]) -> None:
        for effect in effects:
            self._handlers[type(effect)](effect)
        self._publish_state()

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run `fn` once, `delay` s from now, in this node's executor."""
        holder: list[Any] = []

        def fire() -> None:
            timer = holder[0]
            timer.cancel()
            self.destroy_timer(timer)
            fn()

        holder.append(self.create_timer(max(delay, 1e-3), fire))

    def _call(
        self,
        client: Client,
        request: Any,
        done: Callable[[Any | None, str], None],
        timeout: float | None = None,
        deadline: float | None = None,
    ) -> None:
        """call_async with retries while the service is absent and a time limit on the answer;
        `done(response, "")` or `done(None, why)` is called exactly once, never blocking."""
        wait = self.p["service_timeout"]
        now = self._now()
        deadline = now + wait if deadline is None else deadline
        if not client.service_is_ready():
            if now >= deadline:
                done(None, f"service {client.service_name} not available after {wait:g} s")
                return
            self._later(0.2, lambda: self._call(client, request, done, timeout, deadline))
            return
        finished: list[bool] = []

        def finish(response: Any | None, why: str) -> None:
            if not finished:
                finished.append(True)
                done(response, why)

        future: Future = client.call_async(request)
        future.add_done_callback(lambda f: finish(f.result(), "") if not f.cancelled() else None)

        def expire() -> None:
            if not future.done():
                client.remove_pending_request(future)
                finish(None, f"service {client.service_name} did not answer in {limit:g} s")

        limit = timeout if timeout is not None else wait
        self._later(limit, expire)

    def _error(self, text: str) -> None:
        self.errors += 1
        self.last_error = text
        self.get_logger().error(text)

    # --- effects ----------------------------------------------------------------------------
    def _do_set_player(self, effect: SetPlayer) -> None:
        def done(res: SetBool.Response | None, why: str) -> None:
            if res is None or not res.success:
                self._error(f"chunk player {'enable' if effect.enabled else 'disable'}: {why}")

        self._call(self._player, SetBool.Request(data=effect.enabled), done)

    def _do_switch(self, effect: SwitchSource) -> None:
        sent = self._now()

        def done(res: SetActiveSource.Response | None, why: str) -> None:
            now = self._now()
            if res is None or not res.success:
                message = why or (res.message if res is not None else "")
                self._apply(self.core.switched(effect.token, False, message, now))
                return
            if res.previous_source == effect.source:  # already active: no event will come
                self._apply(self.core.switched(effect.token, True, res.message, now))
                return
            wait = _SwitchWait(
                effect.token, f"{res.previous_source} -> {effect.source}", sent, now, res.message
            )
            for stamp, detail in self._recent_switches:
                if detail == wait.detail and stamp >= sent - 0.5:
                    self._apply(self.core.switched(effect.token, True, res.message, stamp))
                    return
            self._switch_waits.append(wait)
            self._later(1.0, lambda: self._switch_event_missing(wait))

        self._call(self._source, SetActiveSource.Request(source=effect.source), done)

    def _switch_event_missing(self, wait: _SwitchWait) -> None:
        if wait in self._switch_waits:
            self._switch_waits.remove(wait)
            self.get_logger().warning(
                f"no SOURCE_SWITCH event for '{wait.detail}': stamped with the answer's time"
            )
            self._apply(self.core.switched(wait.token, True, wait.message, wait.answered))

    def _do_align(self, effect: AlignLeader) -> None:
        self._later(effect.settle_s, lambda: self._align(effect.token))

    def _align(self, token: int) -> None:
        now = self._now()
        q = (
            None
            if self._follower is None
            else positions_by_name(self._follower, self.p["follower_joints"])
        )
        if q is None:
            self._apply(self.core.aligned(token, False, "no follower joint state received", now))
            return
        target = JointState(name=list(self.p["leader_joints"]))
        target.position = ((q - self._offset) / self._scale).tolist()
        target.header.stamp = to_time(now)
        request = MoveToPose.Request(
            target=target,
            max_velocity=float(self.p["align_velocity"]),
            timeout=float(self.p["align_timeout"]),
            release=True,
        )

        def done(res: MoveToPose.Response | None, why: str) -> None:
            ok = res is not None and res.success
            message = (
                why if res is None else f"{res.message} (final error {res.final_error:.4f} rad)"
            )
            self.get_logger().info(f"leader alignment: {message}")
            self._apply(self.core.aligned(token, ok, message, self._now()))

        self.get_logger().info("driving the leader to the follower's pose")
        self._call(self._leader, request, done, timeout=self.p["align_timeout"] + 5.0)

    def _do_publish(self, effect: PublishEvent) -> None:
        current = self.core.recording.current
        msg = EpisodeEvent(
            type=int(effect.kind),
            episode_index=current.index if current is not None else 0,
            task=self.core.config.task,
            source=effect.source,
            detail=effect.detail,
        )
        msg.header.stamp = to_time(effect.stamp)
        self._events.publish(msg)
        self.get_logger().info(f"{effect.kind.name} ({effect.source}): {effect.detail}")

    def _do_start(self, effect: StartRecording) -> None:
        def done(res: StartEpisode.Response | None, why: str) -> None:
            now = self._now()
            if res is not None and res.success:
                self.core.episode_started(res.episode_index, "", now)
            message = why if res is None else res.message
            self.core.request_done(res is not None and res.success, message, now)
            if res is None or not res.success:
                self.get_logger().warning(f"start_episode: {message}", throttle_duration_sec=5.0)
            self._apply(self.core.tick(now, self._episode_bytes))

        self._call(self._start_ep, StartEpisode.Request(task=effect.task), done)

    def _do_stop(self, effect: StopRecording) -> None:
        def done(res: StopEpisode.Response | None, why: str) -> None:
            now = self._now()
            if res is not None and res.success:
                self.core.episode_stopped(res.episode_index)
                self._episode_bytes = 0
                self.get_logger().info(
                    f"episode {res.episode_index} saved: {res.duration_s:.1f} s ({effect.reason})"
                )
            message = why if res is None else res.message
            self.core.request_done(res is not None and res.success, message, now)
            self._apply(self.core.tick(now, self._episode_bytes))

        self._call(self._stop_ep, StopEpisode.Request(), done)

    # --- inputs -----------------------------------------------------------------------------
    def _on_watchdog(self, msg: WatchdogState) -> None:
        if msg.estop_active != self.core.estop_active:
            self._apply(self.core.estop(msg.estop_active, self._now()))

    def _on_watchdog_event(self, msg: EpisodeEvent) -> None:
        if msg.type != EpisodeEvent.SOURCE_SWITCH:
            return
        stamp = from_time(msg.header.stamp)
        self._recent_switches.append((stamp, msg.detail))
        for wait in list(self._switch_waits):
            if wait.detail == msg.detail and stamp >= wait.sent - 0.5:
                self._switch_waits.remove(wait)
                self._apply(self.core.switched(wait.token, True, wait.message, stamp))
                return

    def _on_recorder_event(self, msg: EpisodeEvent) -> None:
        if msg.type == EpisodeEvent.EPISODE_START:
            self.core.episode_started(msg.episode_index, msg.detail, from_time(msg.header.stamp))
        elif msg.type in (EpisodeEvent.EPISODE_STOP, EpisodeEvent.EPISODE_DISCARD):
            self.core.episode_stopped(msg.episode_index)

    def _on_follower(self, msg: JointState) -> None:
        self._follower = msg

    def _on_leader(self, msg: JointState) -> None:
        q = positions_by_name(msg, self.p["leader_joints"])
        if q is not None:
            effects = self.core.leader_sample(q, self._now())
            if effects:
                self._apply(effects)

    def _tick(self) -> None:
        now = self._now()
        current = self.core.recording.current
        if current is not None and current.path and now - self._bytes_checked >= 1.0:
            self._bytes_checked = now
            self._episode_bytes = _directory_bytes(current.path)
        self._apply(self.core.tick(now, self._episode_bytes))

    # --- services ---------------------------------------------------------------------------
    def _srv_intervention(
        self, req: SetIntervention.Request, res: SetIntervention.Response
    ) -> SetIntervention.Response:
        reply = self.core.intervention(bool(req.active), req.source or "service", self._now())
        if reply.ok:
            self.get_logger().info(f"intervention: {reply.message}")
        else:
            self.get_logger().warning(f"intervention refused ({req.source}): {reply.message}")
        self._apply(reply.effects)
        res.success, res.message, res.state = reply.ok, reply.message, str(self.core.state)
        return res

    def _srv_resume(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        reply = self.core.resume(self._now())
        self._apply(reply.effects)
        res.success, res.message = reply.ok, reply.message
        return res

    async def _srv_highlight(
        self, req: SaveHighlight.Request, res: SaveHighlight.Response
    ) -> SaveHighlight.Response:
        refusal = self.core.highlight_refusal()
        if refusal is not None:
            res.message = refusal
            return res
        if not self._highlight.service_is_ready():
            res.message = f"service {self._highlight.service_name} is not available"
            return res
        forwarded = SaveHighlight.Request(
            seconds=req.seconds,
            continue_recording=req.continue_recording,
            task=req.task or self.core.config.task,
        )
        future = self._highlight.call_async(forwarded)
        limit = self.p["service_timeout"]

        def expire() -> None:
            if not future.done():
                self._highlight.remove_pending_request(future)
                future.cancel()

        self._later(limit, expire)
        answer = await future
        if answer is None:
            res.message = f"{self._highlight.service_name} did not answer in {limit:g} s"
            return res
        self.get_logger().info(f"highlight: {answer.message}")
        return answer

    # --- outputs ----------------------------------------------------------------------------
    def _publish_state(self) -> None:
        state = str(self.core.state)
        if state != self._published_state:
            self._published_state = state
            self._state_pub.publish(String(data=state))
            self.get_logger().info(
                f"state: {state}" + (f" ({self.core.detail})" * bool(self.core.detail))
            )

    def _diagnostics(self) -> None:
        rec = self.core.recording
        values: dict[str, Any] = {
            "strategy": self.core.name,
            "state": str(self.core.state),
            "detail": self.core.detail,
            "estop": self.core.estop_active,
            "episode": rec.current.index if rec.current is not None else "",
            "episode_mb": f"{self._episode_bytes / 2**20:.1f}",
            "episodes_seen": rec.seen,
            "rotations": rec.rotations,
            "recorder_error": rec.last_error,
            "interventions": getattr(self.core, "interventions_done", 0),
            "errors": self.errors,
            "last_error": self.last_error,
        }
        if self.core.state in ("held", "stopped") or rec.last_error or self.last_error:
            why = self.core.detail or rec.last_error or self.last_error
            level, message = WARN, f"{self.core.state}: {why}"
        else:
            level, message = OK, f"{self.core.name}: {self.core.state}"
        self.publish_diagnostics("rollout", level, message, values)


def _directory_bytes(path: str) -> int:
    """Bytes of the files directly in `path` (an episode's bag); 0 when it is not visible from
    here (the recorder runs on another machine: size rotation then does not apply)."""
    try:
        with os.scandir(Path(path).expanduser()) as entries:
            return sum(e.stat().st_size for e in entries if e.is_file())
    except OSError:
        return 0


def main(args: list[str] | None = None) -> int:
    return run_node(RolloutNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
