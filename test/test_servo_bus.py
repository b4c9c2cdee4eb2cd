"""The emulated servo bus, driven by the real SDKs (scservo_sdk, dynamixel_sdk) through pyserial.

No ROS needed. Every check reads values back over the wire; timings are loose because the
machine may be loaded (the SDKs busy-poll a core while they wait for a status packet).
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dynamixel_sdk as dxl
import pytest
import scservo_sdk as scs
import serial

from lerobot_ros.testing.servo_bus import (
    DXL_ERR_ACCESS,
    DXL_ERR_ALERT,
    DXL_ERR_DATA_LIMIT,
    DXL_ERR_DATA_RANGE,
    FT_ERR_OVERHEAT,
    MODELS,
    ROBOTS,
    EmulatedMotor,
    EmulatedServoBus,
    decode_sign_magnitude,
    dxl_crc16,
    encode_sign_magnitude,
)

IDS = list(range(1, 7))
PORT_ERRORS = (OSError, termios.error, serial.SerialException)


def retry(call: Callable[[], Any], ok: Callable[[Any], bool], tries: int = 4) -> Any:
    """Repeat an SDK call while it fails (a loaded machine can starve the emulator thread past
    the SDK's ~34 ms timeout now and then; drivers retry the same way). Before a retry, late
    replies are flushed: scservo_sdk would take them for the answer to the next instruction."""
    result = call()
    for _ in range(tries - 1):
        if ok(result):
            break
        time.sleep(0.005)
        for port in _open_ports:
            if port.is_open:
                port.ser.reset_input_buffer()
        result = call()
    return result


def ping(packet: Any, port: Any, motor_id: int) -> tuple[int, int, int]:
    return retry(lambda: packet.ping(port, motor_id), lambda r: r[1] == 0)


def read(packet: Any, port: Any, motor_id: int, address: int, size: int) -> int:
    fn = {1: packet.read1ByteTxRx, 2: packet.read2ByteTxRx, 4: packet.read4ByteTxRx}[size]
    value, comm, error = retry(lambda: fn(port, motor_id, address), lambda r: r[1] == 0)
    assert comm == 0, packet.getTxRxResult(comm)
    assert error == 0, packet.getRxPacketError(error)
    return value


def write(packet: Any, port: Any, motor_id: int, address: int, size: int, value: int) -> int:
    """Write; returns the status error byte (the communication itself must succeed)."""
    fn = {1: packet.write1ByteTxRx, 2: packet.write2ByteTxRx, 4: packet.write4ByteTxRx}[size]
    comm, error = retry(lambda: fn(port, motor_id, address, value), lambda r: r[0] == 0)
    assert comm == 0, packet.getTxRxResult(comm)
    return error


def sync_read(group: Any, tries: int = 4) -> int:
    return retry(group.txRxPacket, lambda r: r == 0, tries)


_open_ports: list[Any] = []


def open_port(module: Any, path: str, baudrate: int = 1_000_000) -> Any:
    port = module.PortHandler(path)
    assert port.openPort()
    assert port.setBaudRate(baudrate)
    _open_ports[:] = [p for p in _open_ports if p.is_open] + [port]
    return port


def sync_reader(module: Any, port: Any, packet: Any, address: int, size: int) -> Any:
    group = module.GroupSyncRead(port, packet, address, size)
    for motor_id in IDS:
        assert group.addParam(motor_id)
    return group


def sync_write(module: Any, port: Any, packet: Any, address: int, values: dict[int, bytes]) -> int:
    size = len(next(iter(values.values())))
    group = module.GroupSyncWrite(port, packet, address, size)
    for motor_id, data in values.items():
        assert group.addParam(motor_id, list(data))
    return group.txPacket()


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def so101(tmp_path: Path) -> Iterator[EmulatedServoBus]:
    with EmulatedServoBus("feetech", ROBOTS["so101"][1], link=tmp_path / "ttySO101") as bus:
        yield bus


@pytest.fixture
def koch(tmp_path: Path) -> Iterator[EmulatedServoBus]:
    with EmulatedServoBus("dynamixel", ROBOTS["koch_follower"][1], link=tmp_path / "ttyK") as bus:
        yield bus


@pytest.fixture
def ft(so101: EmulatedServoBus) -> Iterator[tuple[Any, Any]]:
    port = open_port(scs, so101.port)
    yield port, scs.PacketHandler(0)
    port.closePort()


@pytest.fixture
def dx(koch: EmulatedServoBus) -> Iterator[tuple[Any, Any]]:
    port = open_port(dxl, koch.port)
    yield port, dxl.PacketHandler(2.0)
    port.closePort()


# ---------------------------------------------------------------------------------- Feetech


def test_feetech_ping_models_and_absent_id(so101: EmulatedServoBus, ft: tuple[Any, Any]) -> None:
    port, packet = ft
    assert os.path.islink(so101.port) and os.readlink(so101.port) == so101.device
    for motor_id in IDS:
        assert ping(packet, port, motor_id) == (777, 0, 0)
    start = time.monotonic()
    model, comm, _ = packet.ping(port, 9)
    elapsed = time.monotonic() - start
    assert (model, comm) == (0, scs.COMM_RX_TIMEOUT)
    assert 0.030 <= elapsed < 3.0  # the SDK's own timeout: 2 x 16 ms latency timer + 2 ms
    assert so101.counters["ignored"] >= 1


def test_feetech_wire_bytes(so101: EmulatedServoBus) -> None:
    """Exact status packets, written and read with pyserial alone."""
    with serial.Serial(so101.port, 1_000_000, timeout=0.5) as ser:
        ser.write(bytes.fromhex("ffff010201fb"))  # PING id 1
        assert ser.read(6) == bytes.fromhex("ffff010200fc")
        ser.write(bytes.fromhex("ffff0104020302f3"))  # READ id 1, Model_Number (3, 2)
        assert ser.read(8) == bytes.fromhex("ffff0104000903ee")  # 777 = 0x0309
        ser.timeout = 0.1
        ser.write(bytes.fromhex("ffff010402030200"))  # bad checksum: no answer
        assert ser.read(1) == b""
    assert so101.counters["bad_checksum_in"] == 1


def test_feetech_registers_and_encodings(so101: EmulatedServoBus, ft: tuple[Any, Any]) -> None:
    port, packet = ft
    motor = so101.motors[1]
    assert read(packet, port, 1, 3, 2) == 777  # Model_Number
    assert read(packet, port, 1, 0, 1) == 3  # firmware major
    assert read(packet, port, 1, 11, 2) == 4095  # Max_Position_Limit
    assert read(packet, port, 1, 9, 2) == 0  # Min_Position_Limit
    assert read(packet, port, 1, 16, 2) == 1000  # Max_Torque_Limit
    assert read(packet, port, 1, 21, 1) == 32  # P_Coefficient
    assert read(packet, port, 1, 22, 1) == 32  # D_Coefficient
    assert read(packet, port, 1, 55, 1) == 0  # Lock
    assert read(packet, port, 1, 62, 1) == 120  # Present_Voltage, 0.1 V
    assert read(packet, port, 1, 63, 1) == 30  # Present_Temperature

    # Homing_Offset: sign-magnitude, sign bit 11.
    assert write(packet, port, 1, 31, 2, encode_sign_magnitude(-300, 11)) == 0
    assert motor.read_register("Homing_Offset") == -300
    assert bytes(motor.registers[31:33]) == (300 | 0x800).to_bytes(2, "little")
    assert read(packet, port, 1, 31, 2) == 0x800 | 300
    # Goal_Velocity: sign bit 15.
    assert write(packet, port, 1, 46, 2, encode_sign_magnitude(-100, 15)) == 0
    assert motor.read_register("Goal_Velocity") == -100
    assert decode_sign_magnitude(read(packet, port, 1, 46, 2), 15) == -100
    # 1-byte write, 4-byte read spanning Present_Position and Present_Velocity.
    assert write(packet, port, 1, 21, 1, 16) == 0
    assert motor.read_register("P_Coefficient") == 16
    both = read(packet, port, 1, 56, 4)
    assert both & 0xFFFF == motor.read_register("Present_Position")
    # Read-only bytes are not written.
    assert write(packet, port, 1, 56, 2, 5) == 0
    assert read(packet, port, 1, 56, 2) == motor.read_register("Present_Position") != 5
    with pytest.raises(ValueError):
        motor.write_register("Homing_Offset", -3000)  # beyond 11 bits of magnitude


def test_feetech_sync_read_write_motion_and_limits(
    so101: EmulatedServoBus, ft: tuple[Any, Any]
) -> None:
    port, packet = ft
    reader = sync_reader(scs, port, packet, 56, 2)
    assert sync_read(reader) == scs.COMM_SUCCESS
    start = {i: reader.getData(i, 56, 2) for i in IDS}
    assert start == {i: so101.motors[i].read_register("Present_Position") for i in IDS}
    assert all(abs(p - 2048) <= 32 for p in start.values())
    assert len(set(start.values())) > 1  # seeded, not all alike

    goals = {i: start[i] + (600 if i != 6 else -400) for i in IDS}
    assert sync_write(scs, port, packet, 42, {i: goals[i].to_bytes(2, "little") for i in IDS}) == 0
    time.sleep(0.1)  # torque off: nothing moves
    assert sync_read(reader) == 0
    assert {i: reader.getData(i, 56, 2) for i in IDS} == start

    # Motor 1 limited to 1000 ticks/s by Goal_Velocity; the others run at ~3000 ticks/s.
    assert write(packet, port, 1, 46, 2, 1000) == 0
    t0 = time.monotonic()
    assert sync_write(scs, port, packet, 40, dict.fromkeys(IDS, b"\x01")) == 0
    between, moving = [], []
    while time.monotonic() - t0 < 5.0:
        if sync_read(reader) != 0:
            continue
        now = {i: reader.getData(i, 56, 2) for i in IDS}
        between.append(start[1] < now[1] < goals[1])
        moving.append(so101.motors[1].read_register("Moving"))
        if now == goals:
            break
    elapsed = time.monotonic() - t0
    assert now == goals
    assert any(between) and 1 in moving
    assert elapsed >= 0.5  # 600 ticks at 1000 ticks/s
    time.sleep(0.05)
    assert read(packet, port, 1, 58, 2) == 0  # Present_Velocity
    assert read(packet, port, 1, 66, 1) == 0  # Moving
    assert sync_read(reader) == 0 and reader.getData(1, 56, 2) == goals[1]  # stays there

    # Max_Position_Limit clamps the goal in position mode.
    assert write(packet, port, 1, 11, 2, goals[1] + 100) == 0
    assert write(packet, port, 1, 42, 2, goals[1] + 600) == 0
    assert wait_for(lambda: so101.motors[1].read_register("Present_Position") == goals[1] + 100)
    time.sleep(0.1)
    assert read(packet, port, 1, 56, 2) == goals[1] + 100

    # Torque off: a hand moves the joint, the servo reports it and does not fight.
    assert write(packet, port, 2, 40, 1, 0) == 0
    so101.motors[2].set_actual_position(1000)
    time.sleep(0.02)
    assert read(packet, port, 2, 56, 2) == 1000
    time.sleep(0.1)
    assert read(packet, port, 2, 56, 2) == 1000


def test_feetech_homing_offset(so101: EmulatedServoBus, ft: tuple[Any, Any]) -> None:
    port, packet = ft
    motor = so101.motors[2]
    motor.set_actual_position(2048)
    assert write(packet, port, 2, 31, 2, encode_sign_magnitude(1000, 11)) == 0
    time.sleep(0.02)
    assert read(packet, port, 2, 56, 2) == 1048  # Present = actual - offset
    assert write(packet, port, 2, 31, 2, encode_sign_magnitude(-500, 11)) == 0
    time.sleep(0.02)
    assert read(packet, port, 2, 56, 2) == 2548
    # Goals are in the same frame: goal 1100 with offset -500 puts the shaft at 600.
    assert write(packet, port, 2, 42, 2, 1100) == 0
    assert write(packet, port, 2, 40, 1, 1) == 0
    assert wait_for(lambda: motor.read_register("Present_Position") == 1100)
    # The register rounds, so it reads 1100 a little before the shaft has finished moving.
    assert wait_for(lambda: motor.actual_position == pytest.approx(600))
    # Single-turn readings wrap: actual 1000, offset 2047 -> 3049.
    assert write(packet, port, 2, 40, 1, 0) == 0
    motor.set_actual_position(1000)
    assert write(packet, port, 2, 31, 2, encode_sign_magnitude(2047, 11)) == 0
    time.sleep(0.02)
    assert read(packet, port, 2, 56, 2) == 3049


def test_scs0009_protocol_1_big_endian_without_sync_read() -> None:
    with EmulatedServoBus("feetech", {1: "scs0009", 2: "scs0009"}) as bus:
        port = open_port(scs, bus.port)
        try:
            packet = scs.PacketHandler(1)  # big-endian words (sets the SDK's global byte order)
            assert ping(packet, port, 1) == (1284, 0, 0)
            assert read(packet, port, 1, 11, 2) == 1023  # Max_Position_Limit
            assert bytes(bus.motors[1].registers[11:13]) == b"\x03\xff"
            assert write(packet, port, 1, 42, 2, 700) == 0
            assert bus.motors[1].read_register("Goal_Position") == 700
            assert bytes(bus.motors[1].registers[42:44]) == b"\x02\xbc"
            reader = scs.GroupSyncRead(port, packet, 56, 2)
            reader.addParam(1)
            assert reader.txRxPacket() == scs.COMM_RX_TIMEOUT  # SCS has no Sync Read
        finally:
            scs.PacketHandler(0)
            port.closePort()


def test_feetech_baud_rate_and_id_changes(so101: EmulatedServoBus, ft: tuple[Any, Any]) -> None:
    port, packet = ft
    # The host at another baud rate: nobody answers.
    assert port.setBaudRate(500_000)
    assert packet.ping(port, 1)[1] == scs.COMM_RX_TIMEOUT
    assert port.setBaudRate(1_000_000)
    assert ping(packet, port, 1)[0] == 777
    # A servo moved to 500 kbaud (code 1) answers only there. (No retry: a late answer means
    # the write was done.)
    packet.write1ByteTxRx(port, 1, 6, 1)
    assert wait_for(lambda: so101.motors[1].baudrate == 500_000)
    time.sleep(0.05)
    port.ser.reset_input_buffer()
    assert packet.ping(port, 1)[1] == scs.COMM_RX_TIMEOUT
    assert ping(packet, port, 2)[0] == 777
    assert port.setBaudRate(500_000)
    assert ping(packet, port, 1)[0] == 777
    assert port.setBaudRate(1_000_000)
    # ID change (motor setup): the servo answers at its new ID.
    sixth = so101.motors[6]
    packet.write1ByteTxRx(port, 6, 5, 7)
    assert wait_for(lambda: sixth.id == 7)
    time.sleep(0.05)
    port.ser.reset_input_buffer()
    assert ping(packet, port, 7)[0] == 777
    assert packet.ping(port, 6)[1] == scs.COMM_RX_TIMEOUT
    assert sorted(so101.motors) == [1, 2, 3, 4, 5, 7]


def test_feetech_hardware_error(so101: EmulatedServoBus, ft: tuple[Any, Any]) -> None:
    port, packet = ft
    assert write(packet, port, 3, 40, 1, 1) == 0
    so101.motors[3].set_hardware_error(FT_ERR_OVERHEAT)
    value, comm, error = packet.read1ByteTxRx(port, 3, 65)  # Status
    assert (value, comm, error) == (FT_ERR_OVERHEAT, 0, FT_ERR_OVERHEAT)
    assert packet.getRxPacketError(error) == "[RxPacketError] Overheat error!"
    assert not so101.motors[3].torque_enabled
    so101.motors[3].set_hardware_error(0)
    assert packet.read1ByteTxRx(port, 3, 65)[2] == 0


# -------------------------------------------------------------------------------- Dynamixel


def test_dynamixel_crc_matches_sdk_and_robotis_example() -> None:
    # ROBOTIS forum: torque on for ID 1 is FF FF FD 00 01 06 00 03 40 00 01 DB 66.
    assert dxl_crc16(bytes.fromhex("fffffd0001060003400001")) == 0x66DB
    rng = random.Random(1)
    handler = dxl.PacketHandler(2.0)
    for _ in range(50):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        assert dxl_crc16(data) == handler.updateCRC(0, list(data), len(data))


def test_dynamixel_ping_registers_and_errors(koch: EmulatedServoBus, dx: tuple[Any, Any]) -> None:
    port, packet = dx
    assert ping(packet, port, 1)[:2] == (1060, 0)
    assert ping(packet, port, 3)[:2] == (1200, 0)
    start = time.monotonic()
    assert packet.ping(port, 9)[1] == dxl.COMM_RX_TIMEOUT
    assert 0.030 <= time.monotonic() - start < 3.0
    assert read(packet, port, 1, 11, 1) == 3  # Operating_Mode: position
    assert read(packet, port, 1, 48, 4) == 4095  # Max_Position_Limit
    assert read(packet, port, 1, 52, 4) == 0  # Min_Position_Limit
    assert read(packet, port, 1, 144, 2) == 120  # Present_Input_Voltage: XL430 on 12 V
    assert read(packet, port, 3, 144, 2) == 50  # XL330 on 5 V
    assert read(packet, port, 3, 146, 1) == 30  # Present_Temperature
    assert read(packet, port, 1, 9, 1) == 250  # factory Return_Delay_Time
    assert write(packet, port, 1, 9, 1, 0) == 0

    # Homing_Offset: 4-byte two's complement; Present = actual + offset.
    motor = koch.motors[2]
    motor.set_actual_position(2048)
    assert write(packet, port, 2, 20, 4, -1000 & 0xFFFFFFFF) == 0
    assert motor.read_register("Homing_Offset") == -1000
    time.sleep(0.02)
    assert read(packet, port, 2, 132, 4) == 1048
    assert write(packet, port, 2, 20, 4, -3000 & 0xFFFFFFFF) == 0
    time.sleep(0.02)
    assert read(packet, port, 2, 132, 4) == -952 & 0xFFFFFFFF  # negative, two's complement

    # EEPROM needs torque off; goals outside the limits are refused in mode 3 only.
    assert write(packet, port, 3, 64, 1, 1) == 0
    assert write(packet, port, 3, 11, 1, 4) == DXL_ERR_ACCESS
    assert packet.getRxPacketError(DXL_ERR_ACCESS).startswith("[RxPacketError] Writing or Reading")
    assert read(packet, port, 3, 11, 1) == 3
    assert write(packet, port, 3, 116, 4, 5000) == DXL_ERR_DATA_LIMIT
    assert write(packet, port, 3, 64, 1, 0) == 0
    assert write(packet, port, 3, 11, 1, 4) == 0  # extended position: no limits
    assert write(packet, port, 3, 116, 4, 5000) == 0
    assert koch.motors[3].read_register("Goal_Position") == 5000
    assert write(packet, port, 1, 11, 1, 0) == DXL_ERR_DATA_RANGE  # no current mode on XL430
    assert write(packet, port, 1, 132, 4, 7) == DXL_ERR_ACCESS  # read-only


def test_dynamixel_byte_stuffing(koch: EmulatedServoBus, dx: tuple[Any, Any]) -> None:
    """FF FF FD inside the data: the SDK stuffs its instruction, the emulator its reply."""
    port, packet = dx
    value = 0x00FDFFFF  # bytes FF FF FD 00
    assert write(packet, port, 4, 112, 4, value) == 0  # Profile_Velocity
    assert bytes(koch.motors[4].registers[112:116]) == b"\xff\xff\xfd\x00"
    assert read(packet, port, 4, 112, 4) == value
    assert koch.counters["bad_checksum_in"] == 0


def test_dynamixel_sync_motion_drive_mode_and_fast_reads(
    koch: EmulatedServoBus, dx: tuple[Any, Any]
) -> None:
    port, packet = dx
    assert sync_write(dxl, port, packet, 9, dict.fromkeys(IDS, b"\x00")) == 0  # Return_Delay 0
    assert write(packet, port, 3, 10, 1, 1) == 0  # Drive_Mode: reverse
    koch.motors[3].set_actual_position(1000)
    time.sleep(0.02)
    assert read(packet, port, 3, 132, 4) == -1000 & 0xFFFFFFFF  # Present = -actual

    reader = sync_reader(dxl, port, packet, 132, 4)
    assert sync_read(reader) == 0
    start = {i: reader.getData(i, 132, 4) for i in IDS}
    # Torque on in mode 3 brings the reading into one turn: -1000 -> 3096. Goal = present
    # first, or the servo would run to its stale power-on goal.
    start[3] = 3096
    assert sync_write(dxl, port, packet, 116, {i: start[i].to_bytes(4, "little") for i in IDS}) == 0
    assert sync_write(dxl, port, packet, 64, dict.fromkeys(IDS, b"\x01")) == 0
    time.sleep(0.05)
    assert sync_read(reader) == 0
    assert {i: reader.getData(i, 132, 4) for i in IDS} == start
    assert start == {i: koch.motors[i].read_register("Present_Position") for i in IDS}
    actual_before = {i: koch.motors[i].actual_position for i in IDS}

    goals = {i: start[i] + 500 for i in IDS}
    assert sync_write(dxl, port, packet, 116, {i: goals[i].to_bytes(4, "little") for i in IDS}) == 0
    assert wait_for(
        lambda: sync_read(reader) == 0 and all(reader.getData(i, 132, 4) == goals[i] for i in IDS)
    )
    moved = {i: koch.motors[i].actual_position - actual_before[i] for i in IDS}
    assert moved[3] == pytest.approx(-500)  # reversed: the shaft turns the other way
    assert all(moved[i] == pytest.approx(500) for i in IDS if i != 3)

    # Fast Sync Read (one status packet) and Bulk Read give the same values.
    assert retry(reader.fastSyncRead, lambda r: r == 0) == 0
    assert {i: reader.getData(i, 132, 4) for i in IDS} == goals
    bulk = dxl.GroupBulkRead(port, packet)
    assert bulk.addParam(1, 132, 4) and bulk.addParam(5, 146, 1)
    assert retry(bulk.txRxPacket, lambda r: r == 0) == 0
    assert bulk.getData(1, 132, 4) == goals[1]
    assert bulk.getData(5, 146, 1) == 30


def test_dynamixel_hardware_error_and_reboot(koch: EmulatedServoBus, dx: tuple[Any, Any]) -> None:
    port, packet = dx
    koch.motors[2].set_hardware_error(0x20)  # overload
    _, comm, error = ping(packet, port, 2)
    assert comm == 0 and error & DXL_ERR_ALERT
    assert packet.read1ByteTxRx(port, 2, 70)[0] == 0x20  # Hardware_Error_Status
    assert packet.write1ByteTxRx(port, 2, 64, 1)[0] == 0
    assert not koch.motors[2].torque_enabled  # shut down: torque refused
    # The answer to REBOOT leaves before the reboot: it still carries the alert bit.
    assert retry(lambda: packet.reboot(port, 2), lambda r: r[0] == 0) == (0, DXL_ERR_ALERT)
    time.sleep(0.02)
    assert ping(packet, port, 2)[2] == 0
    assert read(packet, port, 2, 70, 1) == 0


# ------------------------------------------------------------------------------ bus faults


@pytest.mark.parametrize("protocol", ["feetech", "dynamixel"])
def test_corrupted_and_dropped_status_packets(protocol: str) -> None:
    robot = "so101" if protocol == "feetech" else "koch_follower"
    module, version, address, size = (
        (scs, 0, 56, 2) if protocol == "feetech" else (dxl, 2.0, 132, 4)
    )
    with EmulatedServoBus(protocol, ROBOTS[robot][1], seed=3) as bus:
        for motor in bus.motors.values():
            motor.write_register("Return_Delay_Time", 0)
        port = open_port(module, bus.port)
        packet = module.PacketHandler(version)
        reader = sync_reader(module, port, packet, address, size)
        try:
            bus.corrupt_rate = 0.2
            results = [reader.txRxPacket() for _ in range(40)]
            assert module.COMM_RX_CORRUPT in results
            assert packet.getTxRxResult(module.COMM_RX_CORRUPT) == (
                "[TxRxResult] Incorrect status packet!"
            )
            assert bus.counters["corrupted"] > 0
            # Stale replies of the failed sync reads are still queued (scservo_sdk keeps them;
            # a short one would even make its ping() raise IndexError): clear them first.
            time.sleep(0.01)
            port.ser.reset_input_buffer()
            corrupt_ping = []
            for _ in range(30):
                port.ser.reset_input_buffer()
                corrupt_ping.append(packet.ping(port, 1)[1])
            assert module.COMM_RX_CORRUPT in corrupt_ping

            bus.corrupt_rate = 0.0
            time.sleep(0.01)
            port.ser.reset_input_buffer()  # scservo_sdk never drops stale replies by itself
            assert sync_read(reader) == 0
            expected = {i: bus.motors[i].read_register("Present_Position") for i in IDS}
            assert {i: reader.getData(i, address, size) for i in IDS} == expected

            bus.drop_rate = 1.0
            assert reader.txRxPacket() == module.COMM_RX_TIMEOUT
            assert packet.getTxRxResult(module.COMM_RX_TIMEOUT) == (
                "[TxRxResult] There is no status packet!"
            )
            bus.drop_rate = 0.3  # one silent servo fails the whole sync read
            assert module.COMM_RX_TIMEOUT in [reader.txRxPacket() for _ in range(6)]
            assert bus.counters["dropped"] >= 6
            bus.drop_rate = 0.0
            port.ser.reset_input_buffer()
            assert sync_read(reader) == 0

            bus.motors[4].online = False  # one servo's cable loose
            assert reader.txRxPacket() == module.COMM_RX_TIMEOUT
            bus.motors[4].online = True
            assert sync_read(reader) == 0
        finally:
            port.closePort()


@pytest.mark.parametrize("protocol", ["feetech", "dynamixel"])
def test_unplug_and_replug(protocol: str, tmp_path: Path) -> None:
    robot = "so101" if protocol == "feetech" else "koch_follower"
    module, version = (scs, 0) if protocol == "feetech" else (dxl, 2.0)
    link = tmp_path / "ttyUSB0"
    with EmulatedServoBus(protocol, ROBOTS[robot][1], link=link) as bus:
        assert bus.port == str(link)
        port = open_port(module, str(link))
        packet = module.PacketHandler(version)
        assert ping(packet, port, 1)[1] == 0
        bus.motors[1].write_register("Return_Delay_Time", 3)
        first_device = bus.device

        bus.unplug()
        assert not os.path.lexists(link)
        assert bus.device is None
        with pytest.raises(PORT_ERRORS):
            packet.ping(port, 1)
        with pytest.raises(PORT_ERRORS):
            port.ser.write(b"\xff")
        port.is_using = False
        port.closePort()
        with pytest.raises(PORT_ERRORS):
            open_port(module, str(link))

        bus.replug()
        assert os.path.islink(link) and os.readlink(link) == bus.device
        assert bus.counters["unplugged"] == 1 and bus.counters["replugged"] == 1
        port = open_port(module, str(link))  # the same path, reopened
        assert ping(packet, port, 1)[1] == 0
        addr = 7 if protocol == "feetech" else 9
        assert read(packet, port, 1, addr, 1) == 3  # state kept across the unplug
        assert first_device is not None
        port.closePort()
    assert not os.path.lexists(link)


def test_motor_step_without_bus() -> None:
    motor = EmulatedMotor(1, "sts3215", position=1000)
    assert motor.read_register("Present_Position") == 1000
    assert motor.read_register("Goal_Position") == 1000  # power-on goal = present
    motor.write_register("Goal_Position", 1300)
    motor.step(0.05)
    assert motor.read_register("Present_Position") == 1000  # torque off
    motor.write_register("Torque_Enable", 1)
    motor.step(0.05)
    assert motor.read_register("Present_Position") == 1150  # 3000 ticks/s
    assert motor.read_register("Present_Velocity") == 3000
    motor.step(1.0)
    assert motor.read_register("Present_Position") == 1300
    assert MODELS["xl330-m077"].model_number == 1190
    dxl_motor = EmulatedMotor(2, "xl430-w250", position=100)
    dxl_motor.write_register("Operating_Mode", 4)
    dxl_motor.write_register("Goal_Position", -200)
    dxl_motor.write_register("Torque_Enable", 1)
    dxl_motor.step(1.0)
    assert dxl_motor.read_register("Present_Position") == -200  # mode 4: no limits
    assert dxl_motor.registers[132:136] == (-200 & 0xFFFFFFFF).to_bytes(4, "little")


def test_sync_cycles_per_second(so101: EmulatedServoBus, ft: tuple[Any, Any]) -> None:
    port, packet = ft
    reader = sync_reader(scs, port, packet, 56, 2)
    writer = scs.GroupSyncWrite(port, packet, 42, 2)
    for motor_id in IDS:
        writer.addParam(motor_id, [0, 8])
    cycles = failures = 0
    start = time.monotonic()
    while time.monotonic() - start < 0.5:
        failures += reader.txRxPacket() != 0
        writer.txPacket()
        cycles += 1
    rate = cycles / (time.monotonic() - start)
    print(f"feetech sync read+write, 6 motors, in-process emulator: {rate:.0f} cycles/s")
    assert rate > 20
    assert failures <= cycles // 4


# ---------------------------------------------------------------------------- command line


def _readline(proc: subprocess.Popen[str], timeout: float = 15.0) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the emulator printed no port"
    return proc.stdout.readline().strip()


@pytest.mark.parametrize(
    ("robot", "module", "version", "model", "sig"),
    [
        ("so101", scs, 0, 777, signal.SIGTERM),
        ("koch_leader", dxl, 2.0, 1190, signal.SIGINT),
    ],
)
def test_cli(robot: str, module: Any, version: float, model: int, sig: int, tmp_path: Path) -> None:
    link = tmp_path / robot
    cmd = [sys.executable, "-m", "lerobot_ros.testing.servo_bus", "--robot", robot]
    cmd += ["--link", str(link), "--leader-motion"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _readline(proc) == str(link)
        port = open_port(module, str(link))
        packet = module.PacketHandler(version)
        assert ping(packet, port, 1)[:2] == (model, 0)
        address, size = (56, 2) if module is scs else (132, 4)
        reader = sync_reader(module, port, packet, address, size)
        assert sync_read(reader) == 0
        before = {i: reader.getData(i, address, size) for i in IDS}
        time.sleep(0.4)
        assert sync_read(reader) == 0
        after = {i: reader.getData(i, address, size) for i in IDS}
        assert sum(before[i] != after[i] for i in IDS) >= 4  # the leader arm is being moved
        port.closePort()
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        assert not os.path.lexists(link)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
