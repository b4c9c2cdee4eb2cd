"""episode_keys: keys (keyboard or foot pedal) from a terminal -> recorder / rollout / watchdog.

- KeyDecoder (ROS-free): characters, named keys, escape sequences split across reads, a lone ESC.
- Terminal + KeyReader on a pseudo-terminal (os.openpty): cbreak while open, the settings
  restored after, keys read on the reader thread.
- The node in a small graph over real DDS, keys written into a pty: s / space start and save an
  episode with the real recorder; h, i, i, e reach probe services standing in for the rollout
  and the watchdog (and /estop); the terminal is restored on exit.
"""

from __future__ import annotations

import os
import termios
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from lerobot_ros.core.keys import KeyDecoder, KeyReader, Terminal, TerminalError, is_key_name

ROOT = Path(__file__).resolve().parents[1]


def test_decoder_names_keys_and_waits_for_split_sequences() -> None:
    d = KeyDecoder()
    assert d.feed(b"sS1 \r\n\t\x7f\x04") == [
        "s", "S", "1", "space", "enter", "enter", "tab", "backspace", "ctrl+d",
    ]  # fmt: skip
    seqs = b"\x1b[A\x1bOP\x1b[15~\x1b[5~\x1b[24~\x1b[[B\x1b[1;5C\x1b[H"
    assert d.feed(seqs) == ["up", "f1", "f5", "pageup", "f12", "f2", "right", "home"]
    assert d.feed(b"\x1b[1") == [] and d.pending  # cut in the middle: wait
    assert d.feed(b"7~x") == ["f6", "x"]
    assert d.feed("ä".encode()[:1]) == [] and d.feed("ä".encode()[1:]) == ["ä"]
    assert d.feed(b"\x1b") == [] and d.flush() == ["esc"]  # nothing followed: a lone ESC
    assert d.feed(b"\x1bq") == ["esc", "q"]  # Alt+q
    assert d.feed(b"\x1b[99~") == ["unknown"]
    for name in ("s", "space", "enter", "f12", "pagedown", "ctrl+a", "ä"):
        assert is_key_name(name), name
    for name in ("", "ss", "ctrl+i", "f13", " ", "unknown"):
        assert not is_key_name(name), name


def test_terminal_cbreak_is_restored_and_the_reader_reads_keys() -> None:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    before = termios.tcgetattr(slave)
    got: list[str] = []
    try:
        term = Terminal(path)
        now = termios.tcgetattr(slave)
        assert not now[3] & termios.ICANON and not now[3] & termios.ECHO  # cbreak
        assert now[3] & termios.ISIG  # Ctrl-C still interrupts
        reader = KeyReader(term.fd, got.append).start()
        os.write(master, b"s \x1b[A")
        os.write(master, b"\x1b")  # a lone ESC: reported once nothing follows
        deadline = time.monotonic() + 5
        while len(got) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        reader.stop()
        term.restore()
        assert got == ["s", "space", "up", "esc"]
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)
    with pytest.raises(TerminalError, match="/dev/null is not a terminal"):
        Terminal("/dev/null")
    with pytest.raises(TerminalError, match="cannot open /nonexistent/tty"):
        Terminal("/nonexistent/tty")


@pytest.mark.ros
def test_config_documents_every_episode_keys_parameter() -> None:
    from lerobot_ros.nodes.episode_keys import EPISODE_KEYS_PARAMS

    given = yaml.safe_load((ROOT / "config" / "so101.yaml").read_text())["episode_keys"][
        "ros__parameters"
    ]
    assert set(given) == {p.name for p in EPISODE_KEYS_PARAMS}
    for p in EPISODE_KEYS_PARAMS:
        assert given[p.name] == p.default, p.name


@pytest.mark.ros
def test_bad_parameters_name_the_parameter(domain_id: int) -> None:
    from lerobot_ros.core.params import ParameterError
    from lerobot_ros.testing.graph import GraphHarness, spec

    cls = "lerobot_ros.nodes.episode_keys:EpisodeKeysNode"
    cases = [
        ({"tty": "/dev/null"}, "parameter 'tty' = '/dev/null': /dev/null is not a terminal"),
        ({"keys_discard": ["s"]}, "parameter 'keys_discard' = ['s']: 's' is bound to start"),
        ({"keys_estop": ["pedal"]}, "parameter 'keys_estop' = ['pedal']: unknown key names"),
    ]
    for params, message in cases:
        with (
            pytest.raises(ParameterError) as err,
            GraphHarness([spec("episode_keys", cls, **params)], domain_id),
        ):
            pass
        assert message in str(err.value)


