"""The simulated SO-101 teleop demo: the whole teleop graph in one process, plus a monitor that
prints, every second, how well the follower tracks the leader, the camera rate and what the
watchdog reports.

    python -m lerobot_ros.demo                 # until Ctrl-C
    python -m lerobot_ros.demo --duration 20   # then a verdict, exit 1 if a target is missed
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lerobot_ros.testing.ros import isolate_this_process

# Targets of the demo (issue: steady-state error < 2 deg, images >= 25 Hz, diagnostics flow).
MAX_STEADY_ERROR_DEG = 2.0
MIN_CAMERA_HZ = 25.0
LEADER_STILL_S = 0.6  # the leader must have been still this long for "steady state"
STILL_RAD_S = 0.01


@dataclass
class Tracking:
    """Follower vs leader error, sampled only when the leader has been still a while."""

    leader_q: np.ndarray | None = None
    leader_moving_at: float = math.inf  # start-up counts as motion: the follower converges
    steady_errors_deg: list[float] = field(default_factory=list)

    def on_leader(self, q: np.ndarray, v: np.ndarray | None, t: float) -> None:
        if v is None or len(v) != len(q):
            v = np.full(len(q), np.inf) if self.leader_q is None else (q - self.leader_q) * 100
        if np.max(np.abs(v)) > STILL_RAD_S or self.leader_q is None:
            self.leader_moving_at = t
        self.leader_q = q

    def on_follower(self, q: np.ndarray, t: float) -> None:
        if self.leader_q is None or t - self.leader_moving_at < LEADER_STILL_S:
            return
        self.steady_errors_deg.append(float(np.degrees(np.max(np.abs(q - self.leader_q)))))


def make_monitor(cameras: list[str]) -> Any:
    """A probe node (created after rclpy is initialised by the graph)."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.node import Node
    from sensor_msgs.msg import Image, JointState

    from lerobot_ros.nodes import qos
    from lerobot_ros.nodes.convert import positions_by_name

    class Monitor(Node):
        def __init__(self, context: Any, joint_names: list[str]) -> None:
            super().__init__("demo_monitor", context=context)
            self.names = joint_names
            self.tracking = Tracking()
            self.frames = {c: 0 for c in cameras}
            self.diagnostics: dict[str, str] = {}
            self.lock = threading.Lock()
            self.create_subscription(JointState, "/leader/joint_states", self._leader, qos.SENSOR)
            self.create_subscription(
                JointState, "/follower/joint_states", self._follower, qos.SENSOR
            )
            for c in cameras:
                self.create_subscription(
                    Image, f"/cameras/{c}/image_raw", lambda _m, c=c: self._frame(c), qos.SENSOR
                )
            self.create_subscription(DiagnosticArray, "/diagnostics", self._diag, 50)

        def _leader(self, msg: JointState) -> None:
            q = positions_by_name(msg, self.names)
            if q is not None:
                v = np.array(msg.velocity) if len(msg.velocity) == len(msg.name) else None
                with self.lock:
                    self.tracking.on_leader(q, v, time.time())

        def _follower(self, msg: JointState) -> None:
            q = positions_by_name(msg, self.names)
            if q is not None:
                with self.lock:
                    self.tracking.on_follower(q, time.time())

        def _frame(self, camera: str) -> None:
            with self.lock:
                self.frames[camera] += 1

        def _diag(self, msg: DiagnosticArray) -> None:
            with self.lock:
                for s in msg.status:
                    self.diagnostics[s.name] = (
                        f"[{['OK', 'WARN', 'ERROR', 'STALE'][s.level[0]]}] {s.message}"
                    )

    return Monitor


def run(duration: float | None, cameras: list[str], verbose: bool = True) -> dict[str, float]:
    """Run the graph; return the summary numbers."""
    domain = isolate_this_process()
    from lerobot_ros.core.graph import TeleopGraphArgs, teleop_graph
    from lerobot_ros.core.robots import get_robot
    from lerobot_ros.runner import InProcessGraph

    args = TeleopGraphArgs(cameras=tuple(cameras))
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"[demo] simulated SO-101 teleop graph, ROS_DOMAIN_ID={domain} (localhost only)")
    with InProcessGraph(teleop_graph(args), domain_id=domain) as graph:
        monitor = make_monitor(cameras)(graph.context, list(get_robot(args.robot).joint_names))
        graph.add_node(monitor)
        print(f"[demo] nodes: {', '.join(s.fqn for s in graph.specs)}")
        print(
            f"[demo] launch-only (need a ROS 2 install): {', '.join(s.name for s in graph.skipped)}"
        )
        start = time.time()
        last_frames = dict.fromkeys(cameras, 0)
        camera_hz: list[float] = []
        while not stop.wait(1.0):
            with monitor.lock:
                errs = list(monitor.tracking.steady_errors_deg)
                frames = dict(monitor.frames)
                diags = dict(monitor.diagnostics)
            hz = {c: frames[c] - last_frames[c] for c in cameras}
            last_frames = frames
            elapsed = time.time() - start
            if elapsed > 3.0:  # after start-up
                camera_hz.extend(hz.values())
            if verbose:
                recent = errs[-50:]
                err = f"{max(recent):.2f}" if recent else "  --"
                cams = " ".join(f"{c}={n}Hz" for c, n in hz.items())
                wd = next((v for k, v in diags.items() if k.startswith("watchdog")), "(none yet)")
                print(f"[demo] t={elapsed:5.1f}s steady err max {err} deg | {cams} | watchdog {wd}")
            if duration is not None and elapsed >= duration:
                break
        graph.remove_node(monitor)
        monitor.destroy_node()
    summary = {
        "steady_error_max_deg": max(errs) if errs else math.nan,
        "steady_error_p95_deg": float(np.percentile(errs, 95)) if errs else math.nan,
        "steady_samples": float(len(errs)),
        "camera_hz_min": min(camera_hz) if camera_hz else 0.0,
        "camera_hz_mean": float(np.mean(camera_hz)) if camera_hz else 0.0,
        "diagnostics_sources": float(len(diags)),
        "watchdog_diagnostics": float(any(k.startswith("watchdog") for k in diags)),
    }
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds, then a verdict")
    parser.add_argument("--cameras", default="front", help="comma-separated camera names")
    ns = parser.parse_args(argv)
    cameras = [c for c in ns.cameras.split(",") if c]
    s = run(ns.duration, cameras)
    ok = (
        s["steady_error_max_deg"] < MAX_STEADY_ERROR_DEG
        and (not cameras or s["camera_hz_mean"] >= MIN_CAMERA_HZ)
        and s["watchdog_diagnostics"] == 1.0
    )
    print(
        f"[demo] summary: steady-state error max {s['steady_error_max_deg']:.2f} deg "
        f"(p95 {s['steady_error_p95_deg']:.2f}, {int(s['steady_samples'])} samples; target < "
        f"{MAX_STEADY_ERROR_DEG}), camera {s['camera_hz_mean']:.1f} Hz mean / "
        f"{s['camera_hz_min']:.0f} Hz min (target >= {MIN_CAMERA_HZ}), watchdog diagnostics "
        f"{'yes' if s['watchdog_diagnostics'] else 'NO'} -> {'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok or ns.duration is None else 1


if __name__ == "__main__":
    sys.exit(main())
