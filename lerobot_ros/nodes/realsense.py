"""RealSense node: color + depth aligned to color, each with its CameraInfo, stamped at capture.

    ~/color/image_raw     sensor_msgs/Image rgb8
    ~/color/camera_info   sensor_msgs/CameraInfo (intrinsics of the color stream profile)
    ~/depth/image_raw     sensor_msgs/Image 16UC1 aligned to color (same size and frame_id, same
                          stamp as the color image), in units of `depth_scale` m (diagnostics)
    ~/depth/camera_info   sensor_msgs/CameraInfo (the color intrinsics: depth is aligned)

CameraNode (lerobot_ros.nodes.camera) does the parameters, the capture timer and the
diagnostics; this subclass renames its topics under ~/color and adds depth. Run it in a process
of its own (console script `realsense`; see the import order below). Without a device it stops
at start-up with one line, exit status 2:
"parameter 'serial_number' = '': no RealSense device found".
"""

from __future__ import annotations

# isort: off
import contextlib
import sys

# rclpy BEFORE pyrealsense2, always: the pyrealsense2 wheel carries Fast DDS symbols of its own.
# Loaded before rclpy, a process that created a node segfaults at exit; loaded after, it does
# not. Importing both here, at the top of the node's own module, fixes that order.
import rclpy  # noqa: F401

with contextlib.suppress(ImportError):  # RealSenseCamera.open() reports it, with a hint
    import pyrealsense2  # noqa: F401
# isort: on

from typing import Any

import numpy as np
from rclpy.publisher import Publisher
from sensor_msgs.msg import CameraInfo, Image

from lerobot_ros.core.cameras import CameraDisconnected, DepthFrame
from lerobot_ros.core.params import (
    ParameterError,
    ParamSpec,
    file_exists,
    in_range,
    one_of,
    positive,
)
from lerobot_ros.nodes import qos
from lerobot_ros.nodes.base import ERROR, run_node
from lerobot_ros.nodes.camera import CAMERA_PARAMS, CameraNode
from lerobot_ros.nodes.convert import camera_info, to_time

# CameraNode parameters that mean nothing here (the sim's and OpenCV's).
_OTHER_BACKENDS = {"urdf", "joint_states_topic", "objects_topic", "device", "fourcc", "calibration"}

_REALSENSE_PARAMS = [
    ParamSpec(
        "backend", "realsense", "Camera backend: always 'realsense'.", (one_of(["realsense"]),)
    ),
    ParamSpec("serial_number", "", "Serial number of the RealSense to open; empty = the first."),
    ParamSpec("enable_depth", True, "Stream depth aligned to color on ~/depth/*."),
    ParamSpec(
        "depth_width",
        0,
        "Depth stream width before alignment; 0 = the color width.",
        (in_range(0, 8192),),
    ),
    ParamSpec(
        "depth_height",
        0,
        "Depth stream height before alignment; 0 = the color height.",
        (in_range(0, 8192),),
    ),
    ParamSpec(
        "recording",
        "",
        "Play this librealsense recording (.db3/.bag) instead of a device; it loops.",
        (file_exists,),
    ),
    ParamSpec(
        "reconnect_period", 1.0, "Seconds between reopen attempts after a disconnect.", (positive,)
    ),
]


def _merge(base: list[ParamSpec], extra: list[ParamSpec]) -> list[ParamSpec]:
    """CameraNode's parameters but other backends' ones, those of `extra` replacing same names."""
    names = {s.name for s in extra}
    return [s for s in base if s.name not in names | _OTHER_BACKENDS] + extra


REALSENSE_PARAMS = _merge(CAMERA_PARAMS, _REALSENSE_PARAMS)


def depth_msg(depth: DepthFrame, frame_id: str) -> Image:
    """HxW uint16 -> sensor_msgs/Image 16UC1 (host byte order)."""
    image = np.ascontiguousarray(depth.image, dtype=np.uint16)
    msg = Image()
    msg.header.stamp = to_time(depth.stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding = "16UC1"
    msg.is_bigendian = int(sys.byteorder == "big")
    msg.step = int(image.shape[1] * 2)
    msg.data = image.tobytes()
    return msg


class RealSenseNode(CameraNode):
    PARAMS = REALSENSE_PARAMS

    def __init__(self, node_name: str = "realsense", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)  # creates and opens the RealSenseCamera
        wanted = self.p["serial_number"]
        if wanted and not self.p["recording"] and self.backend.device_serial != wanted:
            self.backend.close()
            raise ParameterError(  # CameraNode did not pass backend_options() to the backend
                "serial_number", wanted, f"opened {self.backend.device_serial} instead"
            )
        # CameraNode publishes ~/image_raw and ~/camera_info; here they live under ~/color.
        self._image_pub = self._replace(self._image_pub, Image, "~/color/image_raw")
        self._info_pub = self._replace(self._info_pub, CameraInfo, "~/color/camera_info")
        self._depth_pub = self.create_publisher(Image, "~/depth/image_raw", qos.SENSOR)
        self._depth_info_pub = self.create_publisher(CameraInfo, "~/depth/camera_info", qos.SENSOR)
        self._depth_stamp: float | None = None
        self._disconnected = ""

    def backend_options(self) -> dict[str, Any]:
        """Factory arguments of RealSenseCamera (CameraNode passes them to CAMERA_BACKENDS)."""
        return {
            "serial_number": self.p["serial_number"],
            "depth": self.p["enable_depth"],
            "depth_width": self.p["depth_width"],
            "depth_height": self.p["depth_height"],
            "reconnect_period": self.p["reconnect_period"],
            "recording": self.p["recording"],
        }

    def _replace(self, old: Publisher, msg_type: Any, topic: str) -> Publisher:
        self.destroy_publisher(old)
        return self.create_publisher(msg_type, topic, qos.SENSOR)

    def _capture(self) -> None:
        frames = self._frames
        try:
            super()._capture()  # grab() + color image and camera_info
        except CameraDisconnected as exc:  # (a CameraNode that lets it through)
            if not self._disconnected:
                self.get_logger().error(str(exc))
            self._disconnected = str(exc)
            return
        except Exception:
            if not self.context.ok():  # SIGINT/SIGTERM came while grab() waited: no publishing
                return
            raise
        if self._frames == frames:  # no frame: disconnected, CameraNode reported it
            return
        if self._disconnected:
            self.get_logger().info(f"{self.backend.describe} reconnected")
            self._disconnected = ""
        depth: DepthFrame | None = getattr(self.backend, "last_depth", None)
        if depth is None or depth.stamp == self._depth_stamp:
            return
        self._depth_stamp = depth.stamp
        self._depth_pub.publish(depth_msg(depth, self.frame_id))
        self._depth_info_pub.publish(
            camera_info(self.backend.depth_intrinsics, depth.stamp, self.frame_id)
        )

    def _diagnostics(self) -> None:
        if not self._disconnected:
            super()._diagnostics()
            return
        self.publish_diagnostics(
            f"camera {self.camera_name}",
            ERROR,
            "disconnected",
            {"error": self._disconnected, "reconnects": self.backend.reconnects},
        )


def main(args: list[str] | None = None) -> int:
    return run_node(RealSenseNode, args)


if __name__ == "__main__":
    sys.exit(main())
