"""Rigid fits and RANSAC over matched instance centroids: the coarse pose from instance matching.

Centroids of partially seen objects are biased by tens of centimetres and some matches are wrong
(moved objects, look-alike chairs), so this stage only proposes poses; the point clouds decide.

Gravity: an odometry frame (REP 105) and a map frame are both z-up, so the unknown transform is
a yaw and a translation (4 DoF). With ``gravity_aligned`` the minimal sample is two centroids
(instead of three for 6 DoF): fewer samples to try, and a tilt cannot be fitted to centroid noise.
Refinement (ICP) is 6-DoF either way, so a slightly tilted odometry frame is still absorbed.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np


def rigid_fit(
    source: np.ndarray,
    target: np.ndarray,
    weights: np.ndarray | None = None,
    yaw_only: bool = False,
) -> np.ndarray:
    """4x4 ``T`` minimising sum w |T source - target|^2 (Kabsch / Umeyama without scale).

    With ``yaw_only`` the rotation is about z alone (the 2D Kabsch on x, y); z is translated.
    Needs 2 points (yaw only) or 3 non-collinear points.
    """
    source = np.asarray(source, np.float64).reshape(-1, 3)
    target = np.asarray(target, np.float64).reshape(-1, 3)
    w = np.ones(len(source)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    mean_s, mean_t = w @ source, w @ target
    s, t = source - mean_s, target - mean_t
    rotation = np.eye(3)
    if yaw_only:
        # maximise sum w (cos a (sx tx + sy ty) + sin a (sx ty - sy tx))
        a = np.arctan2(
            w @ (s[:, 0] * t[:, 1] - s[:, 1] * t[:, 0]), w @ (s[:, 0] * t[:, 0] + s[:, 1] * t[:, 1])
        )
        c, n = np.cos(a), np.sin(a)
        rotation[:2, :2] = [[c, -n], [n, c]]
    else:
        u, _, vt = np.linalg.svd((s * w[:, None]).T @ t)
        d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
        rotation = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    out = np.eye(4)
    out[:3, :3] = rotation
    out[:3, 3] = mean_t - rotation @ mean_s
    return out


@dataclass(frozen=True)
class CentroidHypothesis:
    """A pose proposed by centroid RANSAC, with the matches it explains."""

    transform: np.ndarray  # 4x4 map_from_query
    inliers: np.ndarray  # bool (K,)
    rmse_m: float


def centroid_ransac(
    query: np.ndarray,
    target: np.ndarray,
    inlier_m: float = 0.4,
    gravity_aligned: bool = True,
    max_samples: int = 500,
    max_hypotheses: int = 3,
    min_spread_m: float = 0.3,
    rng: np.random.Generator | None = None,
) -> list[CentroidHypothesis]:
    """Distinct poses with the most inlier centroid pairs, best first (empty if too few pairs).

    Every minimal sample is tried when there are at most ``max_samples`` of them (small sets:
    deterministic), else ``max_samples`` random ones. Samples whose pairwise distances disagree
    between the two sides by more than ``2 * inlier_m`` are skipped: no rigid motion fits them.
    Each kept hypothesis is refitted on its inliers. Hypotheses closer than 0.5 m / 10 degrees to
    a better one are dropped, so the caller sees alternatives, not near-duplicates.
    """
    query = np.asarray(query, np.float64).reshape(-1, 3)
    target = np.asarray(target, np.float64).reshape(-1, 3)
    k = len(query)
    n = 2 if gravity_aligned else 3
    if k < n or len(target) != k:
        return []
    if _n_choose(k, n) <= max_samples:
        samples = np.array(list(combinations(range(k), n)), np.int64)
    else:
        rng = rng or np.random.default_rng(0)
        samples = np.stack([rng.choice(k, n, replace=False) for _ in range(max_samples)])
    q, t = query[samples], target[samples]  # (S, n, 3)
    dq = np.linalg.norm(q[:, :, None] - q[:, None], axis=3)
    dt = np.linalg.norm(t[:, :, None] - t[:, None], axis=3)
    ok = (np.abs(dq - dt).max(axis=(1, 2)) <= 2.0 * inlier_m) & (
        _spread(q, gravity_aligned) >= min_spread_m
    )
    samples = samples[ok]
    if len(samples) == 0:
        return []
    if gravity_aligned:
        transforms = _yaw_fits(query[samples], target[samples])
    else:
        transforms = np.stack([rigid_fit(query[s], target[s]) for s in samples])
    moved = np.einsum("sij,kj->ski", transforms[:, :3, :3], query) + transforms[:, None, :3, 3]
    residual = np.linalg.norm(moved - target[None], axis=2)  # (S, K)
    inliers = residual < inlier_m
    counts = inliers.sum(axis=1)
    cost = np.where(inliers, residual, 0.0).sum(axis=1)
    order = np.lexsort((cost, -counts))
    pivot = query.mean(axis=0)
    out: list[CentroidHypothesis] = []
    for index in order[: 20 * max_hypotheses]:  # the rest mostly repeat the leaders
        if counts[index] < n or len(out) >= max_hypotheses:
            break
        use = inliers[index]
        transform = rigid_fit(query[use], target[use], yaw_only=gravity_aligned)
        if any(same_pose(transform, h.transform, pivot) for h in out):
            continue
        res = np.linalg.norm(query @ transform[:3, :3].T + transform[:3, 3] - target, axis=1)
        refit = res < inlier_m
        rmse = float(np.sqrt(np.mean(res[refit] ** 2))) if refit.any() else inlier_m
        out.append(CentroidHypothesis(transform, refit, rmse))
    return out


def _yaw_fits(query: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(S, 4, 4) yaw + translation fits of S two-point samples (S, 2, 3), vectorised."""
    dq = query[:, 1] - query[:, 0]
    dt = target[:, 1] - target[:, 0]
    yaw = np.arctan2(
        dq[:, 0] * dt[:, 1] - dq[:, 1] * dt[:, 0], dq[:, 0] * dt[:, 0] + dq[:, 1] * dt[:, 1]
    )
    c, s = np.cos(yaw), np.sin(yaw)
    out = np.tile(np.eye(4), (len(yaw), 1, 1))
    out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = c, -s, s, c
    mean_q, mean_t = query.mean(axis=1), target.mean(axis=1)
    out[:, :3, 3] = mean_t - np.einsum("sij,sj->si", out[:, :3, :3], mean_q)
    return out


