"""Conversions between ROS messages and the package's numpy types.

This is the only module that turns ROS messages into arrays and back, so encoding, ``step``
padding, endianness and unit rules live in one place. Every bad input raises ConversionError
with a message that names the topic-level problem (encoding, sizes, step).

Reading is zero-copy where no conversion is needed: ``image_view`` and ``image_to_rgb`` on rgb8
return views into ``msg.data``. Such a view is only valid while the message is alive and unchanged;
copy it if you keep it longer. Everything that must convert values (BGR order, grey, depth units)
returns a new array.
"""

from __future__ import annotations

import array
import math
import sys

import numpy as np
from builtin_interfaces.msg import Time
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, Image

from crossover_ros.errors import ConversionError
from crossover_ros.frames import CameraIntrinsics

__all__ = [
    "camera_info_to_intrinsics",
    "depth_to_image",
    "image_to_depth_m",
    "image_to_rgb",
    "image_view",
    "intrinsics_to_camera_info",
    "odometry_to_pose",
    "pose_to_odometry",
    "rgb_to_image",
    "seconds_to_stamp",
    "stamp_to_seconds",
]

# encoding -> (numpy dtype of one channel, channels). Names follow sensor_msgs/image_encodings.
_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
}
_COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
_DEPTH_ENCODINGS = ("16UC1", "32FC1")
_HOST_BIG_ENDIAN = sys.byteorder == "big"
_MM_PER_M = 1000.0
_UINT16_MAX = 65535
# ITU-R BT.601 luma weights, the usual RGB -> grey conversion for mono8.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

Stamp = Time | float


# --------------------------------------------------------------------------------------------
# Time


