"""Rollout bench: 30 Hz control-tick jitter of the chunk player's command stream, per rollout
strategy with recording on, against the same graph without recording, in one run.

    python bench/rollout.py                        # ~3.5 min: 6 rows x 20 s measured
    python bench/rollout.py --seconds 60 --rows base,sentry,base
    python bench/rollout.py --camera 320x240       # smaller renders (default 640x480)
    python bench/rollout.py --policy <checkpoint>  # a real policy instead of the scripted one

Each row starts the simulated rollout graph of `rollout_graph` (follower, watchdog, camera,
policy runner, chunk player, rollout; the recorder for sentry / highlight / dagger; leader and
teleop for dagger) with every node in its own process, as `ros2 launch lerobot_ros
rollout.launch.py strategy:=<row>` would (each node's console script with the parameter file and
an overrides file, like launch_ros), in a fresh ROS_DOMAIN_ID on loopback. The policy is the
scripted one (POLICIES 'scripted', microseconds per chunk), so what differs between rows is the
strategy and its recording, not inference.

Rows: `base` (no recorder: the baseline of sentry and highlight), `sentry` (every message
recorded into rotated episodes, `--episode-s` long), `highlight` (the recorder's ring buffer
holds every message, no bag until asked), `dagger` (autonomous, recording like sentry, plus the
leader and teleop processes a takeover needs) and `dagger:norec` (the same graph without the
recorder: dagger's baseline); `X:niceN` runs X's recorder under `nice -n N`. A row `X` or
`X:niceN` is compared with the `X:norec` rows if there are any, else with the `base` rows. The
default order base, sentry, highlight, dagger:norec, dagger, base measures the base line before
and after, so a change in the machine's other load shows.

This process subscribes /chunk_player/command (COMMAND QoS): the commands that the chunk player
sends the watchdog, one per 30 Hz tick. For consecutive commands, interval jitter = |interval -
1/30 s|, both for the stamp the chunk player puts on each command just before publishing ("sent":
its tick thread's timing) and for the time this process received it ("received": + DDS and
this process). Added jitter = a row's percentile minus the mean of the baseline rows' same
percentile. Goal: p99 added <= 1 ms. Also printed: missed ticks (intervals over 1.5 periods),
bytes the recorder wrote, and how busy the whole machine was (/proc/stat, other sessions
included). This is a measurement: it prints numbers and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/rollout.py` from a plain checkout
    sys.path.insert(0, str(REPO))

PERIOD = 1.0 / 30.0
CONTROL_PATH = ("chunk_player", "watchdog", "follower")  # what --control-prefix applies to


@dataclass
class Row:
    strategy: str
    sent_ms: np.ndarray  # interval jitter of the chunk player's stamps, ms
    recv_ms: np.ndarray  # interval jitter at this process, ms
    missed: int
    commands: int
    dropped: int  # messages the recorder dropped (queue full), from its /diagnostics
    bag_mb: float
    busy: float  # % of the machine, all cores
    startup_s: float


def node_command(spec: Any, overrides: Path) -> list[str]:
    """The console script of `spec` with its parameter files and name, as launch_ros runs it
    (after the spec's `prefix`, e.g. `nice -n 10`)."""
    from ament_index_python.packages import get_package_prefix

    exe = Path(get_package_prefix(spec.package)) / "lib" / spec.package / spec.executable
    cmd = [*spec.prefix.split(), str(exe), "--ros-args", "-r", f"__node:={spec.name}"]
    if spec.namespace:
        cmd += ["-r", f"__ns:=/{spec.namespace}"]
    for f in (*spec.param_files, str(overrides)):
        cmd += ["--params-file", f]
    return cmd


def start_graph(specs: list[Any], domain: int, workdir: Path) -> list[subprocess.Popen[bytes]]:
    from lerobot_ros.testing.ros import isolated_env

    overrides = workdir / "overrides.yaml"
    overrides.write_text(
        yaml.safe_dump({s.fqn: {"ros__parameters": dict(s.parameters)} for s in specs})
    )
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    procs = []
    for s in specs:
        log = open(logs / f"{s.name}.log", "wb")  # noqa: SIM115 - closed with the process
        procs.append(
            subprocess.Popen(
                node_command(s, overrides),
                env=isolated_env(domain),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    return procs


def stop_graph(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 20.0
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def machine_busy() -> tuple[float, float]:
    with open("/proc/stat") as f:
        v = [float(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4], sum(v)


def jitter_ms(times: np.ndarray) -> np.ndarray:
    return np.abs(np.diff(times) - PERIOD) * 1e3


def bag_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def run_row(name: str, args: argparse.Namespace, policy: str, work: Path) -> Row:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import JointState

    from lerobot_ros.core.graph import RolloutGraphArgs, rollout_graph
    from lerobot_ros.nodes import qos
    from lerobot_ros.nodes.convert import from_time
    from lerobot_ros.testing.ros import Inbox, pick_domain_id

    strategy, _, variant = name.partition(":")
    width, height = (int(x) for x in args.camera.split("x"))
    bags = work / f"bags_{strategy}_{time.monotonic_ns()}"
    graph_args = RolloutGraphArgs(
        policy=policy, strategy=strategy, output_dir=str(bags), highlight_s=args.highlight_s
    )
    specs = []
    for s in rollout_graph(graph_args):
        if not s.in_process or (variant == "norec" and s.name == "recorder"):
            continue  # robot_state_publisher: only in a ROS 2 install, not part of the loop
        if s.name == "recorder" and variant.startswith("nice"):
            s = replace(s, prefix=f"nice -n {int(variant[4:])}")
        if s.name in CONTROL_PATH and args.control_prefix:
            s = replace(s, prefix=args.control_prefix)
        extra: dict[str, Any] = {}
        if s.executable == "camera":
            extra = {"width": width, "height": height}
        elif s.name == "rollout":
            extra = {"episode_s": float(args.episode_s)}
        specs.append(replace(s, parameters={**s.parameters, **extra}))
    domain = pick_domain_id()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("bench_rollout", context=context)
    inbox = Inbox()
    node.create_subscription(JointState, "/chunk_player/command", inbox, qos.COMMAND)
    dropped: dict[str, int] = {}

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == "recorder: recorder":
                for kv in status.values:
                    if kv.key.endswith(".dropped"):
                        dropped[kv.key] = int(kv.value)

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 50)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    t0 = time.monotonic()
    procs = start_graph(specs, domain, work)
    try:
        deadline = time.monotonic() + args.startup_timeout
        while len(inbox) < 30:
            if time.monotonic() > deadline:
                dead = [s.name for s, p in zip(specs, procs, strict=True) if p.poll() is not None]
                tails = "".join(
                    f"\n--- {n}:\n" + (work / "logs" / f"{n}.log").read_text()[-2000:] for n in dead
                )
                raise RuntimeError(
                    f"{name}: no commands after {args.startup_timeout} s (exited: {dead}){tails}"
                )
            time.sleep(0.2)
        startup = time.monotonic() - t0
        time.sleep(args.warmup)
        size0 = bag_bytes(bags) if bags.exists() else 0
        busy0 = machine_busy()
        inbox.clear()
        time.sleep(args.seconds)
        items = inbox.items()
        time.sleep(1.2)  # one more recorder report
        busy1 = machine_busy()
        size1 = bag_bytes(bags) if bags.exists() else 0
    finally:
        stop_graph(procs)
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        spinner.join(timeout=5.0)
        shutil.rmtree(bags, ignore_errors=True)
    recv = np.array([t for t, _ in items])
    sent = np.array([from_time(m.header.stamp) for _, m in items])
    intervals = np.diff(sent)
    busy = 100.0 * (busy1[0] - busy0[0]) / max(1e-9, busy1[1] - busy0[1])
    return Row(
        name,
        jitter_ms(sent),
        jitter_ms(recv),
        int(np.sum(intervals > 1.5 * PERIOD)),
        len(items),
        sum(dropped.values()),
        (size1 - size0) / 2**20,
        busy,
        startup,
    )


def pct(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q)) if a.size else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--rows",
        default="base,sentry,highlight,dagger:norec,dagger,base",
        help="strategies to run, in order (X:norec = X without the recorder)",
    )
    ap.add_argument("--seconds", type=float, default=20.0, help="measured s per row (default 20)")
    ap.add_argument("--warmup", type=float, default=3.0, help="s discarded after start-up")
    ap.add_argument("--camera", default="640x480", help="sim camera WxH (default 640x480)")
    ap.add_argument(
        "--episode-s",
        type=float,
        default=8.0,
        help="sentry / dagger episode length: rotations during the row (default 8)",
    )
    ap.add_argument("--highlight-s", type=float, default=10.0, help="highlight ring, s")
    ap.add_argument("--policy", default="", help="checkpoint; default: the scripted policy")
    ap.add_argument(
        "--control-prefix",
        default="",
        help="command put before chunk_player, watchdog and follower in every row, e.g. "
        "'nice -n -10' or 'chrt -f 10' (both need root or CAP_SYS_NICE)",
    )
    ap.add_argument("--startup-timeout", type=float, default=90.0)
    args = ap.parse_args()

    from lerobot_ros.core.policies.scripted import save_scripted_policy
    from lerobot_ros.core.rollout import STRATEGIES
    from lerobot_ros.testing.ros import isolate_this_process, scheduling

    isolate_this_process()
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [
        r
        for r in rows
        if r.partition(":")[0] not in STRATEGIES
        or not re.fullmatch(r"|norec|nice-?\d+", r.partition(":")[2])
    ]
    if unknown:
        ap.error(f"unknown rows {unknown}; strategies: {STRATEGIES.names()}")
    with tempfile.TemporaryDirectory(prefix="bench_rollout_") as tmp:
        work = Path(tmp)
        policy = args.policy or str(save_scripted_policy(work / "scripted"))
        print(
            f"rollout bench: {args.seconds:g} s per row after {args.warmup:g} s warm-up, camera "
            f"{args.camera}, policy {'scripted' if not args.policy else args.policy}, "
            f"{os.cpu_count()} CPUs, {scheduling()}"
            + (f", control path under '{args.control_prefix}'" if args.control_prefix else ""),
            flush=True,
        )
        results: list[Row] = []
        for strategy in rows:
            row = run_row(strategy, args, policy, work)
            results.append(row)
            print(
                f"  {strategy:12} {row.commands:5d} commands, started in {row.startup_s:4.1f} s, "
                f"machine {row.busy:3.0f} % busy, recorded {row.bag_mb:6.1f} MiB, "
                f"recorder dropped {row.dropped}",
                flush=True,
            )

    def reference(strategy: str) -> dict[tuple[str, int], float]:
        """Mean percentiles of the strategy's baseline rows (<strategy>:norec, else base)."""
        rows = [r for r in results if r.strategy == f"{strategy}:norec"]
        rows = rows or [r for r in results if r.strategy == "base"]
        return {
            (k, q): float(np.mean([pct(getattr(r, k), q) for r in rows])) if rows else np.nan
            for k in ("sent_ms", "recv_ms")
            for q in (50, 99)
        }

    print()
    print(
        f"{'row':12} {'sent p50':>8} {'p99':>6} {'max':>6} | {'recv p50':>8} {'p99':>6} "
        f"{'max':>6} | {'added p50':>9} {'p99':>6} (sent) | {'added p99':>9} (recv) | "
        f"{'missed':>6} {'MiB':>6} {'busy':>5}"
    )
    verdicts = []
    for r in results:
        ref = reference(r.strategy.partition(":")[0])
        s50, s99, r50, r99 = (
            pct(r.sent_ms, 50),
            pct(r.sent_ms, 99),
            pct(r.recv_ms, 50),
            pct(r.recv_ms, 99),
        )
        add50, add99 = s50 - ref["sent_ms", 50], s99 - ref["sent_ms", 99]
        addr99 = r99 - ref["recv_ms", 99]
        print(
            f"{r.strategy:12} {s50:8.2f} {s99:6.2f} {r.sent_ms.max(initial=0):6.1f} | "
            f"{r50:8.2f} {r99:6.2f} {r.recv_ms.max(initial=0):6.1f} | {add50:9.2f} {add99:6.2f}"
            f"        | {addr99:9.2f}        | {r.missed:6d} {r.bag_mb:6.1f} {r.busy:4.0f}%"
        )
        if r.strategy != "base" and not r.strategy.endswith(":norec"):
            verdicts.append(f"{r.strategy} {'met' if add99 <= 1.0 else 'NOT met'} ({add99:+.2f})")
    print("jitter in ms (|interval - 33.33 ms|); added = row - mean of its baseline rows")
    print("goal p99 added <= 1 ms (sent): " + ", ".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
