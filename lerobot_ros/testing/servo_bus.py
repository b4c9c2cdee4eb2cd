"""A software servo bus on a pseudo-terminal: emulated Feetech and Dynamixel servos that the real
SDKs (`scservo_sdk`, `dynamixel_sdk`) talk to through pyserial, as to a USB serial adapter.

The emulator owns the master side of a pty; the SDK opens the slave path (or a stable symlink to
it, like `/dev/ttyUSB0`). Instruction packets are parsed byte for byte and answered with status
packets as real servos would:

- Feetech STS/SMS ("protocol 0", little-endian words) and SCS ("protocol 1", big-endian words, no
  Sync Read, no broadcast ping): frame `FF FF ID LEN INST params CHK`, CHK = ~(sum) & 0xFF;
  PING, READ, WRITE, REG_WRITE, ACTION, SYNC_READ, SYNC_WRITE.
- Dynamixel protocol 2.0: frame `FF FF FD 00 ID LEN_L LEN_H INST params CRC_L CRC_H`, CRC-16
  (polynomial 0x8005), byte stuffing of `FF FF FD` (an extra `FD`); PING, READ, WRITE, REG_WRITE,
  ACTION, FACTORY_RESET (answered, registers kept), REBOOT, CLEAR, SYNC_READ, FAST_SYNC_READ,
  SYNC_WRITE, BULK_READ, BULK_WRITE. Status packets carry an error number (access, data limit,
  instruction, CRC) and the alert bit when a hardware error is set.

The control tables here are written independently of `lerobot_ros.core.motors.tables` on
purpose: the emulator is the test oracle for the bus layer, and a shared table would make a
wrong address or encoding wrong on both sides, where no test could see it.

Only servos that exist, are `online`, and whose Baud_Rate register matches the speed the host set
on the port answer; a packet to any other ID gets no answer, so the SDK times out (~34 ms) as on
a real bus. Broadcast (0xFE) follows sync read/write semantics. Replies honour Return_Delay_Time
(2 µs units) and the status-return level registers; wire time is not modelled.

Each servo has a simple first-order model stepped from wall-clock time in the emulator thread:
with torque on it moves toward Goal_Position at a servo-like speed (Goal_Velocity / Profile_
Velocity limit it), respecting the position-limit registers where the real servo does (Feetech
single-turn position mode; Dynamixel mode 3). Homing offsets and the Dynamixel reverse bit are
applied like the servos do: Feetech Present = actual − offset (single-turn values wrap to
0..ticks−1); Dynamixel Present = ±actual + offset. With torque off, a servo stays put unless
`set_actual_position` moves it (a human moving a leader arm), or `leader_motion` is on.

Fault injection: `corrupt_rate` (status packets with a wrong checksum/CRC), `drop_rate` (status
packets never sent), `EmulatedMotor.online = False` (one silent servo),
`EmulatedMotor.set_hardware_error()`, and `unplug()` / `replug()` (the USB cable).

Command line, an emulated arm in its own process (prints the port path, runs until SIGINT or
SIGTERM)::

    python -m lerobot_ros.testing.servo_bus --robot so101 --link /tmp/so101_follower
    python -m lerobot_ros.testing.servo_bus --robot koch_leader --link /tmp/koch_leader \\
        --leader-motion

Behaviours worth knowing when writing a driver against it (as on real hardware):
- A status packet answering a WRITE comes from the ID that was addressed, also when the write
  changes the ID; a Baud_Rate change takes effect for the next packet.
- `scservo_sdk` never discards stale input: after a failed transaction, late or unread replies
  stay queued and are taken for the next answer (a short one makes its `ping()` raise
  IndexError). Call the serial port's `reset_input_buffer()` after a failure.
- After `unplug()`, SDK calls raise `termios.error` (EIO from tcdrain/tcflush),
  `serial.SerialException` (read/write) or `OSError` (in_waiting); the SDK's PortHandler keeps
  `is_using = True` after such an exception. Reopen the port (same path) after `replug()`.
- Dynamixel in mode 3 refuses Goal_Position outside Min/Max_Position_Limit (data-limit error)
  and EEPROM writes (address < 64) with torque on (access error). Enabling torque drives the
  servo to whatever Goal_Position holds (the power-on goal is the position at power-on).
- In-process the emulator thread competes for the GIL with the SDK's busy polling: throughput
  is lower than with the command line in its own process, and on a loaded machine a reply can
  now and then miss the SDK's ~34 ms timeout. Retry as LeRobot does.

Standard library only; it never imports ROS (the SDKs are only needed on the host side).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import math
import os
import queue
import random
import select
import signal
import struct
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

FEETECH = "feetech"
DYNAMIXEL = "dynamixel"
BROADCAST_ID = 0xFE

# Instructions (shared numbering for both families; some only exist in Dynamixel 2.0).
INST_PING = 0x01
INST_READ = 0x02
INST_WRITE = 0x03
INST_REG_WRITE = 0x04
INST_ACTION = 0x05
INST_FACTORY_RESET = 0x06
INST_REBOOT = 0x08
INST_CLEAR = 0x10
INST_STATUS = 0x55
INST_SYNC_READ = 0x82
INST_SYNC_WRITE = 0x83
INST_FAST_SYNC_READ = 0x8A
INST_BULK_READ = 0x92
INST_BULK_WRITE = 0x93

# Dynamixel 2.0 status error numbers (low 7 bits) and the alert bit.
DXL_ERR_RESULT_FAIL = 1
DXL_ERR_INSTRUCTION = 2
DXL_ERR_CRC = 3
DXL_ERR_DATA_RANGE = 4
DXL_ERR_DATA_LENGTH = 5
DXL_ERR_DATA_LIMIT = 6
DXL_ERR_ACCESS = 7
DXL_ERR_ALERT = 0x80

# Feetech status error bits (the SDK rejects an error byte > 0x7F).
FT_ERR_VOLTAGE = 0x01
FT_ERR_ANGLE = 0x02
FT_ERR_OVERHEAT = 0x04
FT_ERR_OVERELE = 0x08
FT_ERR_OVERLOAD = 0x20

_DXL_VELOCITY_UNIT_RPM = 0.229

# ------------------------------------------------------------------------------ value encodings


def encode_sign_magnitude(value: int, sign_bit: int) -> int:
    """Feetech sign-magnitude: bit `sign_bit` = sign, the bits below = magnitude."""
    magnitude = abs(int(value))
    if magnitude > (1 << sign_bit) - 1:
        raise ValueError(f"|{value}| does not fit a sign-magnitude value with sign bit {sign_bit}")
    return ((1 << sign_bit) if value < 0 else 0) | magnitude


def decode_sign_magnitude(raw: int, sign_bit: int) -> int:
    magnitude = raw & ((1 << sign_bit) - 1)
    return -magnitude if (raw >> sign_bit) & 1 else magnitude


def encode_twos_complement(value: int, size: int) -> int:
    bits = 8 * size
    if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
        raise ValueError(f"{value} does not fit a {size}-byte two's complement value")
    return int(value) & ((1 << bits) - 1)


def decode_twos_complement(raw: int, size: int) -> int:
    bits = 8 * size
    return raw - (1 << bits) if raw & (1 << (bits - 1)) else raw


def _make_crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _make_crc_table()


def dxl_crc16(data: bytes | bytearray, crc: int = 0) -> int:
    """Dynamixel protocol 2.0 CRC-16 (polynomial 0x8005, not reflected, initial value 0)."""
    table = _CRC_TABLE
    for byte in data:
        crc = ((crc << 8) ^ table[((crc >> 8) ^ byte) & 0xFF]) & 0xFFFF
    return crc


def feetech_checksum(body: bytes | bytearray) -> int:
    """Feetech checksum of ID..last parameter: low byte of NOT(sum)."""
    return ~sum(body) & 0xFF


def dxl_stuff(packet: bytes | bytearray) -> bytearray:
    """Add byte stuffing to an unstuffed packet (header, ID, LEN placeholders, body, no CRC):
    after every `FF FF FD` from the instruction byte on, one extra `FD`."""
    out = bytearray(packet[:7])
    for byte in packet[7:]:
        out.append(byte)
        if byte == 0xFD and out[-3] == 0xFF and out[-2] == 0xFF:
            out.append(0xFD)
    return out


def dxl_unstuff(packet: bytes | bytearray) -> bytearray:
    """Instruction + parameters of a stuffed packet (header .. body, CRC excluded)."""
    out = bytearray(packet[:7])
    skip = False
    for i in range(7, len(packet)):
        if skip:
            skip = False
            continue
        byte = packet[i]
        out.append(byte)
        if (
            byte == 0xFD
            and out[-3] == 0xFF
            and out[-2] == 0xFF
            and i + 1 < len(packet)
            and packet[i + 1] == 0xFD
        ):
            skip = True
    return out[7:]


def dxl_packet(dxl_id: int, body: bytes | bytearray) -> bytes:
    """A full Dynamixel 2.0 packet (stuffed, with LEN and CRC) around `body` = INST + params."""
    raw = dxl_stuff(bytes((0xFF, 0xFF, 0xFD, 0x00, dxl_id, 0, 0)) + bytes(body))
    length = len(raw) - 7 + 2
    raw[5] = length & 0xFF
    raw[6] = length >> 8
    crc = dxl_crc16(raw)
    raw += bytes((crc & 0xFF, crc >> 8))
    return bytes(raw)


def feetech_packet(scs_id: int, body: bytes | bytearray) -> bytes:
    """A full Feetech packet around `body` = INST (or ERROR) + params."""
    head = bytes((scs_id, len(body) + 1)) + bytes(body)
    return b"\xff\xff" + head + bytes((feetech_checksum(head),))


# -------------------------------------------------------------------------------- servo models

_STS_TABLE: dict[str, tuple[int, int]] = {
    "Firmware_Major_Version": (0, 1),
    "Firmware_Minor_Version": (1, 1),
    "Model_Number": (3, 2),
    "ID": (5, 1),
    "Baud_Rate": (6, 1),
    "Return_Delay_Time": (7, 1),
    "Response_Status_Level": (8, 1),
    "Min_Position_Limit": (9, 2),
    "Max_Position_Limit": (11, 2),
    "Max_Temperature_Limit": (13, 1),
    "Max_Voltage_Limit": (14, 1),
    "Min_Voltage_Limit": (15, 1),
    "Max_Torque_Limit": (16, 2),
    "Phase": (18, 1),
    "Unloading_Condition": (19, 1),
    "LED_Alarm_Condition": (20, 1),
    "P_Coefficient": (21, 1),
    "D_Coefficient": (22, 1),
    "I_Coefficient": (23, 1),
    "Minimum_Startup_Force": (24, 2),
    "CW_Dead_Zone": (26, 1),
    "CCW_Dead_Zone": (27, 1),
    "Protection_Current": (28, 2),
    "Angular_Resolution": (30, 1),
    "Homing_Offset": (31, 2),
    "Operating_Mode": (33, 1),
    "Protective_Torque": (34, 1),
    "Protection_Time": (35, 1),
    "Overload_Torque": (36, 1),
    "Velocity_closed_loop_P_proportional_coefficient": (37, 1),
    "Over_Current_Protection_Time": (38, 1),
    "Velocity_closed_loop_I_integral_coefficient": (39, 1),
    "Torque_Enable": (40, 1),
    "Acceleration": (41, 1),
    "Goal_Position": (42, 2),
    "Goal_Time": (44, 2),
    "Goal_Velocity": (46, 2),
    "Torque_Limit": (48, 2),
    "Lock": (55, 1),
    "Present_Position": (56, 2),
    "Present_Velocity": (58, 2),
    "Present_Load": (60, 2),
    "Present_Voltage": (62, 1),
    "Present_Temperature": (63, 1),
    "Status": (65, 1),
    "Moving": (66, 1),
    "Present_Current": (69, 2),
    "Goal_Position_2": (71, 2),
    "Moving_Velocity_Threshold": (80, 1),
    "DTs": (81, 1),
    "Velocity_Unit_factor": (82, 1),
    "Hts": (83, 1),
    "Maximum_Velocity_Limit": (84, 1),
    "Maximum_Acceleration": (85, 1),
    "Acceleration_Multiplier": (86, 1),
}

_STS_SIGN_BITS = {
    "Present_Load": 10,
    "Homing_Offset": 11,
    "Goal_Position": 15,
    "Goal_Velocity": 15,
    "Present_Position": 15,
    "Present_Velocity": 15,
}

_STS_DEFAULTS = {
    "Firmware_Major_Version": 3,
    "Firmware_Minor_Version": 10,
    "Baud_Rate": 0,
    "Return_Delay_Time": 0,
    "Response_Status_Level": 1,
    "Min_Position_Limit": 0,
    "Max_Position_Limit": 4095,
    "Max_Temperature_Limit": 70,
    "Max_Voltage_Limit": 140,
    "Min_Voltage_Limit": 40,
    "Max_Torque_Limit": 1000,
    "Phase": 12,
    "Unloading_Condition": 44,
    "LED_Alarm_Condition": 47,
    "P_Coefficient": 32,
    "D_Coefficient": 32,
    "I_Coefficient": 0,
    "Minimum_Startup_Force": 16,
    "CW_Dead_Zone": 1,
    "CCW_Dead_Zone": 1,
    "Protection_Current": 500,
    "Angular_Resolution": 1,
    "Homing_Offset": 0,
    "Operating_Mode": 0,
    "Protective_Torque": 20,
    "Protection_Time": 200,
    "Overload_Torque": 80,
    "Velocity_closed_loop_P_proportional_coefficient": 10,
    "Over_Current_Protection_Time": 200,
    "Velocity_closed_loop_I_integral_coefficient": 200,
    "Torque_Enable": 0,
    "Acceleration": 0,
    "Goal_Time": 0,
    "Goal_Velocity": 0,
    "Torque_Limit": 1000,
    "Lock": 0,
    "Present_Voltage": 120,
    "Present_Temperature": 30,
    "Moving_Velocity_Threshold": 2,
    "DTs": 32,
    "Velocity_Unit_factor": 1,
    "Maximum_Velocity_Limit": 40,
    "Maximum_Acceleration": 0,
    "Acceleration_Multiplier": 0,
}

_SCS_TABLE: dict[str, tuple[int, int]] = {
    "Firmware_Major_Version": (0, 1),
    "Firmware_Minor_Version": (1, 1),
    "Model_Number": (3, 2),
    "ID": (5, 1),
    "Baud_Rate": (6, 1),
    "Return_Delay_Time": (7, 1),
    "Response_Status_Level": (8, 1),
    "Min_Position_Limit": (9, 2),
    "Max_Position_Limit": (11, 2),
    "Max_Temperature_Limit": (13, 1),
    "Max_Voltage_Limit": (14, 1),
    "Min_Voltage_Limit": (15, 1),
    "Max_Torque_Limit": (16, 2),
    "Phase": (18, 1),
    "Unloading_Condition": (19, 1),
    "LED_Alarm_Condition": (20, 1),
    "P_Coefficient": (21, 1),
    "D_Coefficient": (22, 1),
    "I_Coefficient": (23, 1),
    "Minimum_Startup_Force": (24, 2),
    "CW_Dead_Zone": (26, 1),
    "CCW_Dead_Zone": (27, 1),
    "Protective_Torque": (37, 1),
    "Protection_Time": (38, 1),
    "Torque_Enable": (40, 1),
    "Acceleration": (41, 1),
    "Goal_Position": (42, 2),
    "Running_Time": (44, 2),
    "Goal_Velocity": (46, 2),
    "Lock": (48, 1),
    "Present_Position": (56, 2),
    "Present_Velocity": (58, 2),
    "Present_Load": (60, 2),
    "Present_Voltage": (62, 1),
    "Present_Temperature": (63, 1),
    "Sync_Write_Flag": (64, 1),
    "Status": (65, 1),
    "Moving": (66, 1),
}

_SCS_DEFAULTS = {
    "Firmware_Major_Version": 1,
    "Firmware_Minor_Version": 5,
    "Baud_Rate": 0,
    "Return_Delay_Time": 0,
    "Response_Status_Level": 1,
    "Min_Position_Limit": 0,
    "Max_Position_Limit": 1023,
    "Max_Temperature_Limit": 70,
    "Max_Voltage_Limit": 80,
    "Min_Voltage_Limit": 40,
    "Max_Torque_Limit": 1000,
    "P_Coefficient": 32,
    "D_Coefficient": 32,
    "I_Coefficient": 0,
    "CW_Dead_Zone": 1,
    "CCW_Dead_Zone": 1,
    "Torque_Enable": 0,
    "Lock": 0,
    "Present_Voltage": 60,
    "Present_Temperature": 30,
}

_X_TABLE: dict[str, tuple[int, int]] = {
    "Model_Number": (0, 2),
    "Model_Information": (2, 4),
    "Firmware_Version": (6, 1),
    "ID": (7, 1),
    "Baud_Rate": (8, 1),
    "Return_Delay_Time": (9, 1),
    "Drive_Mode": (10, 1),
    "Operating_Mode": (11, 1),
    "Secondary_ID": (12, 1),
    "Protocol_Type": (13, 1),
    "Homing_Offset": (20, 4),
    "Moving_Threshold": (24, 4),
    "Temperature_Limit": (31, 1),
    "Max_Voltage_Limit": (32, 2),
    "Min_Voltage_Limit": (34, 2),
    "PWM_Limit": (36, 2),
    "Current_Limit": (38, 2),
    "Acceleration_Limit": (40, 4),
    "Velocity_Limit": (44, 4),
    "Max_Position_Limit": (48, 4),
    "Min_Position_Limit": (52, 4),
    "Shutdown": (63, 1),
    "Torque_Enable": (64, 1),
    "LED": (65, 1),
    "Status_Return_Level": (68, 1),
    "Registered_Instruction": (69, 1),
    "Hardware_Error_Status": (70, 1),
    "Velocity_I_Gain": (76, 2),
    "Velocity_P_Gain": (78, 2),
    "Position_D_Gain": (80, 2),
    "Position_I_Gain": (82, 2),
    "Position_P_Gain": (84, 2),
    "Feedforward_2nd_Gain": (88, 2),
    "Feedforward_1st_Gain": (90, 2),
    "Bus_Watchdog": (98, 1),
    "Goal_PWM": (100, 2),
    "Goal_Current": (102, 2),
    "Goal_Velocity": (104, 4),
    "Profile_Acceleration": (108, 4),
    "Profile_Velocity": (112, 4),
    "Goal_Position": (116, 4),
    "Realtime_Tick": (120, 2),
    "Moving": (122, 1),
    "Moving_Status": (123, 1),
    "Present_PWM": (124, 2),
    "Present_Current": (126, 2),
    "Present_Velocity": (128, 4),
    "Present_Position": (132, 4),
    "Velocity_Trajectory": (136, 4),
    "Position_Trajectory": (140, 4),
    "Present_Input_Voltage": (144, 2),
    "Present_Temperature": (146, 1),
}

_X_SIGNED = frozenset(
    {
        "Homing_Offset",
        "Goal_PWM",
        "Goal_Current",
        "Goal_Velocity",
        "Goal_Position",
        "Present_PWM",
        "Present_Current",
        "Present_Velocity",
        "Present_Position",
        "Velocity_Trajectory",
        "Position_Trajectory",
    }
)

_X_DEFAULTS = {
    "Model_Information": 0,
    "Baud_Rate": 1,
    "Return_Delay_Time": 250,
    "Drive_Mode": 0,
    "Operating_Mode": 3,
    "Secondary_ID": 255,
    "Protocol_Type": 2,
    "Homing_Offset": 0,
    "Moving_Threshold": 10,
    "Acceleration_Limit": 32767,
    "Max_Position_Limit": 4095,
    "Min_Position_Limit": 0,
    "Shutdown": 52,
    "Torque_Enable": 0,
    "LED": 0,
    "Status_Return_Level": 2,
    "Registered_Instruction": 0,
    "Hardware_Error_Status": 0,
    "Velocity_I_Gain": 1000,
    "Velocity_P_Gain": 100,
    "Position_D_Gain": 0,
    "Position_I_Gain": 0,
    "Feedforward_2nd_Gain": 0,
    "Feedforward_1st_Gain": 0,
    "Bus_Watchdog": 0,
    "Goal_Current": 0,
    "Goal_Velocity": 0,
    "Profile_Acceleration": 0,
    "Profile_Velocity": 0,
    "Present_Temperature": 30,
}

_STS_BAUDS = {
    0: 1_000_000,
    1: 500_000,
    2: 250_000,
    3: 128_000,
    4: 115_200,
    5: 57_600,
    6: 38_400,
    7: 19_200,
}
_X_BAUDS = {
    0: 9_600,
    1: 57_600,
    2: 115_200,
    3: 1_000_000,
    4: 2_000_000,
    5: 3_000_000,
    6: 4_000_000,
}


@dataclass(frozen=True, eq=False)
class ServoModel:
    """What an emulated servo needs to know about its model.

    `control_table`: register name -> (address, size in bytes). `defaults`: factory values of
    the registers (decoded); registers not listed start at 0. `sign_bits` (Feetech): register ->
    sign bit of its sign-magnitude encoding. `signed` (Dynamixel): registers in two's complement.
    `max_speed`: no-load speed in ticks/s. `read_only`: [start, end) address ranges the host
    cannot write. `eeprom_end` (Dynamixel): addresses below it need torque off to be written.
    """

    name: str
    model_number: int
    protocol: str
    ticks_per_rev: int
    control_table: dict[str, tuple[int, int]]
    defaults: dict[str, int]
    sign_bits: dict[str, int] = field(default_factory=dict)
    signed: frozenset[str] = frozenset()
    protocol_version: int = 0
    big_endian: bool = False
    sync_read: bool = True
    broadcast_ping: bool = True
    max_speed: float = 3000.0
    memory_size: int = 256
    read_only: tuple[tuple[int, int], ...] = ()
    eeprom_end: int = 0
    operating_modes: tuple[int, ...] = (0,)
    baud_rates: dict[int, int] = field(default_factory=dict)

    def address(self, register: str) -> tuple[int, int]:
        try:
            return self.control_table[register]
        except KeyError:
            raise KeyError(f"{self.name} has no register {register!r}") from None

    def encode(self, register: str, value: int) -> int:
        """Signed/decoded value -> the unsigned value stored in the register."""
        _, size = self.address(register)
        value = int(value)
        if register in self.sign_bits:
            return encode_sign_magnitude(value, self.sign_bits[register])
        if register in self.signed:
            return encode_twos_complement(value, size)
        if not 0 <= value < (1 << (8 * size)):
            raise ValueError(f"{register}={value} does not fit {size} unsigned byte(s)")
        return value

    def decode(self, register: str, raw: int) -> int:
        _, size = self.address(register)
        if register in self.sign_bits:
            return decode_sign_magnitude(raw, self.sign_bits[register])
        if register in self.signed:
            return decode_twos_complement(raw, size)
        return raw

    def baud_code(self, baudrate: int) -> int:
        for code, rate in self.baud_rates.items():
            if rate == baudrate:
                return code
        raise ValueError(f"{self.name}: no Baud_Rate code for {baudrate} baud")


def _sts(name: str, number: int, *, max_speed: float) -> ServoModel:
    return ServoModel(
        name=name,
        model_number=number,
        protocol=FEETECH,
        ticks_per_rev=4096,
        control_table=_STS_TABLE,
        defaults={**_STS_DEFAULTS, "Model_Number": number},
        sign_bits=_STS_SIGN_BITS,
        protocol_version=0,
        max_speed=max_speed,
        read_only=((0, 5), (56, 73)),
        operating_modes=(0, 1, 2, 3),
        baud_rates=_STS_BAUDS,
    )


def _xseries(
    name: str,
    number: int,
    *,
    max_speed: float,
    volts: int,
    modes: tuple[int, ...],
    extra: dict[str, int],
) -> ServoModel:
    defaults = {
        **_X_DEFAULTS,
        "Model_Number": number,
        "Present_Input_Voltage": volts,
        **extra,
    }
    defaults.setdefault("Goal_PWM", defaults["PWM_Limit"])
    return ServoModel(
        name=name,
        model_number=number,
        protocol=DYNAMIXEL,
        ticks_per_rev=4096,
        control_table=_X_TABLE,
        defaults=defaults,
        signed=_X_SIGNED,
        protocol_version=2,
        max_speed=max_speed,
        memory_size=1024,
        read_only=((0, 7), (69, 71), (120, 148)),
        eeprom_end=64,
        operating_modes=modes,
        baud_rates=_X_BAUDS,
    )


def _rpm_to_ticks(rpm: float) -> float:
    return rpm / 60.0 * 4096.0


MODELS: dict[str, ServoModel] = {
    # STS3215: 0.222 s/60° no load at 12 V (~4.7 rad/s ~ 3000 ticks/s).
    "sts3215": _sts("sts3215", 777, max_speed=3000.0),
    "sts3250": _sts("sts3250", 2825, max_speed=3000.0),
    "scs0009": ServoModel(
        name="scs0009",
        model_number=1284,
        protocol=FEETECH,
        ticks_per_rev=1024,
        control_table=_SCS_TABLE,
        defaults={**_SCS_DEFAULTS, "Model_Number": 1284},
        protocol_version=1,
        big_endian=True,
        sync_read=False,
        broadcast_ping=False,
        max_speed=1000.0,
        read_only=((0, 5), (56, 67)),
        operating_modes=(0,),
        baud_rates=_STS_BAUDS,
    ),
    "xl430-w250": _xseries(
        "xl430-w250",
        1060,
        max_speed=_rpm_to_ticks(57.0),
        volts=120,
        modes=(1, 3, 4, 16),
        extra={
            "Firmware_Version": 46,
            "Temperature_Limit": 72,
            "Max_Voltage_Limit": 140,
            "Min_Voltage_Limit": 60,
            "PWM_Limit": 885,
            "Velocity_Limit": 265,
            "Position_P_Gain": 640,
            "Velocity_I_Gain": 1000,
            "Velocity_P_Gain": 100,
        },
    ),
    "xl330-m288": _xseries(
        "xl330-m288",
        1200,
        max_speed=_rpm_to_ticks(103.0),
        volts=50,
        modes=(0, 1, 3, 4, 5, 16),
        extra={
            "Firmware_Version": 46,
            "Temperature_Limit": 70,
            "Max_Voltage_Limit": 70,
            "Min_Voltage_Limit": 35,
            "PWM_Limit": 885,
            "Current_Limit": 1750,
            "Velocity_Limit": 445,
            "Position_P_Gain": 400,
            "Velocity_I_Gain": 1600,
            "Velocity_P_Gain": 180,
        },
    ),
    "xl330-m077": _xseries(
        "xl330-m077",
        1190,
        max_speed=_rpm_to_ticks(383.0),
        volts=50,
        modes=(0, 1, 3, 4, 5, 16),
        extra={
            "Firmware_Version": 46,
            "Temperature_Limit": 70,
            "Max_Voltage_Limit": 70,
            "Min_Voltage_Limit": 35,
            "PWM_Limit": 885,
            "Current_Limit": 1750,
            "Velocity_Limit": 1620,
            "Position_P_Gain": 400,
            "Velocity_I_Gain": 1600,
            "Velocity_P_Gain": 180,
        },
    ),
}

# Arms that the command line knows: protocol and {id: model}.
ROBOTS: dict[str, tuple[str, dict[int, str]]] = {
    "so100": (FEETECH, dict.fromkeys(range(1, 7), "sts3215")),
    "so101": (FEETECH, dict.fromkeys(range(1, 7), "sts3215")),
    "koch_follower": (
        DYNAMIXEL,
        {1: "xl430-w250", 2: "xl430-w250", **dict.fromkeys(range(3, 7), "xl330-m288")},
    ),
    "koch_leader": (DYNAMIXEL, dict.fromkeys(range(1, 7), "xl330-m077")),
}
for _name in ("so100", "so101"):
    for _role in ("follower", "leader"):
        ROBOTS[f"{_name}_{_role}"] = ROBOTS[_name]


# ---------------------------------------------------------------------------------- one servo


def _register_specs(model: ServoModel) -> dict[str, tuple[int, int, int, bool]]:
    """name -> (address, size, sign bit or 0, two's complement) for fast register access."""
    return {
        name: (address, size, model.sign_bits.get(name, 0), name in model.signed)
        for name, (address, size) in model.control_table.items()
    }


class EmulatedMotor:
    """One servo: its register memory and a first-order motion model.

    `actual_position` is the physical shaft position in ticks as the encoder sees it, before
    the homing offset and (Dynamixel) the reverse bit; it is a float and not wrapped (the
    servo wraps single-turn readings). `online = False` makes the servo silent on the bus while
    it keeps its state (a loose daisy-chain cable).
    """

    def __init__(
        self,
        motor_id: int,
        model: ServoModel | str,
        *,
        position: float | None = None,
        speed: float | None = None,
        baudrate: int | None = None,
        lock: threading.RLock | None = None,
    ) -> None:
        self.model: ServoModel = MODELS[model] if isinstance(model, str) else model
        if not 0 <= motor_id < BROADCAST_ID:
            raise ValueError(f"servo id {motor_id} out of range 0..253")
        self.registers = bytearray(self.model.memory_size)
        self.speed = float(speed) if speed else self.model.max_speed
        self.online = True
        self.hardware_error = 0
        self._lock = lock if lock is not None else threading.RLock()
        self._order = "big" if self.model.big_endian else "little"
        self._table = self.model.control_table
        self._spec = _register_specs(self.model)
        self._dirty = True
        self._actual = float(self.model.ticks_per_rev // 2 if position is None else position)
        self._last_actual = self._actual
        self._velocity = 0.0  # present frame, ticks/s
        self._registered: tuple[int, bytes] | None = None
        self._initial_id = motor_id
        self._baud_code = (
            self.model.defaults.get("Baud_Rate", 0)
            if baudrate is None
            else self.model.baud_code(baudrate)
        )
        self.reset_registers()

    # -- registers
    def reset_registers(self, *, keep_eeprom: bool = False) -> None:
        """Power-on state: factory defaults (or, with keep_eeprom, only the RAM area reset as a
        Dynamixel REBOOT does); torque off; Goal_Position = Present_Position."""
        with self._lock:
            if keep_eeprom:
                boundary = self.model.eeprom_end or self._table["Torque_Enable"][0]
                saved = bytes(self.registers[:boundary])
            else:
                motor_id, baud = self._initial_id, self._baud_code
            self.registers[:] = bytes(len(self.registers))
            for name, value in self.model.defaults.items():
                if name in self._table:
                    self._set(name, value)
            self._set("Model_Number", self.model.model_number)
            if keep_eeprom:
                self.registers[: len(saved)] = saved
            else:
                self._set("ID", motor_id)
                self._set("Baud_Rate", baud)
            self._registered = None
            self._update_present(0.0)
            self._set("Goal_Position", self._present_reading())

    def _get(self, name: str) -> int:
        address, size, sign_bit, signed = self._spec[name]
        raw = int.from_bytes(self.registers[address : address + size], self._order)
        if sign_bit:
            magnitude = raw & ((1 << sign_bit) - 1)
            return -magnitude if (raw >> sign_bit) & 1 else magnitude
        if signed and raw >> (8 * size - 1):
            return raw - (1 << (8 * size))
        return raw

    def _set(self, name: str, value: float) -> None:
        """Store a value, saturated to what the register can hold (internal use)."""
        address, size, sign_bit, signed = self._spec[name]
        value = round(value)
        if sign_bit:
            bound = (1 << sign_bit) - 1
            magnitude = min(abs(value), bound)
            raw = ((1 << sign_bit) | magnitude) if value < 0 and magnitude else magnitude
        elif signed:
            bound = 1 << (8 * size - 1)
            raw = max(-bound, min(bound - 1, value)) & ((1 << (8 * size)) - 1)
        else:
            raw = max(0, min((1 << (8 * size)) - 1, value))
        self.registers[address : address + size] = raw.to_bytes(size, self._order)

    def _has(self, name: str) -> bool:
        return name in self._table

    def read_register(self, name: str) -> int:
        """Decoded value of a register (sign-magnitude / two's complement applied)."""
        with self._lock:
            self.model.address(name)
            return self._get(name)

    def write_register(self, name: str, value: int) -> None:
        """Encode and store a value, with the servo's side effects (torque on/off, mode change).
        A back door for tests: no access checks, no bus traffic. Present_* registers are
        recomputed at the next physics step: move the shaft with set_actual_position."""
        with self._lock:
            address, size = self.model.address(name)
            raw = self.model.encode(name, value)
            self._store(address, raw.to_bytes(size, self._order))

    def read_bytes(self, address: int, length: int) -> bytes:
        with self._lock:
            data = bytes(self.registers[address : address + length])
        return data + bytes(max(0, length - len(data)))

    @property
    def id(self) -> int:
        return self.registers[self._table["ID"][0]]

    @property
    def baudrate(self) -> int | None:
        return self.model.baud_rates.get(self.registers[self._table["Baud_Rate"][0]])

    @property
    def torque_enabled(self) -> bool:
        return bool(self.registers[self._table["Torque_Enable"][0]])

    # -- the shaft
    @property
    def actual_position(self) -> float:
        return self._actual

    def set_actual_position(self, ticks: float) -> None:
        """Move the shaft (a hand moving the arm). With torque on the servo drives back to its
        goal at the next steps."""
        with self._lock:
            self._actual = float(ticks)
            self._dirty = True

    def set_hardware_error(self, bits: int) -> None:
        """Inject (bits != 0) or clear a hardware error. Feetech: the bits go into every status
        packet's error byte and the Status register. Dynamixel: Hardware_Error_Status = bits and
        the alert bit in status packets, cleared only by REBOOT or this call. Both drop torque."""
        with self._lock:
            self.hardware_error = int(bits) & 0x7F
            self._dirty = True
            if self.model.protocol == DYNAMIXEL:
                self._set("Hardware_Error_Status", self.hardware_error)
            elif self._has("Status"):
                self._set("Status", self.hardware_error)
            if self.hardware_error:
                self._set("Torque_Enable", 0)

    @property
    def status_error(self) -> int:
        """Error byte of this servo's status packets (before any per-instruction error)."""
        if not self.hardware_error:
            return 0
        return DXL_ERR_ALERT if self.model.protocol == DYNAMIXEL else self.hardware_error

    # -- writes with side effects
    def _store(self, address: int, data: bytes) -> None:
        """Store bytes (no checks) and apply the servo's reactions to what changed."""
        te_address = self._table["Torque_Enable"][0]
        torque_before = self.registers[te_address]
        mode_before = self._get("Operating_Mode") if self._has("Operating_Mode") else 0
        end = min(address + len(data), len(self.registers))
        self.registers[address:end] = data[: end - address]
        self._dirty = True
        torque = self.registers[te_address]
        if torque and self.hardware_error:
            self.registers[te_address] = 0  # a servo in shutdown refuses torque
            torque = 0
        if self.model.protocol == DYNAMIXEL:
            mode = self._get("Operating_Mode")
            if mode == 3 and ((torque and not torque_before) or mode != mode_before):
                self._to_single_turn()

    def _to_single_turn(self) -> None:
        """Dynamixel: entering position mode (3) / torque on in it, the position counter is
        brought back to one turn (0..4095 before offset); the shaft does not move."""
        ticks = self.model.ticks_per_rev
        if self._reversed():
            raw = -self._actual
            self._actual = -(raw % ticks)
        else:
            self._actual %= ticks
        self._last_actual = self._actual

    def protocol_write(self, address: int, data: bytes) -> int:
        """A WRITE/SYNC_WRITE from the bus; returns the Dynamixel error number (0 = ok).
        Feetech silently skips read-only bytes; Dynamixel refuses the whole write."""
        with self._lock:
            end = address + len(data)
            if self.model.protocol == FEETECH:
                buf = bytearray(self.registers[address:end])
                for i, byte in enumerate(data[: len(buf)]):
                    if not any(lo <= address + i < hi for lo, hi in self.model.read_only):
                        buf[i] = byte
                self._store(address, bytes(buf))
                return 0
            if end > len(self.registers):
                return DXL_ERR_DATA_LENGTH
            if any(address < hi and lo < end for lo, hi in self.model.read_only):
                return DXL_ERR_ACCESS
            if address < self.model.eeprom_end and self.torque_enabled:
                return DXL_ERR_ACCESS
            error = self._check_dxl_values(address, data)
            if error:
                return error
            self._store(address, data)
            return 0

    def _check_dxl_values(self, address: int, data: bytes) -> int:
        end = address + len(data)
        after = bytearray(self.registers)
        after[address:end] = data

        def value(name: str) -> int:
            reg_address, size = self._table[name]
            raw = int.from_bytes(after[reg_address : reg_address + size], self._order)
            return self.model.decode(name, raw)

        def covers(name: str) -> bool:
            reg_address, size = self._table[name]
            return address < reg_address + size and reg_address < end

        if covers("Operating_Mode") and value("Operating_Mode") not in self.model.operating_modes:
            return DXL_ERR_DATA_RANGE
        if covers("Goal_Position") and value("Operating_Mode") == 3:
            goal = value("Goal_Position")
            if not value("Min_Position_Limit") <= goal <= value("Max_Position_Limit"):
                return DXL_ERR_DATA_LIMIT
        return 0

    def register_write(self, address: int, data: bytes) -> None:
        with self._lock:
            self._registered = (address, bytes(data))
            if self._has("Registered_Instruction"):
                self._set("Registered_Instruction", 1)

    def action(self) -> None:
        with self._lock:
            if self._registered is not None:
                address, data = self._registered
                self._registered = None
                if self._has("Registered_Instruction"):
                    self._set("Registered_Instruction", 0)
                self.protocol_write(address, data)

    def reboot(self) -> None:
        """Dynamixel REBOOT: hardware error cleared, RAM area back to defaults, torque off."""
        with self._lock:
            self.hardware_error = 0
            self.reset_registers(keep_eeprom=True)

    def clear_multi_turn(self) -> None:
        with self._lock:
            self._to_single_turn()
            self._dirty = True

    # -- physics
    def _reversed(self) -> bool:
        return self.model.protocol == DYNAMIXEL and bool(self._get("Drive_Mode") & 1)

    def _feetech_wraps(self) -> bool:
        """Feetech single-turn readings (0..ticks-1) unless step mode or limits both 0."""
        mode = self._get("Operating_Mode") if self._has("Operating_Mode") else 0
        if mode == 3:
            return False
        return not (self._get("Min_Position_Limit") == 0 and self._get("Max_Position_Limit") == 0)

    def _present(self) -> float:
        """Present_Position as the servo computes it, unrounded."""
        if self.model.protocol == FEETECH:
            offset = self._get("Homing_Offset") if self._has("Homing_Offset") else 0
            present = self._actual - offset
            if self._feetech_wraps():
                present %= self.model.ticks_per_rev
            return present
        raw = -self._actual if self._reversed() else self._actual
        return raw + self._get("Homing_Offset")

    def _present_reading(self) -> int:
        """Present_Position as the servo reports it (rounded; single-turn values wrapped)."""
        present = round(self._present())
        if self.model.protocol == FEETECH and self._feetech_wraps():
            present %= self.model.ticks_per_rev
        return present

    def _direction(self) -> float:
        """d(Present)/d(actual)."""
        return -1.0 if self._reversed() else 1.0

    def _position_limits(self) -> tuple[float, float] | None:
        if self.model.protocol == FEETECH:
            if not self._feetech_wraps():
                return None
        elif self._get("Operating_Mode") != 3:
            return None
        return float(self._get("Min_Position_Limit")), float(self._get("Max_Position_Limit"))

    def _speed_limit(self) -> float:
        if self.model.protocol == FEETECH:
            goal_velocity = abs(self._get("Goal_Velocity"))
            return min(self.speed, float(goal_velocity)) if goal_velocity else self.speed
        profile = self._get("Profile_Velocity")
        if profile:
            return min(self.speed, _rpm_to_ticks(profile * _DXL_VELOCITY_UNIT_RPM))
        return self.speed

    def _control_mode(self) -> str:
        mode = self._get("Operating_Mode") if self._has("Operating_Mode") else 0
        if self.model.protocol == FEETECH:
            return {0: "position", 3: "position", 1: "velocity"}.get(mode, "none")
        return {3: "position", 4: "position", 5: "position", 1: "velocity"}.get(mode, "none")

    def step(self, dt: float) -> None:
        """Advance the motion model by dt seconds and refresh the Present_* registers."""
        with self._lock:
            if dt > 0 and self.torque_enabled:
                mode = self._control_mode()
                if mode == "position":
                    goal = float(self._get("Goal_Position"))
                    limits = self._position_limits()
                    if limits is not None:
                        goal = min(max(goal, limits[0]), limits[1])
                    delta = goal - self._present()
                    reach = self._speed_limit() * dt
                    self._actual += max(-reach, min(reach, delta)) * self._direction()
                elif mode == "velocity":
                    velocity = float(self._get("Goal_Velocity"))
                    if self.model.protocol == DYNAMIXEL:
                        velocity = _rpm_to_ticks(velocity * _DXL_VELOCITY_UNIT_RPM)
                    velocity = max(-self.speed, min(self.speed, velocity))
                    self._actual += velocity * dt * self._direction()
            if self._actual == self._last_actual and self._velocity == 0.0 and not self._dirty:
                return  # nothing moved, nothing written: the registers are up to date
            self._update_present(dt)

    def _update_present(self, dt: float) -> None:
        self._dirty = False
        if dt > 0:
            self._velocity = (self._actual - self._last_actual) / dt * self._direction()
        self._last_actual = self._actual
        present = self._present_reading()
        dynamixel = self.model.protocol == DYNAMIXEL
        self._set("Present_Position", present)
        velocity = self._velocity
        fraction = min(1.0, abs(velocity) / self.speed) if self.speed else 0.0
        sign = 1 if velocity >= 0 else -1
        torque = self.torque_enabled
        if not dynamixel:
            self._set("Present_Velocity", velocity)
            self._set("Present_Load", sign * round(300 * fraction) if torque else 0)
            self._set("Moving", int(abs(velocity) >= 1.0))
            if "Present_Current" in self._spec:
                self._set("Present_Current", (8 + round(40 * fraction)) if torque else 0)
            return
        units = velocity / 4096.0 * 60.0 / _DXL_VELOCITY_UNIT_RPM
        self._set("Present_Velocity", units)
        self._set("Moving", int(abs(units) > self._get("Moving_Threshold")))
        self._set("Present_Current", sign * (10 + round(110 * fraction)) if torque else 0)
        self._set("Present_PWM", sign * round(500 * fraction) if torque else 0)
        self._set("Position_Trajectory", present)
        self._set("Realtime_Tick", int(time.monotonic() * 1000) % 32768)

    def __repr__(self) -> str:
        return (
            f"EmulatedMotor(id={self.id}, model={self.model.name!r}, "
            f"actual={self._actual:.1f}, torque={int(self.torque_enabled)})"
        )


# ------------------------------------------------------------------------------------- the bus

_COUNTERS = (
    "received",  # instruction packets with a valid checksum/CRC
    "replied",  # status packets sent (corrupted ones included)
    "corrupted",  # status packets sent with a wrong checksum/CRC (corrupt_rate)
    "dropped",  # status packets not sent (drop_rate)
    "bad_checksum_in",  # instruction packets with a wrong checksum/CRC
    "ignored",  # packets to an id no listening servo has
    "garbage_bytes",  # bytes discarded while looking for a header
    "tx_overflow",  # status bytes the pty would not take (nobody reading)
    "unknown_instruction",
    "unplugged",
    "replugged",
)

_TCGETS2 = 0x802C542A  # _IOR('T', 0x2A, struct termios2) on x86 and arm
_STANDARD_SPEEDS = {
    getattr(termios, f"B{rate}"): rate
    for rate in (
        9600,
        19200,
        38400,
        57600,
        115200,
        230400,
        460800,
        500000,
        576000,
        921600,
        1000000,
        1152000,
        2000000,
        2500000,
        3000000,
        3500000,
        4000000,
    )
    if hasattr(termios, f"B{rate}")
}


def _host_baudrate(fd: int) -> int | None:
    """The speed the host set on the pty (the slave's termios, read through the master):
    tcgetattr for the standard speeds, the termios2 ioctl for custom ones (BOTHER)."""
    try:
        speed = termios.tcgetattr(fd)[5]
    except termios.error:
        return None
    if speed in _STANDARD_SPEEDS:
        return _STANDARD_SPEEDS[speed]
    try:
        buf = bytearray(44)
        fcntl.ioctl(fd, _TCGETS2, buf)
        custom = struct.unpack_from("I", buf, 40)[0]
    except OSError:
        return None
    return int(custom) or None


class EmulatedServoBus:
    """Emulated servos behind a pseudo-terminal, answered by a daemon thread.

    `protocol`: "feetech" or "dynamixel"; `motors`: {id: model name}. `link`: a symlink created
    (atomically) to the current pty slave; `port` is that path, or the slave itself without a
    link. `baudrate`: every servo's Baud_Rate register starts at the code for it; a servo only
    answers when the host opened the port at its baud rate. `speed`: no-load speed of every
    servo in ticks/s (default: the model's). `seed`: initial positions (mid-range ± 32 ticks)
    and the fault-injection draws. `leader_motion`: servos with torque off follow a slow sine
    (a human moving a leader arm).
    """

    def __init__(
        self,
        protocol: str,
        motors: dict[int, str],
        *,
        link: str | os.PathLike[str] | None = None,
        baudrate: int = 1_000_000,
        speed: float | None = None,
        seed: int = 0,
        leader_motion: bool = False,
    ) -> None:
        if protocol not in (FEETECH, DYNAMIXEL):
            raise ValueError(f"protocol must be {FEETECH!r} or {DYNAMIXEL!r}, not {protocol!r}")
        self.protocol = protocol
        self.baudrate = baudrate
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self.motors: dict[int, EmulatedMotor] = {}
        for motor_id, model_name in sorted(motors.items()):
            if model_name not in MODELS:
                raise ValueError(f"unknown servo model {model_name!r} (known: {sorted(MODELS)})")
            model = MODELS[model_name]
            if model.protocol != protocol:
                raise ValueError(f"{model_name} is a {model.protocol} servo, not {protocol}")
            position = model.ticks_per_rev // 2 + self._rng.randint(-32, 32)
            self.motors[motor_id] = EmulatedMotor(
                motor_id, model, position=position, speed=speed, baudrate=baudrate, lock=self._lock
            )
        self.corrupt_rate = 0.0
        self.drop_rate = 0.0
        self.leader_motion = leader_motion
        self.leader_amplitude = 300.0  # ticks
        self.counters: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self._link = os.path.abspath(os.fspath(link)) if link is not None else None
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_name: str | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._commands: queue.SimpleQueue[tuple[Callable[[], Any], threading.Event, list[Any]]]
        self._commands = queue.SimpleQueue()
        self._rx = bytearray()
        self._rx_time = 0.0
        self._outbox: list[tuple[float, bytes]] = []
        self._host_baud: int | None = None
        self._last_step = time.monotonic()
        self._motion_centers: dict[int, tuple[float, float]] = {}
        self._open_pty()

    # -- life cycle
    @property
    def port(self) -> str:
        """The path to give the SDK: the symlink if one was asked for, else the pty slave."""
        if self._link is not None:
            return self._link
        if self._slave_name is None:
            raise RuntimeError("the emulated bus is unplugged or stopped")
        return self._slave_name

    @property
    def device(self) -> str | None:
        """The current pty slave path (None while unplugged)."""
        return self._slave_name

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> EmulatedServoBus:
        if self.running:
            return self
        if self._master is None:
            self._open_pty()
        self._stopping.clear()
        self._last_step = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="EmulatedServoBus", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        self._thread = None
        self._close_pty()

    def unplug(self) -> None:
        """Pull the USB cable: the pty disappears (the SDK's next I/O fails with EIO) and the
        symlink is removed. The servos keep power and state."""
        self._in_loop(self._do_unplug)

    def replug(self) -> None:
        """Plug the cable back: a new pty, the symlink re-created at the same path. The host
        must reopen the port."""
        self._in_loop(self._do_replug)

    def __enter__(self) -> EmulatedServoBus:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if not self.running:
                self._close_pty()

    # -- helpers for tests and tools
    def motor(self, motor_id: int) -> EmulatedMotor:
        return self.motors[motor_id]

    def step(self, dt: float) -> None:
        """Step every servo by dt (the thread does this from wall-clock time by itself)."""
        with self._lock:
            for motor in list(self.motors.values()):
                motor.step(dt)

    # -- pty handling
    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._slave_name = os.ttyname(slave)
        self._rx.clear()
        self._outbox.clear()
        self._host_baud = None
        if self._link is None:
            return
        try:
            if os.path.lexists(self._link) and not os.path.islink(self._link):
                raise FileExistsError(f"{self._link} exists and is not a symlink")
            tmp = f"{self._link}.{os.getpid()}.tmp"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(self._slave_name, tmp)
            os.replace(tmp, self._link)  # atomic: a reader never sees a missing or stale link
        except OSError:
            self._close_pty()
            raise

    def _close_pty(self) -> None:
        if self._link is not None and self._slave_name is not None:
            with contextlib.suppress(OSError):
                if os.readlink(self._link) == self._slave_name:
                    os.unlink(self._link)
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        self._slave_name = None

    def _do_unplug(self) -> None:
        if self._master is not None:
            self._close_pty()
            self.counters["unplugged"] += 1

    def _do_replug(self) -> None:
        if self._master is None:
            self._open_pty()
            self.counters["replugged"] += 1

    def _in_loop(self, fn: Callable[[], Any]) -> None:
        """Run fn in the emulator thread (it owns the fds), or here when it is not running."""
        if not self.running or threading.current_thread() is self._thread:
            fn()
            return
        done = threading.Event()
        result: list[Any] = []
        self._commands.put((fn, done, result))
        if not done.wait(5.0):
            raise TimeoutError("the emulated bus thread did not answer")
        if result:
            raise result[0]

    def _run_commands(self) -> None:
        while True:
            try:
                fn, done, result = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                fn()
            except Exception as exc:
                result.append(exc)
            done.set()

    # -- the loop
    def _run(self) -> None:
        while not self._stopping.is_set():
            self._run_commands()
            now = time.monotonic()
            timeout = 0.002 if self._busy() else 0.02  # idle: fewer wake-ups
            if self._outbox:
                timeout = max(0.0, min(timeout, self._outbox[0][0] - now))
            fd = self._master
            if fd is None:
                self._stopping.wait(timeout)
                self._physics(time.monotonic())
                continue
            try:
                readable, _, _ = select.select([fd], [], [], timeout)
            except (OSError, ValueError):
                readable = []
            now = time.monotonic()
            if readable:
                try:
                    data = os.read(fd, 4096)
                except BlockingIOError:
                    data = b""
                except OSError:
                    data = b""
                    self._stopping.wait(0.001)
                if data:
                    self._host_baud = _host_baudrate(fd)
                    self._rx += data
                    self._rx_time = now
            self._physics(now)
            if self._rx:
                if now - self._rx_time > 0.02:  # an incomplete packet nobody finishes
                    self.counters["garbage_bytes"] += len(self._rx)
                    self._rx.clear()
                else:
                    self._parse(now)
            self._flush(time.monotonic())

    def _busy(self) -> bool:
        """Something moves or changed: keep stepping at ~500 Hz."""
        if self.leader_motion:
            return True
        return any(m._velocity != 0.0 or m._dirty for m in list(self.motors.values()))

    def _physics(self, now: float) -> None:
        dt = now - self._last_step
        if dt < 0.0005:
            # Too soon for a motion step, but registers written or a shaft moved by hand since
            # the last one must show in the next reply.
            with self._lock:
                for motor in list(self.motors.values()):
                    if motor._dirty:
                        motor.step(0.0)
            return
        self._last_step = now
        with self._lock:
            if self.leader_motion:
                self._leader_motion(now)
            elif self._motion_centers:
                self._motion_centers.clear()
            for motor in list(self.motors.values()):
                motor.step(min(dt, 0.5))

    def _leader_motion(self, now: float) -> None:
        """Each joint with torque off follows centre + A·sin(2πt/T) from where it was when the
        motion took it over (period 5 s, 6.3 s, 7.6 s, ... by joint)."""
        for index, (motor_id, motor) in enumerate(sorted(self.motors.items())):
            if motor.torque_enabled:
                self._motion_centers.pop(motor_id, None)
                continue
            if motor_id not in self._motion_centers:
                self._motion_centers[motor_id] = (motor.actual_position, now)
            centre, since = self._motion_centers[motor_id]
            period = 5.0 + 1.3 * index
            amplitude = self.leader_amplitude * motor.model.ticks_per_rev / 4096
            motor.set_actual_position(
                centre + amplitude * math.sin(2 * math.pi * (now - since) / period)
            )

    def _send(self, packet: bytes, delay: float, now: float) -> None:
        """Queue a status packet (after the servo's return delay), with the injected faults."""
        if self.drop_rate > 0 and self._rng.random() < self.drop_rate:
            self.counters["dropped"] += 1
            return
        if self.corrupt_rate > 0 and self._rng.random() < self.corrupt_rate:
            packet = packet[:-1] + bytes(((packet[-1] ^ 0x5A),))
            self.counters["corrupted"] += 1
        due = now + delay
        if self._outbox:
            due = max(due, self._outbox[-1][0])
        self._outbox.append((due, packet))
        self.counters["replied"] += 1

    def _flush(self, now: float) -> None:
        """Write every status packet that is due, in one write (one GIL round trip)."""
        due = 0
        while due < len(self._outbox) and self._outbox[due][0] <= now:
            due += 1
        if not due:
            return
        data = b"".join(packet for _, packet in self._outbox[:due])
        del self._outbox[:due]
        fd = self._master
        if fd is None:
            return
        view = memoryview(data)
        while view:
            try:
                written = os.write(fd, view)
            except BlockingIOError:
                self.counters["tx_overflow"] += len(view)
                return
            except OSError:
                return
            view = view[written:]

    # -- lookup
    def _listening(self, motor_id: int) -> EmulatedMotor | None:
        motor = self.motors.get(motor_id)
        if motor is None or not motor.online:
            return None
        if self._host_baud is not None and motor.baudrate != self._host_baud:
            return None
        return motor

    def _all_listening(self) -> list[EmulatedMotor]:
        return [m for i in sorted(self.motors) if (m := self._listening(i)) is not None]

    def _reindex(self) -> None:
        """After an ID write: key the servos by their ID registers again (same dict object)."""
        if all(key == motor.id for key, motor in self.motors.items()):
            return
        motors = sorted(self.motors.values(), key=lambda m: m.id)
        self.motors.clear()
        for motor in motors:
            self.motors[motor.id] = motor

    @staticmethod
    def _delay(motor: EmulatedMotor) -> float:
        return motor.registers[motor.model.control_table["Return_Delay_Time"][0]] * 2e-6

    def _parse(self, now: float) -> None:
        with self._lock:
            if self.protocol == FEETECH:
                self._parse_feetech(now)
            else:
                self._parse_dynamixel(now)
            self._reindex()

    # -- Feetech
    def _parse_feetech(self, now: float) -> None:
        buf = self._rx
        while buf:
            start = buf.find(b"\xff\xff")
            if start < 0:
                keep = 1 if buf[-1] == 0xFF else 0
                self.counters["garbage_bytes"] += len(buf) - keep
                del buf[: len(buf) - keep]
                return
            if start:
                self.counters["garbage_bytes"] += start
                del buf[:start]
            if len(buf) < 4:
                return
            if buf[2] == 0xFF:  # FF FF FF: the first FF was noise
                self.counters["garbage_bytes"] += 1
                del buf[0]
                continue
            length = buf[3]
            if length < 2:
                self.counters["garbage_bytes"] += 2
                del buf[:2]
                continue
            total = length + 4
            if len(buf) < total:
                return
            packet = bytes(buf[:total])
            if feetech_checksum(packet[2:-1]) != packet[-1]:
                self.counters["bad_checksum_in"] += 1
                del buf[:2]
                continue
            del buf[:total]
            self.counters["received"] += 1
            self._feetech_instruction(packet[2], packet[4], packet[5:-1], now)

    def _feetech_status(
        self, motor: EmulatedMotor, data: bytes, now: float, reply_id: int | None = None
    ) -> None:
        body = bytes((motor.status_error & 0x7F,)) + data
        reply_id = motor.id if reply_id is None else reply_id
        self._send(feetech_packet(reply_id, body), self._delay(motor), now)

    @staticmethod
    def _feetech_replies_to_all(motor: EmulatedMotor) -> bool:
        return bool(motor.registers[motor.model.control_table["Response_Status_Level"][0]])

    def _feetech_instruction(self, scs_id: int, inst: int, params: bytes, now: float) -> None:
        if scs_id == BROADCAST_ID:
            self._feetech_broadcast(inst, params, now)
            return
        motor = self._listening(scs_id)
        if motor is None:
            self.counters["ignored"] += 1
            return
        if inst == INST_PING:
            self._feetech_status(motor, b"", now)
        elif inst == INST_READ and len(params) >= 2:
            self._feetech_status(motor, motor.read_bytes(params[0], params[1]), now)
        elif inst in (INST_WRITE, INST_REG_WRITE, INST_ACTION):
            # The answer comes from the ID that was addressed, also when the write changes it.
            replies = self._feetech_replies_to_all(motor)
            if inst == INST_WRITE and len(params) >= 1:
                motor.protocol_write(params[0], params[1:])
            elif inst == INST_REG_WRITE and len(params) >= 1:
                motor.register_write(params[0], params[1:])
            elif inst == INST_ACTION:
                motor.action()
            if replies:
                self._feetech_status(motor, b"", now, scs_id)
        else:
            self.counters["unknown_instruction"] += 1

    def _feetech_broadcast(self, inst: int, params: bytes, now: float) -> None:
        if inst == INST_PING:
            for motor in self._all_listening():
                if motor.model.broadcast_ping:
                    self._feetech_status(motor, b"", now)
        elif inst == INST_SYNC_READ and len(params) >= 2:
            address, length = params[0], params[1]
            for scs_id in params[2:]:
                motor = self._listening(scs_id)
                if motor is not None and motor.model.sync_read:
                    self._feetech_status(motor, motor.read_bytes(address, length), now)
        elif inst == INST_SYNC_WRITE and len(params) >= 2:
            address, length = params[0], params[1]
            for i in range(2, len(params) - length, 1 + length):
                motor = self._listening(params[i])
                if motor is not None:
                    motor.protocol_write(address, params[i + 1 : i + 1 + length])
        elif inst == INST_WRITE and params:
            for motor in self._all_listening():
                motor.protocol_write(params[0], params[1:])
        elif inst == INST_REG_WRITE and params:
            for motor in self._all_listening():
                motor.register_write(params[0], params[1:])
        elif inst == INST_ACTION:
            for motor in self._all_listening():
                motor.action()
        else:
            self.counters["unknown_instruction"] += 1

    # -- Dynamixel 2.0
    def _parse_dynamixel(self, now: float) -> None:
        buf = self._rx
        header = b"\xff\xff\xfd"
        while buf:
            start = buf.find(header)
            if start < 0:
                keep = 2 if buf.endswith(b"\xff\xff") else 1 if buf.endswith(b"\xff") else 0
                self.counters["garbage_bytes"] += len(buf) - keep
                del buf[: len(buf) - keep]
                return
            if start:
                self.counters["garbage_bytes"] += start
                del buf[:start]
            if len(buf) < 7:
                return
            length = buf[5] | (buf[6] << 8)
            if buf[3] != 0x00 or length < 3 or length > 1024:
                self.counters["garbage_bytes"] += 3
                del buf[:3]
                continue
            total = length + 7
            if len(buf) < total:
                return
            packet = bytes(buf[:total])
            dxl_id = packet[4]
            if dxl_crc16(packet[:-2]) != (packet[-2] | (packet[-1] << 8)):
                self.counters["bad_checksum_in"] += 1
                del buf[:3]
                motor = self._listening(dxl_id)
                if motor is not None:
                    self._dxl_status(motor, DXL_ERR_CRC, b"", now)
                continue
            del buf[:total]
            self.counters["received"] += 1
            body = dxl_unstuff(packet[:-2])
            self._dxl_instruction(dxl_id, body[0], bytes(body[1:]), now)

    def _dxl_status(
        self,
        motor: EmulatedMotor,
        error: int,
        data: bytes,
        now: float,
        reply_id: int | None = None,
    ) -> None:
        body = bytes((INST_STATUS, (error | motor.status_error) & 0xFF)) + data
        reply_id = motor.id if reply_id is None else reply_id
        self._send(dxl_packet(reply_id, body), self._delay(motor), now)

    @staticmethod
    def _dxl_return_level(motor: EmulatedMotor) -> int:
        return motor.registers[motor.model.control_table["Status_Return_Level"][0]]

    def _dxl_read(self, motor: EmulatedMotor, address: int, length: int, now: float) -> None:
        if self._dxl_return_level(motor) < 1:
            return
        error = DXL_ERR_DATA_LENGTH if address + length > len(motor.registers) else 0
        self._dxl_status(motor, error, motor.read_bytes(address, length), now)

    def _dxl_ack(self, motor: EmulatedMotor, error: int, now: float) -> None:
        if self._dxl_return_level(motor) >= 2:
            self._dxl_status(motor, error, b"", now)

    def _dxl_ping(self, motor: EmulatedMotor, now: float) -> None:
        number = motor.model.model_number
        firmware = motor.read_register("Firmware_Version")
        self._dxl_status(motor, 0, bytes((number & 0xFF, number >> 8, firmware)), now)

    def _dxl_instruction(self, dxl_id: int, inst: int, params: bytes, now: float) -> None:
        if dxl_id == BROADCAST_ID:
            self._dxl_broadcast(inst, params, now)
            return
        motor = self._listening(dxl_id)
        if motor is None:
            self.counters["ignored"] += 1
            return
        word = _words(params)
        if inst == INST_PING:
            self._dxl_ping(motor, now)
        elif inst == INST_READ and len(params) >= 4:
            self._dxl_read(motor, word(0), word(2), now)
        elif inst == INST_WRITE and len(params) >= 2:
            # The answer comes from the ID that was addressed, also when the write changes it.
            level = self._dxl_return_level(motor)
            error = motor.protocol_write(word(0), params[2:])
            if level >= 2:
                self._dxl_status(motor, error, b"", now, dxl_id)
        elif inst == INST_REG_WRITE and len(params) >= 2:
            motor.register_write(word(0), params[2:])
            self._dxl_ack(motor, 0, now)
        elif inst == INST_ACTION:
            motor.action()  # the SDK does not wait for a status packet after ACTION
        elif inst == INST_FACTORY_RESET:
            self._dxl_ack(motor, 0, now)  # answered; registers are kept
        elif inst == INST_REBOOT:
            self._dxl_ack(motor, 0, now)
            motor.reboot()
        elif inst == INST_CLEAR:
            motor.clear_multi_turn()
            self._dxl_ack(motor, 0, now)
        else:
            self.counters["unknown_instruction"] += 1
            self._dxl_ack(motor, DXL_ERR_INSTRUCTION, now)

    def _dxl_broadcast(self, inst: int, params: bytes, now: float) -> None:
        word = _words(params)
        if inst == INST_PING:
            for motor in self._all_listening():
                self._dxl_ping(motor, now)
        elif inst == INST_SYNC_READ and len(params) >= 4:
            address, length = word(0), word(2)
            for dxl_id in params[4:]:
                motor = self._listening(dxl_id)
                if motor is not None:
                    self._dxl_read(motor, address, length, now)
        elif inst == INST_FAST_SYNC_READ and len(params) >= 4:
            self._dxl_fast_sync_read(word(0), word(2), params[4:], now)
        elif inst == INST_SYNC_WRITE and len(params) >= 4:
            address, length = word(0), word(2)
            for i in range(4, len(params) - length, 1 + length):
                motor = self._listening(params[i])
                if motor is not None:
                    motor.protocol_write(address, params[i + 1 : i + 1 + length])
        elif inst == INST_BULK_READ:
            for i in range(0, len(params) - 4, 5):
                motor = self._listening(params[i])
                if motor is not None:
                    self._dxl_read(motor, word(i + 1), word(i + 3), now)
        elif inst == INST_BULK_WRITE:
            i = 0
            while i + 5 <= len(params):
                length = word(i + 3)
                motor = self._listening(params[i])
                if motor is not None:
                    motor.protocol_write(word(i + 1), params[i + 5 : i + 5 + length])
                i += 5 + length
        elif inst == INST_WRITE and len(params) >= 2:
            for motor in self._all_listening():
                motor.protocol_write(word(0), params[2:])
        elif inst == INST_REG_WRITE and len(params) >= 2:
            for motor in self._all_listening():
                motor.register_write(word(0), params[2:])
        elif inst == INST_ACTION:
            for motor in self._all_listening():
                motor.action()
        elif inst == INST_REBOOT:
            for motor in self._all_listening():
                motor.reboot()
        else:
            self.counters["unknown_instruction"] += 1

    def _dxl_fast_sync_read(self, address: int, length: int, ids: bytes, now: float) -> None:
        """One status packet (ID 0xFE): ERR ID data CRC per servo, the last CRC being the
        packet's. Not stuffed. Nothing is sent if a listed servo is missing (as the chain of
        answers breaks on a real bus; the host times out)."""
        motors = [self._listening(i) for i in ids]
        if not motors or any(m is None or self._dxl_return_level(m) < 1 for m in motors):
            self.counters["ignored"] += 1
            return
        body = bytearray((0xFF, 0xFF, 0xFD, 0x00, BROADCAST_ID, 0, 0, INST_STATUS))
        length_field = 1 + (length + 4) * len(motors)
        body[5], body[6] = length_field & 0xFF, length_field >> 8
        delay = 0.0
        for index, motor in enumerate(motors):
            assert motor is not None
            body += bytes((motor.status_error, motor.id)) + motor.read_bytes(address, length)
            delay += self._delay(motor)
            if index < len(motors) - 1:
                crc = dxl_crc16(body)
                body += bytes((crc & 0xFF, crc >> 8))
        crc = dxl_crc16(body)
        body += bytes((crc & 0xFF, crc >> 8))
        self._send(bytes(body), delay, now)


def _words(params: bytes) -> Callable[[int], int]:
    def word(index: int) -> int:
        return params[index] | (params[index + 1] << 8)

    return word


# ----------------------------------------------------------------------------- command line


def _parse_motors(spec: str) -> dict[int, str]:
    motors: dict[int, str] = {}
    for item in spec.split(","):
        motor_id, _, model = item.partition(":")
        motors[int(motor_id)] = model.strip()
    return motors


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lerobot_ros.testing.servo_bus",
        description="Emulate a servo bus on a pseudo-terminal for the real Feetech/Dynamixel SDKs.",
    )
    parser.add_argument("--robot", choices=sorted(ROBOTS), help="an arm's ids and servo models")
    parser.add_argument("--motors", help="instead of --robot: id:model,... (1:sts3215,2:sts3215)")
    parser.add_argument("--protocol", choices=(FEETECH, DYNAMIXEL))
    parser.add_argument("--link", help="symlink to create to the pty (e.g. /tmp/so101_follower)")
    parser.add_argument("--baudrate", type=int, default=1_000_000)
    parser.add_argument("--speed", type=float, help="no-load speed, ticks/s (model default)")
    parser.add_argument("--corrupt-rate", type=float, default=0.0)
    parser.add_argument("--drop-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--leader-motion", action="store_true", help="joints with torque off follow a slow sine"
    )
    parser.add_argument(
        "--stats", type=float, default=0.0, help="print counters to stderr every N s (0: never)"
    )
    args = parser.parse_args(None if argv is None else list(argv))

    if args.robot and args.motors:
        parser.error("give --robot or --motors, not both")
    if args.robot:
        protocol, motors = ROBOTS[args.robot]
        if args.protocol and args.protocol != protocol:
            parser.error(f"{args.robot} is a {protocol} arm")
    elif args.motors:
        motors = _parse_motors(args.motors)
        protocol = args.protocol or (MODELS[next(iter(motors.values()))].protocol)
    else:
        parser.error("give --robot or --motors")

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        bus = EmulatedServoBus(
            protocol,
            motors,
            link=args.link,
            baudrate=args.baudrate,
            speed=args.speed,
            seed=args.seed,
            leader_motion=args.leader_motion,
        )
    except (ValueError, OSError) as exc:
        print(f"servo_bus: {exc}", file=sys.stderr)
        return 2
    bus.corrupt_rate = args.corrupt_rate
    bus.drop_rate = args.drop_rate
    bus.start()
    print(bus.port, flush=True)
    print(
        f"servo_bus: {protocol} {dict(sorted(motors.items()))} on {bus.device}"
        + (f" (link {args.link})" if args.link else ""),
        file=sys.stderr,
        flush=True,
    )
    try:
        while not stop.wait(args.stats or 0.5):
            if args.stats:
                print(f"servo_bus: {bus.counters}", file=sys.stderr, flush=True)
    finally:
        bus.stop()
    print(f"servo_bus: stopped {bus.counters}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