def stamp_to_seconds(stamp: Time) -> float:
    """Seconds since the epoch of a ``builtin_interfaces/Time`` (the float the core code uses)."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def seconds_to_stamp(t: float) -> Time:
    """A ``builtin_interfaces/Time`` for ``t`` seconds, rounded to the nearest nanosecond."""
    if not math.isfinite(t) or t < 0.0:
        raise ConversionError(f"cannot make a ROS stamp from {t!r} s: need a finite time >= 0")
    sec, nanosec = divmod(round(t * 1e9), 1_000_000_000)
    if sec >= 2**31:
        raise ConversionError(f"{t!r} s does not fit the int32 seconds of a ROS stamp")
    return Time(sec=int(sec), nanosec=int(nanosec))


def _as_stamp(stamp: Stamp) -> Time:
    """Accept either a Time message or float seconds, so callers need not convert first."""
    if isinstance(stamp, Time):
        return stamp
    return seconds_to_stamp(float(stamp))


# --------------------------------------------------------------------------------------------
# Images


def image_view(msg: Image) -> np.ndarray:
    """Zero-copy (H, W) or (H, W, C) view of an Image's pixels in their own dtype.

    Honours ``step`` padding (rows are strided, not copied) and the ``is_bigendian`` flag
    (the view's dtype carries the byte order). Channel order is whatever ``encoding`` says.
    """
    encoding = msg.encoding
    if encoding not in _ENCODINGS:
        raise ConversionError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(_ENCODINGS)}"
        )
    dtype, channels = _ENCODINGS[encoding]
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ConversionError(f"{encoding} image has an empty size {width}x{height}")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ConversionError(
            f"{encoding} image {width}x{height}: step {step} is smaller than "
            f"width * bytes_per_pixel = {row_bytes}"
        )
    data = msg.data
    if len(data) != step * height:
        raise ConversionError(
            f"{encoding} image {width}x{height}: data has {len(data)} bytes, "
            f"expected step * height = {step} * {height} = {step * height}"
        )
    raw = np.frombuffer(data, dtype=np.uint8)
    # (H, step) rows, cut to the pixel bytes: still a view, with a row stride of `step`.
    rows = raw.reshape(height, step)[:, :row_bytes]
    pixels = rows.view(dtype)
    if channels == 1:
        return pixels
    return pixels.reshape(height, width, channels)


def image_to_rgb(msg: Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an rgb8, bgr8, rgba8, bgra8 or mono8 Image.

    rgb8 gives a zero-copy view of ``msg.data``; the other encodings give a new contiguous
    array, because reordering or expanding channels must write new memory anyway.
    """
    if msg.encoding not in _COLOR_ENCODINGS:
        raise ConversionError(
            f"cannot read {msg.encoding!r} as colour; expected one of {', '.join(_COLOR_ENCODINGS)}"
        )
    pixels = image_view(msg)
    if msg.encoding == "rgb8":
        return pixels
    if msg.encoding == "bgr8":
        return np.ascontiguousarray(pixels[..., ::-1])
    if msg.encoding == "rgba8":
        return np.ascontiguousarray(pixels[..., :3])
    if msg.encoding == "bgra8":
        return np.ascontiguousarray(pixels[..., 2::-1])
    return np.repeat(pixels[..., np.newaxis], 3, axis=2)  # mono8


def image_to_depth_m(msg: Image) -> np.ndarray:
    """(H, W) float32 depth in metres with NaN where invalid, from a 16UC1 or 32FC1 Image.

    16UC1 is millimetres with 0 meaning no reading (REP 118); 32FC1 is metres, where NaN, +-inf
    and values <= 0 all mean no reading. Always a new array: the values must change.
    """
    if msg.encoding not in _DEPTH_ENCODINGS:
        raise ConversionError(
            f"cannot read {msg.encoding!r} as depth; expected one of {', '.join(_DEPTH_ENCODINGS)}"
        )
    pixels = image_view(msg)
    if msg.encoding == "16UC1":
        depth = pixels.astype(np.float32)
        depth[pixels == 0] = np.nan
        depth /= np.float32(_MM_PER_M)
        return depth
    depth = pixels.astype(np.float32)  # native byte order, contiguous copy
    with np.errstate(invalid="ignore"):
        depth[~(np.isfinite(depth) & (depth > 0.0))] = np.nan
    return depth


def _uint8_array(pixels: np.ndarray) -> array.array:
    """Message bytes for ``Image.data`` in one copy.

    ``array.array('B', bytes)`` is ~20x slower than ``frombytes`` on a 1 MB image, and the
    generated setter copies arrays of typecode 'B' with a fast memcpy, so this is the cheap path.
    """
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(pixels).reshape(-1).view(np.uint8).data)
    return out


