"""Teleop latency bench: leader sample -> follower command received, through the real teleop
and watchdog node processes, at 100 Hz.

    python bench/teleop_latency.py                 # ~40 s: our graph + two bare baselines
    python bench/teleop_latency.py --profile       # ~115 s: + executor variants (where time goes)
    python bench/teleop_latency.py --nice -15      # less disturbed by other load (root)

Processes (all in one fresh ROS_DOMAIN_ID, ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, the shipped
Fast DDS profile):

- this bench process: publishes a fake leader `JointState` on /leader/joint_states (SENSOR QoS,
  header.stamp = send time) and a measured follower state on /follower/joint_states (the
  watchdog needs one; the leader stays on it, so the step limit never clips), both at 100 Hz,
  and subscribes /follower/command (COMMAND QoS) as the "follower", spun in a thread by the
  executor a follower node would have (`make_executor`, `--receiver` to change it); the 100 Hz
  loop runs in the main thread.
- `python -m lerobot_ros.nodes.teleop` and `python -m lerobot_ros.nodes.watchdog`, unchanged
  (`run_node`'s default executor, the EventsExecutor); the row `graph_single` runs the same
  processes with LEROBOT_ROS_EXECUTOR=single (SingleThreadedExecutor, the default before).

Teleop and watchdog both copy the leader's header.stamp through, so each command is matched to
its leader sample by stamp. Latency = time.time() at receipt - time.time() just before publish
(one machine, one clock). The first `--warmup` seconds are discarded.

Baselines, measured in the same run and received by the same bench subscription:

- bare one hop: a bare rclpy publisher process at 100 Hz -> the bench (1 DDS transfer; the
  stamp is the send time, header.frame_id the sequence number for the loss count).
- bare relay x2: bench -> relay -> relay -> bench, the same shape as bench -> teleop ->
  watchdog -> bench (3 DDS transfers, 2 python callbacks), each relay a plain rclpy Node whose
  subscription callback is its publisher's `publish`, spun by an EventsExecutor like our nodes.

`--profile` adds rows that separate executor cost from DDS cost: bare relay x1 (the path if
teleop were folded into the watchdog) on a SingleThreadedExecutor and on the EventsExecutor; the
bare x2 chain on a SingleThreadedExecutor and on MultiThreadedExecutor(4); our TeleopNode +
WatchdogNode classes (default parameters) spun by MultiThreadedExecutor(4) (what `run_node` used
before it went single-threaded; `--role node`: no change to the node code).

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

from lerobot_ros.testing.ros import scheduling, shipped_profile  # noqa: E402

GOAL_P99_MS = 2.0
EXECUTORS = ("single", "multi", "events")


# --- helpers shared by all roles ---------------------------------------------------------------


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
        if kind == "events":
            # EventsExecutor.spin() (rclpy 9.1, Kilted wheels) busy-loops holding the GIL and
            # delivers nothing here; spin_once() works.
            while rclpy.ok():
                executor.spin_once(timeout_sec=0.1)
        else:
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


def run_pub(args: argparse.Namespace) -> int:
    """A bare publisher: JointState on `--out` at `--rate`, header.stamp = send time and
    header.frame_id = sequence number (the bench counts losses from it)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.node import Node
    from sensor_msgs.msg import JointState

    from lerobot_ros.core.robots import SO_ARM_JOINTS
    from lerobot_ros.nodes import qos
    from lerobot_ros.nodes.convert import to_time

    rclpy.init()
    node = Node(args.name)
    pub = node.create_publisher(JointState, args.out_topic, qos.COMMAND)
    names, period, seq = list(SO_ARM_JOINTS), 1.0 / args.rate, 0
    deadline = time.monotonic()
    try:
        while rclpy.ok():
            msg = JointState()
            msg.name = names
            msg.position = [0.0] * len(names)
            msg.header.frame_id = str(seq)
            msg.header.stamp = to_time(time.time())
            pub.publish(msg)
            seq += 1
            deadline += period
            delay = deadline - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                deadline = time.monotonic()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def run_node_role(args: argparse.Namespace) -> int:
    """Our TeleopNode / WatchdogNode classes with default parameters, spun by `--executor`
    (run_node() uses a SingleThreadedExecutor)."""
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
    key: str  # for --only
    label: str
    children: list[tuple[str, list[str]]]  # (name, argv after python)
    pub_topic: str | None  # where the bench publishes the sample; None: a child publishes
    recv_topic: str  # where the bench receives the result
    env: dict[str, str] = field(default_factory=dict)  # added to the children's environment
    result: dict[str, Any] = field(default_factory=dict)


