"""Intel RealSense backend ("realsense"): rgb8 color, plus z16 depth aligned to the color image.

`grab()` returns the color Frame; the depth image of the same frameset, aligned to the color
camera (`rs.align`), is then `last_depth` / `grab_depth()`: HxW uint16 at the color size, in units
of `depth_scale` metres, with the same stamp. Intrinsics come from the color stream profile (they
hold for the aligned depth too).

pyrealsense2 is imported inside `open()` only. It carries Fast DDS symbols of its own: in a
process that also creates ROS nodes, rclpy must be imported BEFORE pyrealsense2, or the process
segfaults at exit. Keep a RealSense camera in a process of its own (lerobot_ros.nodes.realsense).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from types import ModuleType
from typing import Any

import numpy as np

from lerobot_ros.core.backends import CAMERA_BACKENDS, CameraIntrinsics, Frame
from lerobot_ros.core.cameras import (
    CameraConfigError,
    CameraError,
    CameraNotFoundError,
    DepthFrame,
    ReadFailedError,
    ReconnectingCamera,
    pinhole_guess,
)


def import_pyrealsense2() -> ModuleType:
    try:
        import pyrealsense2 as rs
    except ImportError as exc:
        raise CameraError(
            f"pyrealsense2 cannot be imported ({exc}); install it with pip "
            "(pyrealsense2==2.59.*; it needs the system's libusb-1.0)"
        ) from exc
    return rs


@CAMERA_BACKENDS.register("realsense")
class RealSenseCamera(ReconnectingCamera):
    """CameraBackend for one RealSense (D4xx...). `serial_number` empty = the first one found.

    `recording`: play a librealsense recording (.db3 since 2.59, .bag before) instead of a
    device, in real time; its end counts as an unplug, so it plays in a loop like OpenCV's files.
    `timeout`: seconds without a frameset before the camera counts as disconnected.
    """

    def __init__(
        self,
        name: str = "",
        width: int = 640,
        height: int = 480,
        fps: float = 30.0,
        serial_number: str = "",
        depth: bool = True,
        depth_width: int = 0,
        depth_height: int = 0,
        reconnect_period: float = 1.0,
        timeout: float = 2.0,
        recording: str = "",
    ) -> None:
        super().__init__(reconnect_period)
        if width <= 0 or height <= 0:
            raise CameraConfigError("width/height", f"{width}x{height}", "must be > 0")
        if not (fps > 0 and math.isclose(fps, round(fps))):
            raise CameraConfigError("fps", fps, "RealSense rates are whole numbers (6, 15, 30...)")
        self.name = name
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.serial_number = str(serial_number).strip()
        self.recording = str(recording)
        self.depth = bool(depth)
        self.depth_width = int(depth_width) or self.width
        self.depth_height = int(depth_height) or self.height
        self.timeout = float(timeout)
        if self.recording:
            self.describe = f"recording {self.recording}"
        else:
            self.describe = "RealSense" + (f" {self.serial_number}" if self.serial_number else "")
        self.device_name = ""  # e.g. "Intel RealSense D435", once open
        self.device_serial = ""  # serial of the opened device
        self.depth_scale = 0.0  # metres per depth unit, once open
        self.intrinsics: CameraIntrinsics = pinhole_guess(self.width, self.height)
        self.last_depth: DepthFrame | None = None
        self._pipeline: Any = None
        self._align: Any = None

    @property
    def depth_intrinsics(self) -> CameraIntrinsics:
        """Depth is aligned to the color image, so it has the color camera's intrinsics."""
        return self.intrinsics

    def grab_depth(self) -> DepthFrame:
        """The aligned depth frame of the last `grab()` (same stamp as its color Frame)."""
        if not self.depth:
            raise CameraError(f"{self.describe}: depth is disabled (depth=False)")
        if self.last_depth is None:
            raise CameraError(f"{self.describe}: no depth frame yet (call grab() first)")
        return self.last_depth

    # --- ReconnectingCamera -----------------------------------------------------------------

    def _connect(self) -> None:
        rs = import_pyrealsense2()
        ctx = rs.context()
        config = rs.config()
        if self.recording:
            if not os.path.isfile(self.recording):
                raise CameraNotFoundError("recording", self.recording, "no such file")
            config.enable_device_from_file(self.recording, False)  # no repeat: the end = unplug
            where = f"recording {self.recording}"
        else:
            serial = self._find_device(rs, ctx)
            config.enable_device(serial)
            where = f"RealSense {serial}"
        fps = round(self.fps)
        config.enable_stream(rs.stream.color, self.width, self.height, rs.format.rgb8, fps)
        wanted = f"color {self.width}x{self.height} rgb8"
        if self.depth:
            config.enable_stream(
                rs.stream.depth, self.depth_width, self.depth_height, rs.format.z16, fps
            )
            wanted += f" + depth {self.depth_width}x{self.depth_height} z16"
        pipeline = rs.pipeline(ctx)
        if not config.can_resolve(rs.pipeline_wrapper(pipeline)):
            raise CameraConfigError(
                "width/height/fps",
                f"{self.width}x{self.height}@{fps}",
                f"{where} cannot stream {wanted} at {fps} fps",
            )
        profile = pipeline.start(config)
        try:
            device = profile.get_device()
            color = profile.get_stream(rs.stream.color).as_video_stream_profile()
            intr = color.get_intrinsics()
            self.intrinsics = CameraIntrinsics(
                width=intr.width,
                height=intr.height,
                fx=intr.fx,
                fy=intr.fy,
                cx=intr.ppx,
                cy=intr.ppy,
                distortion=[float(c) for c in intr.coeffs][:5],
            )
            if self.depth:
                self.depth_scale = float(device.first_depth_sensor().get_depth_scale())
                self._align = rs.align(rs.stream.color)
            self.device_serial = device.get_info(rs.camera_info.serial_number)
            self.device_name = device.get_info(rs.camera_info.name)
        except Exception:
            pipeline.stop()
            raise
        self._pipeline = pipeline
        self.describe = where if self.recording else f"RealSense {self.device_serial}"

    def _find_device(self, rs: ModuleType, ctx: Any) -> str:
        """The serial number to open: `serial_number`, or the first device's."""
        devices = {
            d.get_info(rs.camera_info.serial_number): d.get_info(rs.camera_info.name)
            for d in ctx.query_devices()
        }
        if not devices:
            raise CameraNotFoundError(
                "serial_number", self.serial_number, "no RealSense device found"
            )
        if self.serial_number and self.serial_number not in devices:
            raise CameraNotFoundError(
                "serial_number",
                self.serial_number,
                "no RealSense device with this serial number; connected: "
                + ", ".join(f"{s} ({n})" for s, n in sorted(devices.items())),
            )
        return self.serial_number or sorted(devices)[0]

    def _read(self) -> Frame:
        try:
            frames = self._pipeline.wait_for_frames(round(self.timeout * 1000))
        except RuntimeError as exc:  # "Frame didn't arrive within ...", device gone
            end = " (end of the recording)" if self.recording else ""
            raise ReadFailedError(f"{exc}{end}") from exc
        stamp = time.time()  # capture time: right after the frameset arrived
        if self._align is not None:
            frames = self._align.process(frames)
        color = frames.get_color_frame()
        if not color:
            raise ReadFailedError("a frameset without a color frame")
        image = np.asanyarray(color.get_data()).copy()
        if self._align is not None:
            depth = frames.get_depth_frame()
            self.last_depth = (
                DepthFrame(np.asanyarray(depth.get_data()).copy(), stamp, self.depth_scale)
                if depth
                else None
            )
        return Frame(image=image, stamp=stamp)

    def _disconnect(self) -> None:
        pipeline, self._pipeline, self._align = self._pipeline, None, None
        if pipeline is not None:
            with contextlib.suppress(RuntimeError):  # already stopped, or the device is gone
                pipeline.stop()
