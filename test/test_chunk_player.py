"""The chunk player node over real DDS: ActionChunks in, one command per tick out, rows for
times already past dropped, paused and resumed by service, bad chunks refused."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros

from sensor_msgs.msg import JointState  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402

from lerobot_msgs.msg import ActionChunk  # noqa: E402
from lerobot_ros.core.robots import SO_ARM_JOINTS  # noqa: E402
from lerobot_ros.nodes import qos  # noqa: E402
from lerobot_ros.testing.graph import GraphHarness, spec  # noqa: E402

PLAYER = "lerobot_ros.nodes.chunk_player:ChunkPlayerNode"
JOINTS = list(SO_ARM_JOINTS)
RATE = 50.0
PERIOD = 0.02


def chunk(t0: float, rows: np.ndarray, chunk_id: int, start_offset: float = 0.0) -> ActionChunk:
    msg = ActionChunk()
    msg.header.stamp.sec = int(t0)
    msg.header.stamp.nanosec = round((t0 - int(t0)) * 1e9)
    msg.joint_names = JOINTS
    msg.horizon = rows.shape[0]
    msg.period.nanosec = int(PERIOD * 1e9)
    msg.start_offset.sec = int(start_offset)
    msg.start_offset.nanosec = round((start_offset - int(start_offset)) * 1e9)
    msg.data = rows.astype(np.float32).ravel().tolist()
    msg.chunk_id = chunk_id
    return msg


def rows_for(first: int, n: int) -> np.ndarray:
    """Row i holds the value first + i in every joint, so a command tells which row it was."""
    return np.repeat(np.arange(first, first + n, dtype=float)[:, None], len(JOINTS), axis=1)


def test_chunk_player_plays_rows_by_time_pauses_and_refuses_bad_chunks(domain_id: int) -> None:
    specs = [spec("chunk_player", PLAYER, rate=RATE, max_age=5.0)]
    with GraphHarness(specs, domain_id) as h:
        out = h.inbox(JointState, "/chunk_player/command", qos.COMMAND)
        pub = h.publisher(ActionChunk, "/policy/action_chunk", qos.COMMAND)
        h.wait(lambda: pub.get_subscription_count() > 0, 10.0, "the player's subscription")
        time.sleep(0.3)
        assert len(out) == 0  # nothing to play yet: silence, so the watchdog holds

        # A chunk observed 1 s ago: the first 50 rows (1 s at 20 ms) are in the past.
        now = time.time()
        pub.publish(chunk(now - 1.0, rows_for(0, 150), chunk_id=1))
        h.wait(lambda: len(out) >= 20, 5.0, "commands")
        msgs = out.messages()
        assert list(msgs[0].name) == JOINTS
        first = msgs[0].position[0]
        assert 49 <= first <= 56, f"the rows of the elapsed second are dropped, got row {first}"
        values = [m.position[0] for m in msgs]
        assert all(b >= a for a, b in itertools.pairwise(values))  # time moves on
        assert all(m.position[0] == m.position[5] for m in msgs)
        # Roughly one command per tick (50 Hz).
        stamps = [t for t, _ in out.items()]
        rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
        assert 35 < rate < 60, rate

        # Paused: no command at all, and the chunk in hand is dropped.
        assert h.call(SetBool, "/chunk_player/set_enabled", SetBool.Request(data=False)).success
        time.sleep(0.1)
        out.clear()
        time.sleep(0.4)
        assert len(out) == 0
        # Resumed: nothing until a new chunk arrives (the old plan was predicted before the pause).
        assert h.call(SetBool, "/chunk_player/set_enabled", SetBool.Request(data=True)).success
        time.sleep(0.3)
        assert len(out) == 0
        # A chunk observed before the resume (an inference that started during the pause) is
        # not played, even though its rows are for times still to come.
        now = time.time()
        pub.publish(chunk(now - 0.5, rows_for(500, 100), chunk_id=2, start_offset=0.5))
        time.sleep(0.3)
        assert len(out) == 0
        # A sync-mode chunk: start_offset = its inference latency, so row 0 is meant for now.
        now = time.time()
        pub.publish(chunk(now - 0.2, rows_for(1000, 100), chunk_id=3, start_offset=0.2))
        h.wait(lambda: len(out) >= 3, 5.0, "commands after resume")
        assert 1000 <= out.messages()[0].position[0] <= 1005

        # Malformed: data does not fill horizon x joints -> refused, playback unaffected.
        bad = chunk(time.time(), rows_for(5000, 10), chunk_id=4)
        bad.data = bad.data[:-1]
        pub.publish(bad)
        time.sleep(0.3)
        assert all(m.position[0] < 5000 for m in out.messages())
