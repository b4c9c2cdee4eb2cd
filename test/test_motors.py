"""Servo buses against the emulated servo bus with the real SDKs (scservo_sdk, dynamixel_sdk);
LeRobot calibration files; the ticks <-> radians conversion; register encodings.

No ROS here: this is the core.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lerobot_ros.core.motors import (
    BUSES,
    BusDisconnected,
    BusError,
    CalibrationError,
    DynamixelBus,
    FeetechBus,
    Motor,
    MotorBus,
    MotorCalibration,
    RangeRecorder,
    calibration_path,
    homing_offset_for,
    load_calibration,
    rad_to_ticks,
    rad_to_ticks_array,
    save_calibration,
    tables,
    ticks_to_rad,
    ticks_to_rad_array,
)
from lerobot_ros.core.motors.calibration import dumps_calibration
from lerobot_ros.testing.servo_bus import EmulatedServoBus

NAMES = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
SO101 = dict.fromkeys(range(1, 7), "sts3215")
KOCH_FOLLOWER = {1: "xl430-w250", 2: "xl430-w250", **dict.fromkeys(range(3, 7), "xl330-m288")}
ARMS = {
    "feetech": (FeetechBus, SO101),
    "dynamixel": (DynamixelBus, KOCH_FOLLOWER),
}


def motors_for(models: dict[int, str]) -> list[Motor]:
    return [Motor(NAMES[i - 1], i, model) for i, model in sorted(models.items())]


def make_emulator(protocol: str, models: dict[int, str], tmp_path: Path) -> EmulatedServoBus:
    return EmulatedServoBus(protocol, models, link=tmp_path / "ttyEMU0", seed=3).start()


@pytest.fixture(params=sorted(ARMS))
def rig(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[EmulatedServoBus, MotorBus]]:
    """A connected bus of six motors (SO-101 Feetech, Koch follower Dynamixel) on an emulator."""
    cls, models = ARMS[request.param]
    emu = make_emulator(request.param, models, tmp_path)
    bus = cls(emu.port, motors_for(models))
    try:
        bus.connect()
        yield emu, bus
    finally:
        bus.disconnect()
        emu.stop()


def set_positions(emu: EmulatedServoBus, base: int) -> dict[str, int]:
    """Move every shaft (torque off) and refresh Present_Position at once (a zero-time step)."""
    expected = {}
    for i in range(1, 7):
        emu.motors[i].set_actual_position(base + 17 * i)
        expected[NAMES[i - 1]] = base + 17 * i
    emu.step(0.0)
    return expected


def barrier(bus: MotorBus) -> None:
    """Sync writes get no reply: a ping after one returns once the emulator has processed it."""
    assert bus.ping(1) is not None


# ------------------------------------------------------------------------- connect / models
def test_connect_pings_every_motor_and_scan_finds_them(rig) -> None:
    _, bus = rig
    assert bus.is_connected
    _, models = ARMS[bus.protocol]
    numbers = {i: tables.model_info(m).model_number for i, m in models.items()}
    assert bus.ping(1) == numbers[1]
    assert bus.ping(9) is None  # nobody there: None after the retries, no exception
    assert bus.scan(range(1, 9)) == numbers
    assert bus.stats.errors == 0  # a ping without answer is not an error


def test_registry_builds_the_buses(tmp_path: Path) -> None:
    assert BUSES.get("feetech") is FeetechBus
    assert BUSES.get("dynamixel") is DynamixelBus
    bus = BUSES.create("dynamixel", str(tmp_path / "nothing"), motors_for(KOCH_FOLLOWER))
    assert isinstance(bus, DynamixelBus) and not bus.is_connected


@pytest.mark.parametrize(
    ("protocol", "cls", "expected", "present"),
    [
        ("feetech", FeetechBus, "sts3215", "sts3250"),
        ("dynamixel", DynamixelBus, "xl330-m288", "xl430-w250"),
    ],
)
def test_wrong_model_error_names_port_motor_and_register(
    tmp_path: Path, protocol: str, cls: type[MotorBus], expected: str, present: str
) -> None:
    models = dict.fromkeys(range(1, 7), expected)
    models[4] = present
    with make_emulator(protocol, models, tmp_path) as emu:
        bus = cls(emu.port, motors_for(dict.fromkeys(range(1, 7), expected)))
        with pytest.raises(BusError) as info:
            bus.connect()
        msg = str(info.value)
        found = tables.model_info(present).model_number
        wanted = tables.model_info(expected).model_number
        assert f"port {emu.port}" in msg
        assert "motor 4 (wrist_flex)" in msg
        assert "Model_Number" in msg
        assert f"model {found} ({present}), expected {wanted} ({expected})" in msg
        assert (info.value.port, info.value.motor_id, info.value.register) == (
            emu.port,
            4,
            "Model_Number",
        )
        assert not isinstance(info.value, BusDisconnected)
        assert not bus.is_connected  # a failed check leaves the port closed


@pytest.mark.parametrize("protocol", sorted(ARMS))
def test_missing_motor_error_names_port_and_motor(tmp_path: Path, protocol: str) -> None:
    cls, models = ARMS[protocol]
    present = {i: m for i, m in models.items() if i != 3}
    with make_emulator(protocol, present, tmp_path) as emu:
        bus = cls(emu.port, motors_for(models), num_retry=1)
        with pytest.raises(BusError) as info:
            bus.connect()
        msg = str(info.value)
        assert msg.startswith(f"port {emu.port}, motor 3 (elbow_flex)")
        assert "no reply to ping after 2 tries (expected" in msg
        assert info.value.motor_id == 3
        assert bus.stats.errors_by_motor == {"elbow_flex": 1}
        assert not bus.is_connected


def test_connect_to_a_missing_port_raises_bus_disconnected(tmp_path: Path) -> None:
    port = str(tmp_path / "ttyACM9")
    bus = FeetechBus(port, motors_for(SO101))
    with pytest.raises(BusDisconnected, match=re.escape(f"port {port}: cannot open")):
        bus.connect()
    with pytest.raises(BusDisconnected, match="not connected"):
        bus.read("Present_Position", "gripper")
    bus.disconnect()
    bus.disconnect()  # safe twice


def test_unsupported_baud_rate_names_the_port(tmp_path: Path) -> None:
    bus = DynamixelBus(str(tmp_path / "x"), motors_for(KOCH_FOLLOWER), baudrate=123_456)
    with pytest.raises(BusError, match=r"port .*/x: baud rate 123456"):
        bus.connect()


def test_bus_rejects_bad_motor_lists(tmp_path: Path) -> None:
    port = str(tmp_path / "p")
    with pytest.raises(ValueError, match="share id 1"):
        FeetechBus(port, [Motor("a", 1, "sts3215"), Motor("b", 1, "sts3215")])
    with pytest.raises(ValueError, match="used twice"):
        FeetechBus(port, [Motor("a", 1, "sts3215"), Motor("a", 2, "sts3215")])
    with pytest.raises(ValueError, match="xl430-w250 is a dynamixel servo"):
        FeetechBus(port, [Motor("a", 1, "xl430-w250")])
    with pytest.raises(ValueError, match="unknown servo model"):
        DynamixelBus(port, [Motor("a", 1, "xl999")])
    with pytest.raises(ValueError, match="cannot share a bus"):
        FeetechBus(port, [Motor("a", 1, "sts3215"), Motor("b", 2, "scs0009")])


# ------------------------------------------------------------------------- read / write
def test_read_write_signed_values_round_trip(rig) -> None:
    emu, bus = rig
    for value in (-1000, 0, 1234):
        bus.write("Homing_Offset", "elbow_flex", value)
        assert bus.read("Homing_Offset", "elbow_flex") == value
        # the servo's own decoding agrees with ours (sign-magnitude / two's complement)
        assert emu.motors[3].read_register("Homing_Offset") == value
    info = tables.model_info(bus.motors["elbow_flex"].model)
    address, size = info.address("Homing_Offset")
    bus.write("Homing_Offset", "elbow_flex", -5)
    raw = int.from_bytes(emu.motors[3].read_bytes(address, size), "little")
    assert raw == ((1 << 11) | 5 if bus.protocol == "feetech" else 2**32 - 5)
    bus.write("Homing_Offset", "elbow_flex", 0)

    # out of range: ValueError before anything is sent
    before = bus.stats.transactions
    with pytest.raises(ValueError, match="Torque_Enable"):
        bus.write("Torque_Enable", "gripper", 256)
    with pytest.raises(KeyError, match="no motor named 'hand'"):
        bus.read("Present_Position", "hand")
    with pytest.raises(KeyError, match="Nope"):
        bus.read("Nope", "gripper")
    assert bus.stats.transactions == before


def test_present_position_follows_the_shaft_and_the_homing_offset(rig) -> None:
    """The calibration step: offset from homing_offset_for() makes the motor read 2047."""
    emu, bus = rig
    emu.motors[2].set_actual_position(3000)
    emu.step(0.0)
    raw = bus.read("Present_Position", "shoulder_lift")
    assert raw == 3000
    bus.write("Homing_Offset", "shoulder_lift", homing_offset_for(raw, bus.protocol))
    emu.step(0.0)
    assert bus.read("Present_Position", "shoulder_lift") == 2047


def test_sync_read_and_write_six_motors(rig) -> None:
    emu, bus = rig
    expected = set_positions(emu, 1000)
    assert bus.sync_read("Present_Position") == expected
    assert list(bus.sync_read("Present_Position", ["gripper", "elbow_flex"])) == [
        "gripper",
        "elbow_flex",
    ]
    goals = {name: 500 + 100 * i for i, name in enumerate(NAMES)}
    bus.sync_write("Goal_Position", goals)
    barrier(bus)
    assert {n: emu.motors[i + 1].read_register("Goal_Position") for i, n in enumerate(NAMES)} == (
        goals
    )
    assert bus.sync_read("Goal_Position") == goals
    # a cached plan is reused with new values; a subset works too
    bus.sync_write("Goal_Position", {"gripper": 2222, "wrist_roll": 1111})
    barrier(bus)
    assert emu.motors[6].read_register("Goal_Position") == 2222
    assert emu.motors[5].read_register("Goal_Position") == 1111
    # signed values through sync write/read
    bus.sync_write("Homing_Offset", dict.fromkeys(NAMES, -7))
    barrier(bus)
    assert bus.sync_read("Homing_Offset") == dict.fromkeys(NAMES, -7)
    assert emu.motors[1].read_register("Homing_Offset") == -7
    with pytest.raises(ValueError):
        bus.sync_write("Goal_Position", {"gripper": 1 << 40})
    assert bus.sync_read("Present_Position", []) == {}
    bus.sync_write("Goal_Position", {})
    assert bus.stats.errors == 0


def test_scs_bus_falls_back_to_one_read_per_motor(tmp_path: Path) -> None:
    models = dict.fromkeys(range(1, 7), "scs0009")
    with make_emulator("feetech", models, tmp_path) as emu:
        bus = FeetechBus(emu.port, motors_for(models))
        bus.connect()
        try:
            expected = set_positions(emu, 300)
            before = bus.stats.transactions
            assert bus.sync_read("Present_Position") == expected
            assert bus.stats.transactions == before + 6  # one read per motor
            bus.sync_write("Goal_Position", dict.fromkeys(NAMES, 700))
            barrier(bus)
            assert emu.motors[4].read_register("Goal_Position") == 700
            bus.enable_torque(["gripper"])
            assert emu.motors[6].read_register("Lock") == 1  # SCS Lock is at 48
            bus.disable_torque()
            assert emu.motors[6].read_register("Lock") == 0
        finally:
            bus.disconnect()


def test_torque_on_off_semantics(rig) -> None:
    emu, bus = rig
    feetech = bus.protocol == "feetech"
    bus.enable_torque(["gripper", "wrist_roll"])
    assert emu.motors[6].torque_enabled and emu.motors[5].torque_enabled
    assert not emu.motors[1].torque_enabled
    bus.enable_torque()
    for m in emu.motors.values():
        assert m.read_register("Torque_Enable") == 1
        if feetech:
            assert m.read_register("Lock") == 1  # LeRobot: torque on locks the EEPROM
    bus.disable_torque()
    for m in emu.motors.values():
        assert m.read_register("Torque_Enable") == 0
        if feetech:
            assert m.read_register("Lock") == 0


def test_calibration_registers_round_trip(rig) -> None:
    emu, bus = rig
    calib = {
        n: MotorCalibration(
            id=i + 1, drive_mode=0, homing_offset=10 * i - 20, range_min=500 + i, range_max=3500 - i
        )
        for i, n in enumerate(NAMES)
    }
    bus.write_calibration(calib)
    assert bus.read_calibration() == calib
    assert emu.motors[3].read_register("Min_Position_Limit") == 502


# ------------------------------------------------------------------------- faults
def test_one_percent_corruption_is_absorbed_by_retries(rig) -> None:
    emu, bus = rig
    bus.num_retry = 5  # corruption needs ~1; the rest absorbs a loaded machine's stalls
    emu.corrupt_rate = 0.01
    for k in range(500):
        expected = {}
        if k % 10 == 0:
            expected = set_positions(emu, 900 + k)
        values = bus.sync_read("Present_Position")
        if expected:
            assert values == expected, k
        bus.sync_write("Goal_Position", values)
    assert emu.counters["corrupted"] > 0
    assert bus.stats.retries >= 1
    assert bus.stats.errors == 0
    assert bus.stats.transactions >= 1000


def _stale_run(emu: EmulatedServoBus, bus: MotorBus, cycles: int) -> tuple[int, int, int]:
    ok = stale = failed = 0
    for k in range(cycles):
        expected = set_positions(emu, 200 + 9 * k)
        try:
            values = bus.sync_read("Present_Position")
        except BusError as e:
            failed += 1
            assert e.motor_id in range(1, 7) and e.register == "Present_Position"
            continue
        ok += 1
        stale += values != expected
    return ok, stale, failed


def test_twenty_percent_corruption_never_gives_stale_positions(rig) -> None:
    emu, bus = rig
    emu.corrupt_rate = 0.2
    ok, stale, failed = _stale_run(emu, bus, 120)
    assert stale == 0
    assert ok >= 30  # 1 - (1 - 0.8**6)**3 of the cycles get through: ~59 %
    assert failed == bus.stats.errors > 0
    assert sum(bus.stats.errors_by_motor.values()) == failed


def test_feetech_sdk_alone_goes_stale_under_corruption(tmp_path: Path) -> None:
    """Control for the test above: without the input reset after a failed transaction the
    Feetech SDK hands out queued replies from earlier reads (why `_recover` exists)."""
    with make_emulator("feetech", SO101, tmp_path) as emu:
        bus = FeetechBus(emu.port, motors_for(SO101))
        bus.connect()
        try:
            bus._recover = lambda motor, register: None  # type: ignore[method-assign]
            bus._clear_input = False
            emu.corrupt_rate = 0.2
            _, stale, _ = _stale_run(emu, bus, 60)
            assert stale > 0
        finally:
            bus.disconnect()


def test_dropped_replies_raise_bus_error_naming_the_motor(rig) -> None:
    emu, bus = rig
    emu.drop_rate = 1.0
    t0 = time.monotonic()
    with pytest.raises(BusError) as info:
        bus.read("Present_Position", "shoulder_lift")
    assert time.monotonic() - t0 < 1.0
    assert str(info.value) == (
        f"port {emu.port}, motor 2 (shoulder_lift), Present_Position: "
        "no status packet after 3 tries"
    )
    assert not isinstance(info.value, BusDisconnected)
    assert bus.stats.retries == 2 and bus.stats.errors == 1
    assert bus.stats.errors_by_motor == {"shoulder_lift": 1}
    assert bus.stats.last_error == str(info.value)
    copy = pickle.loads(pickle.dumps(info.value))  # crosses process boundaries intact
    assert (type(copy), str(copy), copy.port, copy.motor_id, copy.register) == (
        BusError,
        str(info.value),
        emu.port,
        2,
        "Present_Position",
    )
    with pytest.raises(BusError, match=r"motor 1 .*Torque_Enable: no status packet"):
        bus.enable_torque()

    # one silent servo in a sync read: the error names it
    emu.drop_rate = 0.0
    emu.motors[3].online = False
    with pytest.raises(BusError) as info:
        bus.sync_read("Present_Position")
    assert "motor 3 (elbow_flex), Present_Position: sync read: no status packet" in str(info.value)
    assert info.value.motor_id == 3
    emu.motors[3].online = True
    assert set(bus.sync_read("Present_Position")) == set(NAMES)  # the bus recovers


def test_disable_torque_tries_every_motor(rig) -> None:
    emu, bus = rig
    bus.enable_torque()
    emu.motors[2].online = False
    with pytest.raises(BusError, match=r"motor 2 \(shoulder_lift\)"):
        bus.disable_torque(num_retry=0)
    others = [m for i, m in emu.motors.items() if i != 2]
    assert not any(m.torque_enabled for m in others)


def test_unplug_raises_bus_disconnected_and_replug_reconnects(rig) -> None:
    emu, bus = rig
    emu.unplug()
    t0 = time.monotonic()
    with pytest.raises(BusDisconnected) as info:
        bus.sync_read("Present_Position")
    assert time.monotonic() - t0 < 0.5  # no retry storm
    assert str(info.value).startswith(f"port {emu.port}")
    assert "port disconnected" in str(info.value)
    assert bus.stats.disconnects == 1 and bus.stats.errors == 0
    assert bus.stats.retries <= 1  # at most one attempt before the OS reports the loss
    assert not bus.is_connected
    with pytest.raises(BusDisconnected, match="not connected"):
        bus.write("Goal_Position", "gripper", 100)
    with pytest.raises(BusDisconnected):
        bus.reconnect()  # still unplugged
    emu.replug()
    bus.reconnect()
    expected = set_positions(emu, 1500)
    assert bus.sync_read("Present_Position") == expected
    # the other paths detect the unplug too
    for action in (
        lambda: bus.sync_write("Goal_Position", dict.fromkeys(NAMES, 2000)),
        lambda: bus.write("Goal_Position", "gripper", 2000),
        lambda: bus.read("Present_Position", "gripper"),
    ):
        emu.unplug()
        with pytest.raises(BusDisconnected):
            action()
        emu.replug()
        bus.reconnect()
    assert bus.stats.disconnects == 4


def test_hardware_alert_keeps_data_flowing(rig) -> None:
    emu, bus = rig
    emu.motors[5].set_hardware_error(0x04)  # overheating
    expected = set_positions(emu, 800)
    assert bus.read("Present_Position", "wrist_roll") == expected["wrist_roll"]
    assert bus.stats.alerts.get("wrist_roll", 0) >= 1
    assert bus.stats.errors == 0


def test_dynamixel_instruction_error_is_not_retried(tmp_path: Path) -> None:
    with make_emulator("dynamixel", KOCH_FOLLOWER, tmp_path) as emu:
        bus = DynamixelBus(emu.port, motors_for(KOCH_FOLLOWER))
        bus.connect()
        try:
            bus.enable_torque(["gripper"])
            with pytest.raises(BusError, match=r"motor 6 \(gripper\), Operating_Mode: .*access"):
                bus.write("Operating_Mode", "gripper", 4)  # EEPROM with torque on
            assert bus.stats.retries == 0
        finally:
            bus.disconnect()


# ------------------------------------------------------------------------- calibration files
# A LeRobot 0.4.4 file as draccus writes it: json.dump(indent=4), no newline at the end.
SO101_FILE = """{
    "shoulder_pan": {
        "id": 1,
        "drive_mode": 0,
        "homing_offset": -1470,
        "range_min": 758,
        "range_max": 3292
    },
    "shoulder_lift": {
        "id": 2,
        "drive_mode": 0,
        "homing_offset": 157,
        "range_min": 612,
        "range_max": 3401
    },
    "elbow_flex": {
        "id": 3,
        "drive_mode": 0,
        "homing_offset": 1105,
        "range_min": 882,
        "range_max": 3120
    },
    "wrist_flex": {
        "id": 4,
        "drive_mode": 0,
        "homing_offset": -1291,
        "range_min": 867,
        "range_max": 3162
    },
    "wrist_roll": {
        "id": 5,
        "drive_mode": 0,
        "homing_offset": 1,
        "range_min": 0,
        "range_max": 4095
    },
    "gripper": {
        "id": 6,
        "drive_mode": 0,
        "homing_offset": 1388,
        "range_min": 2032,
        "range_max": 3476
    }
}"""


def test_lerobot_file_loads_and_saves_back_byte_identical(tmp_path: Path) -> None:
    src = tmp_path / "in" / "my_arm.json"
    src.parent.mkdir()
    src.write_bytes(SO101_FILE.encode())
    calib = load_calibration(src)
    assert list(calib) == NAMES
    assert calib["gripper"] == MotorCalibration(6, 0, 1388, 2032, 3476)
    dst = tmp_path / "out" / "deep" / "my_arm.json"
    save_calibration(dst, calib)
    assert dst.read_bytes() == src.read_bytes()
    assert dumps_calibration(calib) == json.dumps(json.loads(SO101_FILE), indent=4)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda d: d["elbow_flex"].pop("range_max"),
            "motor 'elbow_flex': missing field 'range_max'",
        ),
        (
            lambda d: d["gripper"].__setitem__("homing_offset", 1.5),
            "motor 'gripper', field 'homing_offset': 1.5 is not an integer",
        ),
        (
            lambda d: d["gripper"].__setitem__("id", "6"),
            "motor 'gripper', field 'id': '6' is not an integer",
        ),
        (
            lambda d: d["wrist_roll"].__setitem__("drive_mode", True),
            "motor 'wrist_roll', field 'drive_mode': True is not an integer",
        ),
        (
            lambda d: d["shoulder_pan"].__setitem__("offset", 3),
            "motor 'shoulder_pan': unknown field 'offset'",
        ),
        (lambda d: d.__setitem__("gripper", [1, 2]), "motor 'gripper': expected an object"),
        (
            lambda d: d["wrist_flex"].__setitem__("range_min", 4000),
            "motor 'wrist_flex', field 'range_min': 4000 is above range_max 3162",
        ),
        (lambda d: d["gripper"].__setitem__("id", 5), "share field 'id' = 5"),
    ],
)
def test_bad_calibration_files_name_file_motor_and_field(
    tmp_path: Path, edit, expected: str
) -> None:
    data = json.loads(SO101_FILE)
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data, indent=4))
    with pytest.raises(CalibrationError) as info:
        load_calibration(path)
    assert str(info.value).startswith(f"calibration file {path}")
    assert expected in str(info.value)


def test_unparsable_calibration_files(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"gripper": {"id": 6,')
    with pytest.raises(
        CalibrationError, match=re.escape(f"calibration file {path}: not valid JSON")
    ):
        load_calibration(path)
    path.write_text("[1, 2]")
    with pytest.raises(CalibrationError, match="expected a JSON object"):
        load_calibration(path)
    with pytest.raises(FileNotFoundError, match=r"nothere\.json"):
        load_calibration(tmp_path / "nothere.json")


def test_calibration_path_follows_lerobot_env_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("HF_LEROBOT_CALIBRATION", "HF_LEROBOT_HOME", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    home = tmp_path / "home"
    assert calibration_path("robots", "so_follower", "arm1") == (
        home / ".cache/huggingface/lerobot/calibration/robots/so_follower/arm1.json"
    )
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert calibration_path("teleoperators", "so_leader", "l") == (
        tmp_path / "xdg/huggingface/lerobot/calibration/teleoperators/so_leader/l.json"
    )
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert calibration_path("robots", "koch_follower", "k") == (
        tmp_path / "hf/lerobot/calibration/robots/koch_follower/k.json"
    )
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lr"))
    assert calibration_path("robots", "so_follower", "a") == (
        tmp_path / "lr/calibration/robots/so_follower/a.json"
    )
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", "~/calib")
    assert (
        calibration_path("robots", "so_follower", "a") == home / "calib/robots/so_follower/a.json"
    )
    # calibration_dir replaces <root>/<kind>/<name>, as LeRobot's calibration_dir
    assert calibration_path("robots", "so_follower", "a", str(tmp_path / "mine")) == (
        tmp_path / "mine/a.json"
    )
    with pytest.raises(ValueError, match="robots"):
        calibration_path("robot", "so_follower", "a")


def test_range_recorder() -> None:
    rec = RangeRecorder(NAMES)
    rec.update({n: 2000 for n in NAMES})
    with pytest.raises(CalibrationError) as info:
        rec.ranges()
    msg = str(info.value)
    assert "shoulder_pan (stayed at 2000)" in msg and "gripper" in msg and "wrist_roll" not in msg
    for k, v in enumerate((1500, 2600, 2100)):
        rec.update({n: v + k for n in NAMES} | {"wrist_roll": 7})
    rec.update({"gripper": 3000, "other": 5})  # partial reading, unknown name ignored
    ranges = rec.ranges()
    assert ranges["shoulder_pan"] == (1500, 2601)
    assert ranges["gripper"] == (1500, 3000)
    assert ranges["wrist_roll"] == (0, 4095)  # full turn: not recorded
    koch = RangeRecorder(NAMES, full_turn=("shoulder_pan", "wrist_roll"))
    koch.update({n: 100 for n in NAMES})
    with pytest.raises(CalibrationError, match="shoulder_lift") as info:
        koch.ranges()
    assert "shoulder_pan" not in str(info.value)
    never = RangeRecorder(["gripper"])
    with pytest.raises(CalibrationError, match=r"gripper \(never read\)"):
        never.ranges()


def test_homing_offsets() -> None:
    assert homing_offset_for(3000, "feetech") == 953  # Present = actual - offset -> 2047
    assert homing_offset_for(3000, "dynamixel") == -953  # Present = actual + offset -> 2047
    assert homing_offset_for(2047, "feetech") == 0
    assert homing_offset_for(600, "feetech", resolution=1024) == 89
    with pytest.raises(ValueError):
        homing_offset_for(1, "servo")


# ------------------------------------------------------------------------- units
GRIPPER = MotorCalibration(6, 0, 1388, 2032, 3476)  # mid 2754
PAN = MotorCalibration(1, 0, -1470, 758, 3293)  # odd sum: mid 2025.5


def test_units_known_values() -> None:
    assert ticks_to_rad(2754, GRIPPER) == 0.0
    assert ticks_to_rad(2754 + 1024, GRIPPER) == 1024 * 2 * math.pi / 4095
    assert ticks_to_rad(2754 + 1024, GRIPPER) == pytest.approx(math.pi / 2 * 4096 / 4095, 1e-15)
    assert ticks_to_rad(2754 - 4095, GRIPPER) == pytest.approx(-2 * math.pi, 1e-15)
    assert ticks_to_rad(2025.5, PAN) == 0.0
    assert rad_to_ticks(0.0, GRIPPER) == 2754
    assert rad_to_ticks(0.0, PAN) == 2025  # trunc(2025.5)
    assert rad_to_ticks(math.pi / 2, GRIPPER) == int(1023.75 + 2754)
    # truncation is toward zero, like LeRobot's int()
    tiny = MotorCalibration(1, 0, 0, 0, 1)  # mid 0.5
    assert rad_to_ticks(-1 * 2 * math.pi / 4095, tiny) == 0  # -0.5 -> 0
    assert rad_to_ticks(-2 * 2 * math.pi / 4095, tiny) == -1  # -1.5 -> -1
    # no clamping: beyond the range maps straight through
    assert rad_to_ticks(ticks_to_rad(5000, GRIPPER), GRIPPER) == 5000


def test_units_equal_lerobot_degrees() -> None:
    for calib in (GRIPPER, PAN):
        mid = (calib.range_min + calib.range_max) / 2
        for raw in range(calib.range_min, calib.range_max + 1, 7):
            degrees = (raw - mid) * 360 / 4095  # LeRobot MotorNormMode.DEGREES
            assert ticks_to_rad(raw, calib) == pytest.approx(math.radians(degrees), abs=1e-12)
            # LeRobot's inverse on the same angle gives the same ticks
            assert rad_to_ticks(math.radians(degrees), calib) == int(degrees * 4095 / 360 + mid)


def test_units_round_trip_scalar_and_vectorised() -> None:
    calibs = [GRIPPER, PAN, MotorCalibration(3, 0, 0, 0, 4094), MotorCalibration(4, 0, 0, 1, 4094)]
    for calib in calibs:
        for raw in range(-300, 4400):
            assert rad_to_ticks(ticks_to_rad(raw, calib), calib) == raw, (calib, raw)
    raw = np.array([[10, 2000, 4095, -5], [758, 3293, 2025, 2026]], dtype=np.int64)
    rad = ticks_to_rad_array(raw, calibs)
    assert rad.shape == raw.shape
    for r in range(2):
        for j, calib in enumerate(calibs):
            assert rad[r, j] == ticks_to_rad(int(raw[r, j]), calib)
    back = rad_to_ticks_array(rad, calibs)
    assert back.dtype == np.int64
    np.testing.assert_array_equal(back, raw)
    for x in (-3.0, -0.1, 0.0, 0.37, 2.9):
        vec = rad_to_ticks_array(np.full(4, x), calibs)
        assert list(vec) == [rad_to_ticks(x, c) for c in calibs]


# ------------------------------------------------------------------------- tables
def test_register_encodings() -> None:
    assert tables.encode("sts3215", "Homing_Offset", -5) == (1 << 11) | 5
    assert tables.decode("sts3215", "Homing_Offset", (1 << 11) | 5) == -5
    assert tables.encode("sts3215", "Present_Position", -1) == 0x8001
    assert tables.encode("sts3215", "Present_Load", -3) == (1 << 10) | 3
    assert tables.encode("sts3215", "Goal_Position", 4095) == 4095
    with pytest.raises(ValueError, match="Homing_Offset"):
        tables.encode("sts3215", "Homing_Offset", 2048)
    assert tables.encode("xl430-w250", "Present_Position", -1) == 0xFFFFFFFF
    assert tables.decode("xl430-w250", "Present_Position", 0xFFFFFFFF) == -1
    assert tables.decode("xl330-m288", "Present_Current", 0xFFFE) == -2
    assert tables.decode("xl330-m288", "Present_Temperature", 0xFF) == 255
    with pytest.raises(ValueError):
        tables.encode("xl330-m288", "Torque_Enable", -1)
    assert tables.encode("scs0009", "Goal_Position", 1023) == 1023  # SCS: nothing signed
    assert tables.to_bytes(0x1234, 2) == [0x34, 0x12]
    assert tables.to_bytes(0x1234, 2, big_endian=True) == [0x12, 0x34]
    assert tables.from_bytes([0x12, 0x34], 2, big_endian=True) == 0x1234
    assert tables.from_bytes(tables.to_bytes(0xA1B2C3D4, 4), 4) == 0xA1B2C3D4


def test_model_tables() -> None:
    sts, scs, xl430 = (tables.model_info(m) for m in ("sts3215", "scs0009", "xl430-w250"))
    assert (sts.model_number, sts.resolution, sts.protocol_version) == (777, 4096, 0)
    assert (scs.model_number, scs.resolution, scs.big_endian, scs.sync_read) == (
        1284,
        1024,
        True,
        False,
    )
    assert sts.address("Lock") == (55, 1) and scs.address("Lock") == (48, 1)
    assert sts.address("Present_Position") == (56, 2)
    assert xl430.address("Present_Position") == (132, 4)
    assert "Goal_Current" not in xl430.table  # XL430 has no current control
    assert tables.model_info("xl330-m288").address("Goal_Current") == (102, 2)
    assert tables.model_info("xl330-m077").model_number == 1190
    assert tables.baud_code("sts3215", 1_000_000) == 0
    assert tables.baud_code("xl430-w250", 1_000_000) == 3
    assert tables.model_name("dynamixel", 1060) == "xl430-w250"
    with pytest.raises(ValueError, match="does not support"):
        tables.baud_code("xl430-w250", 500_000)
