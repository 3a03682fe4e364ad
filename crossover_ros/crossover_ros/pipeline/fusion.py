"""A fused, voxel-downsampled colour point cloud of the last keyframes, in the odometry frame.

The pose estimator registers this cloud to the matched scene's stored cloud: one depth frame sees
too little of a room to pin down a 6-DoF pose, a short window of keyframes chained by odometry
sees enough. Which frames are keyframes is the caller's choice (``pipeline.keyframes``); this
class only keeps the last ``max_keyframes`` of them. Each keyframe is downsampled on arrival, so
memory and the cost of :meth:`PointCloudFusion.cloud` stay bounded whatever the image size.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from crossover_ros.config import setting, validate
from crossover_ros.frames import CameraIntrinsics, RGBDFrame
from crossover_ros.pose.registration import o3d

AUTO_COLUMNS = 160  # pixel_stride 0: fuse about this many columns of any image


@dataclass(frozen=True)
class FusionCfg:
    """What is fused: depth range of a RealSense-like sensor, pixel stride, window length."""

    voxel_size_m: float = 0.05
    min_depth_m: float = 0.2
    max_depth_m: float = 4.0  # depth noise grows with z^2; far points blur the fit
    pixel_stride: int = setting(
        0,
        "Fuse every n-th pixel row and column; 0: as many as keep about 160 columns (4 at"
        " 640x480, 2 at 320x240): no loss at 5 cm voxels, fusion at a few ms.",
        0,
        16,
    )
    max_keyframes: int = 10

    def __post_init__(self) -> None:
        validate(self)
        if self.max_keyframes < 1 or self.voxel_size_m <= 0.0:
            raise ValueError("FusionCfg needs max_keyframes >= 1 and voxel_size_m > 0")

    def stride_for(self, width: int) -> int:
        """The pixel stride at an image ``width``: the set one, else about 160 columns."""
        return self.pixel_stride or max(1, round(width / AUTO_COLUMNS))


def backproject_depth(
    depth: np.ndarray,
    intrinsics: CameraIntrinsics,
    stride: int = 1,
    min_depth_m: float = 0.0,
    max_depth_m: float = np.inf,
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels with a valid depth as 3D points in the camera's optical frame.

    Invalid depth (NaN, inf, <= 0, outside [min_depth_m, max_depth_m]) is skipped.

    Returns:
        xyz float32 (N, 3) (x right, y down, z forward) and the flat pixel index (N,) of each
        point into ``depth.reshape(-1)``, to gather colours or instance ids of the same pixels.
    """
    depth = np.asarray(depth)
    if depth.shape != (intrinsics.height, intrinsics.width):
        raise ValueError(
            f"depth is {depth.shape}, intrinsics say {(intrinsics.height, intrinsics.width)}"
        )
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    rows = np.arange(0, depth.shape[0], stride)
    cols = np.arange(0, depth.shape[1], stride)
    z = depth[np.ix_(rows, cols)].astype(np.float32)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(z) & (z > 0.0) & (z >= min_depth_m) & (z <= max_depth_m)
    r, c = np.nonzero(valid)
    v, u, z = rows[r], cols[c], z[r, c]
    x = (u - intrinsics.cx) / intrinsics.fx * z
    y = (v - intrinsics.cy) / intrinsics.fy * z
    xyz = np.stack([x, y, z], axis=1).astype(np.float32)
    return xyz, (v * depth.shape[1] + u).astype(np.int64)


def voxel_downsample_o3d(
    xyz: np.ndarray, rgb: np.ndarray, voxel_size_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """One point per occupied voxel (mean position and colour), by open3d; float32 out."""
    if len(xyz) == 0:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(xyz, np.float64)))
    cloud.colors = o3d.utility.Vector3dVector(np.asarray(rgb, np.float64))
    down = cloud.voxel_down_sample(voxel_size_m)
    return np.asarray(down.points, np.float32), np.asarray(down.colors, np.float32)


def _check_pose(pose: np.ndarray) -> np.ndarray:
    pose = np.asarray(pose, np.float64)
    if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
        raise ValueError(f"camera_to_odom must be a finite 4x4 matrix, got shape {pose.shape}")
    if not np.allclose(pose[3], (0.0, 0.0, 0.0, 1.0)):
        raise ValueError(f"camera_to_odom bottom row must be [0, 0, 0, 1], got {pose[3]}")
    return pose


