"""LeRobot's calibration procedure for a bus arm, split into steps so that a ROS node (two
services) and a terminal CLI can both drive it; nothing here waits for a keyboard.

1. begin(): torque off, calibration operating mode, limits opened, homing offsets written so
   that the pose the arm is in NOW (the user put it in the middle of its range) reads half a
   turn; ranges start recording.
2. record(): one reading of every joint (call it while the user moves every joint through its
   whole range; full-turn joints such as wrist_roll are not recorded).
3. finish(): ranges written to the motors, the LeRobot calibration file saved, returned.
The file is the same JSON LeRobot writes, so it also works with LeRobot itself.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lerobot_ros.core.hardware.robots import ArmHardware, hardware_for
from lerobot_ros.core.motors import (
    BUSES,
    MotorBus,
    MotorCalibration,
    RangeRecorder,
    calibration_path,
    homing_offset_for,
    save_calibration,
)

FULL_RANGE = (0, 4095)


class CalibrationSession:
    """One calibration of the arm on `bus`, saved to `path` by finish()."""

    def __init__(self, bus: MotorBus, hardware: ArmHardware, path: str | Path) -> None:
        self.bus = bus
        self.hardware = hardware
        self.path = Path(path)
        self.recorder = RangeRecorder(hardware.motor_names, full_turn=hardware.full_turn)
        self.offsets: dict[str, int] = {}
        self.started = False

    def begin(self) -> None:
        bus, hw = self.bus, self.hardware
        names = list(hw.motor_names)
        bus.disable_torque()
        for m in names:
            bus.write("Operating_Mode", m, hw.calibration_mode)
            if m in hw.reversed_motors:
                bus.write("Drive_Mode", m, 1)
        # Open the limits and zero the offsets, then read where the arm really is.
        bus.write_calibration(
            {m: MotorCalibration(bus.motors[m].id, 0, 0, *FULL_RANGE) for m in names}
        )
        raw = bus.sync_read("Present_Position", names)
        self.offsets = {m: homing_offset_for(raw[m], hw.bus) for m in names}
        for m, offset in self.offsets.items():
            bus.write("Homing_Offset", m, offset)
        self.started = True

    def record(self) -> dict[str, tuple[int, int] | None]:
        self.recorder.update(
            self.bus.sync_read("Present_Position", list(self.hardware.motor_names))
        )
        return self.recorder.current()

    def finish(self) -> dict[str, MotorCalibration]:
        if not self.started:
            raise RuntimeError("calibration was not started")
        ranges = self.recorder.ranges()  # CalibrationError names joints that never moved
        calib = {
            m: MotorCalibration(
                id=self.bus.motors[m].id,
                drive_mode=1 if m in self.hardware.reversed_motors else 0,
                homing_offset=self.offsets[m],
                range_min=ranges[m][0],
                range_max=ranges[m][1],
            )
            for m in self.hardware.motor_names
        }
        self.bus.write_calibration(calib)
        save_calibration(self.path, calib)
        return calib


def main(argv: list[str] | None = None) -> int:
    """Terminal calibration without ROS: `lerobot_ros_calibrate --robot so101 --role follower
    --port /dev/ttyACM0 --id my_arm` (writes LeRobot's calibration file)."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--robot", default="so101")
    p.add_argument("--role", choices=["follower", "leader"], default="follower")
    p.add_argument("--port", required=True)
    p.add_argument("--id", default="", help="LeRobot robot/teleop id (default <robot>_<role>)")
    p.add_argument("--calibration-dir", default="")
    p.add_argument("--seconds", type=float, default=0.0, help="record this long instead of ENTER")
    a = p.parse_args(argv)
    hw = hardware_for(a.robot, a.role)
    path = calibration_path(
        hw.calibration_kind,
        hw.calibration_name,
        a.id or f"{a.robot}_{a.role}",
        a.calibration_dir or None,
    )
    with BUSES.create(hw.bus, a.port, hw.motors) as bus:
        session = CalibrationSession(bus, hw, path)
        if not a.seconds:
            input(f"Move the {a.robot} {a.role} to the middle of its range, then press ENTER...")
        session.begin()
        print("Move every joint (except full-turn ones) through its whole range.")
        deadline = time.monotonic() + a.seconds if a.seconds else None
        if deadline is None:
            print("Press ENTER to stop recording.")
            import select

            while not select.select([sys.stdin], [], [], 0.0)[0]:
                session.record()
                time.sleep(0.01)
            sys.stdin.readline()
        else:
            while time.monotonic() < deadline:
                session.record()
                time.sleep(0.01)
        calib = session.finish()
    for m, c in calib.items():
        print(f"{m:14s} offset {c.homing_offset:6d}  range {c.range_min:5d} .. {c.range_max:5d}")
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
