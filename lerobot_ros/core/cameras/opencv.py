"""OpenCV camera backend ("opencv"): a UVC webcam / V4L2 device by index or path, or a video file.

- `device`: an index ("0", or an int) or a path (/dev/video2, /dev/v4l/by-id/..., a video file).
- The requested width x height must be what the device delivers, or `open()` fails naming the
  device, the requested and the delivered size. A different frame rate is only a warning
  (`fps_warning`), since many webcams report a nominal rate.
- Frames are RGB, stamped with `time.time()` taken right after the read returned.
- Unplugging: a failed read makes `grab()` raise `CameraDisconnected`; the camera is reopened
  every `reconnect_period` s and frames come back without the caller doing anything.
- A video file behaves like a camera that is unplugged at its end: the `grab()` after the last
  frame raises `CameraDisconnected`, and the file is reopened `reconnect_period` s later, so it
  plays in a loop. (On POSIX, renaming or deleting a file that is being read does not interrupt
  it; it is missed when it is reopened at the end.)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from lerobot_ros.core.backends import CAMERA_BACKENDS, CameraIntrinsics, Frame
from lerobot_ros.core.cameras import (
    CameraConfigError,
    CameraNotFoundError,
    ReadFailedError,
    ReconnectingCamera,
    load_calibration,
    pinhole_guess,
)

FPS_TOLERANCE = 0.5  # Hz: a larger difference between asked and reported fps sets fps_warning


@CAMERA_BACKENDS.register("opencv")
class OpenCVCamera(ReconnectingCamera):
    """CameraBackend over cv2.VideoCapture. `name` only names the camera in messages."""

    def __init__(
        self,
        name: str = "",
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        device: str | int = "0",
        fourcc: str = "",
        reconnect_period: float = 1.0,
        calibration: str | Path | CameraIntrinsics | None = None,
    ) -> None:
        super().__init__(reconnect_period)
        if width <= 0 or height <= 0 or not fps > 0:
            raise CameraConfigError(
                "width/height/fps", f"{width}x{height}@{fps}", "must all be > 0"
            )
        if fourcc and len(fourcc) != 4:
            raise CameraConfigError("fourcc", fourcc, "must be 4 characters, e.g. 'MJPG'")
        self.name = name
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.device = str(device).strip()
        self.fourcc = fourcc
        self.describe = f"OpenCV camera {self.device!r}" + (f" ({name})" if name else "")
        self.is_file = False
        self.actual_fps = 0.0
        self.fps_warning = ""  # set at open when the device reports another frame rate
        self._calibration: CameraIntrinsics | None = None
        if isinstance(calibration, CameraIntrinsics):
            self._calibration = calibration
        elif calibration:
            self._calibration = load_calibration(calibration)
        self.intrinsics = self._calibration or pinhole_guess(self.width, self.height)
        self._cap: cv2.VideoCapture | None = None

    # --- ReconnectingCamera -----------------------------------------------------------------

    def _connect(self) -> None:
        source, api = self._source()
        quiet = self._opened  # reconnect attempts: no OpenCV warning every period
        level = cv2.utils.logging.getLogLevel()
        if quiet:
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        try:
            cap = cv2.VideoCapture(source, api)
        finally:
            if quiet:
                cv2.utils.logging.setLogLevel(level)
        if not cap.isOpened():
            cap.release()
            raise CameraConfigError(
                "device", self.device, "OpenCV cannot open it (not a camera or a video file?)"
            )
        try:
            self._configure(cap)
        except Exception:
            cap.release()
            raise
        self._cap = cap

    def _source(self) -> tuple[int | str, int]:
        """(index or path, OpenCV API preference); CameraNotFoundError when it does not exist."""
        linux = sys.platform.startswith("linux")
        if self.device.isdigit():
            index = int(self.device)
            if linux and not os.path.exists(f"/dev/video{index}"):
                raise CameraNotFoundError(
                    "device", self.device, f"no video device /dev/video{index} (camera index)"
                )
            self.is_file = False
            return index, cv2.CAP_V4L2 if linux else cv2.CAP_ANY
        if not self.device:
            raise CameraNotFoundError("device", self.device, "empty device")
        if not os.path.exists(self.device):
            raise CameraNotFoundError("device", self.device, "no such camera device or video file")
        self.is_file = os.path.isfile(self.device)
        v4l = linux and self.device.startswith("/dev/")
        return self.device, cv2.CAP_V4L2 if v4l else cv2.CAP_ANY

    def _configure(self, cap: cv2.VideoCapture) -> None:
        # Order matters for V4L2: the pixel format first, then the size, then the rate. A video
        # file ignores all three; what it has is checked below like a device's.
        if self.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*self.fourcc))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        cap.set(cv2.CAP_PROP_FPS, self.fps)
        width = round(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = round(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if (width, height) != (self.width, self.height):
            raise CameraConfigError(
                "width" if width != self.width else "height",
                self.width if width != self.width else self.height,
                f"{self.describe} cannot deliver the requested {self.width}x{self.height}; "
                f"it delivers {width}x{height}",
            )
        if self._calibration is not None and (
            self._calibration.width,
            self._calibration.height,
        ) != (width, height):
            raise CameraConfigError(
                "calibration",
                f"{self._calibration.width}x{self._calibration.height}",
                f"calibration size differs from the image size {width}x{height}",
            )
        self.actual_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if abs(self.actual_fps - self.fps) > FPS_TOLERANCE:
            self.fps_warning = (
                f"{self.describe}: requested {self.fps:g} fps, the device reports "
                f"{self.actual_fps:g} fps"
            )
        else:
            self.fps_warning = ""

    def _read(self) -> Frame:
        assert self._cap is not None
        ok, image = self._cap.read()
        stamp = time.time()  # capture time: right after the frame arrived
        if not ok or image is None:
            raise ReadFailedError("end of the video file" if self.is_file else "read failed")
        if image.shape[:2] != (self.height, self.width):
            raise ReadFailedError(
                f"frame of {image.shape[1]}x{image.shape[0]}, expected {self.width}x{self.height}"
            )
        if image.ndim == 2:
            rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        elif image.shape[2] == 4:
            rgb = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
        else:
            rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return Frame(image=np.ascontiguousarray(rgb, dtype=np.uint8), stamp=stamp)

    def _disconnect(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
