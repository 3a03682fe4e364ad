"""ROS message <-> numpy conversions: round trips, step padding, units and error messages.

Needs the message Python packages (sensor_msgs, nav_msgs) but no running ROS graph.
"""

from __future__ import annotations

import array
import math
import sys

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg")
pytest.importorskip("nav_msgs.msg")

from builtin_interfaces.msg import Time
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, Image

from crossover_ros.errors import ConversionError
from crossover_ros.frames import CameraIntrinsics
from crossover_ros.pipeline import decode
from crossover_ros.ros import convert

pytestmark = pytest.mark.ros

RNG = np.random.default_rng(0)


def _rgb(height: int = 5, width: int = 7) -> np.ndarray:
    return RNG.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _image(pixels: np.ndarray, encoding: str, pad: int = 0, big_endian: bool = False) -> Image:
    """Hand-built Image with `pad` junk bytes after every row, as some drivers send."""
    height, width = pixels.shape[:2]
    dtype = pixels.dtype.newbyteorder(">" if big_endian else "<")
    rows = np.ascontiguousarray(pixels.astype(dtype)).reshape(height, -1).view(np.uint8)
    padded = np.concatenate([rows, np.full((height, pad), 0xAB, np.uint8)], axis=1)
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=int(big_endian))
    msg.step = padded.shape[1]
    msg.data = array.array("B", padded.tobytes())
    return msg


# ---------------------------------------------------------------------------------------------
# Time


def test_stamp_round_trip() -> None:
    stamp = convert.seconds_to_stamp(1_700_000_000.123456789)
    assert stamp.sec == 1_700_000_000
    assert abs(stamp.nanosec - 123_456_789) <= 256  # float64 resolution at 1.7e9 s
    assert decode.stamp_to_seconds(Time(sec=12, nanosec=500_000_000)) == 12.5


def test_seconds_to_stamp_carries_rounding_into_seconds() -> None:
    stamp = convert.seconds_to_stamp(2.9999999999)
    assert (stamp.sec, stamp.nanosec) == (3, 0)


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, 2.0**31])
def test_seconds_to_stamp_rejects_unrepresentable(bad: float) -> None:
    with pytest.raises(ConversionError, match="stamp"):
        convert.seconds_to_stamp(bad)


# ---------------------------------------------------------------------------------------------
# Colour


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_colour_round_trip(encoding: str) -> None:
    rgb = _rgb()
    msg = convert.rgb_to_image(rgb, 3.25, "cam_optical", encoding)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (5, 7, 21, encoding)
    assert msg.header.frame_id == "cam_optical"
    assert decode.stamp_to_seconds(msg.header.stamp) == 3.25
    assert isinstance(msg.data, array.array)
    np.testing.assert_array_equal(decode.image_to_rgb(msg), rgb)


def test_bgr8_bytes_are_in_bgr_order() -> None:
    rgb = np.array([[[10, 20, 30]]], np.uint8)
    msg = convert.rgb_to_image(rgb, 0.0, "cam", "bgr8")
    assert list(msg.data) == [30, 20, 10]


def test_mono8_round_trip_from_grey_and_from_rgb() -> None:
    grey = RNG.integers(0, 256, size=(4, 6), dtype=np.uint8)
    msg = convert.rgb_to_image(grey, 0.0, "cam", "mono8")
    assert msg.step == 6
    out = decode.image_to_rgb(msg)
    assert out.shape == (4, 6, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], grey)
    # Pure colours map to their BT.601 luma.
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], np.uint8)
    msg = convert.rgb_to_image(rgb, 0.0, "cam", "mono8")
    assert list(msg.data) == [76, 150, 29, 255]


@pytest.mark.parametrize("encoding", ["rgba8", "bgra8"])
def test_alpha_encodings_drop_alpha(encoding: str) -> None:
    rgb = _rgb()
    alpha = np.full((*rgb.shape[:2], 1), 7, np.uint8)
    channels = rgb if encoding == "rgba8" else rgb[..., ::-1]
    msg = _image(np.concatenate([channels, alpha], axis=2), encoding)
    np.testing.assert_array_equal(decode.image_to_rgb(msg), rgb)


def test_rgb8_read_is_zero_copy() -> None:
    msg = convert.rgb_to_image(_rgb(), 0.0, "cam")
    out = decode.image_to_rgb(msg)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8"])
