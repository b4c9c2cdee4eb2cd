"""Recorder throughput: 2 cameras 640x480 rgb8 at 30 Hz + JointState at 200 Hz, published from
one process to the recorder in another, for `--duration` s (default 60), in one episode.

    python bench/record.py                    # 60 s, mcap
    python bench/record.py --duration 20 --storage sqlite3 --reliable

Prints, per topic: published (counted by the publisher process), received by the recorder,
written into the bag (counted by reading the bag back), dropped (recorder queue full) and late;
and the recorder process's CPU (utime + stime from /proc over the episode). Goal: 0 dropped.
Messages published but never received were lost by DDS (best-effort), not by the recorder;
`--reliable` publishes reliable to take DDS losses out of the picture.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CAMERAS = ("cam0", "cam1")
JOINT_TOPIC = "/bench/joint_states"


def topics() -> list[str]:
    return [JOINT_TOPIC, *(f"/cameras/{c}/image_raw" for c in CAMERAS)]


def publisher(duration: float, reliable: bool) -> None:
    """--role publisher: publish for `duration` s, then print the counts as JSON."""
    import numpy as np
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, JointState

    from lerobot_ros.nodes import qos
    from lerobot_ros.nodes.convert import to_time

    rclpy.init()
    node = rclpy.create_node("bench_publisher")
    profile = qos.SENSOR
    if reliable:
        profile = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    counts = {t: 0 for t in topics()}
    js_pub = node.create_publisher(JointState, JOINT_TOPIC, profile)
    js = JointState(name=[f"j{i}" for i in range(6)], position=[0.0] * 6)
    images = {}
    rng = np.random.default_rng(0)
    for cam in CAMERAS:
        topic = f"/cameras/{cam}/image_raw"
        msg = Image(height=480, width=640, encoding="rgb8", step=640 * 3)
        msg.header.frame_id = cam
        msg.data = rng.integers(0, 255, 480 * 640 * 3, dtype=np.uint8).tobytes()
        images[topic] = (node.create_publisher(Image, topic, profile), msg)
    # Wait for the recorder to match every publisher, then a start signal on stdin.
    print("ready", flush=True)
    sys.stdin.readline()
    t_end = time.time() + duration

    def pub_js() -> None:
        js.header.stamp = to_time(time.time())
        js.position = [float(np.sin(time.time() + i)) for i in range(6)]
        js_pub.publish(js)
        counts[JOINT_TOPIC] += 1

    def pub_images() -> None:
        for topic, (pub, msg) in images.items():
            msg.header.stamp = to_time(time.time())
            pub.publish(msg)
            counts[topic] += 1

    node.create_timer(1 / 200, pub_js)
    node.create_timer(1 / 30, pub_images)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    while time.time() < t_end:
        executor.spin_once(timeout_sec=0.05)
    time.sleep(0.5)  # let the last samples arrive
    print(json.dumps(counts), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0, help="s of recording (default 60)")
    ap.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    ap.add_argument(
        "--reliable", action="store_true", help="publish reliable instead of best-effort"
    )
    ap.add_argument("--output-dir", default="", help="where bags go (default: a temp dir, removed)")
    ap.add_argument(
        "--role", choices=["bench", "publisher"], default="bench", help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.role == "publisher":
        publisher(args.duration, args.reliable)
        return 0

    from lerobot_ros.testing.ros import isolate_this_process, isolated_env, spawn_node

    domain = isolate_this_process()
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rosbags.highlevel import AnyReader

    from lerobot_msgs.srv import StartEpisode, StopEpisode
    from lerobot_ros.testing.ros import Inbox, wait_until

    tmp = tempfile.TemporaryDirectory(prefix="bench_record_")
    out = args.output_dir or tmp.name
    topic_list = "[" + ",".join(topics()) + "]"
    recorder = spawn_node(
        "lerobot_ros.nodes.recorder",
        [
            "-p",
            f"output_dir:={out}",
            "-p",
            f"storage:={args.storage}",
            "-p",
            f"topics:={topic_list}",
        ],
        domain_id=domain,
    )
    pub = subprocess.Popen(
        [sys.executable, __file__, "--role", "publisher", "--duration", str(args.duration)]
        + (["--reliable"] if args.reliable else []),
        env=isolated_env(domain),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    rclpy.init()
    node = rclpy.create_node("bench_record")
    diags = Inbox()
    node.create_subscription(DiagnosticArray, "/diagnostics", diags, 10)

    def recorder_values() -> dict[str, str]:
        for msg in reversed(diags.messages()):
            for s in msg.status:
                if s.name == "recorder: recorder":
                    return {kv.key: kv.value for kv in s.values}
        return {}

    def spin_until(pred, timeout: float) -> bool:  # type: ignore[no-untyped-def]
        return wait_until(lambda: (rclpy.spin_once(node, timeout_sec=0.05), pred())[1], timeout)

    def call(srv, name, req):  # type: ignore[no-untyped-def]
        client = node.create_client(srv, name)
        assert client.wait_for_service(timeout_sec=20), name
        future = client.call_async(req)
        rclpy.spin_until_future_complete(node, future, timeout_sec=10)
        return future.result()

    try:
        assert pub.stdout is not None and pub.stdin is not None
        assert pub.stdout.readline().strip() == "ready"
        ok = spin_until(lambda: recorder_values().get("waiting_for", "x") == "", 30.0)
        assert ok, f"recorder did not find the topics: {recorder_values().get('waiting_for')}"
        start = call(StartEpisode, "/recorder/start_episode", StartEpisode.Request(task="bench"))
        assert start.success, start.message
        cpu0, t0 = cpu_seconds(recorder.pid), time.monotonic()
        pub.stdin.write("go\n")
        pub.stdin.flush()
        published = json.loads(pub.stdout.readline())
        cpu1, t1 = cpu_seconds(recorder.pid), time.monotonic()
        stop = call(StopEpisode, "/recorder/stop_episode", StopEpisode.Request())
        assert stop.success, stop.message
        spin_until(lambda: (Path(stop.path) / "metadata.yaml").is_file(), 30.0)
        diags.clear()  # counters from a report sent after the stop: final
        spin_until(lambda: recorder_values().get("recording") == "False", 5.0)
        values = recorder_values()
        t_read = time.monotonic()
        counts: dict[str, int] = {}
        with AnyReader([Path(stop.path)]) as reader:  # streamed: a 60 s bag is ~3 GiB
            for conn, _t, raw in reader.messages():
                if conn.topic not in counts:
                    reader.deserialize(raw, conn.msgtype)  # the first of each topic decodes
                counts[conn.topic] = counts.get(conn.topic, 0) + 1
        read_s = time.monotonic() - t_read
        size = sum(f.stat().st_size for f in Path(stop.path).iterdir())
    finally:
        pub.kill()
        recorder.terminate()
        try:
            recorder.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            recorder.kill()
        node.destroy_node()
        rclpy.try_shutdown()

    qos_name = "reliable" if args.reliable else "best-effort"
    print(
        f"recorder bench: {args.duration:.0f} s, {args.storage}, publisher {qos_name}, "
        f"{len(CAMERAS)} x 640x480 rgb8 @ 30 Hz + JointState @ 200 Hz"
    )
    print(
        f"{'topic':32} {'published':>9} {'received':>9} {'written':>9} {'dropped':>8} {'late':>5}"
    )
    total_dropped = 0
    for topic in topics():
        dropped = int(values.get(f"{topic}.dropped", -1))
        total_dropped += max(dropped, 0)
        print(
            f"{topic:32} {published[topic]:9d} {values.get(f'{topic}.received', '?'):>9} "
            f"{counts.get(topic, 0):9d} {dropped:8d} {values.get(f'{topic}.late', '?'):>5}"
        )
    cpu = (cpu1 - cpu0) / (t1 - t0) * 100
    mb = size / 2**20
    print(
        f"recorder CPU {cpu:.0f} % of one core over {t1 - t0:.1f} s; bag {mb:.0f} MiB "
        f"({mb / (t1 - t0):.1f} MiB/s); read back in {read_s:.1f} s"
    )
    print(f"verdict: {'OK, 0 dropped' if total_dropped == 0 else f'{total_dropped} DROPPED'}")
    return 0 if total_dropped == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
