"""Servo buses: Feetech (STS/SMS/SCS) and Dynamixel X over the vendors' Python SDKs.

`MotorBus` holds what both have in common: motors by name, register encodings, retries, the
recovery after a failed transaction, error messages and statistics. `FeetechBus` and
`DynamixelBus` only say which SDK calls to make. The SDKs are imported when a bus is built,
so importing this module (or choosing another backend) never loads a servo SDK.

Fault handling
- A communication error (no / corrupt / short status packet) is retried up to `num_retry`
  times (`stats.retries`); the last failure raises `BusError` naming the port, the motor and
  the register (`stats.errors`, `stats.errors_by_motor`).
- After every failed transaction the input is drained until the line has been quiet for a
  few byte times and then discarded with `ser.reset_input_buffer()`: `scservo_sdk` never
  discards stale input by itself, so the replies left over from a broken sync read would
  otherwise be taken as the answers to later reads (stale positions).
- An OS-level error (EIO, `termios.error` from `tcdrain` on an unplugged adapter,
  `serial.SerialException`) raises `BusDisconnected` at once, without retries
  (`stats.disconnects`), and closes the port: `reconnect()` opens it again.
- A status packet that carries a hardware-alert flag (overload, overheat, voltage, ...) still
  delivers its data; it is counted in `stats.alerts`. A Dynamixel instruction error (access,
  range, ...) raises `BusError`.

Every public method holds the bus lock, so a bus may be shared between threads.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lerobot_ros.core.motors import tables
from lerobot_ros.core.motors.calibration import MotorCalibration
from lerobot_ros.core.registry import Registry

try:
    import termios

    _OS_ERRORS: tuple[type[BaseException], ...] = (OSError, termios.error)
except ImportError:  # pragma: no cover - not POSIX
    _OS_ERRORS = (OSError,)


# ------------------------------------------------------------------------------------ errors
class BusError(RuntimeError):
    """A bus transaction failed. The message names the port, the motor (id and name), the
    register and what happened, e.g. "port /dev/ttyACM0, motor 3 (elbow_flex),
    Present_Position: no status packet after 3 tries"."""

    def __init__(
        self,
        message: str,
        *,
        port: str,
        motor_id: int | None = None,
        register: str | None = None,
    ) -> None:
        super().__init__(message)
        self.port = port
        self.motor_id = motor_id
        self.register = register

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_error, (type(self), str(self), self.port, self.motor_id, self.register))


class BusDisconnected(BusError):  # noqa: N818 - the name is the API
    """The port is gone (unplugged adapter, EIO, closed) or was never opened."""


def _rebuild_error(
    cls: type[BusError], message: str, port: str, motor_id: int | None, register: str | None
) -> BusError:
    return cls(message, port=port, motor_id=motor_id, register=register)


# ----------------------------------------------------------------------------- data classes
@dataclass(frozen=True)
class Motor:
    """One servo on a bus: joint name, bus id, model ("sts3215", "xl430-w250", ...)."""

    name: str
    id: int
    model: str


@dataclass
class BusStats:
    """Counters since the bus was built (or `reset()`)."""

    transactions: int = 0  # bus operations (a read, a write, one sync read, a ping ...)
    errors: int = 0  # operations that failed after all retries
    retries: int = 0  # extra attempts
    disconnects: int = 0  # OS-level failures (port gone)
    errors_by_motor: dict[str, int] = field(default_factory=dict)
    last_error: str = ""
    alerts: dict[str, int] = field(default_factory=dict)  # status packets with a hardware flag

    def reset(self) -> None:
        self.transactions = self.errors = self.retries = self.disconnects = 0
        self.errors_by_motor = {}
        self.alerts = {}
        self.last_error = ""


BUSES: Registry[MotorBus] = Registry("motor bus")

# Longest a single SDK read of the port blocks waiting for bytes (s); see MotorBus._open.
READ_BLOCK_S = 0.002

_Decoder = Callable[[list[int]], int]
_Encoder = Callable[[int], list[int]]


@dataclass
class _ReadPlan:
    """A cached sync read: the SDK group object and, per motor, (name, id, decoder)."""

    register: str
    size: int
    group: Any  # GroupSyncRead, or None: one read per motor
    items: list[tuple[str, int, _Decoder]]


