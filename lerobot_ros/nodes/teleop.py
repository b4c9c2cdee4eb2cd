"""Teleop node: leader joint states -> follower joint commands, sent to the watchdog.

Publishes `~/command` (= /teleop/command, a source of the watchdog) for every leader sample,
immediately in the callback: teleop latency is what a human feels.
"""

from __future__ import annotations

from typing import Any

from sensor_msgs.msg import JointState

from lerobot_ros.core.params import ParamSpec, all_finite, non_empty, unique
from lerobot_ros.core.robots import SO_ARM_JOINTS
from lerobot_ros.core.teleop import JointMap
from lerobot_ros.nodes import qos
from lerobot_ros.nodes.base import RT_PRIORITY, LeRobotNode, run_node
from lerobot_ros.nodes.convert import float64_array, positions_by_name

TELEOP_PARAMS = [
    ParamSpec("leader_topic", "/leader/joint_states", "Leader arm JointState topic."),
    ParamSpec(
        "leader_joints",
        list(SO_ARM_JOINTS),
        "Leader joint names, paired by index with follower_joints.",
        (non_empty, unique),
    ),
    ParamSpec(
        "follower_joints",
        list(SO_ARM_JOINTS),
        "Follower joint names commanded.",
        (non_empty, unique),
    ),
    ParamSpec("scale", [1.0] * 6, "Per joint: follower = scale * leader + offset.", (all_finite,)),
    ParamSpec("offset", [0.0] * 6, "Per joint offset, rad.", (all_finite,)),
    RT_PRIORITY,
]


class TeleopNode(LeRobotNode):
    PARAMS = TELEOP_PARAMS

    def __init__(self, node_name: str = "teleop", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.map = JointMap.from_params(
            self.p["leader_joints"], self.p["follower_joints"], self.p["scale"], self.p["offset"]
        )
        # An Output: composed with the watchdog (`compose`), the command is handed over directly.
        self._pub = self.create_output(JointState, "~/command", qos.COMMAND)
        self._out = JointState(name=list(self.map.follower))
        self.create_subscription(JointState, self.p["leader_topic"], self._on_leader, qos.SENSOR)

    def _on_leader(self, msg: JointState) -> None:
        q = positions_by_name(msg, self.map.leader)
        if q is None:
            return
        out = self._out
        out.header.stamp = msg.header.stamp  # keep the leader's capture time end to end
        out.position = float64_array(self.map.apply(q))
        self._pub.publish(out)  # serialized here, so the message can be reused


def main(args: list[str] | None = None) -> int:
    return run_node(TeleopNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
