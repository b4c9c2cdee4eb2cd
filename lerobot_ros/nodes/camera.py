"""Camera node: `~/image_raw` (rgb8) + `~/camera_info`, both stamped at capture time.

Launched as /cameras/<name>. Capture runs in a timer of its own callback group. A simulated
camera (backend 'sim') renders the scene of the simulated follower in another process: it
follows `/follower/joint_states` and the scene objects topic.
"""

from __future__ import annotations

import time
from typing import Any

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import CameraInfo, Image, JointState
from visualization_msgs.msg import MarkerArray

from lerobot_ros.core.backends import CAMERA_BACKENDS, CameraBackend
from lerobot_ros.core.cameras import CameraDisconnected
from lerobot_ros.core.params import (
    ParameterError,
    ParamSpec,
    file_exists,
    in_range,
    one_of,
    positive,
)
from lerobot_ros.core.stats import PeriodStats
from lerobot_ros.nodes import qos
from lerobot_ros.nodes.base import ERROR, OK, WARN, LeRobotNode, run_node
from lerobot_ros.nodes.convert import camera_info, image_msg, marker_objects

CAMERA_PARAMS = [
    ParamSpec(
        "backend",
        "sim",
        "Camera backend: 'sim' (MuJoCo render); hardware backends register their own names.",
        (one_of(CAMERA_BACKENDS.names),),
    ),
    ParamSpec("camera_name", "", "Name of the camera (sim: MuJoCo camera); empty = node name."),
    ParamSpec("width", 640, "Image width in pixels.", (in_range(16, 8192),)),
    ParamSpec("height", 480, "Image height in pixels.", (in_range(16, 8192),)),
    ParamSpec("fps", 30.0, "Frames per second.", (positive,)),
    ParamSpec("frame_id", "", "header.frame_id; empty = '<camera_name>_optical_frame'."),
    ParamSpec("urdf", "", "URDF of the simulated scene; empty = urdf/so101.urdf.", (file_exists,)),
    ParamSpec("joint_states_topic", "/follower/joint_states", "Sim: arm pose to render."),
    ParamSpec("objects_topic", "/sim/objects", "Sim: scene objects (MarkerArray) to render."),
    ParamSpec(
        "device",
        "0",
        "OpenCV: camera index ('0') or path (/dev/video2, /dev/v4l/by-id/..., a video file).",
    ),
    ParamSpec("fourcc", "", "OpenCV: pixel format to ask for, e.g. 'MJPG'; empty = default."),
    ParamSpec(
        "calibration",
        "",
        "OpenCV: camera_info YAML; empty = pinhole guess (60 deg across the width).",
        (file_exists,),
    ),
    ParamSpec("reconnect_period", 1.0, "Hardware: seconds between reopen attempts.", (positive,)),
]


class CameraNode(LeRobotNode):
    PARAMS = CAMERA_PARAMS

    def __init__(self, node_name: str = "camera", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.camera_name = self.p["camera_name"] or self.get_name()
        self.frame_id = self.p["frame_id"] or f"{self.camera_name}_optical_frame"
        try:
            self.backend: CameraBackend = CAMERA_BACKENDS.create(
                self.p["backend"],
                name=self.camera_name,
                width=self.p["width"],
                height=self.p["height"],
                fps=self.p["fps"],
                **self.backend_options(),
            )
        except ParameterError:  # a backend's own, naming its parameter (CameraConfigError)
            raise
        except ValueError as exc:  # e.g. a sim camera the scene does not have
            raise ParameterError("camera_name", self.camera_name, str(exc)) from exc
        self.backend.open()
        if getattr(self.backend, "fps_warning", ""):  # e.g. a webcam that reports another rate
            self.get_logger().warning(self.backend.fps_warning)
        self._joint_state: JointState | None = None
        self._objects: MarkerArray | None = None
        self._period = PeriodStats(window=int(self.p["fps"] * 5))
        self._last: float | None = None
        self._frames = 0
        self._disconnected = ""  # why grab() fails while the device is gone

        self._image_pub = self.create_publisher(Image, "~/image_raw", qos.SENSOR)
        self._info_pub = self.create_publisher(CameraInfo, "~/camera_info", qos.SENSOR)
        if getattr(self.backend, "wants_robot_state", False):
            self.create_subscription(
                JointState, self.p["joint_states_topic"], self._on_joint_state, qos.SENSOR
            )
            self.create_subscription(
                MarkerArray, self.p["objects_topic"], self._on_objects, qos.SENSOR
            )
        group = MutuallyExclusiveCallbackGroup()
        self.create_timer(1.0 / self.p["fps"], self._capture, callback_group=group)
        self.create_timer(1.0, self._diagnostics, callback_group=MutuallyExclusiveCallbackGroup())

    def backend_options(self) -> dict[str, Any]:
        """Backend-specific factory arguments (a subclass for another backend overrides it)."""
        backend = self.p["backend"]
        if backend == "sim":
            return {"urdf_path": self.p["urdf"] or None}
        if backend == "opencv":
            return {
                "device": self.p["device"],
                "fourcc": self.p["fourcc"],
                "calibration": self.p["calibration"] or None,
                "reconnect_period": self.p["reconnect_period"],
            }
        return {}

    def _on_joint_state(self, msg: JointState) -> None:
        self._joint_state = msg  # applied in the capture timer: no locking around the renderer

    def _on_objects(self, msg: MarkerArray) -> None:
        self._objects = msg

    def _capture(self) -> None:
        js, objs = self._joint_state, self._objects
        if js is not None:
            self.backend.update_scene(
                list(js.name), list(js.position), marker_objects(objs) if objs else []
            )
        try:
            frame = self.backend.grab()
        except CameraDisconnected as exc:  # the backend retries; report it once, then in diag
            if not self._disconnected:
                self.get_logger().error(str(exc))
            self._disconnected = str(exc)
            return
        if self._disconnected:
            self.get_logger().info(f"camera {self.camera_name} reconnected")
            self._disconnected = ""
        now = time.time()
        if self._last is not None:
            self._period.add(now - self._last)
        self._last = now
        self._frames += 1
        self._image_pub.publish(image_msg(frame.image, frame.stamp, self.frame_id))
        self._info_pub.publish(camera_info(self.backend.intrinsics, frame.stamp, self.frame_id))

    def _diagnostics(self) -> None:
        if self._disconnected:
            self.publish_diagnostics(
                f"camera {self.camera_name}", ERROR, "disconnected", {"error": self._disconnected}
            )
            return
        summary = self._period.summary(1.0 / self.p["fps"])
        ok = summary["rate_hz"] >= 0.9 * self.p["fps"]
        self.publish_diagnostics(
            f"camera {self.camera_name}",
            OK if ok else WARN,
            "streaming" if ok else "below target fps",
            {"frames": self._frames, "target_fps": self.p["fps"], **summary},
        )

    def shutdown(self) -> None:
        self.backend.close()


def main(args: list[str] | None = None) -> int:
    return run_node(CameraNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
