"""Servo bus benchmark (issue: hardware drivers).

1. Sync read (Present_Position) + sync write (Goal_Position) cycles/s for 6 motors, through
   our MotorBus vs the bare vendor SDK, in alternating blocks on the same emulated bus, in the
   same run. Goal: ours >= 0.9x the bare SDK.
2. The follower node's I/O loop at 100 Hz on the feetech backend: p99 |period - 10 ms| from the
   joint-state stamps (taken right after each read). Goal: <= 1 ms.

The emulated bus runs in its own process (`python -m lerobot_ros.testing.servo_bus`), like a USB
adapter would; DDS stays on loopback in a domain of its own.

    python bench/bus.py [--cycles 2000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from lerobot_ros.core.motors import Motor, MotorCalibration, save_calibration
from lerobot_ros.core.motors.bus import BUSES
from lerobot_ros.testing.ros import isolate_this_process, spawn_node

NAMES = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
SETUPS = {
    # bus name: (emulator robot, motor models)
    "feetech": ("so101", ["sts3215"] * 6),
    "dynamixel": ("koch_follower", ["xl430-w250"] * 2 + ["xl330-m288"] * 4),
}


def start_emulator(robot: str, link: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lerobot_ros.testing.servo_bus",
            "--robot",
            robot,
            "--link",
            str(link),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # the port path: it is up
    return proc


def bare_sdk_block(bus: str, port: str, cycles: int) -> float:
    """cycles/s of the vendor SDK used directly, the way its examples do."""
    if bus == "feetech":
        import scservo_sdk as sdk

        ph, pk = sdk.PortHandler(port), sdk.PacketHandler(0)
        read_addr, write_addr, size = 56, 42, 2
    else:
        import dynamixel_sdk as sdk

        ph, pk = sdk.PortHandler(port), sdk.PacketHandler(2.0)
        read_addr, write_addr, size = 132, 116, 4
    ph.openPort()
    ph.setBaudRate(1_000_000)
    reader = sdk.GroupSyncRead(ph, pk, read_addr, size)
    writer = sdk.GroupSyncWrite(ph, pk, write_addr, size)
    for i in range(1, 7):
        reader.addParam(i)
    goal = [2048 & 0xFF, 2048 >> 8, 0, 0][:size]
    for i in range(1, 7):
        writer.addParam(i, goal)
    done = 0
    t0 = time.perf_counter()
    for _ in range(cycles):
        if reader.txRxPacket() == 0:
            done += 1
        writer.txPacket()
    dt = time.perf_counter() - t0
    ph.closePort()
    return done / dt


def our_block(bus: str, port: str, cycles: int, read_block_s: float) -> float:
    models = SETUPS[bus][1]
    motors = [Motor(n, i + 1, m) for i, (n, m) in enumerate(zip(NAMES, models, strict=True))]
    b = BUSES.create(bus, port, motors, read_block_s=read_block_s)
    b.connect()
    goal = dict.fromkeys(NAMES, 2048)
    done = 0
    t0 = time.perf_counter()
    for _ in range(cycles):
        b.sync_read("Present_Position")
        done += 1
        b.sync_write("Goal_Position", goal)
    dt = time.perf_counter() - t0
    b.disconnect()
    return done / dt


def timed(fn, *args) -> tuple[float, float]:
    """(cycles/s, CPU ms of this process per cycle) of one block."""
    cpu0 = time.process_time()
    rate = fn(*args)
    return rate, (time.process_time() - cpu0) / args[2] * 1e3


def bus_throughput(cycles: int, blocks: int, tmp: Path) -> None:
    print(
        f"\n1. sync read + sync write cycles/s, 6 motors, {blocks} alternating blocks of {cycles}"
    )
    print("   ours/poll = same I/O strategy as the SDK (busy polling): the overhead of our layer;")
    print(
        "   ours/block = our default, sleeping in select() up to 2 ms per read (CPU and GIL freed)"
    )
    print(
        f"{'bus':10s} {'bare SDK':>16s} {'ours/poll':>16s} {'ours/block':>16s} {'ratio poll':>11s}"
        f" {'ratio block':>12s}  (cycles/s, CPU ms/cycle)"
    )
    for bus, (robot, _) in SETUPS.items():
        port = str(tmp / f"tty_{bus}")
        emu = start_emulator(robot, tmp / f"tty_{bus}")
        try:
            runs: dict[str, list[tuple[float, float]]] = {"bare": [], "poll": [], "block": []}
            for _ in range(blocks):
                runs["bare"].append(timed(bare_sdk_block, bus, port, cycles))
                runs["poll"].append(timed(our_block, bus, port, cycles, 0.0))
                runs["block"].append(timed(our_block, bus, port, cycles, 0.002))
            med = {k: np.median(np.array(v), axis=0) for k, v in runs.items()}
            cells = " ".join(
                f"{med[k][0]:8.0f} {med[k][1]:6.3f}ms" for k in ("bare", "poll", "block")
            )
            r_poll, r_block = med["poll"][0] / med["bare"][0], med["block"][0] / med["bare"][0]
            verdict = "met" if r_poll >= 0.9 else "NOT met"
            print(f"{bus:10s} {cells} {r_poll:10.2f}x {r_block:11.2f}x  goal >= 0.9x: {verdict}")
        finally:
            emu.terminate()
            emu.wait()


def node_loop(seconds: float, tmp: Path) -> None:
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from sensor_msgs.msg import JointState

    from lerobot_ros.nodes import qos
    from lerobot_ros.nodes.convert import from_time

    domain = isolate_this_process()
    link = tmp / "tty_node"
    emu = start_emulator("so101", link)
    cal = tmp / "cal"
    save_calibration(
        cal / "so101_follower.json",
        {n: MotorCalibration(i + 1, 0, 0, 1000, 3000) for i, n in enumerate(NAMES)},
    )
    node_proc = spawn_node(
        "lerobot_ros.nodes.arm",
        [
            "-p",
            "backend:=feetech",
            "-p",
            f"port:={link}",
            "-p",
            f"calibration_dir:={cal}",
            "-p",
            "robot_id:=so101_follower",
            "-p",
            'objects_topic:=""',
            "-p",
            "rate:=100.0",
        ],
        domain_id=domain,
    )
    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain)
    stamps: list[float] = []
    loop_p99: list[str] = []
    try:
        node = Node("bench_bus", context=ctx)
        from diagnostic_msgs.msg import DiagnosticArray

        def on_diag(msg: DiagnosticArray) -> None:
            for st in msg.status:
                if st.name.startswith("follower"):
                    loop_p99.extend(kv.value for kv in st.values if kv.key == "p99_error_ms")

        node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50)
        node.create_subscription(
            JointState,
            "/follower/joint_states",
            lambda m: stamps.append(from_time(m.header.stamp)),
            qos.SENSOR,
        )
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        threading.Thread(target=ex.spin, daemon=True).start()
        deadline = time.time() + 30
        while len(stamps) < 100 and time.time() < deadline:
            time.sleep(0.1)
        stamps.clear()
        time.sleep(seconds)
        s = np.array(sorted(stamps))
        period = np.diff(s)
        err = np.abs(period - 0.01) * 1e3
        loop = float(loop_p99[-1]) if loop_p99 else float("nan")
        print(f"\n2. follower node I/O loop at 100 Hz on an emulated Feetech bus, {seconds:.0f} s")
        print(
            f"loop period error (the node's own, last 5 s): p99 {loop:.3f} ms   goal p99 <= 1 ms: "
            f"{'met' if loop <= 1.0 else 'NOT met'}"
        )
        print(
            f"joint-state stamps (after each bus read; adds the emulator's reply jitter): "
            f"samples {len(s)}  rate {1 / period.mean():.1f} Hz  p50 {np.percentile(err, 50):.3f}"
            f" ms  p99 {np.percentile(err, 99):.3f} ms  max {err.max():.3f} ms"
        )
    finally:
        node_proc.terminate()
        node_proc.communicate(timeout=10)
        rclpy.try_shutdown(context=ctx)
        emu.terminate()
        emu.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cycles", type=int, default=500, help="cycles per block")
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10.0, help="node loop measurement")
    a = p.parse_args()
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as d:
        bus_throughput(a.cycles, a.blocks, Path(d))
        node_loop(a.seconds, Path(d))


if __name__ == "__main__":
    main()