def test_padded_step_is_honoured(encoding: str) -> None:
    rgb = _rgb(4, 5)
    if encoding == "bgr8":
        pixels = rgb[..., ::-1]
    elif encoding == "mono8":
        rgb = np.repeat(rgb[..., :1], 3, axis=2)
        pixels = rgb[..., 0]
    else:
        pixels = rgb
    msg = _image(pixels, encoding, pad=3)
    assert msg.step == 5 * pixels[0, 0].size + 3
    np.testing.assert_array_equal(decode.image_to_rgb(msg), rgb)


def test_padded_rgb8_view_is_strided_not_copied() -> None:
    msg = _image(_rgb(4, 5), "rgb8", pad=1)
    out = decode.image_to_rgb(msg)
    assert out.strides[0] == msg.step == 16
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))


def test_read_only_bytes_data_works() -> None:
    rgb = _rgb()
    msg = Image(height=5, width=7, encoding="rgb8", step=21)
    msg.data = rgb.tobytes()
    np.testing.assert_array_equal(decode.image_to_rgb(msg), rgb)


# ---------------------------------------------------------------------------------------------
# Depth


def test_16uc1_round_trip_in_millimetres() -> None:
    depth = np.array([[0.5, 1.2345, np.nan], [0.0, -1.0, 65.6]], np.float32)
    msg = convert.depth_to_image(depth, 1.0, "depth_optical", "16UC1")
    assert (msg.encoding, msg.step, msg.is_bigendian) == ("16UC1", 6, int(sys.byteorder == "big"))
    raw = decode.image_view(msg)
    # NaN, zero, negative and beyond-uint16 all become 0 = no reading.
    np.testing.assert_array_equal(raw, [[500, 1234, 0], [0, 0, 0]])
    out = decode.image_to_depth_m(msg)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, :2], [0.5, 1.234], rtol=0, atol=1e-6)
    assert np.isnan(out[0, 2]) and np.isnan(out[1]).all()


def test_16uc1_zero_is_nan_and_units_are_mm() -> None:
    msg = _image(np.array([[0, 1, 1500, 65535]], np.uint16), "16UC1")
    out = decode.image_to_depth_m(msg)
    assert np.isnan(out[0, 0])
    np.testing.assert_allclose(out[0, 1:], [0.001, 1.5, 65.535], rtol=1e-6)


def test_32fc1_round_trip_and_invalid_values() -> None:
    depth = np.array([[1.5, np.nan, 0.0], [-2.0, np.inf, 3.25]], np.float32)
    msg = convert.depth_to_image(depth, 1.0, "depth_optical", "32FC1")
    assert (msg.encoding, msg.step) == ("32FC1", 12)
    out = decode.image_to_depth_m(msg)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[1.5, np.nan, np.nan], [np.nan, np.nan, 3.25]])


def test_32fc1_invalid_values_from_a_driver_become_nan() -> None:
    raw = np.array([[-np.inf, -0.5, 0.0, 2.0]], np.float32)
    out = decode.image_to_depth_m(_image(raw, "32FC1", pad=2))
    assert np.isnan(out[0, :3]).all() and out[0, 3] == 2.0


def test_depth_read_does_not_modify_the_message() -> None:
    msg = _image(np.array([[0.0, 1.0]], np.float32), "32FC1")
    before = bytes(msg.data)
    decode.image_to_depth_m(msg)
    assert bytes(msg.data) == before


@pytest.mark.parametrize(("dtype", "encoding"), [(np.uint16, "16UC1"), (np.float32, "32FC1")])
def test_big_endian_depth_is_read_correctly(dtype: type, encoding: str) -> None:
    values = np.array([[1000, 2500]], dtype)
    msg = _image(values, encoding, pad=1, big_endian=True)
    out = decode.image_to_depth_m(msg)
    expected = [1.0, 2.5] if encoding == "16UC1" else [1000.0, 2500.0]
    np.testing.assert_allclose(out[0], expected)


def test_image_view_of_16uc1_is_zero_copy_with_odd_padding() -> None:
    msg = _image(np.arange(12, dtype=np.uint16).reshape(3, 4), "16UC1", pad=1)
    view = decode.image_view(msg)
    assert view.shape == (3, 4) and msg.step == 9
    np.testing.assert_array_equal(view, np.arange(12).reshape(3, 4))
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))


# ---------------------------------------------------------------------------------------------
# Bad images


def test_wrong_data_length_names_the_sizes() -> None:
    msg = convert.rgb_to_image(_rgb(), 0.0, "cam")
    msg.data = msg.data[:-1]
    with pytest.raises(ConversionError, match=r"104 bytes, expected step \* height = 21 \* 5"):
        decode.image_to_rgb(msg)