@dataclass
class _WritePlan:
    register: str
    group: Any  # GroupSyncWrite, or None: one write per motor
    items: list[tuple[int, _Encoder]]
    names: tuple[str, ...]


# ---------------------------------------------------------------------------------- the bus
class MotorBus:
    """Motors on one serial port. Subclasses: `FeetechBus`, `DynamixelBus`."""

    protocol: str = ""
    sdk_name: str = ""

    def __init__(
        self,
        port: str,
        motors: Sequence[Motor],
        *,
        baudrate: int = 1_000_000,
        num_retry: int = 2,
        read_block_s: float = READ_BLOCK_S,
    ) -> None:
        self.port = str(port)
        # 0 = poll like the SDKs (lowest latency, a core spinning while waiting); > 0 = sleep
        # in select() up to this long per read (frees the CPU and the GIL for the node).
        self.read_block_s = float(read_block_s)
        self.baudrate = int(baudrate)
        if num_retry < 0:
            raise ValueError(f"num_retry must be >= 0, not {num_retry}")
        self.num_retry = int(num_retry)
        self.motors: dict[str, Motor] = {}
        self._infos: dict[str, tables.ModelInfo] = {}
        self._by_id: dict[int, Motor] = {}
        for m in motors:
            if not isinstance(m, Motor):
                raise TypeError(f"port {self.port}: expected Motor, got {m!r}")
            if m.name in self.motors:
                raise ValueError(f"port {self.port}: motor name {m.name!r} is used twice")
            if m.id in self._by_id:
                raise ValueError(
                    f"port {self.port}: motors {self._by_id[m.id].name!r} and {m.name!r} "
                    f"share id {m.id}"
                )
            if not 0 <= m.id <= 252:
                raise ValueError(f"port {self.port}: motor {m.name!r} has id {m.id}, not 0..252")
            try:
                info = tables.model_info(m.model)
            except KeyError as e:
                where = f"port {self.port}, motor {m.id} ({m.name})"
                raise ValueError(f"{where}: {e.args[0]}") from None
            if info.protocol != self.protocol:
                raise ValueError(
                    f"port {self.port}, motor {m.id} ({m.name}): {m.model} is a {info.protocol} "
                    f"servo, not {self.protocol}"
                )
            self.motors[m.name] = m
            self._infos[m.name] = info
            self._by_id[m.id] = m
        if not self.motors:
            raise ValueError(f"port {self.port}: a bus needs at least one motor")
        self.stats = BusStats()
        self._lock = threading.RLock()
        self._port_handler: Any = None
        self._packet_handler: Any = None
        self._read_plans: dict[tuple[str, tuple[str, ...] | None], _ReadPlan] = {}
        self._write_plans: dict[tuple[str, tuple[str, ...]], _WritePlan] = {}
        # Drain after a failure until the line has been quiet this long (s).
        self._quiet_s = 0.002 + 30 * 10 / self.baudrate
        self._sdk: Any = None
        self._ok = 0
        # Discard unread input before each instruction that expects a reply (dynamixel_sdk
        # does this itself; scservo_sdk does not, so a reply that came too late for its
        # transaction would otherwise be taken as the answer to the next one).
        self._clear_input = False
        self._init_protocol()

    # ------------------------------------------------------------------ subclass interface
    def _init_protocol(self) -> None:
        """Import the SDK, check the models agree on one protocol version."""
        raise NotImplementedError

    def _new_packet_handler(self) -> Any:
        raise NotImplementedError

    def _sdk_ping(self, motor_id: int) -> tuple[int | None, int, int]:
        """-> (model number or None, comm result, status error byte)."""
        raise NotImplementedError

    def _status_ok(self, error: int, motor: Motor | None, register: str | None) -> bool:
        """Judge a status packet's error byte: True = accept the data, False = retry;
        raises BusError for an error that a retry cannot fix."""
        if error:
            self._alert(motor, error)
        return True

    def _comm_text(self, comm: int) -> str:
        sdk = self._sdk
        return {
            sdk.COMM_PORT_BUSY: "port busy",
            sdk.COMM_TX_FAIL: "failed to transmit the instruction packet",
            sdk.COMM_RX_FAIL: "failed to receive the status packet",
            sdk.COMM_TX_ERROR: "invalid instruction packet",
            sdk.COMM_RX_WAITING: "status packet incomplete",
            sdk.COMM_RX_TIMEOUT: "no status packet",
            sdk.COMM_RX_CORRUPT: "corrupt status packet",
            sdk.COMM_NOT_AVAILABLE: "instruction not available on this protocol",
            _SHORT: "status packet too short",
            _SERVO_CRC: "servo reports a corrupt instruction packet (CRC error)",
        }.get(comm, f"communication result {comm}")

    # ------------------------------------------------------------------------- lifecycle
    @property
    def is_connected(self) -> bool:
        return self._port_handler is not None

    def connect(self, handshake: bool = True) -> None:
        """Open the port at `baudrate`, then (handshake) ping every motor and check its model.

        BusDisconnected if the port cannot be opened; BusError naming every missing motor or
        wrong model (the port is closed again then). Connecting twice is a no-op."""
        with self._lock:
            if self._port_handler is not None:
                return
            self._open()
            if handshake:
                try:
                    self._check_motors()
                except BaseException:
                    self._drop_port()
                    raise

    def disconnect(self) -> None:
        """Close the port (torque is left as it is). Safe to call twice."""
        with self._lock:
            self._drop_port()

    def reconnect(self) -> None:
        """Close (if open) and connect again, e.g. after the adapter was unplugged."""
        with self._lock:
            self._drop_port()
            self.connect()

    def __enter__(self) -> MotorBus:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def __repr__(self) -> str:
        motors = ", ".join(f"{m.name}={m.id}:{m.model}" for m in self.motors.values())
        state = "connected" if self.is_connected else "closed"
        return f"{type(self).__name__}({self.port!r}, {state}, [{motors}])"

    def _open(self) -> None:
        sdk = self._sdk
        port_handler = sdk.PortHandler(self.port)
        if port_handler.getCFlagBaud(self.baudrate) <= 0:
            raise BusError(
                f"port {self.port}: baud rate {self.baudrate} is not supported by {self.sdk_name}",
                port=self.port,
            )
        port_handler.baudrate = self.baudrate
        try:
            ok = port_handler.openPort()
        except _OS_ERRORS as e:
            raise BusDisconnected(
                f"port {self.port}: cannot open ({_describe(e)})", port=self.port
            ) from e
        if not ok:
            raise BusError(
                f"port {self.port}: cannot open at {self.baudrate} bit/s", port=self.port
            )
        # Both SDKs poll the port with a zero read timeout: a waiting transaction spins a core
        # and holds the GIL. A short blocking read returns as soon as the requested bytes are
        # there (no added latency) and sleeps in select() meanwhile; the SDKs' own packet
        # timeouts still apply (checked between reads, so overshoot <= READ_BLOCK_S).
        try:
            port_handler.ser.timeout = self.read_block_s
        except _OS_ERRORS as e:
            with contextlib.suppress(Exception):
                port_handler.ser.close()
            raise BusDisconnected(
                f"port {self.port}: cannot configure ({_describe(e)})", port=self.port
            ) from e
        self._port_handler = port_handler
        self._packet_handler = self._new_packet_handler()
        self._read_plans.clear()
        self._write_plans.clear()

    def _drop_port(self) -> None:
        port_handler, self._port_handler = self._port_handler, None
        self._read_plans.clear()
        self._write_plans.clear()
        if port_handler is not None and port_handler.ser is not None:
            # An unplugged adapter may fail to close: it is gone anyway.
            with contextlib.suppress(Exception):
                port_handler.ser.close()
            port_handler.is_open = False

    def _check_motors(self) -> None:
        problems: list[tuple[Motor, str | None, str]] = []
        tries = self.num_retry + 1
        for m in self.motors.values():
            expected = self._infos[m.name].model_number
            found = self._ping(m.id)
            if found is None:
                text = f"no reply to ping after {tries} tries (expected {m.model})"
                problems.append((m, None, text))
            elif found != expected:
                name = tables.model_name(self.protocol, found) or "unknown model"
                problems.append(
                    (m, "Model_Number", f"model {found} ({name}), expected {expected} ({m.model})")
                )
        if not problems:
            return
        m, register, text = problems[0]
        for pm, _, _ in problems:
            self._count_error(pm)
        if len(problems) == 1:
            message = f"{self._where(m, register)}: {text}"
        else:
            message = f"port {self.port}: {len(problems)} motors failed the check: " + "; ".join(
                f"motor {pm.id} ({pm.name}): {t}" for pm, _, t in problems
            )
        self.stats.last_error = message
        raise BusError(message, port=self.port, motor_id=m.id, register=register)

    # ------------------------------------------------------------------------- helpers
    def _where(self, motor: Motor | None, register: str | None) -> str:
        s = f"port {self.port}"
        if motor is not None:
            s += f", motor {motor.id} ({motor.name})"
        if register:
            s += f", {register}"
        return s

    def _count_error(self, motor: Motor | None) -> None:
        self.stats.errors += 1
        if motor is not None:
            by = self.stats.errors_by_motor
            by[motor.name] = by.get(motor.name, 0) + 1

    def _error(self, what: str, motor: Motor | None, register: str | None) -> BusError:
        message = f"{self._where(motor, register)}: {what}"
        self._count_error(motor)
        self.stats.last_error = message
        return BusError(
            message, port=self.port, motor_id=None if motor is None else motor.id, register=register
        )

    def _lost(
        self, exc: BaseException, motor: Motor | None, register: str | None
    ) -> BusDisconnected:
        message = f"{self._where(motor, register)}: port disconnected ({_describe(exc)})"
        self.stats.disconnects += 1
        self.stats.last_error = message
        self._drop_port()
        return BusDisconnected(
            message, port=self.port, motor_id=None if motor is None else motor.id, register=register
        )

    def _alert(self, motor: Motor | None, error: int) -> None:
        if motor is not None:
            a = self.stats.alerts
            a[motor.name] = a.get(motor.name, 0) + 1

    def _handles(self, motor: Motor | None = None, register: str | None = None) -> tuple[Any, Any]:
        if self._port_handler is None:
            message = f"{self._where(motor, register)}: not connected"
            raise BusDisconnected(
                message,
                port=self.port,
                motor_id=None if motor is None else motor.id,
                register=register,
            )
        return self._packet_handler, self._port_handler

    def _recover(self, motor: Motor | None, register: str | None) -> None:
        """After a failed transaction: let the rest of the replies arrive, then drop them."""
        port_handler = self._port_handler
        if port_handler is None:
            return
        ser = port_handler.ser
        try:
            now = time.monotonic()
            deadline = now + 0.1
            quiet_since = now
            while now < deadline:
                n = ser.in_waiting
                now = time.monotonic()
                if n:
                    ser.read(n)
                    quiet_since = now
                elif now - quiet_since >= self._quiet_s:
                    break
                time.sleep(0.0003)
            ser.reset_input_buffer()
        except _OS_ERRORS as e:
            raise self._lost(e, motor, register) from e
        port_handler.is_using = False

    def _motor(self, name: str) -> Motor:
        try:
            return self.motors[name]
        except KeyError:
            raise KeyError(
                f"port {self.port}: no motor named {name!r}; known: {', '.join(self.motors)}"
            ) from None

    def _names(self, motors: Sequence[str] | str | None) -> tuple[str, ...]:
        if motors is None:
            return tuple(self.motors)
        if isinstance(motors, str):
            motors = (motors,)
        names = tuple(motors)
        for n in names:
            self._motor(n)
        return names

    # ------------------------------------------------------------------ single transactions
    def _ping(self, motor_id: int, num_retry: int | None = None) -> int | None:
        self._handles()
        motor = self._by_id.get(motor_id)
        tries = (self.num_retry if num_retry is None else num_retry) + 1
        self.stats.transactions += 1
        for attempt in range(tries):
            if attempt:
                self.stats.retries += 1
            try:
                if self._clear_input:
                    self._port_handler.ser.reset_input_buffer()
                model, comm, _ = self._sdk_ping(motor_id)
            except _OS_ERRORS as e:
                raise self._lost(e, motor, None) from e
            if comm == self._ok:
                return model
            self._recover(motor, None)
        return None

    def _transact(
        self,
        motor: Motor,
        register: str,
        num_retry: int | None,
        attempt: Callable[[Any, Any], tuple[int, int, Any]],
    ) -> Any:
        """One register transaction with retries: `attempt(packet_handler, port_handler)`
        returns (comm result, servo error, value); a good reply's value is returned."""
        packet_handler, port_handler = self._handles(motor, register)
        tries = (self.num_retry if num_retry is None else num_retry) + 1
        self.stats.transactions += 1
        comm = self._ok
        for i in range(tries):
            if i:
                self.stats.retries += 1
            try:
                if self._clear_input:
                    port_handler.ser.reset_input_buffer()
                comm, error, value = attempt(packet_handler, port_handler)
            except _OS_ERRORS as e:
                raise self._lost(e, motor, register) from e
            if comm == self._ok:
                if self._status_ok(error, motor, register):
                    return value
                comm = _SERVO_CRC
            self._recover(motor, register)
        raise self._error(f"{self._comm_text(comm)} after {tries} tries", motor, register)

    def _read_raw(self, motor: Motor, register: str, num_retry: int | None = None) -> int:
        info = self._infos[motor.name]
        addr, size = info.address(register)

        def attempt(packet_handler: Any, port_handler: Any) -> tuple[int, int, int]:
            data, comm, error = packet_handler.readTxRx(port_handler, motor.id, addr, size)
            if comm == self._ok and len(data) < size:
                return _SHORT, error, 0
            return (
                comm,
                error,
                tables.from_bytes(data, size, info.big_endian) if comm == self._ok else 0,
            )

        return self._transact(motor, register, num_retry, attempt)

    def _write_raw(
        self, motor: Motor, register: str, raw: int, num_retry: int | None = None
    ) -> None:
        info = self._infos[motor.name]
        addr, size = info.address(register)
        data = tables.to_bytes(raw, size, info.big_endian)

        def attempt(packet_handler: Any, port_handler: Any) -> tuple[int, int, None]:
            comm, error = packet_handler.writeTxRx(port_handler, motor.id, addr, size, data)
            return comm, error, None

        self._transact(motor, register, num_retry, attempt)

    # ------------------------------------------------------------------------ public API
    def ping(self, motor_id: int) -> int | None:
        """Model number of the servo answering at `motor_id`, or None (after retries)."""
        with self._lock:
            return self._ping(int(motor_id))

    def scan(self, ids: Iterable[int]) -> dict[int, int]:
        """Ping each id once: {id: model number} of those that answer."""
        with self._lock:
            found: dict[int, int] = {}
            for i in ids:
                model = self._ping(int(i), num_retry=0)
                if model is not None:
                    found[int(i)] = model
            return found

    def read(self, register: str, motor: str) -> int:
        """One register of one motor, decoded (signed where the register is signed)."""
        with self._lock:
            m = self._motor(motor)
            info = self._infos[m.name]
            size = info.address(register)[1]
            return tables._decode(info, register, size, self._read_raw(m, register))

    def write(self, register: str, motor: str, value: int, *, num_retry: int | None = None) -> None:
        """Write one register of one motor (acknowledged). ValueError if `value` does not fit."""
        with self._lock:
            m = self._motor(motor)
            info = self._infos[m.name]
            size = info.address(register)[1]
            raw = tables._encode(info, register, size, value)
            self._write_raw(m, register, raw, num_retry)

    def sync_read(self, register: str, motors: Sequence[str] | None = None) -> dict[str, int]:
        """One register of several motors (default: all) in one Sync Read; {name: value}.

        Feetech SCS (protocol 1) has no Sync Read, and motors whose models place the register
        differently cannot share one: then it is one read per motor."""
        if isinstance(motors, str):
            motors = (motors,)
        with self._lock:
            key = (register, None if motors is None else tuple(motors))
            plan = self._read_plans.get(key)
            if plan is None:
                plan = self._read_plan(register, motors)
                self._read_plans[key] = plan
            group = plan.group
            if group is None:
                return {name: self.read(register, name) for name, _, _ in plan.items}
            data = group.data_dict
            self.stats.transactions += 1
            tries = self.num_retry + 1
            comm = self._ok
            for attempt in range(tries):
                if attempt:
                    self.stats.retries += 1
                try:
                    if self._clear_input:
                        group.port.ser.reset_input_buffer()
                    comm = group.txRxPacket()
                except _OS_ERRORS as e:
                    raise self._lost(e, None, register) from e
                if comm == self._ok:
                    try:
                        return {name: dec(data[i]) for name, i, dec in plan.items}
                    except IndexError:  # a reply shorter than the register
                        comm = _SHORT
                self._recover(None, register)
            # The SDK stops at the first servo that failed: it is the first without data.
            failed = next(
                (self._by_id[i] for _, i, _ in plan.items if len(data.get(i) or ()) < plan.size),
                None,
            )
            what = f"sync read: {self._comm_text(comm)} after {tries} tries"
            raise self._error(what, failed, register)

    def sync_write(self, register: str, values: Mapping[str, int]) -> None:
        """Write one register of several motors in one Sync Write (no status packets)."""
        with self._lock:
            key = (register, tuple(values))
            plan = self._write_plans.get(key)
            if plan is None:
                plan = self._write_plan(register, key[1])
                self._write_plans[key] = plan
            group = plan.group
            if group is None:
                for name, value in values.items():
                    self.write(register, name, value)
                return
            change = group.changeParam
            for (i, enc), value in zip(plan.items, values.values(), strict=True):
                change(i, enc(value))
            self.stats.transactions += 1
            tries = self.num_retry + 1
            comm = self._ok
            for attempt in range(tries):
                if attempt:
                    self.stats.retries += 1
                try:
                    comm = group.txPacket()
                except _OS_ERRORS as e:
                    raise self._lost(e, None, register) from e
                if comm == self._ok:
                    return
                self._recover(None, register)
            what = f"sync write: {self._comm_text(comm)} after {tries} tries"
            raise self._error(what, None, register)

    def enable_torque(self, motors: Sequence[str] | None = None) -> None:
        """Torque on (Feetech: Torque_Enable 1 then Lock 1, as LeRobot). Stops at the first
        failure. Set Goal_Position = Present_Position first, or the arm jumps."""
        with self._lock:
            for name in self._names(motors):
                self._torque_on(self.motors[name])

    def disable_torque(self, motors: Sequence[str] | None = None, num_retry: int = 5) -> None:
        """Torque off (Feetech: Torque_Enable 0, Lock 0). Tries every motor even if one fails,
        then raises the first failure (BusDisconnected at once: nothing else can succeed)."""
        with self._lock:
            failures: list[BusError] = []
            for name in self._names(motors):
                try:
                    self._torque_off(self.motors[name], num_retry)
                except BusDisconnected:
                    raise
                except BusError as e:
                    failures.append(e)
            if len(failures) == 1:
                raise failures[0]
            if failures:
                first = failures[0]
                raise BusError(
                    f"port {self.port}: torque off failed on {len(failures)} motors: "
                    + "; ".join(str(f) for f in failures),
                    port=self.port,
                    motor_id=first.motor_id,
                    register=first.register,
                )

    def _torque_on(self, motor: Motor) -> None:
        self.write("Torque_Enable", motor.name, 1)

    def _torque_off(self, motor: Motor, num_retry: int) -> None:
        self.write("Torque_Enable", motor.name, 0, num_retry=num_retry)

    # ----------------------------------------------------------------- calibration registers
    def read_calibration(self) -> dict[str, MotorCalibration]:
        """Offset and limits as stored in the motors (LeRobot's read_calibration)."""
        with self._lock:
            out = {}
            for name, m in self.motors.items():
                table = self._infos[name].table
                has = table.__contains__
                out[name] = MotorCalibration(
                    id=m.id,
                    drive_mode=self.read("Drive_Mode", name) & 1 if has("Drive_Mode") else 0,
                    homing_offset=self.read("Homing_Offset", name) if has("Homing_Offset") else 0,
                    range_min=self.read("Min_Position_Limit", name),
                    range_max=self.read("Max_Position_Limit", name),
                )
            return out

    def write_calibration(self, calib: Mapping[str, MotorCalibration]) -> None:
        """Write Homing_Offset (where the model has one), Min/Max_Position_Limit, like LeRobot
        (Drive_Mode is not written). Torque must be off (EEPROM)."""
        with self._lock:
            for name, c in calib.items():
                if "Homing_Offset" in self._infos[self._motor(name).name].table:
                    self.write("Homing_Offset", name, c.homing_offset)
                self.write("Min_Position_Limit", name, c.range_min)
                self.write("Max_Position_Limit", name, c.range_max)

    # ------------------------------------------------------------------------------ plans
    def _read_plan(self, register: str, motors: Sequence[str] | None) -> _ReadPlan:
        names = self._names(motors)
        infos = [self._infos[n] for n in names]
        places = {info.address(register) for info in infos}
        items = [
            (n, self.motors[n].id, _decoder(info, register, info.address(register)[1]))
            for n, info in zip(names, infos, strict=True)
        ]
        size = max((s for _, s in places), default=0)
        group = None
        if len(places) == 1 and all(info.sync_read for info in infos):  # one Sync Read
            packet_handler, port_handler = self._handles(None, register)
            addr = next(iter(places))[0]
            group = self._sdk.GroupSyncRead(port_handler, packet_handler, addr, size)
            for _, i, _ in items:
                group.addParam(i)
        return _ReadPlan(register, size, group, items)

    def _write_plan(self, register: str, names: tuple[str, ...]) -> _WritePlan:
        self._names(names)
        infos = [self._infos[n] for n in names]
        places = {info.address(register) for info in infos}
        items = [
            (self.motors[n].id, _encoder(info, register, info.address(register)[1]))
            for n, info in zip(names, infos, strict=True)
        ]
        group = None
        if len(places) == 1:
            packet_handler, port_handler = self._handles(None, register)
            addr, size = next(iter(places))
            group = self._sdk.GroupSyncWrite(port_handler, packet_handler, addr, size)
            for i, _ in items:
                group.addParam(i, [0] * size)
        return _WritePlan(register, group, items, names)


