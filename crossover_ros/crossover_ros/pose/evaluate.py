"""Pose errors against ground truth, and the summary the issue asks for.

Errors compare camera poses in the scene frame (``map_from_query @ camera_to_odom`` against the
true camera pose), not ``map_from_query`` itself: that transform's translation depends on where
the odometry origin happens to be, the camera's does not. A ``NoPose`` is not a wrong pose; it
is counted on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

WRONG_TRANSLATION_M = 0.5
WRONG_ROTATION_DEG = 10.0


def translation_error_m(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Distance between the positions of two 4x4 poses."""
    return float(np.linalg.norm(np.asarray(estimate)[:3, 3] - np.asarray(truth)[:3, 3]))


def rotation_error_deg(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Angle of the rotation between two 4x4 poses (or 3x3 rotations)."""
    a, b = np.asarray(estimate)[:3, :3], np.asarray(truth)[:3, :3]
    cos = np.clip((np.trace(a.T @ b) - 1.0) / 2.0, -1.0, 1.0)
    return float(np.degrees(np.arccos(cos)))


def is_wrong(
    translation_m: float,
    rotation_deg: float,
    max_translation_m: float = WRONG_TRANSLATION_M,
    max_rotation_deg: float = WRONG_ROTATION_DEG,
) -> bool:
    """A pose too far off to hand to a navigation stack."""
    return translation_m > max_translation_m or rotation_deg > max_rotation_deg


@dataclass(frozen=True)
class PoseSummary:
    """Over ``queries`` windows: errors of the answered ones; rates over all of them."""

    queries: int
    answered: int
    median_translation_m: float
    median_rotation_deg: float
    p95_translation_m: float
    p95_rotation_deg: float
    wrong_rate: float  # wrong poses / queries
    no_pose_rate: float  # NoPose / queries

    def line(self) -> str:
        return (
            f"median {100 * self.median_translation_m:.1f} cm {self.median_rotation_deg:.2f} deg, "
            f"p95 {100 * self.p95_translation_m:.1f} cm {self.p95_rotation_deg:.2f} deg, "
            f"wrong {100 * self.wrong_rate:.1f} %, no pose {100 * self.no_pose_rate:.1f} % "
            f"({self.answered}/{self.queries} answered)"
        )


def summarize(
    errors: Sequence[tuple[float, float] | None],
    max_translation_m: float = WRONG_TRANSLATION_M,
    max_rotation_deg: float = WRONG_ROTATION_DEG,
) -> PoseSummary:
    """``errors``: (translation m, rotation deg) per query, ``None`` where it gave no pose."""
    answered = [e for e in errors if e is not None]
    n = len(errors)
    if answered:
        t = np.array([e[0] for e in answered])
        r = np.array([e[1] for e in answered])
        wrong = sum(is_wrong(a, b, max_translation_m, max_rotation_deg) for a, b in answered)
        stats = (
            float(np.median(t)),
            float(np.median(r)),
            float(np.percentile(t, 95)),
            float(np.percentile(r, 95)),
        )
    else:
        wrong, stats = 0, (float("nan"),) * 4
    return PoseSummary(
        n,
        len(answered),
        *stats,
        wrong / n if n else 0.0,
        (n - len(answered)) / n if n else 0.0,
    )
