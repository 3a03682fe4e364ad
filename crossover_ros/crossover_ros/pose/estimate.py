"""6-DoF pose of the fused query cloud in the matched scene's frame, or a reasoned ``NoPose``.

Frames: the query cloud (and the query side of the centroid pairs) is in the odometry frame, the
map cloud (and the map side) in the stored scene's frame (``SceneRecord.frame``; generated
scans: the room frame, whose pose in the building is ``SceneRecord.frame_to_building``). The
result ``map_from_query`` maps odometry coordinates to scene coordinates, so the robot's camera
in the scene is ``map_from_query @ camera_to_odom``.

Steps: coarse hypotheses from centroid RANSAC over matched instances, if given; ICP on the one
that overlaps the scene most (and on a distinct runner-up that overlaps nearly as much). If no
refined pose fits well enough (no pairs, biased centroids, wrong matches), the same again with
the hypotheses of a global search. Then the checks that turn weak evidence into ``NoPose``: a
distinct pose that fits about as well (symmetric or repeated structure), low overlap, too few
inliers, a residual too large, geometry that leaves a direction free (one wall, a corridor).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from crossover_ros.pose.global_search import correlative_hypotheses, fpfh_hypothesis, wall_grid
from crossover_ros.pose.ransac import centroid_ransac, same_pose
from crossover_ros.pose.registration import (
    PreparedCloud,
    fit_quality,
    fitness,
    fitness_many,
    prepare_cloud,
    refine_icp,
)

GLOBAL_METHODS = ("correlative", "fpfh", "none")


@dataclass(frozen=True)
class PoseCfg:
    """Estimator settings; distances in metres. Defaults tuned on ``crossover_ros bench pose``."""

    gravity_aligned: bool = True  # odometry and map frames both z-up (REP 105): 4-DoF search
    # clouds
    query_voxel_m: float = 0.08
    map_voxel_m: float = 0.08  # point-to-plane needs planes, not density; fewer = faster ICP
    coarse_voxel_m: float = 0.1
    max_query_points: int = 1000  # ICP cost is linear in it
    map_back_face_m: float = 0.3  # drop hidden back faces of walls/floors up to this thick; 0: off
    min_points: int = 300
    # coarse stage
    centroid_inlier_m: float = 0.4  # partial views bias centroids by tens of cm
    centroid_max_samples: int = 500
    global_method: str = "correlative"  # or "fpfh", or "none" (centroids only)
    grid_cell_m: float = 0.1
    yaw_bin_deg: float = 1.0
    yaw_peaks: int = 2  # wall directions; each gives two yaws (a rectangle: all four)
    translation_peaks: int = 2
    check_distance_m: float = 0.25  # coarse overlap check; centroid poses are ~20 cm off
    centroid_trust_fitness: float = 0.9  # refined centroid poses below: also search globally
    # refinement
    icp_distances_m: tuple[float, ...] = (0.25, 0.08)
    icp_iterations: tuple[int, ...] = (12, 12)
    # acceptance
    accept_distance_m: float = 0.08  # about the scene cloud's point spacing
    min_fitness: float = 0.8  # share of query points on the scene within accept_distance_m
    min_inliers: int = 200
    max_rmse_m: float = 0.04  # point-to-plane RMSE of the inliers (~2-3 cm when right)
    min_constraint: float = 0.02  # smallest normalised eigenvalue of the information matrix
    refine_ratio: float = 0.9  # a distinct runner-up this close (coarse check) is refined too
    # ... and if it then leaves less than this many times the best's unexplained share of the
    # query unexplained: NoPose (misfits compare better than fitnesses near 1)
    ambiguity_ratio: float = 1.5
    map_cache_size: int = 16  # scenes kept prepared: the answered one and its rivals (up to 11)


@dataclass(frozen=True)
class PoseEstimate:
    """A pose the evidence supports.

    Attributes:
        map_from_query: 4x4, odometry frame -> scene frame.
        covariance: 6x6, (x, y, z, roll, pitch, yaw) order as geometry_msgs/PoseWithCovariance,
            scene frame, of ``map_from_query`` as the pose of the odometry origin (small
            rotations about scene axes); :meth:`covariance_at` moves it to the robot. From the
            point-to-plane fit; optimistic, as it treats neighbouring points as independent.
        fitness: share of query points within ``accept_distance_m`` of the scene cloud.
        inlier_rmse: point-to-plane RMSE of those points, metres.
        num_inliers: how many they are.
        method: coarse stage + refinement, e.g. ``"centroids+icp"``.
        compute_time_s: wall time of the whole estimate.
        constraint: smallest normalised eigenvalue of the information the query's surfaces
            give about the pose (0: a free direction, as with a single wall).
        runner_up_fitness: fitness of the best distinct alternative pose, 0 if none was close
            enough to refine; near ``fitness`` means symmetric or repeated structure.
    """

    map_from_query: np.ndarray
    covariance: np.ndarray
    fitness: float
    inlier_rmse: float
    num_inliers: int
    method: str
    compute_time_s: float
    constraint: float = 0.0
    runner_up_fitness: float = 0.0

    def covariance_at(self, point_in_query: np.ndarray) -> np.ndarray:
        """Covariance of the pose of a body at ``point_in_query`` (odometry frame), e.g. the
        robot: ``covariance`` is about the odometry origin, and rotation uncertainty moves a
        body away from it (lever arm). Same (x, y, z, roll, pitch, yaw) order, scene frame.
        """
        arm = self.map_from_query[:3, :3] @ np.asarray(point_in_query, np.float64).reshape(3)
        jacobian = np.eye(6)
        jacobian[:3, 3:] = -np.array(
            [[0.0, -arm[2], arm[1]], [arm[2], 0.0, -arm[0]], [-arm[1], arm[0], 0.0]]
        )
        return jacobian @ self.covariance @ jacobian.T


@dataclass(frozen=True)
class NoPose:
    """No pose: the evidence is too weak. ``best_guess`` is for diagnostics only, never to use."""

    reason: str
    fitness: float = 0.0
    compute_time_s: float = 0.0
    best_guess: np.ndarray | None = None


def _digest(xyz: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(xyz).tobytes(), digest_size=16).hexdigest()


def _as_pairs(correspondences: object) -> np.ndarray:
    if correspondences is None:
        return np.zeros((0, 2, 3))
    pairs = np.asarray(correspondences, np.float64)
    if pairs.size == 0:
        return np.zeros((0, 2, 3))
    if pairs.ndim != 3 or pairs.shape[1:] != (2, 3):
        raise ValueError(f"correspondences must be (K, 2, 3) (query, map) pairs, got {pairs.shape}")
    return pairs[np.isfinite(pairs).all(axis=(1, 2))]


class SceneCache:
    """Prepared scene clouds of one map, the ``cfg.map_cache_size`` last used.

    Preparing a scene (normals, back-face removal, search trees) costs far more than a query, and
    a robot asks against the same scene again and again, so it is done once per scene; one cache
    serves every estimator that fits the same map (the verifier's and the relocaliser's).
    Thread-safe: recognition and relocalisation run in threads of their own.
    """

    # the settings a prepared scene depends on
    PREPARATION = (
        "map_voxel_m",
        "coarse_voxel_m",
        "map_back_face_m",
        "global_method",
        "grid_cell_m",
    )

    def __init__(self, cfg: PoseCfg | None = None) -> None:
        self.cfg = cfg or PoseCfg()
        self._scenes: OrderedDict[str, PreparedCloud] = OrderedDict()
        self._source: object = None  # the map the scenes came from
        self._lock = threading.Lock()

    def prepares_like(self, cfg: PoseCfg) -> bool:
        """Whether an estimator with ``cfg`` would prepare scenes as this cache does."""
        return all(getattr(cfg, name) == getattr(self.cfg, name) for name in self.PREPARATION)

    def add(self, xyz: np.ndarray, rgb: np.ndarray | None, key: str) -> PreparedCloud:
        """The prepared cloud of ``key``, prepared from (xyz, rgb) unless it is kept."""
        return self.get(key, lambda: (xyz, rgb), self._source)  # type: ignore[return-value]

    def get(
        self,
        key: str,
        load: Callable[[], tuple[np.ndarray, np.ndarray | None] | None],
        source: object = None,
    ) -> PreparedCloud | None:
        """The prepared cloud of scene ``key`` of map ``source``; ``load()`` gives its (xyz,
        colours), or None without one, and is called only when the scene is not kept (a map's
        stored cloud is decoded once, however often a robot fits the room). Another ``source``
        than the last drops every kept scene: the same ids may name other clouds there."""
        with self._lock:
            if source is not self._source:
                self._scenes.clear()
                self._source = source
            if key not in self._scenes:
                loaded = load()
                if loaded is None:
                    return None
                self._scenes[key] = self._prepare(*loaded)
                while len(self._scenes) > self.cfg.map_cache_size:
                    self._scenes.popitem(last=False)
            self._scenes.move_to_end(key)
            return self._scenes[key]

    def _prepare(self, xyz: np.ndarray, rgb: np.ndarray | None) -> PreparedCloud:
        cfg = self.cfg
        prepared = prepare_cloud(
            xyz,
            rgb,
            cfg.map_voxel_m,
            cfg.coarse_voxel_m,
            fine_normals=True,
            back_face_depth_m=cfg.map_back_face_m,
        )
        prepared.fine_tree, prepared.coarse_tree  # noqa: B018 (built now, not in a query)
        if cfg.global_method == "correlative":
            wall_grid(prepared, cfg.grid_cell_m)
        return prepared


class PoseEstimator:
    """Estimates poses against stored scenes, prepared once each in ``scenes`` (its own cache
    unless one is shared with another estimator of the same map)."""

    def __init__(self, cfg: PoseCfg | None = None, scenes: SceneCache | None = None) -> None:
        self.cfg = cfg or PoseCfg()
        if self.cfg.global_method not in GLOBAL_METHODS:
            raise ValueError(f"global_method must be one of {GLOBAL_METHODS}")
        if len(self.cfg.icp_distances_m) != len(self.cfg.icp_iterations):
            raise ValueError("icp_distances_m and icp_iterations need the same length")
        if scenes is not None and not scenes.prepares_like(self.cfg):
            raise ValueError("a shared scene cache must prepare scenes as this estimator would")
        self.scenes = scenes or SceneCache(self.cfg)
        self._last_query: tuple[np.ndarray, np.ndarray | None, PreparedCloud] | None = None

    def prepare_map(
        self, map_xyz: np.ndarray, map_rgb: np.ndarray | None = None, key: str | None = None
    ) -> PreparedCloud:
        """The prepared scene cloud, from the cache when ``key`` (or the content) was seen."""
        return self.scenes.add(map_xyz, map_rgb, key or _digest(np.asarray(map_xyz)))

    def scene(
        self,
        key: str,
        load: Callable[[], tuple[np.ndarray, np.ndarray | None] | None],
        source: object = None,
    ) -> PreparedCloud | None:
        """:meth:`SceneCache.get`: the prepared cloud of scene ``key`` of map ``source``."""
        return self.scenes.get(key, load, source)

    def estimate(
        self,
        query_xyz: np.ndarray,
        query_rgb: np.ndarray | None,
        target: PreparedCloud,
        correspondences: Sequence[tuple[np.ndarray, np.ndarray]] | np.ndarray | None = None,
        guesses: Sequence[np.ndarray] = (),
    ) -> PoseEstimate | NoPose:
        """map_from_query of the query cloud (odometry frame) in the frame of the scene cloud
        ``target`` (from :meth:`prepare_map` or :meth:`scene`).

        ``correspondences``: matched instance centroids as (query, map) pairs, (K, 2, 3).
        ``guesses``: 4x4 poses to refine first (say, where odometry puts the cloud); like
        centroid poses, they spare the global search when one fits clearly.
        Colours (uint8 or 0..1) ride along in the open3d clouds; the point-to-plane refinement
        does not use them (lighting differs between a scan and a visit).
        """
        start = time.perf_counter()
        cfg = self.cfg
        pairs = _as_pairs(correspondences)

        def no_pose(reason: str, fit: float = 0.0, guess: np.ndarray | None = None) -> NoPose:
            return NoPose(reason, fit, time.perf_counter() - start, guess)

        query = self.prepare_query(query_xyz, query_rgb)
        if len(query.fine.points) < cfg.min_points:
            return no_pose(f"too few query points ({len(query.fine.points)} < {cfg.min_points})")
        if len(target.fine.points) < cfg.min_points:
            return no_pose(f"too few scene points ({len(target.fine.points)} < {cfg.min_points})")

        pivot = query.check.mean(axis=0)  # where "the same pose" is judged
        refined: list[tuple[float, np.ndarray, str]] = []
        if len(pairs):
            found = centroid_ransac(
                pairs[:, 0],
                pairs[:, 1],
                cfg.centroid_inlier_m,
                cfg.gravity_aligned,
                cfg.centroid_max_samples,
            )
            refined += self._refine(query, target, [h.transform for h in found], "centroids", pivot)
        if len(guesses):
            refined += self._refine(query, target, list(guesses), "guess", pivot)
        # centroid poses or guesses that do not fit clearly (biased centroids, wrong matches):
        # the global search's poses compete with them, and the loser counts as the runner-up
        if not refined or max(r[0] for r in refined) < cfg.centroid_trust_fitness:
            method, transforms = self._global(query, target)
            refined += self._refine(query, target, transforms, method, pivot)
        if not refined:
            return no_pose("no pose hypothesis (too few centroid pairs, no global match)")
        refined.sort(key=lambda r: -r[0])
        best_fit, best, method = refined[0]
        runner_up = next((r[0] for r in refined[1:] if not same_pose(best, r[1], pivot)), 0.0)
        if best_fit < cfg.min_fitness:
            return no_pose(
                f"low overlap with the scene ({best_fit:.2f} < {cfg.min_fitness})", best_fit, best
            )
        if 1.0 - runner_up < cfg.ambiguity_ratio * (1.0 - best_fit):
            return no_pose(
                f"ambiguous: two poses fit alike ({best_fit:.2f}, {runner_up:.2f})",
                best_fit,
                best,
            )
        quality = fit_quality(query, target, best, cfg.accept_distance_m)
        if quality.num_inliers < cfg.min_inliers:
            return no_pose(f"too few inliers ({quality.num_inliers})", best_fit, best)
        if quality.rmse_m > cfg.max_rmse_m:
            return no_pose(f"residual too large ({quality.rmse_m:.3f} m)", best_fit, best)
        if quality.constraint < cfg.min_constraint:
            return no_pose(
                f"degenerate geometry (constraint {quality.constraint:.3f} < {cfg.min_constraint})",
                best_fit,
                best,
            )
        return PoseEstimate(
            best,
            quality.covariance,
            best_fit,
            quality.rmse_m,
            quality.num_inliers,
            f"{method}+icp",
            time.perf_counter() - start,
            quality.constraint,
            runner_up,
        )

    def prepare_query(self, xyz: np.ndarray, rgb: np.ndarray | None) -> PreparedCloud:
        """The query's preparation; reused when the same read-only arrays come again (one
        window's cloud fitted to several scenes), so it cannot have changed in between."""
        last = self._last_query
        if last is not None and last[0] is xyz and last[1] is rgb:
            return last[2]
        cfg = self.cfg
        prepared = prepare_cloud(
            xyz,
            rgb,
            cfg.query_voxel_m,
            cfg.coarse_voxel_m,
            fine_normals=False,
            max_fine_points=cfg.max_query_points,
        )
        read_only = not np.asarray(xyz).flags.writeable
        read_only = read_only and (rgb is None or not np.asarray(rgb).flags.writeable)
        self._last_query = (xyz, rgb, prepared) if read_only else None
        return prepared

    def _global(self, query: PreparedCloud, target: PreparedCloud) -> tuple[str, list[np.ndarray]]:
        """(method, hypotheses) of the global search (none with ``global_method="none"``)."""
        cfg = self.cfg
        if cfg.global_method == "none":
            return "none", []
        if cfg.global_method == "correlative" and cfg.gravity_aligned:
            found = correlative_hypotheses(
                query,
                target,
                cfg.grid_cell_m,
                cfg.yaw_bin_deg,
                cfg.yaw_peaks,
                cfg.translation_peaks,
            )
        else:
            return "fpfh", [
                t
                for _, t in fpfh_hypothesis(query, target, cfg.coarse_voxel_m, cfg.gravity_aligned)
            ]
        return "correlative", [t for _, t in found]

    def _refine(
        self,
        query: PreparedCloud,
        target: PreparedCloud,
        transforms: list[np.ndarray],
        method: str,
        pivot: np.ndarray,
    ) -> list[tuple[float, np.ndarray, str]]:
        """ICP on the hypothesis that overlaps the scene most, and on a distinct runner-up that
        overlaps nearly as much (so that symmetric rooms are noticed); (fitness, pose, method).
        """
        cfg = self.cfg
        scores = fitness_many(query.check, transforms, target.coarse_tree, cfg.check_distance_m)
        checked = sorted(zip(scores, transforms, strict=True), key=lambda c: -c[0])
        chosen = checked[:1]
        for score, transform in checked[1:]:
            if score < cfg.refine_ratio * checked[0][0]:
                break
            if not same_pose(transform, chosen[0][1], pivot):
                chosen.append((score, transform))
                break
        out: list[tuple[float, np.ndarray, str]] = []
        distances, iterations = cfg.icp_distances_m, cfg.icp_iterations
        for _, transform in chosen:
            done = 0
            if out:  # the runner-up: its first stage tells whether it can compete at all
                transform = refine_icp(
                    query, target, transform, distances[:1], iterations[:1]
                ).transform
                done = 1
                score = self._fit(query, target, transform)
                if 1.0 - score > cfg.ambiguity_ratio * (1.0 - out[0][0]) + 0.05:
                    out.append((score, transform, method))
                    continue
            if distances[done:]:
                transform = refine_icp(
                    query, target, transform, distances[done:], iterations[done:]
                ).transform
            out.append((self._fit(query, target, transform), transform, method))
        return out

    def _fit(self, query: PreparedCloud, target: PreparedCloud, transform: np.ndarray) -> float:
        return fitness(query.fine_points, transform, target.fine_tree, self.cfg.accept_distance_m)


def estimate_pose(
    query_xyz: np.ndarray,
    query_rgb: np.ndarray | None,
    map_xyz: np.ndarray,
    map_rgb: np.ndarray | None,
    correspondences: Sequence[tuple[np.ndarray, np.ndarray]] | np.ndarray | None = None,
    cfg: PoseCfg | None = None,
) -> PoseEstimate | NoPose:
    """One-shot :meth:`PoseEstimator.estimate` (prepares the scene cloud every call)."""
    estimator = PoseEstimator(cfg)
    target = estimator.prepare_map(map_xyz, map_rgb)
    return estimator.estimate(query_xyz, query_rgb, target, correspondences)