def _me() -> str:
    return str(Path(__file__).resolve())


def relay_cmd(name: str, src: str, dst: str, in_qos: str, executor: str) -> list[str]:
    opts = ["--name", name, "--in", src, "--out", dst, "--in-qos", in_qos]
    return [_me(), "--role", "relay", *opts, "--executor", executor]


def node_cmd(node: str, executor: str) -> list[str]:
    return [_me(), "--role", "node", "--node", node, "--executor", executor]


def relay_chain(executor: str) -> list[tuple[str, list[str]]]:
    return [
        ("relay1", relay_cmd("relay1", "/bench/ping", "/bench/mid", "sensor", executor)),
        ("relay2", relay_cmd("relay2", "/bench/mid", "/bench/pong", "cmd", executor)),
    ]


def build_phases(args: argparse.Namespace) -> list[Phase]:
    leader, out, ping, pong = (
        "/leader/joint_states",
        "/follower/command",
        "/bench/ping",
        "/bench/pong",
    )
    graph = [
        ("teleop", ["-m", "lerobot_ros.nodes.teleop"]),
        ("watchdog", ["-m", "lerobot_ros.nodes.watchdog"]),
    ]
    pub = [_me(), "--role", "pub", "--name", "pub", "--out", pong, "--rate", str(args.rate)]

    def relay1(executor: str) -> list[tuple[str, list[str]]]:
        return [("relay1", relay_cmd("relay1", ping, pong, "sensor", executor))]

    def nodes(executor: str) -> list[tuple[str, list[str]]]:
        return [
            ("teleop", node_cmd("teleop", executor)),
            ("watchdog", node_cmd("watchdog", executor)),
        ]

    single = {"LEROBOT_ROS_EXECUTOR": "single"}
    nort = [(name, [*argv, "--ros-args", "-p", "rt_priority:=0"]) for name, argv in graph]
    composed = [
        (
            "container",
            [
                "-m",
                "lerobot_ros.nodes.container",
                "lerobot_ros.nodes.teleop:TeleopNode=teleop",
                "lerobot_ros.nodes.watchdog:WatchdogNode=watchdog",
            ],
        )
    ]
    phases = [
        Phase("graph", "our graph: teleop -> watchdog (node processes)", graph, leader, out),
        Phase("composed", "  composed: one container (compose:=true)", composed, leader, out),
        Phase("graph_single", "  same, LEROBOT_ROS_EXECUTOR=single", graph, leader, out, single),
        Phase("graph_nort", "  same, rt_priority:=0 (normal scheduling)", nort, leader, out),
        Phase("hop", "bare one hop: publisher process -> bench", [("pub", pub)], None, pong),
        Phase(
            "bare2", "bare relay x2 (same shape), EventsExecutor", relay_chain("events"), ping, pong
        ),
    ]
    if args.profile:
        phases += [
            Phase("bare1", "bare relay x1, SingleThreaded", relay1("single"), ping, pong),
            Phase("bare1_events", "bare relay x1, EventsExecutor", relay1("events"), ping, pong),
            Phase(
                "bare2_single", "bare relay x2, SingleThreaded", relay_chain("single"), ping, pong
            ),
            Phase(
                "bare2_multi",
                "bare relay x2, MultiThreadedExecutor(4)",
                relay_chain("multi"),
                ping,
                pong,
            ),
            Phase(
                "nodes_multi", "our nodes on MultiThreadedExecutor(4)", nodes("multi"), leader, out
            ),
        ]
    if args.only:
        keys = set(args.only.split(","))
        phases = [ph for ph in phases if ph.key in keys]
    return phases


