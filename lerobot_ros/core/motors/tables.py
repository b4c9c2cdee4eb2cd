"""Servo models: model numbers, control tables, value encodings, baud-rate codes.

Facts from the Feetech STS/SMS/SCS and ROBOTIS X-series manuals as used by LeRobot 0.4.4
(see docs in /work/shared/reference/arms.md). Register names follow LeRobot's, so that a
LeRobot user finds the same names here.

Encodings
- Feetech STS/SMS: some registers are sign-magnitude, bit N = sign, bits below = magnitude
  (Goal/Present_Position bit 15, Homing_Offset bit 11, Present_Load bit 10, ...).
  Multi-byte words are little-endian (LeRobot "protocol 0").
- Feetech SCS (LeRobot "protocol 1"): no signed registers, big-endian words, no Sync Read.
- Dynamixel X (protocol 2.0): signed registers are two's complement over their byte size,
  little-endian.

`encode()`/`decode()` convert between a signed integer and the register's unsigned wire value;
`to_bytes()`/`from_bytes()` between the wire value and the bytes on the bus. Nothing here
imports a servo SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

FEETECH = "feetech"
DYNAMIXEL = "dynamixel"

# ----------------------------------------------------------------------------------- Feetech
# EPROM registers 0..27 are laid out the same on STS/SMS and SCS servos.
_FEETECH_EPROM: dict[str, tuple[int, int]] = {
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
}

_STS_SMS_TABLE: dict[str, tuple[int, int]] = {
    # EPROM
    **_FEETECH_EPROM,
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
    # SRAM
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
    # Factory
    "Moving_Velocity": (80, 1),
    "Moving_Velocity_Threshold": (80, 1),
    "DTs": (81, 1),
    "Velocity_Unit_factor": (82, 1),
    "Hts": (83, 1),
    "Maximum_Velocity_Limit": (84, 1),
    "Maximum_Acceleration": (85, 1),
    "Acceleration_Multiplier": (86, 1),
}

_SCS_TABLE: dict[str, tuple[int, int]] = {
    # EPROM
    **_FEETECH_EPROM,
    "Protective_Torque": (37, 1),
    "Protection_Time": (38, 1),
    # SRAM
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

# Sign-magnitude: register -> index of the sign bit.
_STS_SMS_SIGN_BITS: dict[str, int] = {
    "Homing_Offset": 11,
    "Goal_Position": 15,
    "Goal_Velocity": 15,
    "Present_Position": 15,
    "Present_Velocity": 15,
    "Present_Load": 10,
}

# Baud rate (bit/s) -> Baud_Rate register code (same for STS/SMS and SCS in LeRobot).
_FEETECH_BAUD_CODES: dict[int, int] = {
    1_000_000: 0,
    500_000: 1,
    250_000: 2,
    128_000: 3,
    115_200: 4,
    57_600: 5,
    38_400: 6,
    19_200: 7,
}

# --------------------------------------------------------------------------------- Dynamixel
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
    "Present_Current": (126, 2),  # XL430: Present_Load (0.1 %); XL330/XM: current
    "Present_Velocity": (128, 4),
    "Present_Position": (132, 4),
    "Velocity_Trajectory": (136, 4),
    "Position_Trajectory": (140, 4),
    "Present_Input_Voltage": (144, 2),
    "Present_Temperature": (146, 1),
}
# XL430 / XC430 have no current control: no Current_Limit (38) and no Goal_Current (102).
_X_NO_CURRENT_TABLE = {
    k: v for k, v in _X_TABLE.items() if k not in ("Current_Limit", "Goal_Current")
}

# Two's complement registers (their size comes from the control table).
_X_SIGNED: frozenset[str] = frozenset(
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

_X_BAUD_CODES: dict[int, int] = {
    9_600: 0,
    57_600: 1,
    115_200: 2,
    1_000_000: 3,
    2_000_000: 4,
    3_000_000: 5,
    4_000_000: 6,
}


# ------------------------------------------------------------------------------------ models
@dataclass(frozen=True)
class ModelInfo:
    """Everything the bus needs to know about one servo model."""

    name: str
    protocol: str  # "feetech" | "dynamixel"
    protocol_version: int  # Feetech: 0 (STS/SMS) or 1 (SCS); Dynamixel: 2
    model_number: int
    resolution: int  # ticks per revolution
    table: Mapping[str, tuple[int, int]]  # register -> (address, size in bytes)
    baud_codes: Mapping[int, int]  # bit/s -> Baud_Rate register code
    sign_bits: Mapping[str, int] = field(default_factory=dict)  # sign-magnitude registers
    twos_complement: frozenset[str] = frozenset()  # two's complement registers
    big_endian: bool = False  # multi-byte words high byte first (Feetech SCS)
    sync_read: bool = True  # the protocol has a Sync Read instruction

    @property
    def max_res(self) -> int:
        """resolution - 1: LeRobot's denominator in the degree conversion (4095)."""
        return self.resolution - 1

    def address(self, register: str) -> tuple[int, int]:
        try:
            return self.table[register]
        except KeyError:
            raise KeyError(
                f"register {register!r} is not in the {self.name} control table"
            ) from None


def _feetech(name: str, number: int, *, scs: bool = False) -> ModelInfo:
    return ModelInfo(
        name=name,
        protocol=FEETECH,
        protocol_version=1 if scs else 0,
        model_number=number,
        resolution=1024 if scs else 4096,
        table=MappingProxyType(_SCS_TABLE if scs else _STS_SMS_TABLE),
        baud_codes=MappingProxyType(_FEETECH_BAUD_CODES),
        sign_bits=MappingProxyType({} if scs else _STS_SMS_SIGN_BITS),
        big_endian=scs,
        sync_read=not scs,
    )


