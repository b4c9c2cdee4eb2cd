"""Single key presses from a terminal, ROS-free: for the episode_keys node.

Foot pedals for recording (PCsensor / iKKEGOL and the like) are USB HID keyboards: each pedal
types a configurable key, so a pedal and a keyboard read the same here. A terminal delivers
bytes, not keys, so `KeyDecoder` turns them into key names:

- a printable character is its own name ("s", "S", "1", "ä"); " " is "space";
- "enter" (CR or LF), "tab", "backspace", "esc", "ctrl+a" .. "ctrl+z";
- escape sequences: "up" "down" "left" "right" "home" "end" "insert" "delete" "pageup"
  "pagedown" and "f1" .. "f12" (xterm / VT220 / linux console forms).

A lone ESC cannot be told from the start of a sequence by its bytes: the reader calls `flush()`
when nothing followed within a short time, which makes it "esc".

`Terminal` puts a tty in cbreak mode (no line buffering, no echo; Ctrl-C still interrupts) and
always restores the settings it found; `KeyReader` reads it on its own thread, so the ROS
executor never waits for a key.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import threading
from collections.abc import Callable

_NAMED_BYTES = {
    0x20: "space",
    0x0D: "enter",
    0x0A: "enter",
    0x09: "tab",
    0x7F: "backspace",
    0x08: "backspace",
}
_SS3 = {"A": "up", "B": "down", "C": "right", "D": "left", "H": "home", "F": "end"}
_SS3.update({"P": "f1", "Q": "f2", "R": "f3", "S": "f4"})
_CSI_LETTER = {"A": "up", "B": "down", "C": "right", "D": "left", "H": "home", "F": "end"}
_CSI_TILDE = {
    "1": "home", "2": "insert", "3": "delete", "4": "end", "5": "pageup", "6": "pagedown",
    "7": "home", "8": "end", "11": "f1", "12": "f2", "13": "f3", "14": "f4", "15": "f5",
    "17": "f6", "18": "f7", "19": "f8", "20": "f9", "21": "f10", "23": "f11", "24": "f12",
}  # fmt: skip
_CSI_LINUX = {"[A": "f1", "[B": "f2", "[C": "f3", "[D": "f4", "[E": "f5"}  # linux console
# Ctrl+H/I/J/M are the bytes of backspace, tab and enter, and come out as those names.
NAMED_KEYS = frozenset(
    {*_NAMED_BYTES.values(), "esc", *_SS3.values(), *_CSI_TILDE.values()}
    | {f"ctrl+{chr(c)}" for c in range(ord("a"), ord("z") + 1) if chr(c) not in "hijm"}
)
UNKNOWN = "unknown"


def is_key_name(name: str) -> bool:
    """A name that `KeyDecoder` can produce: one printable character or a named key."""
    if name in NAMED_KEYS:
        return True
    return len(name) == 1 and name.isprintable() and name != " "


class KeyDecoder:
    """Bytes in, key names out. Incomplete UTF-8 or escape sequences wait for more bytes."""

    def __init__(self) -> None:
        self._buf = b""

    @property
    def pending(self) -> bool:
        return bool(self._buf)

    def feed(self, data: bytes) -> list[str]:
        self._buf += data
        keys: list[str] = []
        while self._buf:
            key, used = self._one(self._buf)
            if used == 0:
                break  # wait for the rest
            self._buf = self._buf[used:]
            keys.append(key)
        return keys

    def flush(self) -> list[str]:
        """Nothing more came: what is waiting is a lone ESC (then its bytes) or a cut sequence."""
        keys: list[str] = []
        while self._buf:
            if self._buf[0] == 0x1B:
                keys.append("esc")
                self._buf = self._buf[1:]
                keys += self.feed(b"")
            else:
                keys.append(UNKNOWN)  # an incomplete UTF-8 character
                self._buf = b""
        return keys

    @staticmethod
    def _one(buf: bytes) -> tuple[str, int]:
        b0 = buf[0]
        if b0 == 0x1B:
            return KeyDecoder._escape(buf)
        if b0 in _NAMED_BYTES:
            return _NAMED_BYTES[b0], 1
        if 0x01 <= b0 <= 0x1A:  # (tab, enter and backspace were named above)
            return f"ctrl+{chr(b0 + 0x60)}", 1
        if b0 < 0x80:
            return (chr(b0), 1) if chr(b0).isprintable() else (UNKNOWN, 1)
        n = 2 if b0 >> 5 == 0b110 else 3 if b0 >> 4 == 0b1110 else 4 if b0 >> 3 == 0b11110 else 0
        if n == 0:
            return UNKNOWN, 1
        if len(buf) < n:
            return "", 0
        try:
            return buf[:n].decode(), n
        except UnicodeDecodeError:
            return UNKNOWN, 1

    @staticmethod
    def _escape(buf: bytes) -> tuple[str, int]:
        if len(buf) < 2:
            return "", 0
        kind = chr(buf[1])
        if kind == "O":  # SS3: ESC O <letter>
            if len(buf) < 3:
                return "", 0
            return _SS3.get(chr(buf[2]), UNKNOWN), 3
        if kind != "[":
            return "esc", 1  # ESC then an ordinary key (Alt+key): both are reported
        if len(buf) >= 3 and buf[2] == ord("["):  # linux console F1..F5: ESC [ [ A
            if len(buf) < 4:
                return "", 0
            return _CSI_LINUX.get(buf[2:4].decode("ascii", "replace"), UNKNOWN), 4
        for i in range(2, len(buf)):  # CSI: parameters, then a final byte 0x40..0x7E
            if 0x40 <= buf[i] <= 0x7E:
                params, final = buf[2:i].decode("ascii", "replace"), chr(buf[i])
                if final == "~":
                    return _CSI_TILDE.get(params.split(";")[0], UNKNOWN), i + 1
                return _CSI_LETTER.get(final, UNKNOWN), i + 1
        return "", 0


class TerminalError(OSError):
    """The given device is not a terminal (or cannot be opened)."""


class Terminal:
    """A tty in cbreak mode for as long as it is open; `restore()` (also at exit) puts back the
    settings it found. `path` "" = this process's stdin."""

    def __init__(self, path: str = "") -> None:
        import termios
        import tty

        self.path = path or "stdin"
        self._own = bool(path)
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_NOCTTY) if path else 0
        except OSError as exc:
            raise TerminalError(f"cannot open {path}: {exc.strerror}") from exc
        if not os.isatty(self.fd):
            self._close()
            raise TerminalError(f"{self.path} is not a terminal")
        self._saved = termios.tcgetattr(self.fd)
        self._restored = False
        tty.setcbreak(self.fd, termios.TCSANOW)
        atexit.register(self.restore)

    def restore(self) -> None:
        import termios

        if self._restored:
            return
        self._restored = True
        with contextlib.suppress(termios.error, OSError):
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
        self._close()
        atexit.unregister(self.restore)

    def _close(self) -> None:
        if self._own:
            with contextlib.suppress(OSError):
                os.close(self.fd)


