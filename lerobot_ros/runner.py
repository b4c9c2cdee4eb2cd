"""Run a node graph in ONE process: manual composition of the nodes that the launch files start
as separate processes, from the same `lerobot_ros.core.graph` description.

Used by the demo and the tests, and on machines without `launch`/`launch_ros`. The nodes still
talk over real DDS (rclpy does not short-cut intra-process traffic).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable
from typing import Any

import rclpy
import yaml
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from lerobot_ros.core.graph import NodeSpec, yaml_parameters


def node_parameters(spec: NodeSpec) -> list[Parameter]:
    """What launch_ros would pass: the YAML files' entries for this node, then the overrides."""
    values: dict[str, Any] = {}
    for path in spec.param_files:
        with open(path) as f:
            values.update(yaml_parameters(yaml.safe_load(f) or {}, spec.fqn))
    values.update(spec.parameters)
    return [Parameter(k, value=v) for k, v in values.items()]


def load_class(path: str) -> type[Node]:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


class InProcessGraph:
    """Start the in-process nodes of `specs` in their own rclpy Context and executor.

    with InProcessGraph(teleop_graph(args)) as graph:
        graph.nodes["follower"] ...
    """

    def __init__(
        self, specs: Iterable[NodeSpec], *, domain_id: int | None = None, threads: int = 6
    ):
        self.specs = [s for s in specs if s.in_process]
        self.skipped = [s for s in specs if not s.in_process]
        self.context = Context()
        self._domain_id = domain_id
        self._threads = threads
        self.nodes: dict[str, Node] = {}
        self.executor: MultiThreadedExecutor | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> InProcessGraph:
        rclpy.init(context=self.context, domain_id=self._domain_id)
        try:
            for spec in self.specs:
                cls = load_class(spec.in_process or "")
                self.nodes[spec.name] = cls(
                    node_name=spec.name,
                    namespace=spec.namespace or None,
                    context=self.context,
                    parameter_overrides=node_parameters(spec),
                    cli_args=_remap_args(spec),
                )
        except BaseException:
            self.stop()
            raise
        self.executor = MultiThreadedExecutor(num_threads=self._threads, context=self.context)
        for node in self.nodes.values():
            self.executor.add_node(node)
        self._thread = threading.Thread(target=self._spin, name="graph-executor", daemon=True)
        self._thread.start()
        return self

    def _spin(self) -> None:
        try:
            self.executor.spin()  # type: ignore[union-attr]
        except Exception:
            if self.context.ok():
                raise

    def add_node(self, node: Node) -> None:
        """Spin an extra node (a test probe) in the same executor."""
        assert self.executor is not None
        self.executor.add_node(node)

    def stop(self) -> None:
        """Make every node safe (torque off / hold), then tear everything down."""
        for node in reversed(list(self.nodes.values())):
            shutdown = getattr(node, "shutdown", None)
            if shutdown is not None:
                shutdown()
        if self.executor is not None:
            self.executor.shutdown(timeout_sec=2.0)
        for node in self.nodes.values():
            node.destroy_node()
        self.nodes.clear()
        rclpy.try_shutdown(context=self.context)
        if self._thread is not None:
            self._thread.join(timeout=5.0)

    def __enter__(self) -> InProcessGraph:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _remap_args(spec: NodeSpec) -> list[str] | None:
    if not spec.remappings:
        return None
    args = ["--ros-args"]
    for src, dst in spec.remappings:
        args += ["-r", f"{src}:={dst}"]
    return args