def _describe(exc: BaseException) -> str:
    """ "termios.error: (5, 'Input/output error')", "SerialException: ..."."""
    cls = type(exc)
    name = (
        cls.__name__
        if cls.__module__ in ("builtins", "serial.serialutil")
        else (f"{cls.__module__}.{cls.__name__}")
    )
    return f"{name}: {exc}"


# Our own result codes (the SDKs' are small negatives or -1000..-9000).
_SHORT = -77777  # a status packet shorter than the register
_SERVO_CRC = -77778  # the servo answered "CRC error": our instruction was corrupted


def _decoder(info: tables.ModelInfo, register: str, size: int) -> _Decoder:
    """bytes of one status packet -> signed value; fast paths for the common registers."""
    sign_bit = info.sign_bits.get(register)
    big = info.big_endian
    if sign_bit is not None and size == 2 and not big:
        mask, flag = (1 << sign_bit) - 1, 1 << sign_bit

        def dec_sm16(d: list[int]) -> int:
            v = d[0] | (d[1] << 8)
            return -(v & mask) if v & flag else v & mask

        return dec_sm16
    if register in info.twos_complement and size == 4 and not big:

        def dec_s32(d: list[int]) -> int:
            v = d[0] | (d[1] << 8) | (d[2] << 16) | (d[3] << 24)
            return v - 0x100000000 if v & 0x80000000 else v

        return dec_s32
    if sign_bit is None and register not in info.twos_complement:
        if size == 1:
            return lambda d: d[0]
        if size == 2:
            return (lambda d: (d[0] << 8) | d[1]) if big else (lambda d: d[0] | (d[1] << 8))

    def dec(d: list[int]) -> int:
        if len(d) < size:
            raise IndexError(size)
        return tables._decode(info, register, size, tables.from_bytes(d, size, big))

    return dec


