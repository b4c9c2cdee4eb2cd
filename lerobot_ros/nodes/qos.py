"""QoS profiles, chosen on purpose (and overridable per topic with ROS QoS overrides).

- SENSOR: measured joint states and images. Best-effort, keep-last: a late sample is worthless,
  and robot_state_publisher / RViz / rosbag2 all accept best-effort publishers.
- COMMAND: commands into and out of the watchdog. Reliable, keep-last 10, volatile.
- LATCHED: state that late joiners must see (e-stop, watchdog state). Reliable, transient-local.
- EVENTS: episode events; reliable and kept so a recorder that starts late still gets the last few.
"""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from rclpy.qos_overriding_options import QoSOverridingOptions

SENSOR = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=5,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)
COMMAND = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
LATCHED = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
EVENTS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=50,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)


def overridable() -> QoSOverridingOptions:
    """Lets users change reliability/depth/durability per topic from a parameter file."""
    return QoSOverridingOptions.with_default_policies()
