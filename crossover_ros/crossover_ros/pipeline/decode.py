"""Sensor messages (rclpy objects, or rosbags objects of the same shape) -> numpy, without ROS.

The ROS node reads live messages with these functions and the bag evaluation reads rosbags'
deserialised messages with the very same ones, so both see identical frames. Only attributes
are read (``msg.encoding``, ``msg.data``, ...): nothing here imports a ROS package. Writing
messages needs the ROS message classes and lives in ``crossover_ros/ros/convert.py``.

Every bad input raises ConversionError with a message that names the topic-level problem
(encoding, sizes, step). Reading is zero-copy where no conversion is needed: ``image_view`` and
``image_to_rgb`` on rgb8 return views into ``msg.data``. Such a view is only valid while the
message is alive and unchanged; copy it if you keep it longer. Everything that must convert
values (BGR order, grey, depth units) returns a new array.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from crossover_ros.errors import ConversionError
from crossover_ros.frames import CameraIntrinsics

__all__ = [
    "ENCODINGS",
    "camera_info_to_intrinsics",
    "image_to_depth_m",
    "image_to_rgb",
    "image_view",
    "odometry_to_pose",
    "quaternion_to_matrix",
    "stamp_to_seconds",
]

# encoding -> (numpy dtype of one channel, channels). Names follow sensor_msgs/image_encodings.
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
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
_MM_PER_M = 1000.0


def stamp_to_seconds(stamp: Any) -> float:
    """Seconds since the epoch of a ``builtin_interfaces/Time`` (the float the core code uses)."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def image_view(msg: Any) -> np.ndarray:
    """Zero-copy (H, W) or (H, W, C) view of an Image's pixels in their own dtype.

    Honours ``step`` padding (rows are strided, not copied) and the ``is_bigendian`` flag
    (the view's dtype carries the byte order). Channel order is whatever ``encoding`` says.
    """
    encoding = msg.encoding
    if encoding not in ENCODINGS:
        raise ConversionError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(ENCODINGS)}"
        )
    dtype, channels = ENCODINGS[encoding]
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


def image_to_rgb(msg: Any) -> np.ndarray:
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


def image_to_depth_m(msg: Any) -> np.ndarray:
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


def camera_info_to_intrinsics(msg: Any, rectified: bool = False) -> CameraIntrinsics:
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


def quaternion_to_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
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


def pose_to_matrix(msg: Any) -> np.ndarray:
    """4x4 float64 pose from a ``geometry_msgs/Pose``."""
    p, o = msg.position, msg.orientation
    pose = np.eye(4)
    pose[:3, :3] = quaternion_to_matrix(o.x, o.y, o.z, o.w)
    pose[:3, 3] = (p.x, p.y, p.z)
    if not np.all(np.isfinite(pose[:3, 3])):
        raise ConversionError(f"position {pose[:3, 3].tolist()} is not finite")
    return pose


def odometry_to_pose(msg: Any) -> np.ndarray:
    """4x4 float64 pose of ``child_frame_id`` in ``header.frame_id`` from an Odometry message."""
    return pose_to_matrix(msg.pose.pose)


def pose_stamped_to_matrix(msg: Any) -> np.ndarray:
    """4x4 float64 pose in ``header.frame_id`` from a PoseStamped (a ground-truth pose)."""
    return pose_to_matrix(msg.pose)