def test_step_smaller_than_row_is_rejected() -> None:
    msg = convert.rgb_to_image(_rgb(), 0.0, "cam")
    msg.step = 20
    msg.data = msg.data[:100]
    with pytest.raises(ConversionError, match=r"step 20 is smaller than .* = 21"):
        decode.image_to_rgb(msg)


def test_empty_image_is_rejected() -> None:
    with pytest.raises(ConversionError, match="empty size 0x0"):
        decode.image_to_rgb(Image(encoding="rgb8"))


@pytest.mark.parametrize(
    ("reader", "encoding", "message"),
    [
        (decode.image_to_rgb, "16UC1", "cannot read '16UC1' as colour"),
        (decode.image_to_depth_m, "rgb8", "cannot read 'rgb8' as depth"),
        (decode.image_view, "yuv422", "unsupported image encoding 'yuv422'"),
        (decode.image_to_rgb, "", "cannot read '' as colour"),
    ],
)
def test_wrong_encoding_is_rejected(reader, encoding: str, message: str) -> None:
    msg = Image(height=1, width=1, step=3, encoding=encoding)
    msg.data = b"\x00\x00\x00"
    with pytest.raises(ConversionError, match=message):
        reader(msg)


def test_writers_reject_bad_arrays() -> None:
    with pytest.raises(ConversionError, match=r"shape \(H, W, 3\)"):
        convert.rgb_to_image(np.zeros((4, 4), np.uint8), 0.0, "cam", "rgb8")
    with pytest.raises(ConversionError, match="uint8"):
        convert.rgb_to_image(np.zeros((4, 4, 3), np.float32), 0.0, "cam")
    with pytest.raises(ConversionError, match="use rgb8, bgr8 or mono8"):
        convert.rgb_to_image(_rgb(), 0.0, "cam", "rgba8")
    with pytest.raises(ConversionError, match=r"shape \(H, W\)"):
        convert.depth_to_image(np.zeros((2, 2, 1), np.float32), 0.0, "cam")
    with pytest.raises(ConversionError, match="floating-point metres"):
        convert.depth_to_image(np.zeros((2, 2), np.uint16), 0.0, "cam")
    with pytest.raises(ConversionError, match="use 16UC1 or 32FC1"):
        convert.depth_to_image(np.zeros((2, 2), np.float32), 0.0, "cam", "mono16")


def test_writer_accepts_non_contiguous_input() -> None:
    rgb = _rgb(6, 8)[::2, ::2]
    msg = convert.rgb_to_image(rgb, Time(sec=4, nanosec=5), "cam")
    assert msg.header.stamp.sec == 4 and msg.header.stamp.nanosec == 5
    np.testing.assert_array_equal(decode.image_to_rgb(msg), rgb)


# ---------------------------------------------------------------------------------------------
# Camera model


def test_camera_info_round_trip() -> None:
    intrinsics = CameraIntrinsics(640, 480, 525.0, 526.0, 319.5, 239.5)
    msg = convert.intrinsics_to_camera_info(intrinsics, 2.0, "cam_optical")
    assert msg.header.frame_id == "cam_optical" and msg.distortion_model == "plumb_bob"
    assert decode.camera_info_to_intrinsics(msg) == intrinsics
    assert decode.camera_info_to_intrinsics(msg, rectified=True) == intrinsics


