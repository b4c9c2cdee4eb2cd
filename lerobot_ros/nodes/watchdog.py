"""Safety watchdog node: the only publisher of `/follower/command`.

Subscribes `/<source>/command` for each configured source, forwards the active one through the
`Watchdog` core (limits, validation, timeout, e-stop), and publishes its latched state,
episode events and diagnostics. Every callback shares one mutually exclusive group: the core is
not thread-safe, and each callback is short (no I/O).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool

from lerobot_msgs.msg import EpisodeEvent, WatchdogState
from lerobot_msgs.srv import ResetEstop, SetActiveSource, TriggerEstop
from lerobot_ros.core.params import (
    ParameterError,
    ParamSpec,
    all_finite,
    file_exists,
    non_empty,
    non_negative,
    one_of,
    positive,
    unique,
)
from lerobot_ros.core.robots import ROBOTS, get_robot
from lerobot_ros.core.safety import JointLimits, Violation, Watchdog, WatchdogEvent
from lerobot_ros.core.urdf import joint_limits, load_urdf
from lerobot_ros.nodes import qos
from lerobot_ros.nodes.base import ERROR, OK, RT_PRIORITY, WARN, LeRobotNode, run_node
from lerobot_ros.nodes.convert import float64_array, to_time

WATCHDOG_PARAMS = [
    ParamSpec("robot", "so101", "Robot model (joint names, URDF limits).", (one_of(ROBOTS.names),)),
    ParamSpec(
        "urdf", "", "URDF giving the joint limits; empty = the robot's URDF.", (file_exists,)
    ),
    ParamSpec(
        "lower_limits",
        [],
        "rad per joint; overrides the URDF's lower limits when not empty.",
        (all_finite,),
        list_type="float",
    ),
    ParamSpec(
        "upper_limits",
        [],
        "rad per joint; overrides the URDF's upper limits when not empty.",
        (all_finite,),
        list_type="float",
    ),
    ParamSpec(
        "limit_margin", 0.0, "rad kept clear of each URDF/configured limit.", (non_negative,)
    ),
    ParamSpec("max_velocity", 3.0, "rad/s between consecutive forwarded commands.", (positive,)),
    ParamSpec(
        "max_step", 0.35, "rad: largest |command - measured position| forwarded.", (positive,)
    ),
    ParamSpec(
        "command_timeout", 0.25, "s without a command from the active source -> hold.", (positive,)
    ),
    ParamSpec(
        "violation",
        "clamp",
        "What to do with a command outside limits: clamp or reject.",
        (one_of([v.value for v in Violation]),),
    ),
    ParamSpec("rate", 100.0, "Hz of the hold / timeout check (the control period).", (positive,)),
    RT_PRIORITY,
    ParamSpec(
        "sources",
        ["teleop", "chunk_player", "ee_teleop"],
        "Command sources; each publishes JointState on /<source>/command.",
        (non_empty, unique),
    ),
    ParamSpec("active_source", "teleop", "Source forwarded at start-up.", (non_empty,)),
    ParamSpec("measured_topic", "/follower/joint_states", "Measured follower JointState."),
    ParamSpec("output_topic", "/follower/command", "Where forwarded commands go (the follower)."),
]


# WatchdogState carries these WatchdogStatus fields unchanged.
_STATE_FIELDS = (
    "estop_active",
    "estop_reason",
    "active_source",
    "holding",
    "hold_reason",
    "forwarded",
    "clipped",
    "rejected",
)


class WatchdogNode(LeRobotNode):
    PARAMS = WATCHDOG_PARAMS

    def __init__(self, node_name: str = "watchdog", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.core = Watchdog(
            self._limits(),
            sources=self.p["sources"],
            active_source=self._active_source(),
            command_timeout=self.p["command_timeout"],
            violation=Violation(self.p["violation"]),
            min_dt=1.0 / self.p["rate"],  # commands take effect once per control period
        )
        self._last_state: tuple[Any, ...] | None = None
        group = MutuallyExclusiveCallbackGroup()

        self._out = self.create_publisher(JointState, self.p["output_topic"], qos.COMMAND)
        self._out_msg = JointState(name=list(self.core.joint_names))
        self._state_pub = self.create_publisher(WatchdogState, "~/state", qos.LATCHED)
        self._estop_pub = self.create_publisher(Bool, "~/estop", qos.LATCHED)
        self._events = self.create_publisher(EpisodeEvent, "~/events", qos.EVENTS)

        self.create_subscription(
            JointState,
            self.p["measured_topic"],
            self._on_measured,
            qos.SENSOR,
            callback_group=group,
        )
        for source in self.p["sources"]:
            # Inputs: a source node composed into this process hands its commands over directly.
            self.create_input(
                JointState,
                f"/{source}/command",
                lambda msg, s=source: self._on_command(s, msg),
                qos.COMMAND,
                callback_group=group,
            )
        # Any node (a pedal, a GUI button) can latch the e-stop by publishing True on /estop.
        self.create_subscription(
            Bool, "/estop", self._on_estop_topic, qos.COMMAND, callback_group=group
        )
        self.create_service(
            TriggerEstop, "~/trigger_estop", self._srv_trigger, callback_group=group
        )
        self.create_service(ResetEstop, "~/reset_estop", self._srv_reset, callback_group=group)
        self.create_service(
            SetActiveSource, "~/set_active_source", self._srv_source, callback_group=group
        )
        self.create_timer(1.0 / self.p["rate"], self._tick, callback_group=group)
        self.create_timer(1.0, self._diagnostics, callback_group=group)
        self._publish_state(force=True)
        self.get_logger().info(
            f"watchdog: sources {self.p['sources']}, active '{self.core.status().active_source}', "
            f"timeout {self.p['command_timeout']} s, violation '{self.p['violation']}'"
        )

    # --- configuration ------------------------------------------------------------------
    def _limits(self) -> JointLimits:
        robot = get_robot(self.p["robot"])
        names = list(robot.joint_names)
        urdf_path = self.p["urdf"] or str(robot.urdf_path())
        try:
            lower, upper, _ = joint_limits(load_urdf(urdf_path), names)
        except (OSError, ValueError) as exc:
            raise ParameterError("urdf", urdf_path, str(exc)) from exc
        for key in ("lower_limits", "upper_limits"):
            if self.p[key] and len(self.p[key]) != len(names):
                raise ParameterError(key, self.p[key], f"needs {len(names)} values for {names}")
        lower = np.array(self.p["lower_limits"] or lower, float) + self.p["limit_margin"]
        upper = np.array(self.p["upper_limits"] or upper, float) - self.p["limit_margin"]
        for i, name in enumerate(names):
            if lower[i] > upper[i]:
                raise ParameterError(
                    "lower_limits",
                    lower.tolist(),
                    f"joint '{name}': lower {lower[i]:.4f} > upper {upper[i]:.4f} rad",
                )
        return JointLimits.uniform(names, lower, upper, self.p["max_velocity"], self.p["max_step"])

    def _active_source(self) -> str:
        if self.p["active_source"] not in self.p["sources"]:
            raise ParameterError(
                "active_source", self.p["active_source"], f"must be one of {self.p['sources']}"
            )
        return self.p["active_source"]

    # --- inputs -----------------------------------------------------------------------------
    def _now(self) -> float:
        return time.time()

    def _on_measured(self, msg: JointState) -> None:
        self.core.on_measured(msg.name, msg.position, self._now())

    def _on_command(self, source: str, msg: JointState) -> None:
        verdict = self.core.on_command(source, msg.name, msg.position, self._now())
        if verdict.command is not None:
            self._forward(verdict.command, msg)
        elif verdict.status == "rejected":
            self.get_logger().warning(
                f"rejected command from '{source}': {verdict.reason}", throttle_duration_sec=1.0
            )
        self._after_change()

    def _on_estop_topic(self, msg: Bool) -> None:
        if msg.data:
            self._trigger("/estop topic")

    def _srv_trigger(
        self, req: TriggerEstop.Request, res: TriggerEstop.Response
    ) -> TriggerEstop.Response:
        self._trigger(req.reason or "service")
        res.success, res.message = True, "e-stop latched"
        return res

    def _srv_reset(self, req: ResetEstop.Request, res: ResetEstop.Response) -> ResetEstop.Response:
        res.success, res.message = self.core.reset_estop(req.reason or "service", self._now())
        self._after_change()
        return res

    def _srv_source(
        self, req: SetActiveSource.Request, res: SetActiveSource.Response
    ) -> SetActiveSource.Response:
        res.success, res.message, res.previous_source = self.core.set_active_source(
            req.source, self._now()
        )
        self._after_change()
        return res

    def _trigger(self, reason: str) -> None:
        hold = self.core.trigger_estop(reason, self._now())
        if hold is not None:
            self._forward(hold)  # the hold goes out now, not at the next tick
        self._after_change()

    # --- outputs ----------------------------------------------------------------------------
    def _forward(self, command: np.ndarray, source_msg: JointState | None = None) -> None:
        msg = self._out_msg  # reused: publish() serializes it before returning
        # The source's stamp goes through, so latency is traceable end to end.
        msg.header.stamp = to_time(self._now()) if source_msg is None else source_msg.header.stamp
        msg.position = float64_array(command)
        self._out.publish(msg)

    def _tick(self) -> None:
        hold = self.core.tick(self._now())
        if hold is not None:
            self._forward(hold)
        self._after_change()

    def _after_change(self) -> None:
        for event in self.core.drain_events():
            self._publish_event(event)
        self._publish_state()

    def _publish_event(self, event: WatchdogEvent) -> None:
        kinds = {
            "source_switch": EpisodeEvent.SOURCE_SWITCH,
            "estop": EpisodeEvent.ESTOP,
            "estop_reset": EpisodeEvent.ESTOP_RESET,
        }
        text = f"{event.kind}: {event.detail} (source '{event.source}')"
        if event.kind in ("estop", "hold"):
            self.get_logger().warning(text)
        else:
            self.get_logger().info(text)
        if event.kind in kinds:
            msg = EpisodeEvent(type=kinds[event.kind], source=event.source, detail=event.detail)
            msg.header.stamp = to_time(event.t)
            self._events.publish(msg)

    def _publish_state(self, force: bool = False) -> None:
        s = self.core.status()
        key = (s.estop_active, s.estop_reason, s.active_source, s.holding, s.hold_reason)
        if not force and key == self._last_state:
            return
        self._last_state = key
        msg = WatchdogState(**{f: getattr(s, f) for f in _STATE_FIELDS})
        msg.header.stamp = self.get_clock().now().to_msg()
        self._state_pub.publish(msg)
        self._estop_pub.publish(Bool(data=s.estop_active))

    def _diagnostics(self) -> None:
        s = self.core.status()
        if s.estop_active:
            level, message = ERROR, f"E-STOP: {s.estop_reason}"
        elif s.holding:
            level, message = WARN, f"holding ({s.hold_reason})"
        else:
            level, message = OK, f"forwarding '{s.active_source}'"
        values: dict[str, Any] = {
            "active_source": s.active_source,
            "estop": s.estop_active,
            "holding": s.holding,
            "forwarded": s.forwarded,
            "clipped": s.clipped,
            "rejected": s.rejected,
            "ignored": s.ignored,
        }
        values.update({f"rejected.{k}": v for k, v in sorted(s.reject_reasons.items())})
        values.update({f"clipped.{k}": v for k, v in sorted(s.clip_reasons.items())})
        self.publish_diagnostics("safety", level, message, values)
        self._publish_state(force=True)  # refresh the counters in the latched state once a second


def main(args: list[str] | None = None) -> int:
    return run_node(WatchdogNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
