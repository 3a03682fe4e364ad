"""Keyframe selection by camera motion: encode a frame only when the view has changed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crossover_ros.config import setting, validate


@dataclass(frozen=True)
class KeyframeCfg:
    min_translation_m: float = setting(0.25, "Motion that makes a keyframe.", 0.0, 1000.0)
    min_rotation_deg: float = setting(15.0, "Turn that makes a keyframe.", 0.0, 180.0)
    max_interval_s: float = setting(
        1.0, "A keyframe at least this often (0: every frame is one).", 0.0, 60.0
    )

    def __post_init__(self) -> None:
        validate(self)


def rotation_angle_deg(rotation_a: np.ndarray, rotation_b: np.ndarray) -> float:
    """Angle of the relative rotation between two 3x3 rotation matrices."""
    cos = (np.trace(rotation_a.T @ rotation_b) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


class KeyframeSelector:
    """Accepts a frame when the camera moved or turned enough, or too long has passed.

    Without a pose (no odometry), only the time criterion applies.
    """

    def __init__(self, cfg: KeyframeCfg | None = None) -> None:
        self.cfg = cfg or KeyframeCfg()
        self._last_stamp: float | None = None
        self._last_pose: np.ndarray | None = None

    def reset(self) -> None:
        self._last_stamp = None
        self._last_pose = None

    def accept(self, stamp: float, pose: np.ndarray | None) -> bool:
        if self._last_stamp is None or stamp < self._last_stamp:
            return self._take(stamp, pose)
        if stamp - self._last_stamp >= self.cfg.max_interval_s:
            return self._take(stamp, pose)
        if pose is not None and self._last_pose is not None:
            moved = np.linalg.norm(pose[:3, 3] - self._last_pose[:3, 3])
            turned = rotation_angle_deg(pose[:3, :3], self._last_pose[:3, :3])
            if moved >= self.cfg.min_translation_m or turned >= self.cfg.min_rotation_deg:
                return self._take(stamp, pose)
        return False

    def _take(self, stamp: float, pose: np.ndarray | None) -> bool:
        self._last_stamp = stamp
        self._last_pose = pose
        return True
