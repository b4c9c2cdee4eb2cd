"""LeRobot calibration files: the record, the file format, where the files live, and the
ROS-free pieces of the calibration procedure (range recording, homing offsets).

File format (LeRobot 0.4.4, written by draccus = `json.dump(..., indent=4)`, no trailing
newline), keyed by motor name in bus order:

    {
        "shoulder_pan": {
            "id": 1,
            "drive_mode": 0,
            "homing_offset": -1470,
            "range_min": 758,
            "range_max": 3292
        },
        ...
    }
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

ROBOTS = "robots"
TELEOPERATORS = "teleoperators"
FIELDS = ("id", "drive_mode", "homing_offset", "range_min", "range_max")


class CalibrationError(ValueError):
    """A calibration file or a recorded range is unusable; the message says which and why."""


@dataclass(frozen=True)
class MotorCalibration:
    """One motor's calibration, field for field LeRobot's `MotorCalibration`."""

    id: int
    drive_mode: int
    homing_offset: int
    range_min: int
    range_max: int


# ------------------------------------------------------------------------------------- files
def load_calibration(path: str | os.PathLike[str]) -> dict[str, MotorCalibration]:
    """Read a LeRobot calibration file. Errors name the file, the motor and the field."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")  # FileNotFoundError names the file itself
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise CalibrationError(f"calibration file {path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise CalibrationError(
            f"calibration file {path}: expected a JSON object keyed by motor name, "
            f"got {type(data).__name__}"
        )
    if not data:
        raise CalibrationError(f"calibration file {path}: no motors in it")
    out: dict[str, MotorCalibration] = {}
    for motor, entry in data.items():
        where = f"calibration file {path}, motor {motor!r}"
        if not isinstance(entry, dict):
            raise CalibrationError(f"{where}: expected an object, got {type(entry).__name__}")
        missing = [f for f in FIELDS if f not in entry]
        if missing:
            raise CalibrationError(f"{where}: missing field {missing[0]!r}")
        unknown = [k for k in entry if k not in FIELDS]
        if unknown:
            raise CalibrationError(
                f"{where}: unknown field {unknown[0]!r} (expected {', '.join(FIELDS)})"
            )
        for f in FIELDS:
            v = entry[f]
            if not isinstance(v, int) or isinstance(v, bool):
                raise CalibrationError(f"{where}, field {f!r}: {v!r} is not an integer")
        calib = MotorCalibration(**{f: entry[f] for f in FIELDS})
        if calib.drive_mode not in (0, 1):
            raise CalibrationError(f"{where}, field 'drive_mode': {calib.drive_mode} is not 0 or 1")
        if calib.range_min > calib.range_max:
            raise CalibrationError(
                f"{where}, field 'range_min': {calib.range_min} is above range_max "
                f"{calib.range_max}"
            )
        out[motor] = calib
    ids = [c.id for c in out.values()]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        names = [m for m, c in out.items() if c.id == dup[0]]
        raise CalibrationError(
            f"calibration file {path}: motors {', '.join(map(repr, names))} share "
            f"field 'id' = {dup[0]}"
        )
    return out


def dumps_calibration(calib: Mapping[str, MotorCalibration]) -> str:
    """The exact text LeRobot writes for `calib` (key order = mapping order)."""
    return json.dumps({name: asdict(c) for name, c in calib.items()}, indent=4)


def save_calibration(path: str | os.PathLike[str], calib: Mapping[str, MotorCalibration]) -> None:
    """Write `calib` as LeRobot does (byte for byte); creates the directory; atomic replace."""
    path = Path(path)
    text = dumps_calibration(calib)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None  # an empty variable counts as unset