def _dynamixel(name: str, number: int, *, current: bool = True) -> ModelInfo:
    return ModelInfo(
        name=name,
        protocol=DYNAMIXEL,
        protocol_version=2,
        model_number=number,
        resolution=4096,
        table=MappingProxyType(_X_TABLE if current else _X_NO_CURRENT_TABLE),
        baud_codes=MappingProxyType(_X_BAUD_CODES),
        twos_complement=_X_SIGNED,
    )


MODELS: Mapping[str, ModelInfo] = MappingProxyType(
    {
        m.name: m
        for m in (
            _feetech("sts3215", 777),
            _feetech("sts3250", 2825),
            _feetech("sm8512bl", 11272),
            _feetech("scs0009", 1284, scs=True),
            _dynamixel("xl430-w250", 1060, current=False),
            _dynamixel("xc430-w150", 1070, current=False),
            _dynamixel("xl330-m288", 1200),
            _dynamixel("xl330-m077", 1190),
            _dynamixel("xm430-w350", 1020),
            _dynamixel("xm540-w270", 1120),
        )
    }
)


def model_info(model: str) -> ModelInfo:
    """The ModelInfo of `model` ("sts3215", "xl430-w250", ...); KeyError lists the known ones."""
    try:
        return MODELS[model]
    except KeyError:
        raise KeyError(f"unknown servo model {model!r}; known: {', '.join(MODELS)}") from None


def model_name(protocol: str, model_number: int) -> str | None:
    """The model with this number on this protocol, or None (for error messages)."""
    for m in MODELS.values():
        if m.protocol == protocol and m.model_number == model_number:
            return m.name
    return None


def address(model: str, register: str) -> tuple[int, int]:
    """(address, size) of `register` on `model`."""
    return model_info(model).address(register)


def baud_code(model: str, baudrate: int) -> int:
    """The Baud_Rate register code that selects `baudrate` on `model`."""
    codes = model_info(model).baud_codes
    try:
        return codes[baudrate]
    except KeyError:
        raise ValueError(
            f"{model} does not support {baudrate} bit/s; supported: {', '.join(map(str, codes))}"
        ) from None


# --------------------------------------------------------------------------------- encodings
def encode(model: str, register: str, value: int) -> int:
    """Signed value -> the register's unsigned wire value. ValueError when it does not fit."""
    info = model_info(model)
    size = info.address(register)[1]
    return _encode(info, register, size, value)


def decode(model: str, register: str, raw: int) -> int:
    """The register's unsigned wire value -> signed value."""
    info = model_info(model)
    size = info.address(register)[1]
    return _decode(info, register, size, raw)


def _encode(info: ModelInfo, register: str, size: int, value: int) -> int:
    value = int(value)
    bits = 8 * size
    sign_bit = info.sign_bits.get(register)
    if sign_bit is not None:
        limit = (1 << sign_bit) - 1
        if abs(value) > limit:
            raise ValueError(
                f"{info.name} {register}: {value} does not fit (sign-magnitude, |value| <= {limit})"
            )
        return (1 << sign_bit) | -value if value < 0 else value
    if register in info.twos_complement:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if not lo <= value <= hi:
            raise ValueError(f"{info.name} {register}: {value} is outside {lo}..{hi}")
        return value & ((1 << bits) - 1)
    hi = (1 << bits) - 1
    if not 0 <= value <= hi:
        raise ValueError(f"{info.name} {register}: {value} is outside 0..{hi}")
    return value


def _decode(info: ModelInfo, register: str, size: int, raw: int) -> int:
    sign_bit = info.sign_bits.get(register)
    if sign_bit is not None:
        magnitude = raw & ((1 << sign_bit) - 1)
        return -magnitude if (raw >> sign_bit) & 1 else magnitude
    if register in info.twos_complement:
        bits = 8 * size
        return raw - (1 << bits) if raw & (1 << (bits - 1)) else raw
    return raw


def to_bytes(raw: int, size: int, big_endian: bool = False) -> list[int]:
    """Wire value -> bytes as the SDKs send them (SCS: big-endian within each 16-bit word)."""
    if size == 1:
        return [raw & 0xFF]
    if size == 2:
        return [(raw >> 8) & 0xFF, raw & 0xFF] if big_endian else [raw & 0xFF, (raw >> 8) & 0xFF]
    if size == 4:
        lo, hi = raw & 0xFFFF, (raw >> 16) & 0xFFFF
        return to_bytes(lo, 2, big_endian) + to_bytes(hi, 2, big_endian)
    raise ValueError(f"unsupported register size {size}")


def from_bytes(
    data: list[int] | bytes, size: int, big_endian: bool = False, offset: int = 0
) -> int:
    """Bytes -> wire value (inverse of `to_bytes`)."""
    if size == 1:
        return data[offset]
    if size == 2:
        a, b = data[offset], data[offset + 1]
        return (a << 8) | b if big_endian else a | (b << 8)
    if size == 4:
        return from_bytes(data, 2, big_endian, offset) | (
            from_bytes(data, 2, big_endian, offset + 2) << 16
        )
    raise ValueError(f"unsupported register size {size}")


__all__ = [
    "DYNAMIXEL",
    "FEETECH",
    "MODELS",
    "ModelInfo",
    "address",
    "baud_code",
    "decode",
    "encode",
    "from_bytes",
    "model_info",
    "model_name",
    "to_bytes",
]
