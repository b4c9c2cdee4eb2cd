"""Input devices for end-effector teleop, ROS-free: a keyboard on a terminal and a gamepad on
the Linux joystick API, each read in its own thread and handed to a `Jog`.

Devices are chosen by name through `INPUT_DEVICES` (the node's `input` parameter). Readers never
block the ROS side: they own a thread that waits in select() with a timeout, so `stop()` returns
within that timeout.

Keyboard: a terminal (stdin, or a tty path such as /dev/pts/3 - over SSH too) switched to
non-canonical, no-echo mode: every key arrives at once and nothing is echoed; signals (Ctrl-C)
still work, and the previous mode is restored on stop. Terminals send no key-release, so each key
press (and each auto-repeat while held) queues one step; see KEY_BINDINGS.

Gamepad: /dev/input/jsN, read as the kernel's `struct js_event` (linux/joystick.h: __u32 time
in ms, __s16 value, __u8 type, __u8 number; 8 bytes, native byte order). The device may be
missing or unplugged: the reader then stops all motion, reports it, and retries.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import struct
import sys
import termios
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from lerobot_ros.core.ee_teleop import AXES, Jog
from lerobot_ros.core.registry import Registry

# --- keyboard ------------------------------------------------------------------------------------

# key -> (axis of AXES, direction). Step sizes come from InputSettings.
KEY_BINDINGS: dict[str, tuple[str, float]] = {
    "w": ("x", +1.0),  # forward (away from the base)
    "s": ("x", -1.0),
    "a": ("y", +1.0),  # left
    "d": ("y", -1.0),
    "r": ("z", +1.0),  # up
    "f": ("z", -1.0),
    "z": ("pitch", -1.0),  # tool tip up
    "x": ("pitch", +1.0),  # tool tip down
    "q": ("roll", -1.0),
    "e": ("roll", +1.0),
    "g": ("gripper", -1.0),  # grip: close
    "h": ("gripper", +1.0),  # open
}
STOP_KEY = " "  # drop queued steps at once
HELP_KEY = "?"

KEY_HELP = (
    "end-effector teleop keys: w/s +x/-x (forward/back)  a/d +y/-y (left/right)  "
    "r/f +z/-z (up/down)  z/x tool pitch up/down  q/e wrist roll  g/h gripper close/open  "
    "space stop  ? this help"
)


def decode_keys(data: bytes) -> list[str]:
    """Printable single-character keys in `data`, lower-cased; escape sequences (arrow and
    function keys: ESC [ ... final byte) and other control bytes are skipped whole."""
    keys: list[str] = []
    i = 0
    while i < len(data):
        b = data[i]
        if b == 0x1B:  # ESC, then '[' or 'O' and parameters up to a final byte 0x40..0x7e
            i += 1
            if i < len(data) and data[i] in b"[O":
                i += 1
                while i < len(data) and not 0x40 <= data[i] <= 0x7E:
                    i += 1
            i += 1
            continue
        if 0x20 <= b < 0x7F:
            keys.append(chr(b).lower())
        i += 1
    return keys


@dataclass(frozen=True)
class InputSettings:
    """What the devices need from the node's parameters."""

    device: str = ""  # empty: the device kind's default (stdin / /dev/input/js0)
    # Keyboard: one key press moves this far (m for x/y/z, rad for pitch/roll/gripper).
    linear_step: float = 0.01
    angular_step: float = 0.1
    gripper_step: float = 0.2
    # Gamepad: axis numbers for x, y, z, pitch, roll; sign per axis (sticks: up is negative).
    axes: tuple[int, ...] = (1, 0, 4, 7, 3)
    axis_signs: tuple[float, ...] = (-1.0, -1.0, -1.0, 1.0, 1.0)
    # Gamepad: buttons that close and open the gripper while held.
    gripper_buttons: tuple[int, int] = (4, 5)
    # Gamepad: a button that must be held for any motion (dead man); -1 = none.
    enable_button: int = -1
    deadzone: float = 0.1  # fraction of full deflection ignored around the centre
    reconnect_period: float = 1.0  # s between attempts to open a missing device

    def key_step(self, axis: str) -> float:
        if axis in ("x", "y", "z"):
            return self.linear_step
        return self.gripper_step if axis == "gripper" else self.angular_step


class DeviceError(Exception):
    """The device cannot work as configured (e.g. stdin is not a terminal); names the device."""


class InputDevice(Protocol):
    """What the node uses of a device; `status()` is a short line for logs and diagnostics."""

    kind: str
    path: str

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def connected(self) -> bool: ...
    def status(self) -> str: ...


Log = Callable[[str], None]

# name -> factory(settings, jog, log): the node's `input` parameter picks one.
INPUT_DEVICES: Registry[InputDevice] = Registry("input device")


class _Reader:
    """The reader thread shared by both devices: open, select+read until stopped, close."""

    kind = "device"
    poll_s = 0.1

    def __init__(self, settings: InputSettings, jog: Jog, log: Log) -> None:
        self.settings = settings
        self.jog = jog
        self.log = log
        self.path = settings.device
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._status = "not started"
        self._lock = threading.Lock()

    def status(self) -> str:
        with self._lock:
            return self._status

    def _set_status(self, text: str) -> None:
        with self._lock:
            self._status = text

    def connected(self) -> bool:
        return self._fd is not None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.kind}-reader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self.jog.clear()

    def _run(self) -> None:
        raise NotImplementedError


