"""Run a node graph in ONE process: manual composition of the nodes that the launch files start
as separate processes, from the same `lerobot_ros.core.graph` description.

Each node gets its own executor (`make_executor`: the one `run_node` uses) in its own thread, as
if it were its own process: a slow camera render never delays the watchdog. (rclpy's
MultiThreadedExecutor was measured here at 3 Hz for a 100 Hz follower + watchdog: its
per-callback overhead and GIL contention dominate; one executor per node keeps 100 Hz.)

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
from rclpy.executors import Executor
from rclpy.node import Node
from rclpy.parameter import Parameter

from lerobot_ros.core.graph import NodeSpec, processes, yaml_parameters
from lerobot_ros.nodes.base import compose, make_executor, spin_executor


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
    """Start the in-process nodes of `specs` in their own rclpy Context.

    with InProcessGraph(teleop_graph(args)) as graph:
        graph.nodes["follower"] ...
    """

    def __init__(self, specs: Iterable[NodeSpec], *, domain_id: int | None = None) -> None:
        specs = list(specs)
        self.specs = [s for s in specs if s.in_process]
        self.skipped = [s for s in specs if not s.in_process]
        self.context = Context()
        self._domain_id = domain_id
        self.nodes: dict[str, Node] = {}
        self._executors: dict[str, tuple[Executor, threading.Event]] = {}
        self._threads: list[threading.Thread] = []
        self.wired: list[tuple[str, str, str]] = []  # (topic, publisher, subscriber) composed

    def start(self) -> InProcessGraph:
        groups = processes(self.specs)  # a bad grouping fails before any node exists
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
        for group in groups:
            self._spin_group([self.nodes[spec.name] for spec in group])
        return self

    def add_node(self, node: Node) -> None:
        """Spin `node` (one of ours, or an extra one such as a test probe) in its own thread."""
        self._spin_group([node])

    def _spin_group(self, nodes: list[Node]) -> None:
        """One executor thread for `nodes`, composed (`compose`) when there are several: what
        one process of the launched graph does."""
        self.wired += compose(nodes)  # before spinning: no message is taken twice
        executor = make_executor(self.context)
        for node in nodes:
            executor.add_node(node)
        stop = threading.Event()
        for node in nodes:
            self._executors[node.get_fully_qualified_name()] = (executor, stop)
        thread = threading.Thread(
            target=self._spin,
            args=(executor, stop),
            name=f"spin-{nodes[0].get_name()}",
            daemon=True,
        )
        self._threads.append(thread)
        thread.start()

    def remove_node(self, node: Node) -> None:
        """Stop spinning an extra node added with add_node (the caller destroys it)."""
        entry = self._executors.pop(node.get_fully_qualified_name(), None)
        if entry is not None:
            entry[1].set()
            entry[0].shutdown(timeout_sec=2.0)

    def _spin(self, executor: Executor, stop: threading.Event) -> None:
        try:
            spin_executor(executor, self.context, stop)
        except Exception:
            if self.context.ok():  # a real failure, not the context going down
                raise

    def stop(self) -> None:
        """Stop the callbacks, make every node safe (torque off / hold), then tear down."""
        executors = {id(e): (e, stop) for e, stop in self._executors.values()}.values()
        for _, stop in executors:
            stop.set()
        for executor, _ in executors:
            executor.shutdown(timeout_sec=2.0)
        self._executors.clear()
        for node in reversed(list(self.nodes.values())):
            shutdown = getattr(node, "shutdown", None)
            if shutdown is not None:
                shutdown()
        for node in self.nodes.values():
            node.destroy_node()
        self.nodes.clear()
        rclpy.try_shutdown(context=self.context)
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._threads.clear()

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
