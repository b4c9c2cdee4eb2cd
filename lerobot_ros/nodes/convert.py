"""Conversions between ROS messages and the core's numpy/float types (no cv_bridge: PyPI's is
ROS 1's and breaks on numpy 2)."""

from __future__ import annotations

import array
from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image, JointState
from visualization_msgs.msg import Marker, MarkerArray

from lerobot_ros.core.backends import CameraIntrinsics, SceneObject


def to_time(stamp: float) -> Time:
    """Wall-clock seconds -> builtin_interfaces/Time."""
    ns = round(stamp * 1e9)
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def from_time(t: Time) -> float:
    return t.sec + t.nanosec * 1e-9


def joint_state(
    names: Sequence[str],
    position: np.ndarray,
    stamp: float,
    velocity: np.ndarray | None = None,
    effort: np.ndarray | None = None,
) -> JointState:
    msg = JointState()
    msg.header.stamp = to_time(stamp)
    msg.name = list(names)
    msg.position = float64_array(position)
    if velocity is not None:
        msg.velocity = float64_array(velocity)
    if effort is not None:
        msg.effort = float64_array(effort)
    return msg


def float64_array(values: np.ndarray) -> array.array[float]:
    """numpy -> array('d'), the type of a float64[] field: its setter takes that as is, where a
    list is checked element by element (5x slower, on every command of the 100 Hz path)."""
    out = array.array("d")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return out


def image_msg(rgb: np.ndarray, stamp: float, frame_id: str) -> Image:
    """HxWx3 uint8 RGB -> sensor_msgs/Image (rgb8)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"image must be HxWx3 uint8, got {rgb.dtype} {rgb.shape}")
    msg = Image()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = int(rgb.shape[1] * 3)
    msg.data = np.ascontiguousarray(rgb).tobytes()
    return msg


def image_array(msg: Image) -> np.ndarray:
    """sensor_msgs/Image (rgb8/bgr8) -> HxWx3 uint8 RGB view (bgr8 is converted)."""
    if msg.encoding not in ("rgb8", "bgr8"):
        raise ValueError(f"image encoding {msg.encoding!r} is not rgb8 or bgr8")
    rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)
    rgb = rows[:, : msg.width * 3].reshape(msg.height, msg.width, 3)
    return rgb[..., ::-1] if msg.encoding == "bgr8" else rgb


def camera_info(intr: CameraIntrinsics, stamp: float, frame_id: str) -> CameraInfo:
    msg = CameraInfo()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    msg.width, msg.height = intr.width, intr.height
    msg.distortion_model = "plumb_bob"
    msg.d = [float(x) for x in intr.distortion]
    msg.k = [intr.fx, 0.0, intr.cx, 0.0, intr.fy, intr.cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [intr.fx, 0.0, intr.cx, 0.0, 0.0, intr.fy, intr.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def object_markers(objects: Sequence[SceneObject], frame_id: str, stamp: float) -> MarkerArray:
    """Scene objects -> cube markers (ns = object name) that RViz shows and the simulated camera
    in another process reads back with `marker_objects`."""
    out = MarkerArray()
    for i, obj in enumerate(objects):
        m = Marker()
        m.header.stamp = to_time(stamp)
        m.header.frame_id = frame_id
        m.ns, m.id, m.type, m.action = obj.name, i, Marker.CUBE, Marker.ADD
        m.pose.position.x, m.pose.position.y, m.pose.position.z = map(float, obj.position)
        w, x, y, z = map(float, obj.quaternion)
        m.pose.orientation.w, m.pose.orientation.x = w, x
        m.pose.orientation.y, m.pose.orientation.z = y, z
        m.scale.x, m.scale.y, m.scale.z = map(float, obj.size)
        m.color.r, m.color.g, m.color.b, m.color.a = map(float, obj.rgba)
        out.markers.append(m)
    return out


def marker_objects(msg: MarkerArray) -> list[SceneObject]:
    objs = []
    for m in msg.markers:
        o = m.pose.orientation
        objs.append(
            SceneObject(
                name=m.ns,
                position=np.array([m.pose.position.x, m.pose.position.y, m.pose.position.z]),
                quaternion=np.array([o.w, o.x, o.y, o.z]),
                size=np.array([m.scale.x, m.scale.y, m.scale.z]),
                rgba=np.array([m.color.r, m.color.g, m.color.b, m.color.a]),
            )
        )
    return objs


def positions_by_name(msg: JointState, names: Sequence[str]) -> np.ndarray | None:
    """Positions of `names` in that order, or None when one is missing or lengths disagree."""
    if len(msg.position) != len(msg.name):
        return None
    if tuple(msg.name) == tuple(names):  # the usual case: same joints, same order
        return np.array(msg.position, dtype=np.float64)
    index = {n: i for i, n in enumerate(msg.name)}
    try:
        return np.array([msg.position[index[n]] for n in names], dtype=np.float64)
    except KeyError:
        return None