class KeyReader:
    """Reads `fd` on a daemon thread and calls `on_key(name)` for each key (from that thread).
    `on_end(reason)` is called once if the terminal goes away (EOF, read error)."""

    ESC_WAIT_S = 0.05  # a lone ESC: nothing else within this time

    def __init__(
        self,
        fd: int,
        on_key: Callable[[str], None],
        on_end: Callable[[str], None] = lambda _reason: None,
    ) -> None:
        self.fd = fd
        self.on_key = on_key
        self.on_end = on_end
        self.decoder = KeyDecoder()
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="key-reader", daemon=True)

    def start(self) -> KeyReader:
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self.ESC_WAIT_S if self.decoder.pending else None
            try:
                ready, _, _ = select.select([self.fd, self._wake_r], [], [], wait)
            except (OSError, ValueError) as exc:
                self.on_end(f"select failed: {exc}")
                return
            if self._stop.is_set():
                return
            if not ready:
                keys = self.decoder.flush()
            elif self.fd in ready:
                try:
                    data = os.read(self.fd, 256)
                except OSError as exc:
                    self.on_end(f"read failed: {exc.strerror}")
                    return
                if not data:
                    self.on_end("end of input")
                    return
                keys = self.decoder.feed(data)
            else:
                continue
            for key in keys:
                self.on_key(key)