def _encoder(info: tables.ModelInfo, register: str, size: int) -> _Encoder:
    """signed value -> bytes of a write; ValueError when it does not fit the register."""
    sign_bit = info.sign_bits.get(register)
    big = info.big_endian
    if sign_bit is not None and size == 2 and not big:
        limit, flag = (1 << sign_bit) - 1, 1 << sign_bit

        def enc_sm16(value: int) -> list[int]:
            v = int(value)
            if v < 0:
                if v < -limit:
                    raise ValueError(f"{info.name} {register}: {v} does not fit (>= {-limit})")
                v = flag | -v
            elif v > limit:
                raise ValueError(f"{info.name} {register}: {v} does not fit (<= {limit})")
            return [v & 0xFF, v >> 8]

        return enc_sm16
    if register in info.twos_complement and size == 4 and not big:

        def enc_s32(value: int) -> list[int]:
            v = int(value)
            if not -0x80000000 <= v <= 0x7FFFFFFF:
                raise ValueError(f"{info.name} {register}: {v} does not fit in 32 bits (signed)")
            v &= 0xFFFFFFFF
            return [v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF, v >> 24]

        return enc_s32

    def enc(value: int) -> list[int]:
        return tables.to_bytes(tables._encode(info, register, size, value), size, big)

    return enc


