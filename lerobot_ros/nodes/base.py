"""What every lerobot_ros node shares: declared + validated parameters, diagnostics, and a
`main()` that turns a bad parameter into one clear line and torques off on any exit."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.context import Context
from rclpy.exceptions import ParameterException, ParameterUninitializedException
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile
from rclpy.signals import SignalHandlerOptions
from rclpy.subscription import Subscription

from lerobot_ros.core.loop import set_process_fifo
from lerobot_ros.core.params import ParameterError, ParamSpec, in_range, validate

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


RT_PRIORITY = ParamSpec(
    "rt_priority",
    10,
    "SCHED_FIFO priority (1-99; 0 = normal scheduling) of every thread of the node's process "
    "(run as its own process; the in-process runner leaves it alone). Needs CAP_SYS_NICE or "
    "an rtprio limit; without it the node runs normally, with a warning.",
    (in_range(0, 99),),
)


class Output:
    """A publisher that also hands each message, in the same thread, to the inputs of nodes
    composed into the same process (`compose`): rclpy has no intra-process transport, and each
    DDS transfer costs a thread wake-up or two. Everyone else still gets it over DDS."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.local: list[Callable[[Any], None]] = []

    @property
    def topic(self) -> str:
        return self.publisher.topic_name

    def publish(self, msg: Any) -> None:
        for deliver in self.local:  # first: these are the latency path
            deliver(msg)
        self.publisher.publish(msg)


