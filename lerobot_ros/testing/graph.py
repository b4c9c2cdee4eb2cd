"""An in-process graph plus a probe node that publishes, subscribes and calls services, for
tests and benchmarks over real DDS."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from rclpy.node import Node
from rclpy.qos import QoSProfile

from lerobot_ros.core.graph import NodeSpec
from lerobot_ros.runner import InProcessGraph
from lerobot_ros.testing.ros import Inbox, wait_until


def spec(name: str, cls: str, namespace: str = "", **parameters: Any) -> NodeSpec:
    """A NodeSpec for the runner with the robot's parameter file and some overrides."""
    from lerobot_ros.core.paths import resolve

    return NodeSpec(
        name=name,
        executable=name,
        namespace=namespace,
        param_files=(str(resolve("config/so101.yaml")),),
        parameters=parameters,
        in_process=cls,
    )


FOLLOWER = "lerobot_ros.nodes.arm:FollowerNode"
LEADER = "lerobot_ros.nodes.arm:LeaderNode"
TELEOP = "lerobot_ros.nodes.teleop:TeleopNode"
WATCHDOG = "lerobot_ros.nodes.watchdog:WatchdogNode"
CAMERA = "lerobot_ros.nodes.camera:CameraNode"


class GraphHarness:
    """with GraphHarness(specs, domain_id) as h: h.inbox(...); h.publisher(...); h.call(...)"""

    def __init__(self, specs: Iterable[NodeSpec], domain_id: int) -> None:
        self.graph = InProcessGraph(specs, domain_id=domain_id)
        self.probe: Node | None = None

    def __enter__(self) -> GraphHarness:
        self.graph.start()
        self.probe = Node("test_probe", context=self.graph.context)
        self.graph.add_node(self.probe)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.probe is not None:
            self.graph.remove_node(self.probe)
            self.probe.destroy_node()
        self.graph.stop()

    @property
    def nodes(self) -> dict[str, Node]:
        return self.graph.nodes

    def inbox(self, msg_type: Any, topic: str, qos: QoSProfile | int = 10) -> Inbox:
        box = Inbox()
        assert self.probe is not None
        self.probe.create_subscription(msg_type, topic, box, qos)
        return box

    def publisher(self, msg_type: Any, topic: str, qos: QoSProfile | int = 10) -> Any:
        assert self.probe is not None
        return self.probe.create_publisher(msg_type, topic, qos)

    def call(self, srv_type: Any, name: str, request: Any, timeout: float = 5.0) -> Any:
        """Call a service from the probe; raises TimeoutError naming the service."""
        assert self.probe is not None
        client = self.probe.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError(f"service {name} not available after {timeout} s")
            done = threading.Event()
            future = client.call_async(request)
            future.add_done_callback(lambda _f: done.set())
            if not done.wait(timeout):
                raise TimeoutError(f"service {name} did not answer within {timeout} s")
            return future.result()
        finally:
            self.probe.destroy_client(client)

    @staticmethod
    def wait(predicate: Any, timeout: float, what: str = "condition") -> None:
        if not wait_until(predicate, timeout):
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