@dataclass(frozen=True)
class CameraView:
    """Where a fused keyframe's camera stood and the depth it saw (every ``stride``-th pixel):
    what the change detector needs to tell what the window covered."""

    camera_to_odom: np.ndarray  # (4, 4) optical frame in the odometry frame
    intrinsics: CameraIntrinsics  # of ``depth``, the strided image
    depth: np.ndarray  # (h, w) float32 metres, NaN where invalid or outside the depth range
    stamp: float


def strided_view(frame: RGBDFrame, camera_to_odom: np.ndarray, cfg: FusionCfg) -> CameraView:
    """The keyframe's :class:`CameraView` at the fusion's pixel stride and depth range."""
    stride = cfg.stride_for(frame.intrinsics.width)
    depth = np.asarray(frame.depth, np.float32)[::stride, ::stride].copy()
    with np.errstate(invalid="ignore"):
        depth[~((depth >= cfg.min_depth_m) & (depth <= cfg.max_depth_m))] = np.nan
    i = frame.intrinsics
    strided = CameraIntrinsics(
        depth.shape[1], depth.shape[0], i.fx / stride, i.fy / stride, i.cx / stride, i.cy / stride
    )
    return CameraView(camera_to_odom, strided, depth, float(frame.stamp))


class PointCloudFusion:
    """Sliding window of keyframe point clouds in the odometry frame; :meth:`cloud` fuses them.

    Points are stored in the odometry frame at :meth:`add` time, so odometry drift within the
    window is baked in; keep the window short (seconds) for that reason too.
    """

    def __init__(self, cfg: FusionCfg | None = None) -> None:
        self.cfg = cfg or FusionCfg()
        self._keyframes: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=self.cfg.max_keyframes)
        self._views: deque[CameraView] = deque(maxlen=self.cfg.max_keyframes)
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self._keyframes)

    def reset(self) -> None:
        """Forget every keyframe (a new odometry session, a relocalisation, a bag loop)."""
        self._keyframes.clear()
        self._views.clear()
        self._cache = None

    def add(self, frame: RGBDFrame, camera_to_odom: np.ndarray) -> None:
        """Back-project ``frame``'s valid depth into the odometry frame and keep it.

        ``camera_to_odom`` is the 4x4 pose of the frame's optical frame in the odometry frame.
        A frame without valid depth still counts as a keyframe of the window (it holds no points).
        """
        pose = _check_pose(camera_to_odom)
        color = np.asarray(frame.color)
        if color.shape != (*np.shape(frame.depth), 3):
            raise ValueError(f"colour {color.shape} and depth {np.shape(frame.depth)} differ")
        xyz, index = self.points_in_odom(frame, pose)
        rgb = color.reshape(-1, 3)[index].astype(np.float32) / 255.0
        self._keyframes.append(voxel_downsample_o3d(xyz, rgb, self.cfg.voxel_size_m))
        self._views.append(strided_view(frame, pose, self.cfg))
        self._cache = None

    def views(self) -> tuple[CameraView, ...]:
        """The cameras of the fused keyframes, oldest first."""
        return tuple(self._views)

    def points_in_odom(
        self, frame: RGBDFrame, camera_to_odom: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(xyz float64 (N, 3) in the odometry frame, flat pixel index (N,)) of the depth fused."""
        cfg = self.cfg
        xyz, index = backproject_depth(
            frame.depth,
            frame.intrinsics,
            cfg.stride_for(frame.intrinsics.width),
            cfg.min_depth_m,
            cfg.max_depth_m,
        )
        return xyz.astype(np.float64) @ camera_to_odom[:3, :3].T + camera_to_odom[:3, 3], index

    def cloud(self) -> tuple[np.ndarray, np.ndarray]:
        """(xyz float32 (N, 3) odometry frame, rgb float32 (N, 3) in 0..1) of the window.

        Voxel-downsampled with ``voxel_size_m``; cached until the next :meth:`add` or
        :meth:`reset`. The arrays are read-only, shared between calls.
        """
        if self._cache is None:
            if self._keyframes:
                xyz = np.concatenate([k[0] for k in self._keyframes])
                rgb = np.concatenate([k[1] for k in self._keyframes])
            else:
                xyz = rgb = np.zeros((0, 3), np.float32)
            xyz, rgb = voxel_downsample_o3d(xyz, rgb, self.cfg.voxel_size_m)
            xyz.flags.writeable = False
            rgb.flags.writeable = False
            self._cache = (xyz, rgb)
        return self._cache
