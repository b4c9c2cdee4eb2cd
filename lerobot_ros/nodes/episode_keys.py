"""episode_keys: record and steer a rollout with single key presses (a keyboard or a foot pedal).

Foot pedals are USB HID keyboards (each pedal types a configurable key), so they work here as
keys: set a pedal to type `s`, `space`, `f5`, ... and bind that name below. Keys are read from
a terminal in cbreak mode (stdin, or the tty device `tty` names), on a reader thread; every
action is an asynchronous service call from the executor, and its result is logged. The
terminal's settings are restored on exit. Run it in a terminal of its own, which must have the
keyboard focus: `ros2 run lerobot_ros episode_keys --ros-args -p task:="pick the cube"`.

Default bindings (parameters `keys_<action>`, each a list of key names; see core/keys.py):

    s             start an episode (/recorder/start_episode with the `task` parameter)
    space, enter  stop and save it (/recorder/stop_episode)
    d             discard it (/recorder/discard_episode)
    h             save a highlight (/rollout/save_highlight: `highlight_seconds`, continue)
    i             toggle a human intervention (/rollout/set_intervention, source "keyboard")
    e             e-stop: True on /estop and /watchdog/trigger_estop (either one latches it)

Service names are absolute; remap them (`-r /rollout/save_highlight:=/recorder/save_highlight`)
to point a key elsewhere, e.g. straight at the recorder when no rollout runs.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any

from rclpy.task import Future
from std_msgs.msg import Bool

from lerobot_msgs.msg import EpisodeEvent
from lerobot_msgs.srv import (
    DiscardEpisode,
    SaveHighlight,
    SetIntervention,
    StartEpisode,
    StopEpisode,
    TriggerEstop,
)
from lerobot_ros.core.keys import KeyReader, Terminal, TerminalError, is_key_name
from lerobot_ros.core.params import ParameterError, ParamSpec, non_negative
from lerobot_ros.nodes import qos
from lerobot_ros.nodes.base import LeRobotNode, call_soon, run_node

ACTIONS = ("start", "stop", "discard", "highlight", "intervention", "estop")
DEFAULT_KEYS: dict[str, list[str]] = {
    "start": ["s"],
    "stop": ["space", "enter"],
    "discard": ["d"],
    "highlight": ["h"],
    "intervention": ["i"],
    "estop": ["e"],
}
WHAT = {
    "start": "start an episode",
    "stop": "stop and save the episode",
    "discard": "discard the episode",
    "highlight": "save a highlight",
    "intervention": "toggle an intervention",
    "estop": "trigger the e-stop",
}


def _key_names(v: Any) -> str | None:
    bad = [k for k in v if not is_key_name(k)]
    if bad:
        return (
            f"unknown key names {bad}: one character, or space, enter, tab, backspace, esc, "
            "up/down/left/right, home, end, insert, delete, pageup, pagedown, f1..f12, ctrl+<a-z>"
        )
    return None


EPISODE_KEYS_PARAMS = [
    ParamSpec("tty", "", "Terminal device to read keys from; empty = stdin."),
    ParamSpec("task", "", "Task text of the episodes that the start key begins."),
    ParamSpec(
        "highlight_seconds",
        10.0,
        "s of history a highlight saves (SaveHighlight.seconds; 0 = all the ring holds).",
        (non_negative,),
    ),
    ParamSpec(
        "highlight_continue",
        False,
        "true: the highlight goes on recording live until the next highlight key.",
    ),
    *(
        ParamSpec(f"keys_{action}", keys, f"Keys that {WHAT[action]}.", (_key_names,))
        for action, keys in DEFAULT_KEYS.items()
    ),
]


def bindings(p: dict[str, Any]) -> dict[str, str]:
    """key name -> action, from the keys_<action> parameters; a key bound twice is an error."""
    out: dict[str, str] = {}
    for action in ACTIONS:
        for key in p[f"keys_{action}"]:
            if key in out and out[key] != action:
                raise ParameterError(
                    f"keys_{action}", p[f"keys_{action}"], f"{key!r} is bound to {out[key]} too"
                )
            out[key] = action
    return out


class EpisodeKeysNode(LeRobotNode):
    PARAMS = EPISODE_KEYS_PARAMS

    def __init__(self, node_name: str = "episode_keys", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.bindings = bindings(self.p)
        self.intervening = False  # follows /rollout/events; flipped by our own calls too
        self.action_clients = {
            "start": self.create_client(StartEpisode, "/recorder/start_episode"),
            "stop": self.create_client(StopEpisode, "/recorder/stop_episode"),
            "discard": self.create_client(DiscardEpisode, "/recorder/discard_episode"),
            "highlight": self.create_client(SaveHighlight, "/rollout/save_highlight"),
            "intervention": self.create_client(SetIntervention, "/rollout/set_intervention"),
            "estop": self.create_client(TriggerEstop, "/watchdog/trigger_estop"),
        }
        self._estop = self.create_publisher(Bool, "/estop", qos.COMMAND)
        self.create_subscription(EpisodeEvent, "/rollout/events", self._on_event, qos.EVENTS)
        # Keys cross from the reader thread to the executor through a queue + `call_soon`.
        self._keys: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.create_timer(0.5, self._drain)  # keys pressed before the node was spinning
        self.pressed: list[tuple[str, str]] = []  # (key, action or "") in order, for tests
        try:
            self.terminal = Terminal(self.p["tty"])
        except TerminalError as exc:
            raise ParameterError(
                "tty", self.p["tty"], f"{exc}; run episode_keys in a terminal of its own"
            ) from exc
        self.reader = KeyReader(self.terminal.fd, self._on_key, self._on_end).start()
        by_action: dict[str, list[str]] = {}
        for key, action in self.bindings.items():
            by_action.setdefault(action, []).append(key)
        help_ = ", ".join(f"{'/'.join(by_action[a])}: {WHAT[a]}" for a in ACTIONS if a in by_action)
        self.get_logger().info(f"reading keys from {self.terminal.path}; {help_}")
        if not self.p["task"].strip():
            self.get_logger().warning("no task set (parameter task): the start key is refused")

    # --- reader thread -> executor -------------------------------------------------------------
    def _on_key(self, key: str) -> None:  # reader thread
        self._keys.put(key)
        call_soon(self, self._drain)

    def _on_end(self, reason: str) -> None:  # reader thread
        self.get_logger().warning(f"no more keys from {self.terminal.path}: {reason}")

    def _drain(self) -> None:
        while True:
            try:
                key = self._keys.get_nowait()
            except queue.Empty:
                return
            action = self.bindings.get(key, "")
            self.pressed.append((key, action))
            if action:
                getattr(self, f"_do_{action}")(key)
            else:
                self.get_logger().debug(f"key {key!r} is not bound")

    def _on_event(self, msg: EpisodeEvent) -> None:
        if msg.type == EpisodeEvent.INTERVENTION_START:
            self.intervening = True
        elif msg.type == EpisodeEvent.INTERVENTION_END:
            self.intervening = False

    # --- actions -------------------------------------------------------------------------------
    def _do_start(self, key: str) -> None:
        task = self.p["task"].strip()
        if not task:
            self.get_logger().error(f"[{key}] start refused: set the parameter task first")
            return
        self._call("start", key, StartEpisode.Request(task=task))

    def _do_stop(self, key: str) -> None:
        self._call("stop", key, StopEpisode.Request())

    def _do_discard(self, key: str) -> None:
        self._call("discard", key, DiscardEpisode.Request())

    def _do_highlight(self, key: str) -> None:
        req = SaveHighlight.Request(
            seconds=self.p["highlight_seconds"],
            continue_recording=self.p["highlight_continue"],
            task="",  # the rollout's task
        )
        self._call("highlight", key, req)

    def _do_intervention(self, key: str) -> None:
        want = not self.intervening
        req = SetIntervention.Request(active=want, source="keyboard")

        def done(res: Any) -> None:
            if res.success:
                self.intervening = want

        self._call("intervention", key, req, done)

    def _do_estop(self, key: str) -> None:
        # The topic needs no service round trip: it latches even while the service is busy.
        self._estop.publish(Bool(data=True))
        self.get_logger().warning(f"[{key}] e-stop: published True on /estop")
        self._call("estop", key, TriggerEstop.Request(reason=f"key {key!r} (episode_keys)"))

    def _call(
        self, action: str, key: str, request: Any, then: Callable[[Any], None] | None = None
    ) -> None:
        client = self.action_clients[action]
        if not client.service_is_ready():
            self.get_logger().error(
                f"[{key}] {WHAT[action]}: service {client.srv_name} is not available"
            )
            return
        future = client.call_async(request)
        future.add_done_callback(lambda f: self._done(action, key, f, then))

    def _done(
        self, action: str, key: str, future: Future, then: Callable[[Any], None] | None
    ) -> None:
        try:
            res = future.result()
        except Exception as exc:  # the call itself failed (service gone, context down)
            self.get_logger().error(f"[{key}] {WHAT[action]}: call failed: {exc}")
            return
        if res is None:
            self.get_logger().error(f"[{key}] {WHAT[action]}: no response")
            return
        if then is not None:
            then(res)
        extra = f" (state: {res.state})" if action == "intervention" else ""
        # (rclpy refuses two severities from one call site: two calls.)
        if res.success:
            self.get_logger().info(f"[{key}] {WHAT[action]}: ok: {res.message}{extra}")
        else:
            self.get_logger().warning(f"[{key}] {WHAT[action]}: refused: {res.message}{extra}")

    def shutdown(self) -> None:
        """Stop reading and give the terminal its settings back."""
        self.reader.stop()
        self.terminal.restore()


def main(args: list[str] | None = None) -> int:
    return run_node(EpisodeKeysNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