def _image_msg(pixels: np.ndarray, stamp: Stamp, frame_id: str, encoding: str) -> Image:
    """Fill an Image from a C-contiguous (H, W[, C]) array in host byte order."""
    pixels = np.ascontiguousarray(pixels)
    msg = Image()
    msg.header.stamp = _as_stamp(stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(_HOST_BIG_ENDIAN and pixels.dtype.itemsize > 1)
    msg.step = int(pixels.strides[0])  # contiguous rows: no padding
    msg.data = _uint8_array(pixels)
    return msg


def rgb_to_image(rgb: np.ndarray, stamp: Stamp, frame_id: str, encoding: str = "rgb8") -> Image:
    """Image message from (H, W, 3) uint8 RGB, written as rgb8, bgr8 or mono8 (BT.601 luma).

    For mono8 an (H, W) uint8 grey array is accepted as well.
    """
    if encoding not in ("rgb8", "bgr8", "mono8"):
        raise ConversionError(f"cannot write colour as {encoding!r}; use rgb8, bgr8 or mono8")
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        raise ConversionError(f"colour image must be uint8, got {rgb.dtype}")
    grey_input = encoding == "mono8" and rgb.ndim == 2
    if not grey_input and (rgb.ndim != 3 or rgb.shape[2] != 3):
        raise ConversionError(f"colour image must have shape (H, W, 3), got {rgb.shape}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ConversionError(f"colour image has an empty size {rgb.shape}")
    if encoding == "bgr8":
        pixels = rgb[..., ::-1]
    elif encoding == "mono8" and not grey_input:
        pixels = np.clip(np.rint(rgb.astype(np.float32) @ _LUMA), 0, 255).astype(np.uint8)
    else:
        pixels = rgb
    return _image_msg(np.ascontiguousarray(pixels), stamp, frame_id, encoding)


def depth_to_image(
    depth_m: np.ndarray, stamp: Stamp, frame_id: str, encoding: str = "16UC1"
) -> Image:
    """Image message from (H, W) depth in metres (NaN = invalid), as 16UC1 mm or 32FC1 m.

    16UC1 rounds to whole millimetres; invalid, <= 0 and beyond 65.535 m become 0 (no reading),
    since uint16 cannot represent them. 32FC1 keeps NaN and maps inf and <= 0 to NaN.
    """
    if encoding not in _DEPTH_ENCODINGS:
        raise ConversionError(f"cannot write depth as {encoding!r}; use 16UC1 or 32FC1")
    depth = np.asarray(depth_m)
    if depth.ndim != 2:
        raise ConversionError(f"depth must have shape (H, W), got {depth.shape}")
    if not np.issubdtype(depth.dtype, np.floating):
        raise ConversionError(f"depth must be floating-point metres, got {depth.dtype}")
    if depth.shape[0] == 0 or depth.shape[1] == 0:
        raise ConversionError(f"depth image has an empty size {depth.shape}")
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(depth) & (depth > 0.0)
        if encoding == "16UC1":
            mm = np.rint(np.where(valid, depth, 0.0) * _MM_PER_M)
            mm[mm > _UINT16_MAX] = 0
            pixels = mm.astype(np.uint16)
        else:
            pixels = np.where(valid, depth, np.nan).astype(np.float32)
    return _image_msg(pixels, stamp, frame_id, encoding)


# --------------------------------------------------------------------------------------------
# Camera model


def camera_info_to_intrinsics(msg: CameraInfo, rectified: bool = False) -> CameraIntrinsics:
    """Pinhole intrinsics from a CameraInfo.

    Takes K (for images as published) or, with ``rectified=True``, the projection matrix P
    (for ``image_rect`` topics). Distortion is ignored: the pipeline expects undistorted,
    registered images. Binning and ROI are rejected rather than silently mis-scaled.
    """
    width, height = int(msg.width), int(msg.height)
    if width <= 0 or height <= 0:
        raise ConversionError(f"CameraInfo has an empty size {width}x{height}")
    if msg.binning_x > 1 or msg.binning_y > 1:
        raise ConversionError(
            f"CameraInfo binning {msg.binning_x}x{msg.binning_y} is not supported"
        )
    roi = msg.roi
    if roi.width or roi.height or roi.x_offset or roi.y_offset:
        full = roi.x_offset == 0 and roi.y_offset == 0
        full = full and roi.width in (0, width) and roi.height in (0, height)
        if not full:
            raise ConversionError("CameraInfo with a region of interest is not supported")
    if rectified:
        p = np.asarray(msg.p, dtype=np.float64)
        if p.shape != (12,):
            raise ConversionError(f"CameraInfo P must have 12 values, got {p.size}")
        k = p.reshape(3, 4)[:, :3]
        name = "P"
    else:
        k = np.asarray(msg.k, dtype=np.float64)
        if k.shape != (9,):
            raise ConversionError(f"CameraInfo K must have 9 values, got {k.size}")
        k = k.reshape(3, 3)
        name = "K"
    if not np.all(np.isfinite(k)):
        raise ConversionError(f"CameraInfo {name} has non-finite values: {k.ravel().tolist()}")
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    if fx <= 0.0 or fy <= 0.0:
        raise ConversionError(
            f"CameraInfo {name} needs positive focal lengths, got fx={fx}, fy={fy} "
            "(an all-zero matrix means the camera is uncalibrated)"
        )
    if k[0, 1] != 0.0 or k[1, 0] != 0.0 or k[2, 0] != 0.0 or k[2, 1] != 0.0 or k[2, 2] != 1.0:
        raise ConversionError(
            f"CameraInfo {name} is not a zero-skew pinhole matrix: {k.ravel().tolist()}"
        )
    return CameraIntrinsics(width, height, float(fx), float(fy), float(cx), float(cy))


def intrinsics_to_camera_info(
    intrinsics: CameraIntrinsics, stamp: Stamp, frame_id: str
) -> CameraInfo:
    """CameraInfo for an undistorted pinhole camera (zero plumb_bob distortion, R = I)."""
    fx, fy, cx, cy = intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy
    msg = CameraInfo()
    msg.header.stamp = _as_stamp(stamp)
    msg.header.frame_id = frame_id
    msg.width, msg.height = int(intrinsics.width), int(intrinsics.height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


# --------------------------------------------------------------------------------------------
# Poses


def _quaternion_to_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """Rotation matrix of a quaternion, normalised first (publishers often send |q| != 1)."""
    q = np.array([x, y, z, w], dtype=np.float64)
    norm = float(np.linalg.norm(q))
    if not math.isfinite(norm) or norm < 1e-9:
        raise ConversionError(f"orientation quaternion {q.tolist()} is zero or not finite")
    x, y, z, w = q / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _matrix_to_quaternion(r: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation matrix, branching on the largest term for precision."""
    trace = r[0, 0] + r[1, 1] + r[2, 2]
    if trace > 0.0:
        s = 2.0 * math.sqrt(trace + 1.0)
        w, x = 0.25 * s, (r[2, 1] - r[1, 2]) / s
        y, z = (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = 2.0 * math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        w, x = (r[2, 1] - r[1, 2]) / s, 0.25 * s
        y, z = (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s
    elif r[1, 1] > r[2, 2]:
        s = 2.0 * math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        w, x = (r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s
        y, z = 0.25 * s, (r[1, 2] + r[2, 1]) / s
    else:
        s = 2.0 * math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        w, x = (r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s
        y, z = (r[1, 2] + r[2, 1]) / s, 0.25 * s
    if w < 0.0:  # one canonical sign, so round trips compare equal
        x, y, z, w = -x, -y, -z, -w
    return float(x), float(y), float(z), float(w)


def odometry_to_pose(msg: Odometry) -> np.ndarray:
    """4x4 float64 pose of ``child_frame_id`` in ``header.frame_id`` from an Odometry message."""
    p = msg.pose.pose.position
    o = msg.pose.pose.orientation
    pose = np.eye(4)
    pose[:3, :3] = _quaternion_to_matrix(o.x, o.y, o.z, o.w)
    pose[:3, 3] = (p.x, p.y, p.z)
    if not np.all(np.isfinite(pose[:3, 3])):
        raise ConversionError(f"odometry position {pose[:3, 3].tolist()} is not finite")
    return pose


def pose_to_odometry(
    pose: np.ndarray, stamp: Stamp, frame_id: str, child_frame_id: str
) -> Odometry:
    """Odometry message carrying a 4x4 rigid pose (twist and covariances left at zero)."""
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (4, 4):
        raise ConversionError(f"pose must be a 4x4 matrix, got shape {pose.shape}")
    if not np.all(np.isfinite(pose)):
        raise ConversionError("pose has non-finite values")
    if not np.allclose(pose[3], (0.0, 0.0, 0.0, 1.0)):
        raise ConversionError(f"pose bottom row must be [0, 0, 0, 1], got {pose[3].tolist()}")
    r = pose[:3, :3]
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-5) or np.linalg.det(r) < 0.0:
        raise ConversionError("pose rotation is not orthonormal with determinant +1")
    msg = Odometry()
    msg.header.stamp = _as_stamp(stamp)
    msg.header.frame_id = frame_id
    msg.child_frame_id = child_frame_id
    position = msg.pose.pose.position
    position.x, position.y, position.z = (float(v) for v in pose[:3, 3])
    o = msg.pose.pose.orientation
    o.x, o.y, o.z, o.w = _matrix_to_quaternion(r)
    return msg