def test_camera_info_uses_p_when_rectified() -> None:
    msg = convert.intrinsics_to_camera_info(CameraIntrinsics(4, 3, 2.0, 2.0, 1.5, 1.0), 0.0, "c")
    msg.p = [3.0, 0.0, 1.0, 0.0, 0.0, 3.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert decode.camera_info_to_intrinsics(msg, rectified=True).fx == 3.0
    assert decode.camera_info_to_intrinsics(msg).fx == 2.0


def test_uncalibrated_camera_info_is_rejected() -> None:
    msg = CameraInfo(width=640, height=480)
    with pytest.raises(ConversionError, match=r"positive focal lengths.*uncalibrated"):
        decode.camera_info_to_intrinsics(msg)


def test_camera_info_validation() -> None:
    good = convert.intrinsics_to_camera_info(
        CameraIntrinsics(640, 480, 500.0, 500.0, 320.0, 240.0), 0.0, "cam"
    )
    msg = convert.intrinsics_to_camera_info(
        CameraIntrinsics(640, 480, 500.0, 500.0, 320.0, 240.0), 0.0, "cam"
    )
    msg.width = 0
    with pytest.raises(ConversionError, match="empty size 0x480"):
        decode.camera_info_to_intrinsics(msg)
    msg = good
    msg.k = [500.0, 1.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]
    with pytest.raises(ConversionError, match="zero-skew"):
        decode.camera_info_to_intrinsics(msg)
    msg.k = [500.0, 0.0, 320.0, 0.0, math.nan, 240.0, 0.0, 0.0, 1.0]
    with pytest.raises(ConversionError, match="non-finite"):
        decode.camera_info_to_intrinsics(msg)
    msg.k = [500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]
    msg.binning_x = 2
    with pytest.raises(ConversionError, match="binning 2x0"):
        decode.camera_info_to_intrinsics(msg)
    msg.binning_x = 0
    msg.roi.width, msg.roi.height, msg.roi.x_offset = 100, 100, 10
    with pytest.raises(ConversionError, match="region of interest"):
        decode.camera_info_to_intrinsics(msg)
    msg.roi.width, msg.roi.height, msg.roi.x_offset = 640, 480, 0
    assert decode.camera_info_to_intrinsics(msg).fx == 500.0


# ---------------------------------------------------------------------------------------------
# Poses


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


@pytest.mark.parametrize(
    ("axis", "angle"),
    [
        ((0.0, 0.0, 1.0), 0.0),
        ((0.0, 0.0, 1.0), 0.7),
        ((1.0, 2.0, -0.5), 2.5),
        ((1.0, 0.0, 0.0), math.pi),  # trace = -1: the branches without w
        ((0.0, 1.0, 0.0), math.pi),
        ((0.0, 0.0, 1.0), math.pi),
    ],
)
def test_pose_odometry_round_trip(axis: tuple[float, float, float], angle: float) -> None:
    pose = np.eye(4)
    pose[:3, :3] = _rotation(np.array(axis), angle)
    pose[:3, 3] = (1.0, -2.0, 0.5)
    msg = convert.pose_to_odometry(pose, 7.5, "odom", "base_link")
    assert (msg.header.frame_id, msg.child_frame_id) == ("odom", "base_link")
    q = msg.pose.pose.orientation
    assert math.isclose(q.x**2 + q.y**2 + q.z**2 + q.w**2, 1.0) and q.w >= 0.0
    np.testing.assert_allclose(decode.odometry_to_pose(msg), pose, atol=1e-12)


def test_odometry_quaternion_is_normalised() -> None:
    msg = Odometry()
    msg.pose.pose.orientation.w = 2.0
    np.testing.assert_allclose(decode.odometry_to_pose(msg), np.eye(4))


def test_odometry_zero_quaternion_is_rejected() -> None:
    msg = Odometry()
    msg.pose.pose.orientation.w = 0.0
    with pytest.raises(ConversionError, match="zero or not finite"):
        decode.odometry_to_pose(msg)


def test_pose_to_odometry_rejects_bad_matrices() -> None:
    with pytest.raises(ConversionError, match="4x4"):
        convert.pose_to_odometry(np.eye(3), 0.0, "odom", "base")
    mirrored = np.diag([1.0, 1.0, -1.0, 1.0])
    with pytest.raises(ConversionError, match="orthonormal"):
        convert.pose_to_odometry(mirrored, 0.0, "odom", "base")
    bottom = np.eye(4)
    bottom[3, 0] = 1.0
    with pytest.raises(ConversionError, match="bottom row"):
        convert.pose_to_odometry(bottom, 0.0, "odom", "base")
    with pytest.raises(ConversionError, match="non-finite"):
        convert.pose_to_odometry(np.full((4, 4), np.nan), 0.0, "odom", "base")


def test_transform_stamped_carries_the_pose_as_tf_wants() -> None:
    pose = np.eye(4)
    pose[:3, :3] = decode.quaternion_to_matrix(0.1, -0.2, 0.3, 0.9)
    pose[:3, 3] = (1.0, -2.0, 0.5)
    msg = convert.transform_stamped(pose, 3.25, "map", "odom")
    assert (msg.header.frame_id, msg.child_frame_id) == ("map", "odom")
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (3, 250_000_000)
    t, r = msg.transform.translation, msg.transform.rotation
    back = np.eye(4)
    back[:3, :3] = decode.quaternion_to_matrix(r.x, r.y, r.z, r.w)
    back[:3, 3] = (t.x, t.y, t.z)
    np.testing.assert_allclose(back, pose, atol=1e-12)
    with pytest.raises(ConversionError, match="orthonormal"):
        convert.transform_stamped(np.diag([1.0, 1.0, -1.0, 1.0]), 0.0, "map", "odom")