def _n_choose(k: int, n: int) -> int:
    return k * (k - 1) // 2 if n == 2 else k * (k - 1) * (k - 2) // 6


def _spread(points: np.ndarray, gravity_aligned: bool) -> np.ndarray:
    """How well samples (S, n, 3) fix the rotation: x-y distance (2 points) or triangle height."""
    if gravity_aligned:
        return np.linalg.norm(points[:, 0, :2] - points[:, 1, :2], axis=1)
    a, b = points[:, 1] - points[:, 0], points[:, 2] - points[:, 0]
    sides = np.stack([a, b, points[:, 2] - points[:, 1]], axis=1)
    longest = np.linalg.norm(sides, axis=2).max(axis=1)
    return np.linalg.norm(np.cross(a, b), axis=1) / np.maximum(longest, 1e-9)


def same_pose(
    a: np.ndarray, b: np.ndarray, pivot: np.ndarray, metres: float = 0.5, degrees: float = 10.0
) -> bool:
    """Whether two map_from_query transforms agree near ``pivot`` (a query-frame point).

    Comparing translation parts alone would depend on where the odometry origin is.
    """
    moved = np.linalg.norm((a[:3, :3] - b[:3, :3]) @ pivot + a[:3, 3] - b[:3, 3])
    cos = np.clip((np.trace(a[:3, :3].T @ b[:3, :3]) - 1.0) / 2.0, -1.0, 1.0)
    return bool(moved < metres and np.degrees(np.arccos(cos)) < degrees)
