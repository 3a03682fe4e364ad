"""Writing ROS 2 messages into rosbag2 folders with ``rosbags``: the message builders every
recorded bag shares (images, camera info, odometry, ground-truth poses)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from crossover_ros.bags.reader import TYPESTORE
from crossover_ros.frames import CameraIntrinsics


def header_msg(stamp_ns: int, frame_id: str):
    msgs = TYPESTORE.types
    stamp = msgs["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return msgs["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def image_msg(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str):
    height, width = array.shape[:2]
    data = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
    return TYPESTORE.types["sensor_msgs/msg/Image"](
        header=header_msg(stamp_ns, frame_id),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=data.size // height,
        data=data,
    )


def camera_info_msg(intrinsics: CameraIntrinsics, stamp_ns: int, frame_id: str):
    k = intrinsics.matrix
    projection = np.hstack([k, np.zeros((3, 1))])
    types = TYPESTORE.types
    return types["sensor_msgs/msg/CameraInfo"](
        header=header_msg(stamp_ns, frame_id),
        height=intrinsics.height,
        width=intrinsics.width,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=k.reshape(-1),
        r=np.eye(3).reshape(-1),
        p=projection.reshape(-1),
        binning_x=0,
        binning_y=0,
        roi=types["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        ),
    )


def pose_msg(pose: np.ndarray):
    """``geometry_msgs/Pose`` of a 4x4 rigid pose: the part odometry and pose messages share."""
    types = TYPESTORE.types
    qx, qy, qz, qw = Rotation.from_matrix(pose[:3, :3]).as_quat()
    position = types["geometry_msgs/msg/Point"](x=pose[0, 3], y=pose[1, 3], z=pose[2, 3])
    orientation = types["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw)
    return types["geometry_msgs/msg/Pose"](position=position, orientation=orientation)


def odometry_msg(pose: np.ndarray, stamp_ns: int, odom_frame: str, child_frame: str):
    types = TYPESTORE.types
    covariance = np.diag([0.01, 0.01, 0.01, 0.005, 0.005, 0.005]).reshape(-1)
    zero = types["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0)
    return types["nav_msgs/msg/Odometry"](
        header=header_msg(stamp_ns, odom_frame),
        child_frame_id=child_frame,
        pose=types["geometry_msgs/msg/PoseWithCovariance"](
            pose=pose_msg(pose), covariance=covariance
        ),
        twist=types["geometry_msgs/msg/TwistWithCovariance"](
            twist=types["geometry_msgs/msg/Twist"](linear=zero, angular=zero),
            covariance=np.zeros(36),
        ),
    )


def pose_stamped_msg(pose: np.ndarray, stamp_ns: int, frame_id: str):
    """``geometry_msgs/PoseStamped``: a ground-truth pose (motion capture, survey) in
    ``frame_id``, which, unlike odometry, names no child frame and carries no covariance."""
    return TYPESTORE.types["geometry_msgs/msg/PoseStamped"](
        header=header_msg(stamp_ns, frame_id), pose=pose_msg(pose)
    )
