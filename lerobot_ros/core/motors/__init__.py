"""Servo buses (Feetech STS/SMS/SCS, Dynamixel X), LeRobot calibration files and the one
ticks <-> radians conversion. ROS-free; the servo SDKs are imported only when a bus is built."""

from lerobot_ros.core.motors.bus import (
    BUSES,
    BusDisconnected,
    BusError,
    BusStats,
    DynamixelBus,
    FeetechBus,
    Motor,
    MotorBus,
)
from lerobot_ros.core.motors.calibration import (
    CalibrationError,
    MotorCalibration,
    RangeRecorder,
    calibration_path,
    calibration_root,
    homing_offset_for,
    load_calibration,
    save_calibration,
)
from lerobot_ros.core.motors.units import (
    rad_to_ticks,
    rad_to_ticks_array,
    ticks_to_rad,
    ticks_to_rad_array,
)

__all__ = [
    "BUSES",
    "BusDisconnected",
    "BusError",
    "BusStats",
    "CalibrationError",
    "DynamixelBus",
    "FeetechBus",
    "Motor",
    "MotorBus",
    "MotorCalibration",
    "RangeRecorder",
    "calibration_path",
    "calibration_root",
    "homing_offset_for",
    "load_calibration",
    "rad_to_ticks",
    "rad_to_ticks_array",
    "save_calibration",
    "ticks_to_rad",
    "ticks_to_rad_array",
]
