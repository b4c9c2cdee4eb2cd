"""Teleop latency bench: leader sample -> follower command received, through the real teleop
and watchdog node processes, at 100 Hz.

    python bench/teleop_latency.py                 # ~40 s: our graph + two bare baselines
    python bench/teleop_latency.py --profile       # + executor variants (where the time goes)

Processes (each in one fresh ROS_DOMAIN_ID, ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, the shipped
Fast DDS profile):

- this bench process: publishes a fake leader `JointState` on /leader/joint_states (SENSOR QoS,
  header.stamp = send time) and a measured follower state on /follower/joint_states (the
  watchdog needs one; the leader stays on it, so the step limit never clips), both at 100 Hz,
  and subscribes /follower/command (COMMAND QoS) as the "follower". A raw SingleThreadedExecutor
  spins in a thread; the 100 Hz loop runs in the main thread.
- `python -m lerobot_ros.nodes.teleop` and `python -m lerobot_ros.nodes.watchdog`, unchanged.

Teleop and watchdog both copy the leader's header.stamp through, so each command is matched to
its leader sample by stamp. Latency = time.time() at receipt - time.time() just before publish
(one machine, one clock). The first `--warmup` seconds are discarded.

Baselines, measured in the same run by the same bench process, with bare rclpy relays (a
subscription whose callback republishes the message, nothing else):

- bare relay x1: bench -> relay -> bench (one python process in the path, 2 DDS transfers).
- bare relay x2: bench -> relay -> relay -> bench, the same shape as bench -> teleop ->
  watchdog -> bench (3 DDS transfers), each relay on a SingleThreadedExecutor.

`--profile` adds: the bare x2 chain on MultiThreadedExecutor(4) (what `run_node` uses), and our
teleop + watchdog node classes spun by a SingleThreadedExecutor and by rclpy's EventsExecutor
instead (`--role node`, no change to the node code), to separate executor cost from DDS cost.

This is a measurement, not a test: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/teleop_latency.py` from a plain checkout
    sys.path.insert(0, str(REPO))

GOAL_P99_MS = 2.0
EXECUTORS = ("single", "multi", "events")


# --- helpers shared by all roles ---------------------------------------------------------------


def default_profile_file() -> str:
    """The shipped profile: the checkout's config/ first, else the installed share/ copy."""
    env = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE")
    if env:
        return env
    local = REPO / "config" / "fastdds_shm.xml"
    if local.is_file():
        return str(local)
    from lerobot_ros.core.paths import share_dir

    return str(share_dir() / "config" / "fastdds_shm.xml")


def make_executor(kind: str) -> Any:
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor

    if kind == "single":
        return SingleThreadedExecutor()
    if kind == "multi":
        return MultiThreadedExecutor(num_threads=4)
    if kind == "events":
        from rclpy.experimental import EventsExecutor

        return EventsExecutor()
    raise ValueError(f"executor {kind!r} is not one of {EXECUTORS}")