@INPUT_DEVICES.register("keyboard")
class KeyboardDevice(_Reader):
    """Keys from a terminal: stdin when `device` is empty, else the tty at that path."""

    kind = "keyboard"

    def __init__(self, settings: InputSettings, jog: Jog, log: Log) -> None:
        super().__init__(settings, jog, log)
        self._saved: list | None = None
        self._own_fd = False
        self.path = settings.device or "stdin"
        # Open now, so that "not a terminal" stops the node at start-up with a clear message.
        if settings.device:
            try:
                fd = os.open(settings.device, os.O_RDWR | os.O_NOCTTY)
            except OSError as exc:
                raise DeviceError(f"cannot open {settings.device}: {exc.strerror}") from None
            self._own_fd = True
        else:
            fd = sys.stdin.fileno()
        if not os.isatty(fd):
            if self._own_fd:
                os.close(fd)
            where = settings.device or "stdin"
            raise DeviceError(
                f"{where} is not a terminal (ros2 launch gives nodes no terminal: run "
                "'ros2 run lerobot_ros ee_teleop' in one, or give the path of a spare terminal's "
                "tty, e.g. /dev/pts/3)"
            )
        self._fd = fd
        self._saved = termios.tcgetattr(fd)
        mode = termios.tcgetattr(fd)
        mode[3] &= ~(termios.ICANON | termios.ECHO)  # lflag: keys at once, not echoed; ISIG kept
        mode[6][termios.VMIN] = 1
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, mode)
        self._set_status(f"reading keys from {self.path}")
        self._write(KEY_HELP + "\r\n")

    def _write(self, text: str) -> None:
        """Show text on the terminal itself (a launch's stdout may go to a log instead)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self._fd if self._own_fd else sys.stdout.fileno(), text.encode())

    def handle(self, data: bytes) -> None:
        """Queue the steps for the keys in `data` (a read from the terminal)."""
        for key in decode_keys(data):
            if key == STOP_KEY:
                self.jog.clear()
            elif key == HELP_KEY:
                self._write(KEY_HELP + "\r\n")
            elif key in KEY_BINDINGS:
                axis, sign = KEY_BINDINGS[key]
                delta = np.zeros(len(AXES))
                delta[AXES.index(axis)] = sign * self.settings.key_step(axis)
                self.jog.step(delta)

    def _run(self) -> None:
        fd = self._fd
        assert fd is not None
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([fd], [], [], self.poll_s)
                if not ready:
                    continue
                try:
                    data = os.read(fd, 256)
                except OSError as exc:
                    if exc.errno in (errno.EAGAIN, errno.EINTR):
                        continue
                    self._lost(f"read failed: {exc.strerror}")
                    return
                if not data:
                    self._lost("end of input")
                    return
                self.handle(data)
        finally:
            self._restore()

    def _lost(self, why: str) -> None:
        self.jog.clear()
        self._set_status(f"keyboard {self.path}: {why}; no more keys")
        self.log(self.status())

    def _restore(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self._saved is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(fd, termios.TCSANOW, self._saved)
        if self._own_fd:
            os.close(fd)


# --- gamepad ---------------------------------------------------------------------------------

JS_EVENT = struct.Struct("=IhBB")  # linux/joystick.h struct js_event
JS_EVENT_BUTTON = 0x01
JS_EVENT_AXIS = 0x02
JS_EVENT_INIT = 0x80  # synthetic events giving the initial state, right after open()
JS_AXIS_MAX = 32767.0


def js_event(number: int, value: int, kind: int, time_ms: int = 0) -> bytes:
    """One js_event as the kernel writes it (tests and tools feed these to the reader)."""
    return JS_EVENT.pack(time_ms & 0xFFFFFFFF, value, kind, number)


@dataclass
class JoystickState:
    """Axes (-1..1) and buttons of a joystick, updated from raw js_event bytes."""

    axes: dict[int, float] = field(default_factory=dict)
    buttons: dict[int, bool] = field(default_factory=dict)
    _partial: bytes = b""

    def feed(self, data: bytes) -> int:
        """Apply every complete event in `data` (a read may end mid-event); returns how many."""
        data = self._partial + data
        whole = len(data) - len(data) % JS_EVENT.size
        self._partial = data[whole:]
        for offset in range(0, whole, JS_EVENT.size):
            _, value, kind, number = JS_EVENT.unpack_from(data, offset)
            kind &= ~JS_EVENT_INIT
            if kind == JS_EVENT_AXIS:
                self.axes[number] = max(-1.0, min(1.0, value / JS_AXIS_MAX))
            elif kind == JS_EVENT_BUTTON:
                self.buttons[number] = bool(value)
        return whole // JS_EVENT.size


def gamepad_velocity(state: JoystickState, settings: InputSettings) -> np.ndarray:
    """Velocity fractions over AXES for the current stick and button state."""
    out = np.zeros(len(AXES))
    if settings.enable_button >= 0 and not state.buttons.get(settings.enable_button, False):
        return out
    for i, (axis, sign) in enumerate(zip(settings.axes, settings.axis_signs, strict=True)):
        value = state.axes.get(axis, 0.0)
        if abs(value) <= settings.deadzone:
            continue
        # Rescale past the dead zone so motion starts at 0, not with a jump.
        scaled = (abs(value) - settings.deadzone) / (1.0 - settings.deadzone)
        out[i] = sign * np.sign(value) * scaled
    close, open_ = settings.gripper_buttons
    out[AXES.index("gripper")] = float(state.buttons.get(open_, False)) - float(
        state.buttons.get(close, False)
    )
    return out


@INPUT_DEVICES.register("gamepad")
class GamepadDevice(_Reader):
    """Sticks and buttons from /dev/input/jsN (`device`; default /dev/input/js0)."""

    kind = "gamepad"
    DEFAULT_PATH = "/dev/input/js0"

    def __init__(self, settings: InputSettings, jog: Jog, log: Log) -> None:
        super().__init__(settings, jog, log)
        self.path = settings.device or self.DEFAULT_PATH
        if len(settings.axes) != 5 or len(settings.axis_signs) != 5:
            raise DeviceError("needs 5 axis numbers and 5 signs (x, y, z, pitch, roll)")
        self.state = JoystickState()
        self._set_status(f"waiting for {self.path}")

    def _open(self) -> bool:
        try:
            # Non-blocking: opening a FIFO (tests) must not wait for a writer.
            self._fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            self._set_status(f"cannot open {self.path}: {exc.strerror}")
            return False
        self.state = JoystickState()
        if self.status() != f"reading {self.path}":
            self._set_status(f"reading {self.path}")
            self.log(self.status())
        return True

    def _close(self, why: str) -> None:
        self.jog.clear()  # never keep moving on the last stick position of a lost device
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        status = f"{self.path}: {why}"
        if status != self.status():  # once per change, not once per retry
            self.log(
                f"{status}; motion stopped, retrying every {self.settings.reconnect_period:g} s"
            )
        self._set_status(status)

    def _run(self) -> None:
        try:
            reported = False
            while not self._stop.is_set():
                if self._fd is None:
                    if not self._open():
                        if not reported:
                            self.log(
                                f"{self.status()}; retrying every "
                                f"{self.settings.reconnect_period:g} s"
                            )
                            reported = True
                        self._stop.wait(self.settings.reconnect_period)
                        continue
                    reported = False
                ready, _, _ = select.select([self._fd], [], [], self.poll_s)
                if not ready:
                    continue
                try:
                    data = os.read(self._fd, JS_EVENT.size * 64)
                except OSError as exc:
                    if exc.errno in (errno.EAGAIN, errno.EINTR):
                        continue
                    self._close(f"read failed ({exc.strerror}): unplugged?")
                    continue
                if not data:  # a FIFO whose writer closed; a real device never returns EOF
                    self._close("end of input")
                    self._stop.wait(self.settings.reconnect_period)
                    continue
                if self.state.feed(data):
                    self.jog.set_velocity(gamepad_velocity(self.state, self.settings))
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def make_device(kind: str, settings: InputSettings, jog: Jog, log: Log) -> InputDevice:
    """The device registered as `kind` (UnknownNameError lists the known ones)."""
    return INPUT_DEVICES.create(kind, settings, jog, log)
