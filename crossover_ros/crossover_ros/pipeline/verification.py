"""Geometric verification: the recogniser's best candidates re-ranked by how well the query
window's depth fits each one's stored cloud.

Scene vectors rank rooms by appearance, and a shortlist holds the right room far more often than
its first place does (bench A: R@10 91 %, R@1 28 % for CrossOver I->P). The depth of the window's
keyframes, fused in the odometry frame, tells rooms apart by their shape: it fits the right
room's stored cloud and not a stranger's. Place recognition re-ranks its shortlist by spatial
verification for the same reason. The fit decides; the scene vector's cosine breaks ties, which
look-alike twins (same shape) leave.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from crossover_ros.config import setting, validate
from crossover_ros.errors import CrossoverError
from crossover_ros.frames import RGBDFrame
from crossover_ros.mapdb.base import MapBase
from crossover_ros.pipeline.fusion import FusionCfg, PointCloudFusion
from crossover_ros.pose.estimate import PoseCfg, PoseEstimator, SceneCache


@dataclass(frozen=True)
class VerificationCfg:
    # chosen on a validation benchmark (seed 400): 10 fitted beat 5 by 7-8 points of R@1; a
    # weight of 0.03 ranks within a point of the fit alone. Look-alikes fit alike but not
    # equally: a fit 0.01-0.03 better decides over the score (counting such fits as ties, for
    # the score to decide, cost 1-7 points there: the fit knows more than a weak vector)
    top_k: int = setting(
        10,
        "Re-rank this many of each window's best candidates by how well the window's fused"
        " depth fits their stored clouds (needs odometry; 0: off; each costs about 30 ms once"
        " its scene is prepared).",
        0,
        50,
    )
    score_weight: float = setting(
        0.03,
        "Ranking score of a verified candidate: fitness + this x its score (by objects, else"
        " its scene vector's; the fit decides, the score breaks ties between look-alikes).",
        0.0,
        10.0,
    )
    # two threads: verification 208 -> 142 ms p50 on two cores (validation, same answers)
    threads: int = setting(
        2,
        "Fit this many of a window's candidates at once (threads; the fits are independent and"
        " the answers do not depend on it; up to one per core).",
        1,
        16,
    )
    min_points: int = 500  # a window cloud with fewer points is not verified
    # the window's keyframes (the recogniser's window size), fused at the fusion's stride
    fusion: FusionCfg = field(default_factory=lambda: FusionCfg(max_keyframes=6))
    # every scene of a building's map stays prepared (a window's 10 candidates come from all
    # of them; 16 for 18 scenes re-prepared 39 times in one bag's 73 windows)
    pose: PoseCfg = field(default_factory=lambda: PoseCfg(map_cache_size=64))

    def __post_init__(self) -> None:
        validate(self)


class GeometricVerifier:
    """Keeps the fused cloud of the recogniser's window and re-ranks candidates with it.

    Scenes are prepared once each (about 0.2 s) and kept; a fit then costs tens of
    milliseconds. Not thread-safe: the recogniser calls it under its lock.
    """

    def __init__(
        self, cfg: VerificationCfg | None = None, scenes: SceneCache | None = None
    ) -> None:
        self.cfg = cfg or VerificationCfg()
        self.window = PointCloudFusion(self.cfg.fusion)
        self.estimator = PoseEstimator(self.cfg.pose, scenes)  # scenes: shared with relocalising
        self._pool = ThreadPoolExecutor(self.cfg.threads) if self.cfg.threads > 1 else None
        self.failures = 0  # fits that raised (odd input); the candidates kept their order
        self.last_error = ""

    def add(self, frame: RGBDFrame, camera_to_odom: np.ndarray | None) -> None:
        """Add a keyframe to the window; one without a pose breaks the chain, so the window
        restarts (its cloud would mix frames that odometry does not relate)."""
        if camera_to_odom is None:
            self.window.reset()
            return
        self.window.add(frame, camera_to_odom)

    def reset(self) -> None:
        self.window.reset()

    def close(self) -> None:
        """Stop the fitting threads (the pipeline's close)."""
        if self._pool is not None:
            self._pool.shutdown()

    def prepare(self, mapdb: MapBase) -> None:
        """Prepare the clouds of the rooms' newest scans (the candidates the map answers),
        as many as are kept, now (the node does it at configure, and for a new map): otherwise
        the first windows that rank a room wait for it."""
        newest = list(mapdb.rooms().newest.values())
        for scene_id in newest[: self.cfg.pose.map_cache_size]:
            self.estimator.scene(scene_id, partial(mapdb.point_cloud, scene_id), mapdb)

    def rerank(
        self, mapdb: MapBase, ids: Sequence[str], scores: Sequence[float]
    ) -> tuple[list[str], list[float], list[float]]:
        """(ids, ranking scores, fitness), ranked by ``fitness + score_weight * score``: the
        first ``top_k`` candidates are fitted; the others, and scenes without a stored cloud,
        count as fitness 0 (fitness NaN: not fitted). Unchanged (the map's scores, all NaN)
        when no candidate could be fitted, the window sees too little or verification is off."""
        ids, scores = list(ids), [float(s) for s in scores]
        unverified = [float("nan")] * len(ids)
        xyz, rgb = self.window.cloud()
        if self.cfg.top_k <= 0 or len(xyz) < self.cfg.min_points or not ids:
            return ids, scores, unverified
        try:
            fit = partial(self._fit, mapdb, xyz=xyz, rgb=rgb)
            if self._pool is None:
                fitness = [fit(scene_id) for scene_id in ids[: self.cfg.top_k]]
            else:
                self.estimator.prepare_query(xyz, rgb)  # once, not by each thread
                fitness = list(self._pool.map(fit, ids[: self.cfg.top_k]))
        except (CrossoverError, ValueError, RuntimeError) as err:  # a bad stored cloud, odd input
            self.failures += 1
            self.last_error = f"verification failed: {err}"
            return ids, scores, unverified
        if all(np.isnan(fitness)):  # no stored clouds: nothing to verify against
            return ids, scores, unverified
        fits = fitness + unverified[len(fitness) :]
        ranked = [
            (0.0 if np.isnan(f) else f) + self.cfg.score_weight * s
            for f, s in zip(fits, scores, strict=True)
        ]
        order = sorted(range(len(ids)), key=lambda i: -ranked[i])
        return [ids[i] for i in order], [ranked[i] for i in order], [fits[i] for i in order]

    def _fit(self, mapdb: MapBase, scene_id: str, *, xyz: np.ndarray, rgb: np.ndarray) -> float:
        """Share of the window's points on the scene's stored cloud at the best pose found
        (the estimate's fitness, also when it gives no pose: ambiguous, low overlap); NaN
        without a stored cloud."""
        scene = self.estimator.scene(scene_id, partial(mapdb.point_cloud, scene_id), mapdb)
        if scene is None:
            return float("nan")
        return float(self.estimator.estimate(xyz, rgb, scene).fitness)
