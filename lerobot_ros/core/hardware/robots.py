"""How each supported arm sits on its servo bus, as data (facts: shared/reference/arms.md).

One entry per (robot, role). The arm backend and the calibration procedure read these; adding
an arm is adding an entry, not code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot_ros.core.motors import Motor
from lerobot_ros.core.robots import SO_ARM_JOINTS


@dataclass(frozen=True)
class Write:
    """One register write done at configure time (torque off). motor None = every motor."""

    register: str
    value: int
    motor: str | None = None


@dataclass(frozen=True)
class ArmHardware:
    bus: str  # "feetech" | "dynamixel" (a name in lerobot_ros.core.motors.BUSES)
    motors: tuple[Motor, ...]
    # LeRobot calibration location: <root>/<kind>/<name>/<id>.json
    calibration_kind: str  # "robots" | "teleoperators"
    calibration_name: str  # "so_follower", "so_leader", "koch_follower", "koch_leader"
    configure: tuple[Write, ...] = ()
    # Joints without end stops: their range is the whole turn (0..4095), not recorded.
    full_turn: tuple[str, ...] = ("wrist_roll",)
    # Operating mode written before calibrating (Feetech position 0; Koch extended position 4).
    calibration_mode: int = 0
    # Motors whose Drive_Mode bit is set when calibrating (Koch leader's elbow).
    reversed_motors: tuple[str, ...] = ()
    torque_on_when_inactive: tuple[str, ...] = field(default_factory=tuple)

    @property
    def motor_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.motors)


def _motors(models: tuple[str, ...]) -> tuple[Motor, ...]:
    return tuple(
        Motor(name, i + 1, model)
        for i, (name, model) in enumerate(zip(SO_ARM_JOINTS, models, strict=True))
    )


# lerobot's configure_motors for Feetech: no return delay, fastest acceleration ramp.
_FEETECH_COMMON = (
    Write("Return_Delay_Time", 0),
    Write("Maximum_Acceleration", 254),
    Write("Acceleration", 254),
    Write("Operating_Mode", 0),
)

SO_FOLLOWER = ArmHardware(
    bus="feetech",
    motors=_motors(("sts3215",) * 6),
    calibration_kind="robots",
    calibration_name="so_follower",
    configure=(
        *_FEETECH_COMMON,
        # Lower P than the factory 32 avoids shakiness (lerobot); D 32, I 0.
        Write("P_Coefficient", 16),
        Write("I_Coefficient", 0),
        Write("D_Coefficient", 32),
        # The gripper must not burn out when it squeezes an object.
        Write("Max_Torque_Limit", 500, "gripper"),
        Write("Protection_Current", 250, "gripper"),
        Write("Overload_Torque", 25, "gripper"),
    ),
)

SO_LEADER = ArmHardware(
    bus="feetech",
    motors=_motors(("sts3215",) * 6),
    calibration_kind="teleoperators",
    calibration_name="so_leader",
    configure=_FEETECH_COMMON,
)

KOCH_FOLLOWER = ArmHardware(
    bus="dynamixel",
    motors=_motors(
        ("xl430-w250", "xl430-w250", "xl330-m288", "xl330-m288", "xl330-m288", "xl330-m288")
    ),
    calibration_kind="robots",
    calibration_name="koch_follower",
    configure=(
        Write("Return_Delay_Time", 0),
        # Extended position (multi-turn) everywhere but the gripper, which uses current-based
        # position control so it can grip without overheating.
        *(Write("Operating_Mode", 4, j) for j in SO_ARM_JOINTS if j != "gripper"),
        Write("Operating_Mode", 5, "gripper"),
        Write("Position_P_Gain", 1500, "elbow_flex"),
        Write("Position_I_Gain", 0, "elbow_flex"),
        Write("Position_D_Gain", 600, "elbow_flex"),
    ),
    full_turn=("shoulder_pan", "wrist_roll"),
    calibration_mode=4,
)

KOCH_LEADER = ArmHardware(
    bus="dynamixel",
    motors=_motors(("xl330-m077",) * 6),
    calibration_kind="teleoperators",
    calibration_name="koch_leader",
    configure=(
        Write("Return_Delay_Time", 0),
        *(Write("Operating_Mode", 4, j) for j in SO_ARM_JOINTS if j != "gripper"),
        Write("Operating_Mode", 5, "gripper"),
    ),
    full_turn=("shoulder_pan", "wrist_roll"),
    calibration_mode=4,
    reversed_motors=("elbow_flex",),
    # The leader's gripper is torqued so it springs back like a trigger (lerobot koch_leader).
    torque_on_when_inactive=("gripper",),
)

HARDWARE: dict[tuple[str, str], ArmHardware] = {
    ("so101", "follower"): SO_FOLLOWER,
    ("so101", "leader"): SO_LEADER,
    ("so100", "follower"): SO_FOLLOWER,
    ("so100", "leader"): SO_LEADER,
    ("koch", "follower"): KOCH_FOLLOWER,
    ("koch", "leader"): KOCH_LEADER,
}


def hardware_for(robot: str, role: str) -> ArmHardware:
    try:
        return HARDWARE[(robot, role)]
    except KeyError:
        known = sorted({r for r, _ in HARDWARE})
        raise ValueError(
            f"no hardware description for robot {robot!r} as {role}; known: {known}"
        ) from None