# ---------------------------------------------------------------------------------- Feetech
@BUSES.register("feetech")
class FeetechBus(MotorBus):
    """Feetech STS/SMS (protocol 0) or SCS (protocol 1) servos via `scservo_sdk`
    (feetech-servo-sdk). One bus holds one protocol version."""

    protocol = "feetech"
    sdk_name = "scservo_sdk"

    def _init_protocol(self) -> None:
        versions = {info.protocol_version for info in self._infos.values()}
        if len(versions) > 1:
            raise ValueError(
                f"port {self.port}: STS/SMS (protocol 0) and SCS (protocol 1) servos cannot "
                "share a bus"
            )
        self.protocol_version = versions.pop()
        try:
            import scservo_sdk
        except ImportError as e:
            raise ImportError(
                "the Feetech bus needs feetech-servo-sdk (pip install feetech-servo-sdk)"
            ) from e
        self._sdk = scservo_sdk
        self._ok = scservo_sdk.COMM_SUCCESS
        self._clear_input = True

    def _new_packet_handler(self) -> Any:
        # scservo_sdk keeps the byte order in a module global (SCS_END). Every value this bus
        # sends or receives is (de)serialised here, so that global never matters to us.
        return self._sdk.PacketHandler(self.protocol_version)

    def _sdk_ping(self, motor_id: int) -> tuple[int | None, int, int]:
        sdk = self._sdk
        packet_handler, port_handler = self._packet_handler, self._port_handler
        # PING, then Model_Number (the SDK's own ping decodes it with the global byte order).
        _, comm, error = packet_handler.txRxPacket(
            port_handler, [0xFF, 0xFF, motor_id, 2, sdk.INST_PING, 0]
        )
        if comm != self._ok:
            return None, comm, error
        data, comm, error = packet_handler.readTxRx(port_handler, motor_id, 3, 2)
        if comm != self._ok or len(data) < 2:
            return None, comm if comm != self._ok else _SHORT, error
        return tables.from_bytes(data, 2, self.protocol_version == 1), comm, error

    def _torque_on(self, motor: Motor) -> None:
        self.write("Torque_Enable", motor.name, 1)
        self.write("Lock", motor.name, 1)

    def _torque_off(self, motor: Motor, num_retry: int) -> None:
        self.write("Torque_Enable", motor.name, 0, num_retry=num_retry)
        self.write("Lock", motor.name, 0, num_retry=num_retry)


