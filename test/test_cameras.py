"""Hardware camera backends without the hardware.

OpenCV: through OpenCV's own API on a video file written here with cv2.VideoWriter (the frame
number is coded in the pixel values). RealSense: the errors without a device, and librealsense's
own pipeline + rs.align on a recording written here from a librealsense software device.
"""

from __future__ import annotations

# isort: off
import contextlib

# rclpy BEFORE pyrealsense2 in any process that creates nodes (other test modules do, in this
# process): loaded first, pyrealsense2's own Fast DDS symbols make the process segfault at exit.
with contextlib.suppress(ImportError):
    import rclpy  # noqa: F401
# isort: on

import importlib.util
import itertools
import math
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from lerobot_ros.core.backends import CAMERA_BACKENDS
from lerobot_ros.core.cameras import (
    CameraConfigError,
    CameraDisconnected,
    CameraNotFoundError,
    DepthFrame,
    pinhole_guess,
)
from lerobot_ros.core.cameras.opencv import OpenCVCamera
from lerobot_ros.core.params import ParameterError

W, H, N_FRAMES, FILE_FPS = 320, 240, 60, 30.0


def gray(i: int) -> int:
    return 4 * i


@pytest.fixture
def video(tmp_path: Path) -> Path:
    """Frame i: left half gray 4 i (the frame number, in luma: JPEG keeps it), right half red."""
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FILE_FPS, (W, H))
    assert writer.isOpened()
    for i in range(N_FRAMES):
        bgr = np.zeros((H, W, 3), np.uint8)
        bgr[:, : W // 2] = gray(i)
        bgr[:, W // 2 :] = (0, 0, 255)  # OpenCV writes BGR: this is red
        writer.write(bgr)
    writer.release()
    return path


def frame_index(rgb: np.ndarray) -> int:
    """The frame number coded in an RGB frame; checks the channel order on the way."""
    left = float(rgb[:, : W // 2 - 16].mean())
    i = round(left / 4)
    assert abs(left - gray(i)) < 1.5, left
    r, g, b = rgb[:, W // 2 + 16 :].reshape(-1, 3).mean(axis=0)
    assert r > 200 and g < 40 and b < 40, (r, g, b)  # red stays red: RGB, not BGR
    return i


def test_opencv_reads_a_video_file_rgb_in_order_stamped_at_capture(video: Path) -> None:
    cam = CAMERA_BACKENDS.create("opencv", name="clip", width=W, height=H, fps=30.0, device=video)
    assert isinstance(cam, OpenCVCamera)
    cam.open()
    try:
        assert cam.is_file and cam.connected and cam.fps_warning == ""
        f = W / (2 * math.tan(math.radians(30)))  # default pinhole guess: 60 deg across
        i = cam.intrinsics
        assert (i.width, i.height, i.cx, i.cy) == (W, H, W / 2, H / 2)
        assert i.fx == pytest.approx(f) and i.fy == pytest.approx(f)
        indices, stamps = [], []
        for _ in range(N_FRAMES):
            before = time.time()
            frame = cam.grab()
            assert before <= frame.stamp <= time.time()
            assert frame.image.shape == (H, W, 3) and frame.image.dtype == np.uint8
            indices.append(frame_index(frame.image))
            stamps.append(frame.stamp)
        assert indices == list(range(N_FRAMES))
        assert all(b > a for a, b in itertools.pairwise(stamps))
    finally:
        cam.close()
    assert not cam.connected


def test_opencv_end_of_file_disconnects_then_reconnects_and_loops(video: Path) -> None:
    """A file's end is an unplug; with the file gone it stays disconnected, and when it is back
    the camera reopens it by itself (frame 0 again). On POSIX a file being read survives a
    rename, so the "unplug" happens at the end of the file."""
    period = 0.1
    cam = OpenCVCamera(width=W, height=H, fps=FILE_FPS, device=str(video), reconnect_period=period)
    cam.open()
    try:
        for _ in range(N_FRAMES - 1):
            cam.grab()
        hidden = video.with_suffix(".unplugged")
        video.rename(hidden)  # mid-stream: the open file still delivers its last frame
        assert frame_index(cam.grab().image) == N_FRAMES - 1
        with pytest.raises(CameraDisconnected, match="end of the video file"):
            cam.grab()
        assert not cam.connected and cam.disconnects == 1
        t0 = time.monotonic()
        for _ in range(5):  # between retries grab() raises at once, it does not block
            with pytest.raises(CameraDisconnected, match=r"retrying every 0\.1 s"):
                cam.grab()
        assert time.monotonic() - t0 < 0.05
        time.sleep(period * 1.5)
        with pytest.raises(CameraDisconnected, match="no such camera device or video file"):
            cam.grab()  # the retry ran and found nothing
        hidden.rename(video)  # plugged back in
        time.sleep(period * 1.5)
        frame = cam.grab()
        assert frame_index(frame.image) == 0 and frame.image.shape == (H, W, 3)
        assert cam.connected and cam.reconnects == 1 and cam.last_error == ""
        assert frame_index(cam.grab().image) == 1
    finally:
        cam.close()


def test_opencv_missing_device_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.avi"
    with pytest.raises(CameraNotFoundError, match=f"'{missing}': no such camera device"):
        OpenCVCamera(device=str(missing)).open()
    if not os.path.exists("/dev/video63"):
        with pytest.raises(CameraNotFoundError, match="'63': no video device /dev/video63"):
            OpenCVCamera(device="63").open()
    garbage = tmp_path / "notes.txt"
    garbage.write_text("not a video")
    with pytest.raises(CameraConfigError, match="OpenCV cannot open it"):
        OpenCVCamera(device=str(garbage)).open()
    # A ParameterError: the node stops at start-up with this one line (exit status 2).
    assert issubclass(CameraNotFoundError, ParameterError)


def test_opencv_impossible_resolution_names_device_requested_and_actual(video: Path) -> None:
    cam = OpenCVCamera(width=640, height=480, device=str(video))
    with pytest.raises(CameraConfigError) as err:
        cam.open()
    msg = str(err.value)
    assert str(video) in msg and "requested 640x480" in msg and "delivers 320x240" in msg, msg
    assert not cam.connected


def test_opencv_other_fps_is_a_warning_and_calibration_replaces_the_guess(
    video: Path, tmp_path: Path
) -> None:
    calib = tmp_path / "clip.yaml"
    calib.write_text(
        f"image_width: {W}\nimage_height: {H}\ncamera_name: clip\n"
        "camera_matrix: {rows: 3, cols: 3, data: [300.0, 0, 161.5, 0, 301.0, 119.5, 0, 0, 1]}\n"
        "distortion_model: plumb_bob\n"
        "distortion_coefficients: {rows: 1, cols: 5, data: [0.1, -0.2, 0.0, 0.0, 0.05]}\n"
    )
    cam = OpenCVCamera(width=W, height=H, fps=60.0, device=str(video), calibration=str(calib))
    cam.open()
    try:
        assert "requested 60 fps" in cam.fps_warning and "30 fps" in cam.fps_warning
        i = cam.intrinsics
        assert (i.fx, i.fy, i.cx, i.cy) == (300.0, 301.0, 161.5, 119.5)
        assert i.distortion == [0.1, -0.2, 0.0, 0.0, 0.05]
        assert cam.grab().image.shape == (H, W, 3)
    finally:
        cam.close()
    assert pinhole_guess(W, H).fx == pytest.approx(W / 2 / math.tan(math.radians(30)))


# --- RealSense ----------------------------------------------------------------------------------

HAS_RS = importlib.util.find_spec("pyrealsense2") is not None
needs_rs = pytest.mark.skipif(not HAS_RS, reason="pyrealsense2 not installed")


def _rs():  # type: ignore[no-untyped-def]
    try:
        import pyrealsense2 as rs
    except ImportError as exc:  # e.g. libusb-1.0 missing
        pytest.skip(f"pyrealsense2 does not import: {exc}")
    return rs


def _no_device() -> None:
    rs = _rs()
    if len(rs.context().query_devices()) > 0:
        pytest.skip("a RealSense device is connected")


@needs_rs
def test_realsense_without_device_says_so_and_names_the_serial() -> None:
    _no_device()
    with pytest.raises(CameraNotFoundError, match="no RealSense device found"):
        CAMERA_BACKENDS.create("realsense", name="wrist", width=640, height=480, fps=30.0).open()
    cam = CAMERA_BACKENDS.create("realsense", width=640, height=480, serial_number="0123456789")
    with pytest.raises(CameraNotFoundError) as err:
        cam.open()
    assert str(err.value) == ("parameter 'serial_number' = '0123456789': no RealSense device found")
    with pytest.raises(CameraConfigError, match="whole numbers"):
        CAMERA_BACKENDS.create("realsense", width=640, height=480, fps=29.97)


RS_W, RS_H, RS_FRAMES, RS_SERIAL = 64, 48, 12, "123456789"
RS_COLOR_F, RS_DEPTH_F = 60.0, 50.0


def write_recording(path: Path) -> None:
    """A librealsense recording of a software device: color rgb8 with R = 10 n, depth z16 of
    1000 + n mm in frame n, the depth camera at the color camera's pose (identity extrinsics)."""
    rs = _rs()
    dev = rs.software_device()
    depth_sensor, color_sensor = dev.add_sensor("Depth"), dev.add_sensor("Color")

    def stream(kind, uid, fmt, bpp, f):  # type: ignore[no-untyped-def]
        intr = rs.intrinsics()
        intr.width, intr.height, intr.fx, intr.fy = RS_W, RS_H, f, f
        intr.ppx, intr.ppy, intr.model, intr.coeffs = (
            RS_W / 2,
            RS_H / 2,
            rs.distortion.none,
            [0.0] * 5,
        )
        s = rs.video_stream()
        s.type, s.index, s.uid, s.width, s.height = kind, 0, uid, RS_W, RS_H
        s.fps, s.bpp, s.fmt, s.intrinsics = 30, bpp, fmt, intr
        return s

    dp = depth_sensor.add_video_stream(stream(rs.stream.depth, 0, rs.format.z16, 2, RS_DEPTH_F))
    cp = color_sensor.add_video_stream(stream(rs.stream.color, 1, rs.format.rgb8, 3, RS_COLOR_F))
    depth_sensor.add_read_only_option(rs.option.depth_units, 0.001)
    ext = rs.extrinsics()
    ext.rotation, ext.translation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], [0.0] * 3
    dp.register_extrinsics_to(cp, ext)
    dev.register_info(rs.camera_info.serial_number, RS_SERIAL)
    dev.register_info(rs.camera_info.name, "software RealSense")
    recorder = rs.recorder(str(path), dev)
    depth_sensor.open(dp)
    color_sensor.open(cp)
    depth_sensor.start(lambda f: None)
    color_sensor.start(lambda f: None)
    for n in range(RS_FRAMES):
        color = np.zeros((RS_H, RS_W, 3), np.uint8)
        color[..., 0], color[..., 2] = 10 * n, 200
        depth = np.full((RS_H, RS_W), 1000 + n, np.uint16)
        for sensor, profile, pixels, bpp in (
            (depth_sensor, dp, depth, 2),
            (color_sensor, cp, color, 3),
        ):
            f = rs.software_video_frame()
            f.pixels, f.stride, f.bpp = pixels, RS_W * bpp, bpp
            f.timestamp, f.domain, f.frame_number = (
                n * 1000 / 30,
                rs.timestamp_domain.hardware_clock,
                n,
            )
            f.profile = profile.as_video_stream_profile()
            if sensor is depth_sensor:
                f.depth_units = 0.001
            sensor.on_video_frame(f)
        time.sleep(1 / 30)
    for sensor in (depth_sensor, color_sensor):
        sensor.stop()
        sensor.close()
    del recorder  # flushes and closes the file


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("realsense") / "software.db3"
    write_recording(path)
    assert path.stat().st_size > 0
    return path


@needs_rs
def test_realsense_recording_color_with_aligned_depth_and_profile_intrinsics(
    recording: Path,
) -> None:
    cam = CAMERA_BACKENDS.create(
        "realsense", width=RS_W, height=RS_H, fps=30.0, recording=str(recording), timeout=0.5
    )
    cam.open()
    try:
        assert cam.device_serial == RS_SERIAL
        assert cam.depth_scale == pytest.approx(0.001)
        i = cam.intrinsics
        assert (i.width, i.height, i.fx, i.fy, i.cx, i.cy) == (RS_W, RS_H, 60, 60, 32, 24)
        assert cam.depth_intrinsics == i  # aligned to color
        seen, stamps = [], []
        while True:
            try:
                frame = cam.grab()
            except CameraDisconnected as exc:
                assert "end of the recording" in str(exc)
                break
            assert frame.image.shape == (RS_H, RS_W, 3) and frame.image.dtype == np.uint8
            n = int(frame.image[0, 0, 0]) // 10
            assert tuple(frame.image[0, 0]) == (10 * n, 0, 200)
            depth = cam.grab_depth()
            assert isinstance(depth, DepthFrame) and depth.stamp == frame.stamp
            assert depth.image.shape == (RS_H, RS_W) and depth.image.dtype == np.uint16
            # Same frameset: the depth of frame n, aligned (valid at the centre).
            assert int(depth.image[RS_H // 2, RS_W // 2]) == 1000 + n
            assert depth.metres()[RS_H // 2, RS_W // 2] == pytest.approx((1000 + n) * 0.001)
            seen.append(n)
            stamps.append(frame.stamp)
        assert len(seen) >= RS_FRAMES // 2 and seen == sorted(set(seen)), seen
        assert all(b > a for a, b in itertools.pairwise(stamps))
    finally:
        cam.close()
    with pytest.raises(CameraNotFoundError, match="no such file"):
        CAMERA_BACKENDS.create("realsense", recording=str(recording) + ".missing").open()


# --- RealSense node (its own process) -------------------------------------------------------


def _camera_node_passes_backend_options() -> bool:
    from lerobot_ros.nodes.camera import CAMERA_PARAMS, CameraNode

    return hasattr(CameraNode, "backend_options") and "device" in {p.name for p in CAMERA_PARAMS}


@pytest.mark.ros
def test_opencv_camera_node_streams_a_file_and_survives_its_end(
    video: Path, domain_id: int
) -> None:
    """The camera node with backend 'opencv': frames over DDS, and at the end of the file (an
    unplug) it reports, keeps running and streams again from frame 0 once reopened."""
    if not _camera_node_passes_backend_options():
        pytest.skip("CameraNode has no 'device' parameter / backend_options() yet")
    from sensor_msgs.msg import Image

    from lerobot_ros.nodes import qos
    from lerobot_ros.nodes.convert import image_array
    from lerobot_ros.testing.graph import GraphHarness
    from lerobot_ros.testing.ros import spawn_node

    with GraphHarness([], domain_id) as h:
        images = h.inbox(Image, "/cameras/clip/image_raw", qos.SENSOR)
        args = ["-r", "__node:=clip", "-r", "__ns:=/cameras", "-p", "backend:=opencv"]
        args += ["-p", f"device:={video}", "-p", f"width:={W}", "-p", f"height:={H}"]
        args += ["-p", "fps:=60.0", "-p", "reconnect_period:=0.3"]
        proc = spawn_node("lerobot_ros.nodes.camera", args, domain_id=domain_id)
        try:

            def looped() -> bool:
                seen = [frame_index(image_array(m)) for m in images.messages()]
                return any(b < a for a, b in itertools.pairwise(seen))

            h.wait(looped, 20.0, "the file to play to its end and again from its start")
            assert proc.poll() is None, proc.communicate()
        finally:
            proc.terminate()
            out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:{out}\nstderr:{err}"
        assert "end of the video file" in err, err  # reported once, in the log


@pytest.mark.ros
@needs_rs
def test_realsense_node_without_device_exits_2_with_one_line(domain_id: int) -> None:
    from lerobot_ros.testing.ros import spawn_node

    _no_device()
    proc = spawn_node("lerobot_ros.nodes.realsense", domain_id=domain_id)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, f"rc={proc.returncode}\nstdout:{out}\nstderr:{err}"
    assert err.strip() == (
        "[lerobot_ros] parameter 'serial_number' = '': no RealSense device found"
    ), err


@pytest.mark.ros
@needs_rs
def test_realsense_node_publishes_color_and_aligned_depth(recording: Path, domain_id: int) -> None:
    if not _camera_node_passes_backend_options():
        pytest.skip("CameraNode.backend_options() missing: the node cannot pass `recording`")
    from sensor_msgs.msg import CameraInfo, Image

    from lerobot_ros.nodes import qos
    from lerobot_ros.testing.graph import GraphHarness
    from lerobot_ros.testing.ros import spawn_node

    ns = "/cameras/wrist"
    with GraphHarness([], domain_id) as h:
        boxes = {
            t: h.inbox(m, f"{ns}/{t}", qos.SENSOR)
            for t, m in (
                ("color/image_raw", Image),
                ("color/camera_info", CameraInfo),
                ("depth/image_raw", Image),
                ("depth/camera_info", CameraInfo),
            )
        }
        args = ["-r", "__node:=wrist", "-r", "__ns:=/cameras", "-p", f"recording:={recording}"]
        args += ["-p", f"width:={RS_W}", "-p", f"height:={RS_H}", "-p", "reconnect_period:=0.1"]
        proc = spawn_node("lerobot_ros.nodes.realsense", args, domain_id=domain_id)
        try:
            h.wait(lambda: all(len(b) >= 3 for b in boxes.values()), 20.0, "color and depth")
        finally:
            proc.terminate()
            out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, f"rc={proc.returncode}\nstdout:{out}\nstderr:{err}"
        colors = {
            m.header.stamp.sec * 10**9 + m.header.stamp.nanosec: m
            for m in boxes["color/image_raw"].messages()
        }
        matched = 0
        for depth in boxes["depth/image_raw"].messages():
            assert (depth.encoding, depth.width, depth.height) == ("16UC1", RS_W, RS_H)
            assert depth.header.frame_id == "wrist_optical_frame"
            color = colors.get(depth.header.stamp.sec * 10**9 + depth.header.stamp.nanosec)
            if color is None:  # its color image was not received (best effort)
                continue
            matched += 1
            assert color.encoding == "rgb8"
            n = color.data[0] // 10
            d = np.frombuffer(bytes(depth.data), np.uint16).reshape(RS_H, RS_W)
            assert int(d[RS_H // 2, RS_W // 2]) == 1000 + n
        assert matched >= 1, "no depth image with the stamp of a color image"
        info = boxes["depth/camera_info"].last()
        assert (info.width, info.height, info.k[0], info.k[2]) == (RS_W, RS_H, 60.0, 32.0)
        assert boxes["color/camera_info"].last().k[0] == 60.0
