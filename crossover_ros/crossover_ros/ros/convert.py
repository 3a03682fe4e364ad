"""numpy -> ROS messages: the writing half of the conversions (publishers, bags, tests).

Reading messages into arrays needs no ROS import and lives in ``crossover_ros/pipeline/decode.py``,
so the node and the offline bag evaluation share it. Every bad input raises ConversionError.
"""

from __future__ import annotations

import array
import math
import sys

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, PoseWithCovarianceStamped, TransformStamped
from nav_msgs.msg import Odometry
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from crossover_msgs.msg import SceneMatch
from crossover_msgs.srv import FindObject, FindRoom
from crossover_ros.errors import ConversionError
from crossover_ros.frames import CameraIntrinsics
from crossover_ros.pipeline.recognizer import SceneMatchResult
from crossover_ros.query.text import ObjectHit, RoomHit

__all__ = [
    "depth_to_image",
    "intrinsics_to_camera_info",
    "pose_to_odometry",
    "pose_with_covariance",
    "rgb_to_image",
    "seconds_to_stamp",
    "transform_stamped",
]

_HOST_BIG_ENDIAN = sys.byteorder == "big"
_MM_PER_M = 1000.0
_UINT16_MAX = 65535
# ITU-R BT.601 luma weights, the usual RGB -> grey conversion for mono8.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_DEPTH_ENCODINGS = ("16UC1", "32FC1")

Stamp = Time | float


# --------------------------------------------------------------------------------------------
# Time


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


def _checked_pose(pose: np.ndarray) -> np.ndarray:
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
    return pose


def pose_with_covariance(
    pose: np.ndarray, covariance: np.ndarray, stamp: Stamp, frame_id: str
) -> PoseWithCovarianceStamped:
    """PoseWithCovarianceStamped of a 4x4 pose; ``covariance`` 6x6 in (x, y, z, roll, pitch,
    yaw) order, the message's (and AMCL's ``/initialpose``) convention."""
    pose = _checked_pose(pose)
    covariance = np.asarray(covariance, dtype=np.float64)
    if covariance.shape != (6, 6) or not np.all(np.isfinite(covariance)):
        raise ConversionError(f"covariance must be a finite 6x6 matrix, got {covariance.shape}")
    msg = PoseWithCovarianceStamped()
    msg.header.stamp = _as_stamp(stamp)
    msg.header.frame_id = frame_id
    position = msg.pose.pose.position
    position.x, position.y, position.z = (float(v) for v in pose[:3, 3])
    o = msg.pose.pose.orientation
    o.x, o.y, o.z, o.w = _matrix_to_quaternion(pose[:3, :3])
    msg.pose.covariance = [float(v) for v in covariance.reshape(-1)]
    return msg


def pose_to_odometry(
    pose: np.ndarray, stamp: Stamp, frame_id: str, child_frame_id: str
) -> Odometry:
    """Odometry message carrying a 4x4 rigid pose (twist and covariances left at zero)."""
    pose = _checked_pose(pose)
    r = pose[:3, :3]
    msg = Odometry()
    msg.header.stamp = _as_stamp(stamp)
    msg.header.frame_id = frame_id
    msg.child_frame_id = child_frame_id
    position = msg.pose.pose.position
    position.x, position.y, position.z = (float(v) for v in pose[:3, 3])
    o = msg.pose.pose.orientation
    o.x, o.y, o.z, o.w = _matrix_to_quaternion(r)
    return msg


def transform_stamped(
    pose: np.ndarray, stamp: Stamp, frame_id: str, child_frame_id: str
) -> TransformStamped:
    """TransformStamped of ``child_frame_id`` in ``frame_id`` (a 4x4 rigid pose), as TF wants."""
    pose = _checked_pose(pose)
    msg = TransformStamped()
    msg.header.stamp = _as_stamp(stamp)
    msg.header.frame_id = frame_id
    msg.child_frame_id = child_frame_id
    t = msg.transform.translation
    t.x, t.y, t.z = (float(v) for v in pose[:3, 3])
    r = msg.transform.rotation
    r.x, r.y, r.z, r.w = _matrix_to_quaternion(pose[:3, :3])
    return msg


def to_scene_match(result: SceneMatchResult, header: Header, changed: bool = False) -> SceneMatch:
    """The message for a result; ``header`` is the newest colour frame's, stamp kept exact."""
    msg = SceneMatch(header=header)
    msg.scene_id = result.scene_id
    msg.score = result.score
    msg.confidence = result.confidence
    msg.changed = changed
    msg.candidate_ids = result.candidate_ids
    msg.candidate_scores = result.candidate_scores
    msg.modality = result.modality
    msg.map_modality = result.map_modality
    msg.num_frames = result.num_frames
    return msg


# --------------------------------------------------------------------------------------------
# Text queries


def _point(xyz: tuple[float, float, float]) -> Point:
    return Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def fill_find_room(
    response: FindRoom.Response, hits: list[RoomHit], map_frame: str
) -> FindRoom.Response:
    """A FindRoom response of ranked rooms: each one's floor centre as a Pose (identity
    orientation) in ``map_frame``, or in the scene's own frame where the map has no pose."""
    response.scene_ids = [h.scene_id for h in hits]
    response.building_ids = [h.building_id for h in hits]
    response.room_ids = [h.room_id for h in hits]
    response.scores = [h.score for h in hits]
    response.poses = [Pose(position=_point(h.centre)) for h in hits]
    response.frame_ids = [map_frame if h.in_map_frame else h.scene_id for h in hits]
    return response


def fill_find_object(
    response: FindObject.Response, hits: list[ObjectHit], map_frame: str
) -> FindObject.Response:
    """A FindObject response of ranked instances, frames as in :func:`fill_find_room`."""
    response.scene_ids = [h.scene_id for h in hits]
    response.instance_ids = [h.instance_id for h in hits]
    response.labels = [h.label for h in hits]
    response.scores = [h.score for h in hits]
    response.positions = [_point(h.position) for h in hits]
    response.box_mins = [_point(h.box_min) for h in hits]
    response.box_maxs = [_point(h.box_max) for h in hits]
    response.frame_ids = [map_frame if h.in_map_frame else h.scene_id for h in hits]
    return response
