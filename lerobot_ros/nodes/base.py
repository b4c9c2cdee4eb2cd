"""What every lerobot_ros node shares: declared + validated parameters, diagnostics, and a
`main()` that turns a bad parameter into one clear line and torques off on any exit."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.exceptions import ParameterException, ParameterUninitializedException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

from lerobot_ros.core.params import ParameterError, ParamSpec, validate

_ROS_TYPES = {
    "bool": ParameterType.PARAMETER_BOOL,
    "int": ParameterType.PARAMETER_INTEGER,
    "float": ParameterType.PARAMETER_DOUBLE,
    "str": ParameterType.PARAMETER_STRING,
    "bool[]": ParameterType.PARAMETER_BOOL_ARRAY,
    "int[]": ParameterType.PARAMETER_INTEGER_ARRAY,
    "float[]": ParameterType.PARAMETER_DOUBLE_ARRAY,
    "str[]": ParameterType.PARAMETER_STRING_ARRAY,
}

# DiagnosticStatus levels are single bytes (b"\x00" ...).
OK: bytes = DiagnosticStatus.OK
WARN: bytes = DiagnosticStatus.WARN
ERROR: bytes = DiagnosticStatus.ERROR


def declare_parameters(node: Node, specs: Iterable[ParamSpec]) -> dict[str, Any]:
    """Declare each spec with a typed descriptor, then validate; raises ParameterError."""
    specs = list(specs)
    values: dict[str, Any] = {}
    for spec in specs:
        descriptor = ParameterDescriptor(
            name=spec.name,
            type=_ROS_TYPES[spec.type_name],
            description=spec.description,
            read_only=spec.read_only,
        )
        default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        # rclpy infers BYTE_ARRAY from [], so an empty-list default is declared by its type and
        # an unset value then reads as the empty default.
        initial = Parameter.Type(_ROS_TYPES[spec.type_name]) if default == [] else default
        try:
            node.declare_parameter(spec.name, initial, descriptor)
            values[spec.name] = node.get_parameter(spec.name).value
        except ParameterUninitializedException:
            values[spec.name] = []
        except ParameterException as exc:  # wrong type given in YAML or on the command line
            value = _override_value(node, spec.name)
            raise ParameterError(spec.name, value, f"expected type {spec.type_name}") from exc
    return validate(specs, values)


def _override_value(node: Node, name: str) -> Any:
    param = node._parameter_overrides.get(name)
    return None if param is None else param.value


class LeRobotNode(Node):
    """A Node whose parameters come from `PARAMS` (a list of ParamSpec) and land in `self.p`."""

    PARAMS: Sequence[ParamSpec] = ()

    def __init__(self, node_name: str, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.p: dict[str, Any] = declare_parameters(self, self.PARAMS)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

    def publish_diagnostics(
        self, name: str, level: bytes, message: str, values: dict[str, Any]
    ) -> None:
        """One DiagnosticStatus named '<node>: <name>' on /diagnostics (robot monitor, rqt)."""
        status = DiagnosticStatus(
            level=level,
            name=f"{self.get_name()}: {name}",
            message=message,
            hardware_id=self.get_fully_qualified_name(),
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
        )
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [status]
        self._diag_pub.publish(msg)

    def shutdown(self) -> None:
        """Called once before the node is destroyed (and on SIGINT/SIGTERM): make it safe."""


def spin(node: Node) -> None:
    """Spin one node until shutdown, with the executor LEROBOT_ROS_EXECUTOR names.

    "single" (default): SingleThreadedExecutor. rclpy 9.1's MultiThreadedExecutor spins holding
    the GIL (ros2/rclpy#1452): a 100 Hz loop fell to 3 Hz here, so it is not offered.
    "events": rclpy's experimental EventsExecutor, about 3x less CPU per callback (teleop
    latency p50 4.4 -> 1.8 ms in bench/teleop_latency.py); its spin() does not deliver with
    these wheels, so it is driven with spin_once.
    """
    kind = os.environ.get("LEROBOT_ROS_EXECUTOR", "single")
    if kind == "events":
        from rclpy.experimental import EventsExecutor

        executor = EventsExecutor(context=node.context)
        executor.add_node(node)
        while node.context.ok():
            executor.spin_once(timeout_sec=0.1)
        return
    if kind != "single":
        raise ParameterError("LEROBOT_ROS_EXECUTOR", kind, "must be single or events")
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    executor.spin()


def run_node(factory: Callable[..., LeRobotNode], args: Sequence[str] | None = None) -> int:
    """Entry point for console scripts: init, spin, and always
    call `node.shutdown()` (torque off / hold) before exiting, whatever ended the spin."""
    # Our own SIGINT handler: rclpy's can make an in-flight take_message raise a RuntimeError
    # while the context is still "ok" (seen in 3 of 12 launches); with this, 16 of 16 exits
    # were clean. SIGTERM keeps rclpy's handler (context shutdown -> spin returns).
    interrupted: list[int] = []
    # While the node is being built, a SIGINT is only noted: raised inside the constructor it
    # would leave no node to shut down, e.g. a follower whose torque its activation turned on.
    constructing = [True]

    def on_sigint(signum: int, _frame: object) -> None:
        interrupted.append(signum)
        if not constructing[0]:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.SIGTERM)
    node: LeRobotNode | None = None
    # rclpy's default handlers turn SIGINT and SIGTERM into a context shutdown: spin() returns
    # and the `finally` below runs node.shutdown().
    try:
        node = factory()
        constructing[0] = False
        if not interrupted:
            spin(node)
    except ParameterError as exc:
        print(f"[lerobot_ros] {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok() and not interrupted:
            raise
    finally:
        if node is not None:
            try:
                node.shutdown()
            finally:
                node.destroy_node()
        rclpy.try_shutdown()
    return 0