class Bench:
    """The bench node: fake leader + measured follower state out, commands in."""

    def __init__(self, rate: float, receiver: str) -> None:
        import rclpy
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
        self.recv: dict[str, dict[tuple[int, int], tuple[float, str]]] = {}
        for topic in ("/follower/command", "/bench/pong"):
            box: dict[tuple[int, int], tuple[float, str]] = {}
            self.recv[topic] = box
            self.node.create_subscription(
                JointState, topic, lambda msg, box=box: self._on_msg(box, msg), qos.COMMAND
            )
        from lerobot_ros.nodes.base import make_executor, spin_executor

        self.executor = make_executor(self.node.context, receiver)
        self.executor.add_node(self.node)
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=spin_executor, args=(self.executor, self.node.context, self.stop), daemon=True
        )
        self.thread.start()

    @staticmethod
    def _on_msg(box: dict[tuple[int, int], tuple[float, str]], msg: Any) -> None:
        t = time.time()
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        box.setdefault(key, (t, msg.header.frame_id))

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

        self.stop.set()
        self.executor.shutdown(timeout_sec=2.0)
        self.thread.join(timeout=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown()


def start_children(
    phase: Phase, env: dict[str, str], logdir: Path
) -> list[subprocess.Popen[bytes]]:
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


CpuSnapshot = tuple[tuple[float, float], list[float]]


def cpu_snapshot(procs: list[subprocess.Popen[bytes]]) -> CpuSnapshot:
    """(machine busy fraction counters, per-child CPU seconds) from /proc; the machine counters
    include processes this one cannot see (other sessions on the same VM)."""
    with open("/proc/stat") as f:
        v = [float(x) for x in f.readline().split()[1:]]
    busy_total = (sum(v) - v[3] - v[4], sum(v))
    tick = os.sysconf("SC_CLK_TCK")
    per = []
    for p in procs:
        try:
            with open(f"/proc/{p.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            per.append((float(fields[11]) + float(fields[12])) / tick)
        except (OSError, IndexError):
            per.append(math.nan)
    return busy_total, per


def cpu_usage(before: CpuSnapshot, after: CpuSnapshot, seconds: float) -> tuple[float, list[float]]:
    """Machine busy % (of all cores) and each child's % of one core over the window."""
    (b0, t0), c0 = before
    (b1, t1), c1 = after
    machine = 100.0 * (b1 - b0) / max(t1 - t0, 1.0)
    return machine, [100.0 * (y - x) / seconds for x, y in zip(c0, c1, strict=True)]


def run_phase(
    bench: Bench, phase: Phase, env: dict[str, str], args: argparse.Namespace, logdir: Path
) -> None:
    from lerobot_ros.testing.ros import wait_until

    box = bench.recv[phase.recv_topic]
    box.clear()
    t0 = time.monotonic()
    procs = start_children(phase, {**env, **phase.env}, logdir)
    try:
        # Until the first result comes back (processes up, discovery done), then warm up.
        if phase.pub_topic is None:
            wait_until(lambda: len(box) > 0, args.startup_timeout)
        else:
            bench.drive(phase.pub_topic, args.startup_timeout, until=lambda: len(box) > 0)
        startup = time.monotonic() - t0
        if not box:
            dead = [n for (n, _), p in zip(phase.children, procs, strict=True) if p.poll()]
            phase.result = {
                "error": f"no output within {args.startup_timeout:.0f} s "
                f"(exited: {dead or 'none'}; logs below)"
            }
            return
        if phase.pub_topic is None:
            time.sleep(args.warmup)
            cpu0, t_start = cpu_snapshot(procs), time.time()
            time.sleep(args.seconds)
            cpu1, t_end = cpu_snapshot(procs), time.time()
        else:
            bench.drive(phase.pub_topic, args.warmup)
            cpu0, t_start = cpu_snapshot(procs), time.time()
            sent = bench.drive(phase.pub_topic, args.seconds)
            cpu1, t_end = cpu_snapshot(procs), time.time()
            time.sleep(0.3)  # stragglers
    finally:
        stop_children(procs)
    if phase.pub_topic is None:  # a child published: stamps are send times, frame_id is seq
        got = [
            (sec + nsec * 1e-9, t, int(seq))
            for (sec, nsec), (t, seq) in box.items()
            if t_start <= sec + nsec * 1e-9 < t_end
        ]
        lat = np.array([t - ts for ts, t, _ in got])
        seqs = [seq for _, _, seq in got]
        n_sent = max(seqs) - min(seqs) + 1 if seqs else 0
    else:
        lat = np.array([box[k][0] - ts for k, ts in sent if k in box])
        n_sent = len(sent)
    machine, per_child = cpu_usage(cpu0, cpu1, t_end - t_start)
    phase.result = {
        "machine_busy": machine,
        "child_cpu": dict(zip([n for n, _ in phase.children], per_child, strict=True)),
        "sent": n_sent,
        "received": int(lat.size),
        "lost": n_sent - int(lat.size),
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
    print(f"scheduling: {scheduling()}; bench receiver: {args.receiver} executor")
    print(
        f"cpus={os.cpu_count()} load average before/after: {load[0]:.2f} / {os.getloadavg()[0]:.2f}"
    )
    cols = "".join(f"{c:>8s}" for c in ("samples", "lost", "p50", "p90", "p99", "max"))
    head = f"{'path':46s}{cols}  ms  | machine busy, children's CPU (% of a core)"
    print(head)
    print("-" * len(head))
    for ph in phases:
        r = ph.result
        if "error" in r:
            print(f"{ph.label:46s} ERROR: {r['error']}")
            continue
        print(
            f"{ph.label:46s}{r['received']:8d}{r['lost']:8d}{r['p50']:8.3f}{r['p90']:8.3f}"
            f"{r['p99']:8.3f}{r['max']:8.3f}      | {r['machine_busy']:3.0f} %, "
            + " ".join(f"{n} {c:.0f}" for n, c in r["child_cpu"].items())
        )
    by_key = {ph.key: ph.result for ph in phases}
    ours = by_key.get("graph", {"error": "not run"})
    print()
    for key, name in (
        ("hop", "one bare hop"),
        ("bare2", "bare relay x2 (same shape)"),
        ("graph_single", "the same on SingleThreadedExecutor"),
    ):
        ref = by_key.get(key, {"error": "not run"})
        if "error" not in ours and "error" not in ref:
            print(
                f"ratio our graph / {name}: p50 {ours['p50'] / ref['p50']:.2f}x, "
                f"p99 {ours['p99'] / ref['p99']:.2f}x"
            )
    for key, name in (("graph", "separate processes"), ("composed", "composed")):
        r = by_key.get(key, {"error": "not run"})
        if "error" in r:
            print(f"goal p99 <= {GOAL_P99_MS:g} ms, {name}: not measured")
            continue
        met = r["p99"] <= GOAL_P99_MS and r["lost"] == 0
        print(
            f"goal p99 <= {GOAL_P99_MS:g} ms, {name}: {'met' if met else 'not met'} "
            f"(p99 {r['p99']:.3f} ms, lost {r['lost']})"
        )


def run_bench(args: argparse.Namespace) -> int:
    from lerobot_ros.testing.ros import isolate_this_process, isolated_env

    if args.profile_file == "none":  # Fast DDS defaults, for comparison
        os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
        domain = isolate_this_process(args.domain_id)
        os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)  # isolated_env puts it back
    else:
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = args.profile_file
        domain = isolate_this_process(args.domain_id)
    env = isolated_env(domain)
    if args.profile_file == "none":
        env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    load = os.getloadavg()
    if args.nice:
        # Before any thread exists: DDS threads, the executor thread and children inherit it.
        # Not SCHED_FIFO: rclpy's MultiThreadedExecutor (--profile rows) busy-polls, and two FIFO
        # processes polling on two cores starve everything else on the machine.
        try:
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
        except OSError as exc:
            print(f"[bench] --nice {args.nice}: {exc}; running at nice 0")
            args.nice = 0
    phases = build_phases(args)
    bench = Bench(args.rate, args.receiver)
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
    ap.add_argument(
        "--only",
        default="",
        help="comma-separated row keys: graph,composed,graph_single,graph_nort,hop,bare2 "
        "(+ --profile: bare1,bare1_events,bare2_single,bare2_multi,nodes_multi)",
    )
    ap.add_argument(
        "--receiver",
        choices=("events", "single"),
        default=None,
        help="executor of the bench's receiving node (default: run_node's, LEROBOT_ROS_EXECUTOR)",
    )
    ap.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness of every bench process (negative needs CAP_SYS_NICE), e.g. -15",
    )
    ap.add_argument("--domain-id", type=int, default=None, help="default: a fresh one")
    ap.add_argument(
        "--profile-file",
        default=None,
        help="Fast DDS XML (default: config/fastdds_shm.xml); 'none' = Fast DDS defaults",
    )
    # child roles (internal, hidden from --help)
    hide = argparse.SUPPRESS
    ap.add_argument("--role", choices=("bench", "relay", "pub", "node"), default="bench", help=hide)
    ap.add_argument("--name", default="relay", help=hide)
    ap.add_argument("--in", dest="in_topic", default="/bench/ping", help=hide)
    ap.add_argument("--out", dest="out_topic", default="/bench/pong", help=hide)
    ap.add_argument("--in-qos", choices=("sensor", "cmd"), default="sensor", help=hide)
    ap.add_argument("--executor", choices=EXECUTORS, default="single", help=hide)
    ap.add_argument("--node", choices=("teleop", "watchdog"), default="teleop", help=hide)
    args = ap.parse_args(argv)
    if args.receiver is None:
        from lerobot_ros.nodes.base import executor_kind

        args.receiver = executor_kind()
    if args.profile_file is None:
        args.profile_file = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE") or shipped_profile()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "relay":
        return run_relay(args)
    if args.role == "pub":
        return run_pub(args)
    if args.role == "node":
        return run_node_role(args)
    return run_bench(args)


if __name__ == "__main__":
    sys.exit(main())
