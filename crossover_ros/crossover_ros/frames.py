"""Sensor data types shared by data generation, the recognition pipeline and the ROS adapters.

Conventions: images are row-major numpy arrays, depth is float32 metres with NaN where invalid,
poses are 4x4 float64 camera-to-world matrices in the OpenCV optical convention
(x right, y down, z forward), the convention of ROS ``*_optical_frame`` frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of an undistorted image."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @property
    def matrix(self) -> np.ndarray:
        """The 3x3 camera matrix K."""
        return np.array(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=np.float64
        )

    @classmethod
    def from_fov(cls, width: int, height: int, horizontal_fov_deg: float) -> CameraIntrinsics:
        """Square-pixel intrinsics with the principal point at the image centre."""
        fx = 0.5 * width / np.tan(np.radians(horizontal_fov_deg) / 2.0)
        return cls(width, height, float(fx), float(fx), (width - 1) / 2.0, (height - 1) / 2.0)


@dataclass
class RGBDFrame:
    """One aligned colour + depth observation.

    Attributes:
        color: (H, W, 3) uint8 RGB.
        depth: (H, W) float32 metres, NaN where the sensor gave no reading.
        intrinsics: the camera model of both images.
        stamp: seconds (sensor time).
        camera_to_world: optional 4x4 pose of the optical frame.
        instance: optional (H, W) uint16 instance ids (0 = walls, floor, nothing).
    """

    color: np.ndarray
    depth: np.ndarray
    intrinsics: CameraIntrinsics
    stamp: float = 0.0
    camera_to_world: np.ndarray | None = None
    instance: np.ndarray | None = None