def spin_until_signal(node: Any, kind: str) -> int:
    """Spin `node` on an executor of `kind` until SIGINT/SIGTERM; returns an exit code."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    executor = make_executor(kind)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


# --- child roles -----------------------------------------------------------------------------


def run_relay(args: argparse.Namespace) -> int:
    """A bare relay: subscribe `--in`, republish the same message on `--out`."""
    import rclpy
    from rclpy.node import Node
    from sensor_msgs.msg import JointState

    from lerobot_ros.nodes import qos

    rclpy.init()
    node = Node(args.name)
    pub = node.create_publisher(JointState, args.out_topic, qos.COMMAND)
    in_qos = qos.SENSOR if args.in_qos == "sensor" else qos.COMMAND
    node.create_subscription(JointState, args.in_topic, pub.publish, in_qos)
    return spin_until_signal(node, args.executor)


def run_node_role(args: argparse.Namespace) -> int:
    """Our TeleopNode / WatchdogNode classes with default parameters, spun by `--executor`
    (run_node() always uses MultiThreadedExecutor(4))."""
    import rclpy

    rclpy.init()
    if args.node == "teleop":
        from lerobot_ros.nodes.teleop import TeleopNode

        node: Any = TeleopNode()
    else:
        from lerobot_ros.nodes.watchdog import WatchdogNode

        node = WatchdogNode()
    return spin_until_signal(node, args.executor)


# --- the bench process -------------------------------------------------------------------------


@dataclass
class Phase:
    label: str
    children: list[tuple[str, list[str]]]  # (name, argv after python)
    pub_topic: str  # where the bench publishes the "leader" sample
    recv_topic: str  # where the bench receives the result
    result: dict[str, Any] = field(default_factory=dict)


def child_cmd_relay(name: str, src: str, dst: str, in_qos: str, executor: str) -> list[str]:
    return [
        str(Path(__file__).resolve()),
        "--role",
        "relay",
        "--name",
        name,
        "--in",
        src,
        "--out",
        dst,
        "--in-qos",
        in_qos,
        "--executor",
        executor,
    ]


def child_cmd_node(node: str, executor: str) -> list[str]:
    return [str(Path(__file__).resolve()), "--role", "node", "--node", node, "--executor", executor]


def build_phases(args: argparse.Namespace) -> list[Phase]:
    graph = [
        ("teleop", ["-m", "lerobot_ros.nodes.teleop"]),
        ("watchdog", ["-m", "lerobot_ros.nodes.watchdog"]),
    ]
    leader, out = "/leader/joint_states", "/follower/command"
    phases = [
        Phase("our graph: teleop -> watchdog (node processes)", graph, leader, out),
        Phase(
            "bare relay x1 (baseline)",
            [("relay1", child_cmd_relay("relay1", "/bench/ping", "/bench/pong", "sensor", "single"))],
            "/bench/ping",
            "/bench/pong",
        ),
        Phase(
            "bare relay x2, same shape, single-threaded",
            [
                ("relay1", child_cmd_relay("relay1", "/bench/ping", "/bench/mid", "sensor", "single")),
                ("relay2", child_cmd_relay("relay2", "/bench/mid", "/bench/pong", "cmd", "single")),
            ],
            "/bench/ping",
            "/bench/pong",
        ),
    ]
    if args.profile:
        phases += [
            Phase(
                "bare relay x2, MultiThreadedExecutor(4)",
                [
                    ("relay1", child_cmd_relay("relay1", "/bench/ping", "/bench/mid", "sensor", "multi")),
                    ("relay2", child_cmd_relay("relay2", "/bench/mid", "/bench/pong", "cmd", "multi")),
                ],
                "/bench/ping",
                "/bench/pong",
            ),
            Phase(
                "our nodes on SingleThreadedExecutor",
                [("teleop", child_cmd_node("teleop", "single")), ("watchdog", child_cmd_node("watchdog", "single"))],
                leader,
                out,
            ),
            Phase(
                "our nodes on EventsExecutor",
                [("teleop", child_cmd_node("teleop", "events")), ("watchdog", child_cmd_node("watchdog", "events"))],
                leader,
                out,
            ),
        ]
    return phases


class Bench:
    """The bench node: fake leader + measured follower state out, commands in."""

    def __init__(self, rate: float) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from sensor_msgs.msg import JointState

        from lerobot_ros.core.robots import SO_ARM_JOINTS
        from lerobot_ros.nodes import qos

        self.JointState = JointState
        self.names = list(SO_ARM_JOINTS)
        self.period = 1.0 / rate
        rclpy.init()
        self.node = Node("teleop_latency_bench")
        self.pubs = {
            t: self.node.create_publisher(JointState, t, qos.SENSOR)
            for t in ("/leader/joint_states", "/bench/ping")
        }
        self.measured_pub = self.node.create_publisher(
            JointState, "/follower/joint_states", qos.SENSOR
        )
        self.recv: dict[str, dict[tuple[int, int], float]] = {}
        for topic in ("/follower/command", "/bench/pong"):
            box: dict[tuple[int, int], float] = {}
            self.recv[topic] = box
            self.node.create_subscription(
                JointState, topic, lambda msg, box=box: self._on_msg(box, msg), qos.COMMAND
            )
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    @staticmethod
    def _on_msg(box: dict[tuple[int, int], float], msg: Any) -> None:
        t = time.time()
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        box.setdefault(key, t)

    def _state(self, q: list[float], t: float) -> Any:
        from lerobot_ros.nodes.convert import to_time

        msg = self.JointState()
        msg.header.stamp = to_time(t)
        msg.name = self.names
        msg.position = q
        return msg

    def drive(
        self, topic: str, duration: float, until: Any = None
    ) -> list[tuple[tuple[int, int], float]]:
        """Publish measured state + a leader sample every period for `duration` s (or until
        `until()` is true). Returns [(stamp key, send time)] of the leader samples."""
        pub = self.pubs[topic]
        sent: list[tuple[tuple[int, int], float]] = []
        start = time.monotonic()
        deadline = start
        while True:
            now = time.monotonic()
            if now - start >= duration or (until is not None and until()):
                return sent
            # Small slow motion (0.05 rad, 0.5 Hz): velocity and step limits never clip.
            q = [0.05 * math.sin(math.pi * now + i) for i in range(len(self.names))]
            self.measured_pub.publish(self._state(q, time.time()))
            t_send = time.time()
            msg = self._state(q, t_send)
            pub.publish(msg)
            sent.append(((msg.header.stamp.sec, msg.header.stamp.nanosec), t_send))
            deadline += self.period
            delay = deadline - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:  # fell behind (load): do not burst to catch up
                deadline = time.monotonic()

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown()


def start_children(phase: Phase, env: dict[str, str], logdir: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for name, argv in phase.children:
        log = open(logdir / f"{name}.log", "wb")  # noqa: SIM115 (kept open for the child)
        procs.append(
            subprocess.Popen([sys.executable, *argv], env=env, stdout=log, stderr=subprocess.STDOUT)
        )
    return procs


def stop_children(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def stats_ms(lat: np.ndarray) -> dict[str, float]:
    if lat.size == 0:
        return {k: math.nan for k in ("p50", "p90", "p99", "max", "mean")}
    ms = lat * 1e3
    return {
        "p50": float(np.percentile(ms, 50)),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
        "mean": float(ms.mean()),
    }


def run_phase(
    bench: Bench, phase: Phase, env: dict[str, str], args: argparse.Namespace, logdir: Path
) -> None:
    box = bench.recv[phase.recv_topic]
    box.clear()
    t0 = time.monotonic()
    procs = start_children(phase, env, logdir)
    try:
        # Publish until the first result comes back (processes up, discovery done).
        bench.drive(phase.pub_topic, args.startup_timeout, until=lambda: len(box) > 0)
        startup = time.monotonic() - t0
        if not box:
            dead = [n for (n, _), p in zip(phase.children, procs, strict=True) if p.poll() is not None]
            phase.result = {"error": f"no output within {args.startup_timeout:.0f} s "
                            f"(exited: {dead or 'none'}; logs in {logdir})"}
            return
        bench.drive(phase.pub_topic, args.warmup)
        sent = bench.drive(phase.pub_topic, args.seconds)
        time.sleep(0.3)  # stragglers
    finally:
        stop_children(procs)
    lat = np.array([box[k] - ts for k, ts in sent if k in box])
    phase.result = {
        "sent": len(sent),
        "received": int(lat.size),
        "lost": len(sent) - int(lat.size),
        "startup_s": startup,
        **stats_ms(lat),
    }


def report(phases: list[Phase], args: argparse.Namespace, load: tuple[float, ...]) -> None:
    print()
    print(
        f"teleop latency, leader sample -> command received, {args.rate:.0f} Hz, "
        f"{args.seconds:.0f} s per row after {args.warmup:.0f} s warm-up"
    )
    print(f"FASTDDS_DEFAULT_PROFILES_FILE={args.profile_file}")
    print(f"cpus={os.cpu_count()} load average before/after: {load[0]:.2f} / {os.getloadavg()[0]:.2f}")
    head = f"{'path':46s} {'samples':>7s} {'lost':>5s} {'p50':>7s} {'p90':>7s} {'p99':>7s} {'max':>7s}  ms"
    print(head)
    print("-" * len(head))
    for ph in phases:
        r = ph.result
        if "error" in r:
            print(f"{ph.label:46s} ERROR: {r['error']}")
            continue
        print(
            f"{ph.label:46s} {r['received']:7d} {r['lost']:5d} {r['p50']:7.3f} {r['p90']:7.3f} "
            f"{r['p99']:7.3f} {r['max']:7.3f}"
        )
    ours, base, bare2 = (p.result for p in phases[:3])
    print()
    if "error" not in ours and "error" not in base:
        print(
            f"ratio our graph / bare relay x1: p50 {ours['p50'] / base['p50']:.2f}x, "
            f"p99 {ours['p99'] / base['p99']:.2f}x"
        )
    if "error" not in ours and "error" not in bare2:
        print(
            f"ratio our graph / bare relay x2 (same shape): p50 {ours['p50'] / bare2['p50']:.2f}x, "
            f"p99 {ours['p99'] / bare2['p99']:.2f}x"
        )
    if "error" in ours:
        print(f"goal p99 <= {GOAL_P99_MS:g} ms: not measured")
    else:
        met = ours["p99"] <= GOAL_P99_MS and ours["lost"] == 0
        print(
            f"goal p99 <= {GOAL_P99_MS:g} ms: {'met' if met else 'not met'} "
            f"(p99 {ours['p99']:.3f} ms, lost {ours['lost']})"
        )


def run_bench(args: argparse.Namespace) -> int:
    from lerobot_ros.testing.ros import isolate_this_process, isolated_env

    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = args.profile_file
    domain = isolate_this_process(args.domain_id)
    env = isolated_env(domain)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    load = os.getloadavg()
    phases = build_phases(args)
    bench = Bench(args.rate)
    with tempfile.TemporaryDirectory(prefix="teleop_latency_") as tmp:
        logdir = Path(tmp)
        try:
            for ph in phases:
                print(f"[bench] domain {domain}: {ph.label} ...", flush=True)
                run_phase(bench, ph, env, args, logdir)
        finally:
            bench.close()
        failed = [ph for ph in phases if "error" in ph.result]
        for ph in failed:  # show why, before the temp dir goes
            for name, _ in ph.children:
                text = (logdir / f"{name}.log").read_text(errors="replace")[-2000:]
                print(f"--- {ph.label}: {name} log tail ---\n{text}", file=sys.stderr)
    report(phases, args, load)
    return 0


# --- CLI ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="measured seconds per row")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds discarded per row")
    ap.add_argument("--rate", type=float, default=100.0, help="Hz of the leader samples")
    ap.add_argument("--startup-timeout", type=float, default=20.0)
    ap.add_argument("--profile", action="store_true", help="add the executor variants")
    ap.add_argument("--domain-id", type=int, default=None, help="default: a fresh one")
    ap.add_argument(
        "--profile-file", default=None, help="Fast DDS XML (default: config/fastdds_shm.xml)"
    )
    # child roles (internal)
    ap.add_argument("--role", choices=("bench", "relay", "node"), default="bench")
    ap.add_argument("--name", default="relay")
    ap.add_argument("--in", dest="in_topic", default="/bench/ping")
    ap.add_argument("--out", dest="out_topic", default="/bench/pong")
    ap.add_argument("--in-qos", choices=("sensor", "cmd"), default="sensor")
    ap.add_argument("--executor", choices=EXECUTORS, default="single")
    ap.add_argument("--node", choices=("teleop", "watchdog"), default="teleop")
    args = ap.parse_args(argv)
    if args.profile_file is None:
        args.profile_file = default_profile_file()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "relay":
        return run_relay(args)
    if args.role == "node":
        return run_node_role(args)
    return run_bench(args)


if __name__ == "__main__":
    sys.exit(main())