def calibration_root() -> Path:
    """LeRobot's HF_LEROBOT_CALIBRATION: $HF_LEROBOT_CALIBRATION, else $HF_LEROBOT_HOME/
    calibration, else $HF_HOME/lerobot/calibration, HF_HOME defaulting like huggingface_hub to
    $XDG_CACHE_HOME/huggingface, i.e. ~/.cache/huggingface."""
    if root := _env("HF_LEROBOT_CALIBRATION"):
        return Path(root).expanduser()
    if home := _env("HF_LEROBOT_HOME"):
        return Path(home).expanduser() / "calibration"
    hf_home = _env("HF_HOME")
    if hf_home is None:
        hf_home = os.path.join(_env("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(hf_home).expanduser() / "lerobot" / "calibration"


def calibration_path(
    kind: str, name: str, robot_id: str, calibration_dir: str | os.PathLike[str] | None = None
) -> Path:
    """`<root>/<kind>/<name>/<robot_id>.json`, or `<calibration_dir>/<robot_id>.json` when
    calibration_dir is given (it replaces root/kind/name, as LeRobot's `calibration_dir`).

    kind: "robots" or "teleoperators"; name: LeRobot's robot/teleop name ("so_follower",
    "so_leader", "koch_follower", "koch_leader"; 0.3.x used "so101_follower", ...)."""
    if kind not in (ROBOTS, TELEOPERATORS):
        raise ValueError(f"calibration kind must be {ROBOTS!r} or {TELEOPERATORS!r}, not {kind!r}")
    if not robot_id:
        raise ValueError("a calibration file needs a robot id (LeRobot's --robot.id)")
    if calibration_dir:
        return Path(calibration_dir).expanduser() / f"{robot_id}.json"
    if not name:
        raise ValueError("a calibration file needs the robot/teleoperator name")
    return calibration_root() / kind / name / f"{robot_id}.json"


# ------------------------------------------------------------------------------- procedure
def homing_offset_for(raw: int, protocol: str, resolution: int = 4096) -> int:
    """The Homing_Offset that makes a motor now at `raw` (read with offset 0) read half a turn
    (2047 for 4096 ticks).

    Feetech: Present = Actual - Homing_Offset  ->  offset = raw - 2047.
    Dynamixel: Present = Actual + Homing_Offset  ->  offset = 2047 - raw.
    """
    half = (resolution - 1) // 2
    if protocol == "feetech":
        return int(raw) - half
    if protocol == "dynamixel":
        return half - int(raw)
    raise ValueError(f"unknown protocol {protocol!r} (feetech or dynamixel)")


class RangeRecorder:
    """Records each joint's min/max raw position while the user moves the arm by hand.

    Full-turn joints (wrist_roll on SO-10x; shoulder_pan and wrist_roll on Koch) are not
    recorded: they get 0..resolution-1, as LeRobot does.
    """

    def __init__(
        self,
        motors: Sequence[str],
        full_turn: Iterable[str] = ("wrist_roll",),
        resolution: int = 4096,
    ) -> None:
        self.motors = list(motors)
        self.full_turn = {m for m in full_turn if m in self.motors}
        self.resolution = resolution
        self._min: dict[str, int] = {}
        self._max: dict[str, int] = {}
        self.samples = 0

    def update(self, raw: Mapping[str, int]) -> None:
        """Add one reading (e.g. a sync_read of Present_Position); unknown names are ignored."""
        for m in self.motors:
            if m in self.full_turn or m not in raw:
                continue
            v = int(raw[m])
            if m in self._min:
                if v < self._min[m]:
                    self._min[m] = v
                elif v > self._max[m]:
                    self._max[m] = v
            else:
                self._min[m] = self._max[m] = v
        self.samples += 1

    def current(self) -> dict[str, tuple[int, int] | None]:
        """What is recorded so far (None: not seen yet), for a live display; never raises."""
        out: dict[str, tuple[int, int] | None] = {}
        for m in self.motors:
            if m in self.full_turn:
                out[m] = (0, self.resolution - 1)
            else:
                out[m] = (self._min[m], self._max[m]) if m in self._min else None
        return out

    def ranges(self) -> dict[str, tuple[int, int]]:
        """(min, max) per joint. CalibrationError naming every joint that did not move."""
        bad = [m for m, r in self.current().items() if r is None or r[0] == r[1]]
        if bad:
            detail = ", ".join(
                f"{m} (never read)" if m not in self._min else f"{m} (stayed at {self._min[m]})"
                for m in bad
            )
            raise CalibrationError(
                f"no range recorded for {detail}: move every joint through its whole range "
                "before finishing"
            )
        return {m: r for m, r in self.current().items() if r is not None}


__all__ = [
    "ROBOTS",
    "TELEOPERATORS",
    "CalibrationError",
    "MotorCalibration",
    "RangeRecorder",
    "calibration_path",
    "calibration_root",
    "dumps_calibration",
    "homing_offset_for",
    "load_calibration",
    "save_calibration",
]
