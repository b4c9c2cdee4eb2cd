"""`BusArm`: an ArmBackend for a real arm on a Feetech or Dynamixel bus.

connect() = bus open, motors checked, the user's LeRobot calibration applied, configure
registers written, torque OFF. enable() = goal := present position, then torque ON (no jump).
close() = torque OFF (retried) and port closed; safe to call on a dead port.
Positions cross this class in radians; ticks exist only inside (lerobot_ros.core.motors.units).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lerobot_ros.core.backends import ARM_BACKENDS, ArmState, DeviceDisconnectedError
from lerobot_ros.core.hardware.calibrate import CalibrationSession
from lerobot_ros.core.hardware.robots import ArmHardware, hardware_for
from lerobot_ros.core.motors import (
    BUSES,
    BusDisconnected,
    MotorBus,
    MotorCalibration,
    calibration_path,
    load_calibration,
    rad_to_ticks_array,
    ticks_to_rad_array,
)
from lerobot_ros.core.robots import RobotProfile, get_robot

TELEMETRY_PERIOD = 1.0  # s between temperature/voltage reads (they cost bus time)
# Register names of the telemetry per bus; values are converted to SI in `_telemetry`.
_TELEMETRY = {
    "feetech": {
        "Present_Temperature": ("temperature_c", 1.0),
        "Present_Voltage": ("voltage_v", 0.1),
    },
    "dynamixel": {
        "Present_Temperature": ("temperature_c", 1.0),
        "Present_Input_Voltage": ("voltage_v", 0.1),
    },
}


class CalibrationMissingError(FileNotFoundError):
    """No LeRobot calibration file for this arm: run the calibration first."""


class BusArm:
    """ArmBackend over a MotorBus. `joint_names` follow the robot profile (motor names)."""

    def __init__(
        self,
        hardware: ArmHardware,
        port: str,
        calibration_file: str | Path,
        joint_names: Sequence[str],
        *,
        baudrate: int = 1_000_000,
        num_retry: int = 2,
    ) -> None:
        missing = [j for j in joint_names if j not in hardware.motor_names]
        if missing:
            raise ValueError(f"joints {missing} have no motor in {list(hardware.motor_names)}")
        self.hardware = hardware
        self.joint_names = list(joint_names)
        self.calibration_file = Path(calibration_file)
        self.bus: MotorBus = BUSES.create(
            hardware.bus, port, hardware.motors, baudrate=baudrate, num_retry=num_retry
        )
        self.calibration: dict[str, MotorCalibration] = {}
        self._mids = np.full(len(self.joint_names), 2047.5)  # until calibrated: raw mid-turn
        self._session: CalibrationSession | None = None
        self._enabled = False
        self._telemetry: dict[str, float] = {}
        self._telemetry_at = 0.0

    # --- lifecycle ----------------------------------------------------------------------------
    def connect(self) -> None:
        """Open the bus and apply the calibration file. Without a file the arm still connects
        (talking, torque off, positions around mid-range) so that it can be calibrated, but
        enable() refuses until it is."""
        calibration = None
        if self.calibration_file.is_file():
            calibration = load_calibration(self.calibration_file)
            unknown = set(self.hardware.motor_names) - set(calibration)
            if unknown:
                raise ValueError(f"{self.calibration_file}: no entry for motors {sorted(unknown)}")
        self._wrap(self.bus.connect)  # opens the port, pings every motor, checks models
        self._wrap(self.bus.disable_torque)  # EEPROM writes need torque off
        if calibration is not None:
            self._apply({m: calibration[m] for m in self.hardware.motor_names})
        for w in self.hardware.configure:
            targets = [w.motor] if w.motor else list(self.hardware.motor_names)
            for motor in targets:
                self._wrap(self.bus.write, w.register, motor, w.value)
        if self.hardware.torque_on_when_inactive:
            self._wrap(self.bus.enable_torque, list(self.hardware.torque_on_when_inactive))

    def _apply(self, calibration: dict[str, MotorCalibration]) -> None:
        stored = self._wrap(self.bus.read_calibration)
        if any(_registers(stored[m]) != _registers(c) for m, c in calibration.items()):
            # The file is the user's calibration: the motors are made to match it.
            self._wrap(self.bus.write_calibration, calibration)
        self.calibration = calibration
        self._mids = np.array(
            [(calibration[j].range_min + calibration[j].range_max) / 2 for j in self.joint_names]
        )

    @property
    def calibrated(self) -> bool:
        return bool(self.calibration)

    def begin_calibration(self) -> str:
        """Start LeRobot's procedure (torque off; the arm must be mid-range now)."""
        if self._enabled:
            raise RuntimeError("torque is on: deactivate the arm before calibrating")
        self._session = CalibrationSession(self.bus, self.hardware, self.calibration_file)
        self._wrap(self._session.begin)
        return (
            "recording: move every joint except "
            f"{', '.join(self.hardware.full_turn)} through its whole range, then stop"
        )

    def finish_calibration(self) -> str:
        if self._session is None:
            raise RuntimeError("no calibration in progress")
        session, self._session = self._session, None
        calibration = self._wrap(session.finish)
        self._apply(calibration)
        return f"saved {self.calibration_file}"

    def enable(self) -> None:
        if not self.calibrated:
            raise CalibrationMissingError(
                f"no calibration file {self.calibration_file}: calibrate this arm first "
                "(lerobot_ros_calibrate, or the node's ~/calibrate/start and ~/calibrate/stop "
                "services), or point 'calibration_file' at your LeRobot calibration"
            )
        present = self._wrap(self.bus.sync_read, "Present_Position", self.joint_names)
        self._wrap(self.bus.sync_write, "Goal_Position", present)  # goal = present: no jump
        self._wrap(self.bus.enable_torque)
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False
        self._wrap(self.bus.disable_torque)

    def close(self) -> None:
        """Torque off (retried by the bus) and close the port, even if the first part fails."""
        self._enabled = False
        try:
            if self.bus.is_connected:
                self._wrap(self.bus.disable_torque)
        finally:
            self.bus.disconnect()

    # --- I/O ------------------------------------------------------------------------------------
    def read(self) -> ArmState:
        if self._session is not None:
            self._wrap(self._session.record)
        raw = self._wrap(self.bus.sync_read, "Present_Position", self.joint_names)
        stamp = time.time()
        ticks = np.array([raw[j] for j in self.joint_names], dtype=float)
        if stamp - self._telemetry_at >= TELEMETRY_PERIOD:
            self._telemetry_at = stamp
            self._telemetry = self._read_telemetry()
        return ArmState(position=ticks_to_rad_array(ticks, self._mids), stamp=stamp)

    def write(self, position: np.ndarray) -> None:
        if not self._enabled:
            return
        ticks = rad_to_ticks_array(np.asarray(position, dtype=float), self._mids)
        self._wrap(
            self.bus.sync_write,
            "Goal_Position",
            {j: int(t) for j, t in zip(self.joint_names, ticks, strict=True)},
        )

    def step(self, dt: float) -> None:
        """Real hardware moves by itself."""

    def diagnostics(self) -> dict[str, Any]:
        s = self.bus.stats
        out: dict[str, Any] = {
            "port": self.bus.port,
            "bus_transactions": s.transactions,
            "bus_errors": s.errors,
            "bus_retries": s.retries,
            "bus_disconnects": s.disconnects,
            "bus_last_error": s.last_error,
        }
        out.update({f"errors.{m}": n for m, n in sorted(s.errors_by_motor.items())})
        out.update(self._telemetry)
        return out

    def _read_telemetry(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for register, (key, scale) in _TELEMETRY[self.hardware.bus].items():
            values = self._wrap(self.bus.sync_read, register, self.joint_names)
            out.update({f"{key}.{m}": round(v * scale, 2) for m, v in values.items()})
        return out

    @staticmethod
    def _wrap(fn: Any, *args: Any) -> Any:
        """Bus calls, with a lost port re-raised as the backend-level DeviceDisconnectedError."""
        try:
            return fn(*args)
        except BusDisconnected as exc:
            raise DeviceDisconnectedError(str(exc)) from exc


def _registers(c: MotorCalibration) -> tuple[int, int, int]:
    """What connect() writes to a motor (Drive_Mode is not written, as in LeRobot)."""
    return (c.homing_offset, c.range_min, c.range_max)


def create_bus_arm(
    robot: RobotProfile | str,
    role: str,
    *,
    port: str = "",
    calibration_file: str = "",
    calibration_dir: str = "",
    robot_id: str = "",
    **_sim_options: Any,
) -> BusArm:
    """ARM_BACKENDS factory for 'feetech' and 'dynamixel' (the robot decides which bus)."""
    profile = get_robot(robot) if isinstance(robot, str) else robot
    hardware = hardware_for(profile.name, role)
    if not port:
        raise ValueError("the 'port' parameter is empty: name the serial port (e.g. /dev/ttyACM0)")
    path = calibration_file or calibration_path(
        hardware.calibration_kind,
        hardware.calibration_name,
        robot_id or f"{profile.name}_{role}",
        calibration_dir or None,
    )
    return BusArm(hardware, port, path, profile.joint_names)


ARM_BACKENDS.register("feetech")(create_bus_arm)
ARM_BACKENDS.register("dynamixel")(create_bus_arm)