class LeRobotNode(Node):
    """A Node whose parameters come from `PARAMS` (a list of ParamSpec) and land in `self.p`."""

    PARAMS: Sequence[ParamSpec] = ()

    def __init__(self, node_name: str, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.p: dict[str, Any] = declare_parameters(self, self.PARAMS)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.outputs: list[Output] = []
        # resolved topic -> (DDS subscription, callback), for `compose`
        self.inputs: dict[str, tuple[Subscription, Callable[[Any], None]]] = {}

    def create_output(self, msg_type: type, topic: str, qos: QoSProfile) -> Output:
        """A publisher whose messages `compose` can also deliver in-process."""
        out = Output(self.create_publisher(msg_type, topic, qos))
        self.outputs.append(out)
        return out

    def create_input(
        self,
        msg_type: type,
        topic: str,
        callback: Callable[[Any], None],
        qos: QoSProfile,
        **kw: Any,
    ) -> Subscription:
        """A subscription that `compose` may replace by direct delivery from a composed node."""
        sub = self.create_subscription(msg_type, topic, callback, qos, **kw)
        self.inputs[sub.topic_name] = (sub, callback)
        return sub

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


EXECUTORS = ("events", "single")


def executor_kind() -> str:
    """The executor LEROBOT_ROS_EXECUTOR names (default "events"); ParameterError otherwise."""
    kind = os.environ.get("LEROBOT_ROS_EXECUTOR", "events")
    if kind not in EXECUTORS:
        raise ParameterError("LEROBOT_ROS_EXECUTOR", kind, f"must be one of {list(EXECUTORS)}")
    return kind


def make_executor(context: Context, kind: str | None = None) -> Executor:
    """One node's executor.

    "events" (default): rclpy's EventsExecutor (rclpy.experimental). It dispatches from C++ on
    the middleware's events instead of rebuilding a wait set in Python for every message: about
    a third of the CPU per node and half the latency per hop (bench/teleop_latency.py). It
    does not take guard conditions, so nodes wake their executor with `call_soon`.
    "single": SingleThreadedExecutor, the fallback if the experimental executor misbehaves.
    rclpy 9.1's MultiThreadedExecutor spins holding the GIL (ros2/rclpy#1452): a 100 Hz loop
    fell to 3 Hz here, so it is not offered.
    """
    kind = kind or executor_kind()
    if kind == "events":
        from rclpy.experimental import EventsExecutor

        return EventsExecutor(context=context)
    return SingleThreadedExecutor(context=context)


def spin_executor(
    executor: Executor, context: Context, stop: threading.Event | None = None
) -> None:
    """Spin until the context shuts down or `stop` is set. The EventsExecutor's spin() did not
    deliver with these wheels (and ignored SIGTERM), spin_once in a loop does; with a timeout
    the loop also notices a shutdown that did not wake it."""
    while context.ok() and not (stop is not None and stop.is_set()):
        executor.spin_once(timeout_sec=0.1)


def call_soon(node: Node, callback: Callable[[], Any]) -> bool:
    """Run `callback` on `node`'s executor thread, from any thread (an I/O or reader thread).
    Returns False, running nothing, while the node is not spinning yet.

    A task, not a guard condition: the EventsExecutor has no guard conditions, and both
    executors take tasks from other threads.
    """
    executor = node.executor
    if executor is None:
        return False
    executor.create_task(callback)
    return True


def compose(nodes: Sequence[Node]) -> list[tuple[str, str, str]]:
    """Wire nodes that share one process AND one executor thread: where one node's Output and
    another's input are the same topic, the message is handed over by a direct call and the
    input's DDS subscription is destroyed (so it is not processed twice). The topic is still
    published over DDS for everyone else; publishers of that topic in OTHER processes are then
    no longer heard by the composed input. Returns (topic, publisher node, subscriber node)."""
    wired: list[tuple[str, str, str]] = []
    for pub_node in nodes:
        for out in getattr(pub_node, "outputs", ()):
            for sub_node in nodes:
                inputs = getattr(sub_node, "inputs", {})
                if sub_node is pub_node or out.topic not in inputs:
                    continue
                subscription, callback = inputs.pop(out.topic)
                sub_node.destroy_subscription(subscription)
                out.local.append(callback)
                wired.append((out.topic, pub_node.get_name(), sub_node.get_name()))
                sub_node.get_logger().info(
                    f"composed: {out.topic} from '{pub_node.get_name()}' by a direct call"
                )
    return wired


def run_node(factory: Callable[..., LeRobotNode], args: Sequence[str] | None = None) -> int:
    """Entry point for console scripts: init, spin, and always
    call `node.shutdown()` (torque off / hold) before exiting, whatever ended the spin."""
    return run_nodes([factory], args)


def run_nodes(
    factories: Sequence[Callable[[], LeRobotNode]], args: Sequence[str] | None = None
) -> int:
    """`run_node` for several nodes composed into one process (`compose`, one executor)."""
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
    nodes: list[LeRobotNode] = []
    # rclpy's default handlers turn SIGINT and SIGTERM into a context shutdown: spin() returns
    # and the `finally` below runs node.shutdown().
    try:
        executor_kind()  # a bad LEROBOT_ROS_EXECUTOR stops here, before any torque goes on
        for factory in factories:
            nodes.append(factory())
        constructing[0] = False
        if not interrupted:
            compose(nodes)  # before spinning: no message is taken twice
            _realtime_process(nodes)
            executor = make_executor(nodes[0].context)
            for node in nodes:
                executor.add_node(node)
            spin_executor(executor, nodes[0].context)
    except ParameterError as exc:
        print(f"[lerobot_ros] {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok() and not interrupted:
            raise
    finally:
        _shutdown_all(reversed(nodes))
        rclpy.try_shutdown()
    return 0


def _realtime_process(nodes: Sequence[LeRobotNode]) -> None:
    """The highest `rt_priority` among the nodes, for every thread of this process."""
    priority = max((int(n.p.get("rt_priority", 0)) for n in nodes), default=0)
    if priority <= 0:
        return
    error = set_process_fifo(priority)
    logger = nodes[0].get_logger()
    if error:
        logger.warning(
            f"parameter 'rt_priority' = {priority}: {error}; the process runs at normal "
            "priority (grant CAP_SYS_NICE or an rtprio limit, or set rt_priority: 0)"
        )
    else:
        logger.info(f"process threads: SCHED_FIFO priority {priority} (rt_priority)")


def _shutdown_all(nodes: Iterable[LeRobotNode]) -> None:
    """shutdown() then destroy every node, even if one of them raises (the first is re-raised)."""
    error: BaseException | None = None
    for node in nodes:
        try:
            node.shutdown()
        except BaseException as exc:
            error = error or exc
        finally:
            node.destroy_node()
    if error is not None:
        raise error