@pytest.mark.ros
def test_keys_drive_the_recorder_rollout_and_estop(domain_id: int, tmp_path: Path) -> None:
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool

    from lerobot_msgs.srv import SaveHighlight, SetIntervention, TriggerEstop
    from lerobot_ros.core.recording import episode_status, read_episode
    from lerobot_ros.nodes import qos
    from lerobot_ros.testing.graph import GraphHarness, spec

    master, slave = os.openpty()
    before = termios.tcgetattr(slave)
    specs = [
        spec(
            "recorder",
            "lerobot_ros.nodes.recorder:RecorderNode",
            output_dir=str(tmp_path),
            topics=["/follower/joint_states", "/recorder/events"],
        ),
        spec(
            "episode_keys",
            "lerobot_ros.nodes.episode_keys:EpisodeKeysNode",
            tty=os.ttyname(slave),
            task="pick the cube",
            highlight_seconds=3.0,
        ),
    ]
    requests: dict[str, list[Any]] = {"highlight": [], "intervention": [], "estop": []}

    def server(kind: str, reply: dict[str, Any]) -> Any:
        def handle(req: Any, res: Any) -> Any:
            requests[kind].append(req)
            for k, v in reply.items():
                setattr(res, k, v)
            return res

        return handle

    try:
        with GraphHarness(specs, domain_id) as h:
            rec, keys = h.nodes["recorder"], h.nodes["episode_keys"]
            assert h.probe is not None
            states = h.publisher(JointState, "/follower/joint_states", qos.SENSOR)
            h.probe.create_timer(
                0.02, lambda: states.publish(JointState(name=["a"], position=[0.0]))
            )
            h.probe.create_service(
                SaveHighlight,
                "/rollout/save_highlight",
                server("highlight", {"success": True, "message": "saved", "episode_index": 7}),
            )
            h.probe.create_service(
                SetIntervention,
                "/rollout/set_intervention",
                server("intervention", {"success": True, "message": "ok", "state": "x"}),
            )
            h.probe.create_service(
                TriggerEstop, "/watchdog/trigger_estop", server("estop", {"success": True})
            )
            estop = h.inbox(Bool, "/estop", qos.COMMAND)
            h.wait(lambda: not rec.pending, 10.0, "the recorder to subscribe")
            h.wait(
                lambda: all(c.service_is_ready() for c in keys.action_clients.values()),
                10.0,
                "the services at the key node",
            )

            os.write(master, b"s")
            h.wait(lambda: rec.writer.current is not None, 5.0, "the episode to start")
            time.sleep(1.0)
            os.write(master, b" ")
            h.wait(lambda: rec.writer.current is None, 5.0, "the episode to stop")
            ep = rec.writer.episodes[0]
            assert ep.task == "pick the cube"
            os.write(master, b"d")  # nothing to discard: the recorder refuses (logged)
            os.write(master, b"hix")  # x is not bound
            h.wait(lambda: len(requests["intervention"]) == 1, 5.0, "the first intervention")
            os.write(master, b"i")  # toggles back: active=False
            h.wait(lambda: len(requests["intervention"]) == 2, 5.0, "the second intervention")
            os.write(master, b"e")
            h.wait(lambda: requests["estop"] and len(estop) > 0, 5.0, "the e-stop")
            assert rec.writer.flush(5.0)
            pressed = list(keys.pressed)
            # (this recorder's ring is off: its own save_highlight says so)
            off = h.call(SaveHighlight, "/recorder/save_highlight", SaveHighlight.Request(task="t"))
            assert not off.success and "ring buffer is off: set ring_seconds > 0" in off.message
    finally:
        after = termios.tcgetattr(slave)
        os.close(master)
        os.close(slave)
    assert after == before  # the terminal got its settings back
    assert pressed == [
        ("s", "start"), ("space", "stop"), ("d", "discard"), ("h", "highlight"),
        ("i", "intervention"), ("x", ""), ("i", "intervention"), ("e", "estop"),
    ]  # fmt: skip
    (hl,) = requests["highlight"]
    assert (hl.seconds, hl.continue_recording, hl.task) == (3.0, False, "")
    assert [(r.active, r.source) for r in requests["intervention"]] == [
        (True, "keyboard"),
        (False, "keyboard"),
    ]
    assert "episode_keys" in requests["estop"][0].reason and estop.last().data is True
    assert episode_status(ep.path) == "saved" and 0.9 < ep.duration_s < 2.0
    msgs = read_episode(ep.path)
    assert (msgs[0][3].type, msgs[0][3].task, msgs[-1][3].type) == (0, "pick the cube", 1)
    assert sum(m[0] == "/follower/joint_states" for m in msgs) > 20