# -------------------------------------------------------------------------------- Dynamixel
_DXL_ERRORS = {
    1: "result fail",
    2: "instruction error",
    3: "CRC error",
    4: "data range error",
    5: "data length error",
    6: "data limit error",
    7: "access error",
}


@BUSES.register("dynamixel")
class DynamixelBus(MotorBus):
    """ROBOTIS Dynamixel X servos, protocol 2.0, via `dynamixel_sdk`."""

    protocol = "dynamixel"
    sdk_name = "dynamixel_sdk"
    protocol_version = 2

    def _init_protocol(self) -> None:
        try:
            import dynamixel_sdk
        except ImportError as e:
            raise ImportError(
                "the Dynamixel bus needs dynamixel-sdk (pip install dynamixel-sdk)"
            ) from e
        self._sdk = dynamixel_sdk
        self._ok = dynamixel_sdk.COMM_SUCCESS

    def _new_packet_handler(self) -> Any:
        return self._sdk.PacketHandler(2.0)

    def _sdk_ping(self, motor_id: int) -> tuple[int | None, int, int]:
        model, comm, error = self._packet_handler.ping(self._port_handler, motor_id)
        return (model if comm == self._ok else None), comm, error

    def _status_ok(self, error: int, motor: Motor | None, register: str | None) -> bool:
        if error & 0x80:  # hardware alert: see Hardware_Error_Status; the data is valid
            self._alert(motor, error)
        code = error & 0x7F
        if not code:
            return True
        if code == 3:  # the servo saw a corrupt instruction: send it again
            return False
        raise self._error(
            f"servo reports {_DXL_ERRORS.get(code, f'error {code}')}", motor, register
        )


__all__ = [
    "BUSES",
    "BusDisconnected",
    "BusError",
    "BusStats",
    "DynamixelBus",
    "FeetechBus",
    "Motor",
    "MotorBus",
]
