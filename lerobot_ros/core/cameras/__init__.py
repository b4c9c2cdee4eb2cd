"""Hardware camera backends: "opencv" (UVC webcams, V4L2 devices, video files) and "realsense"
(Intel RealSense color + aligned depth). Both register lazily in `CAMERA_BACKENDS`, so importing
this package loads neither OpenCV nor pyrealsense2.

Errors, shared by the backends:
- `CameraConfigError` / `CameraNotFoundError`: at `open()`, a parameter names a device that does not
  exist or a mode it cannot deliver. They are `ParameterError`s, so a node stops at start-up with
  one line naming the parameter, the value and the reason (exit status 2).
- `CameraDisconnected`: at `grab()`, the device stopped delivering (unplugged, end of a video
  file). The backend keeps retrying to open it every `reconnect_period` seconds; each `grab()`
  while it is gone raises this error again (cheaply, without blocking), and the first `grab()`
  after the device is back returns a frame again.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lerobot_ros.core.backends import CameraIntrinsics, Frame
from lerobot_ros.core.params import ParameterError

DEFAULT_HFOV_DEG = 60.0  # horizontal field of view assumed for an uncalibrated webcam


class CameraError(RuntimeError):
    """A camera failed at run time."""


class CameraDisconnected(CameraError):  # noqa: N818 - reads as a state
    """The camera stopped delivering frames; the backend is retrying to open it."""


class CameraConfigError(ParameterError):
    """A parameter asks for a device or a mode the hardware does not have (found at open)."""


class CameraNotFoundError(CameraConfigError):
    """The device a parameter names does not exist (or no device at all is connected)."""


class ReadFailedError(Exception):
    """Raised by a backend's `_read()` when the device stopped delivering frames."""


@dataclass
class DepthFrame:
    """One depth image: HxW uint16 in units of `scale` metres (0 = no measurement)."""

    image: np.ndarray
    stamp: float  # wall-clock capture time, the same as the color Frame it belongs to
    scale: float  # metres per unit

    def metres(self) -> np.ndarray:
        return self.image.astype(np.float32) * np.float32(self.scale)


def pinhole_guess(width: int, height: int, hfov_deg: float = DEFAULT_HFOV_DEG) -> CameraIntrinsics:
    """Square pixels, centred principal point, `hfov_deg` across the width (uncalibrated)."""
    f = width / (2.0 * math.tan(math.radians(hfov_deg) / 2.0))
    return CameraIntrinsics(width=width, height=height, fx=f, fy=f, cx=width / 2, cy=height / 2)


def load_calibration(path: str | Path, param: str = "calibration") -> CameraIntrinsics:
    """Read a ROS camera_info YAML (camera_calibration's output: image_width, image_height,
    camera_matrix.data, distortion_coefficients.data)."""
    import yaml

    try:
        data: dict[str, Any] = yaml.safe_load(Path(path).read_text())
        k = [float(x) for x in data["camera_matrix"]["data"]]
        d = [float(x) for x in data.get("distortion_coefficients", {}).get("data", [0.0] * 5)]
        width, height = int(data["image_width"]), int(data["image_height"])
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise CameraConfigError(param, str(path), f"not a camera_info YAML ({exc})") from exc
    if len(k) != 9:
        raise CameraConfigError(param, str(path), "camera_matrix must have 9 values")
    return CameraIntrinsics(
        width=width, height=height, fx=k[0], fy=k[4], cx=k[2], cy=k[5], distortion=d
    )


class ReconnectingCamera:
    """open/grab/close with reconnect, shared by the hardware backends.

    Subclasses implement `_connect()` (open and configure the device, raising on failure),
    `_read()` (one Frame; raise `ReadFailedError` when the device stopped delivering) and
    `_disconnect()` (release the device, safe to call when it is not open). `describe` names
    the device in messages.
    """

    reconnect_period: float
    describe: str

    def __init__(self, reconnect_period: float) -> None:
        if not (math.isfinite(reconnect_period) and reconnect_period > 0):
            raise CameraConfigError("reconnect_period", reconnect_period, "must be > 0")
        self.reconnect_period = float(reconnect_period)
        self.disconnects = 0  # times the device stopped delivering
        self.reconnects = 0  # times it came back
        self.last_error = ""  # why it is disconnected (empty while connected)
        self._lock = threading.Lock()  # grab() (capture timer) vs close() (shutdown)
        self._opened = False
        self._lost = False
        self._next_retry = 0.0

    @property
    def connected(self) -> bool:
        return self._opened and not self._lost

    def open(self) -> None:
        """Connect; a missing device or an impossible mode raises CameraConfigError."""
        with self._lock:
            if self._opened:
                return
            self._connect()
            self._opened, self._lost, self.last_error = True, False, ""

    def grab(self) -> Frame:
        with self._lock:
            if not self._opened:
                raise CameraError(f"{self.describe} is not open")
            if self._lost:
                self._try_reconnect()
            try:
                return self._read()
            except ReadFailedError as exc:
                self._disconnect()
                self._lost = True
                self.disconnects += 1
                self.last_error = str(exc)
                self._next_retry = time.monotonic() + self.reconnect_period
                raise self._disconnected() from None

    def _try_reconnect(self) -> None:
        now = time.monotonic()
        if now < self._next_retry:
            raise self._disconnected()
        self._next_retry = now + self.reconnect_period
        try:
            self._connect()
        except Exception as exc:  # any failure to open: still gone, try again later
            self._disconnect()
            self.last_error = exc.reason if isinstance(exc, ParameterError) else str(exc)
            raise self._disconnected() from None
        self._lost, self.last_error = False, ""
        self.reconnects += 1

    def _disconnected(self) -> CameraDisconnected:
        return CameraDisconnected(
            f"{self.describe} disconnected ({self.last_error}); "
            f"retrying every {self.reconnect_period:g} s"
        )

    def close(self) -> None:
        with self._lock:
            self._disconnect()
            self._opened = self._lost = False

    # --- for subclasses ---------------------------------------------------------------------

    def _connect(self) -> None:
        raise NotImplementedError

    def _read(self) -> Frame:
        raise NotImplementedError

    def _disconnect(self) -> None:
        raise NotImplementedError


__all__ = [
    "CameraConfigError",
    "CameraDisconnected",
    "CameraError",
    "CameraNotFoundError",
    "DepthFrame",
    "ReadFailedError",
    "ReconnectingCamera",
    "load_calibration",
    "pinhole_guess",
]
