"""Point cloud preparation, ICP refinement and the fit's covariance and degeneracy.

Refinement is open3d's point-to-plane ICP with a Tukey kernel, coarse to fine: walls and floors
dominate indoor clouds and point-to-plane slides along them instead of snagging on sampling
noise; the Tukey kernel gives moved objects, new objects and the ceiling (which stored scene
clouds lack) no pull once they are farther than the kernel width.

Covariance comes from the point-to-plane Gauss-Newton information matrix ``H = sum J^T J``,
``J = [n^T, ((p - c) x n)^T]`` about the pose's position ``c`` (so its blocks are the position
and the small rotation about map axes, ROS's (x, y, z, roll, pitch, yaw) order), times the
residual variance. (open3d's ``get_information_matrix_from_point_clouds`` is the point-to-point
one: it calls a single wall well constrained.) The same information built from the query's own
normals, normalised, says whether the geometry pins the pose at all: a single wall leaves two
translations and one rotation free, a corridor one translation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy.spatial import cKDTree

try:  # optional: fusion, verification and relocalisation need it, recognition does not
    import open3d as o3d
except ImportError:  # e.g. a Jetson's pip install (open3d-cpu has x86_64 wheels only)
    o3d = None

HAS_OPEN3D = o3d is not None
reg = o3d.pipelines.registration if HAS_OPEN3D else None


@dataclass
class PreparedCloud:
    """A cloud at the two resolutions the estimator uses; search trees built when first asked.

    ``fine`` is what ICP moves (query) or aligns to (scene: with normals, as point-to-plane
    needs them on the target only); ``coarse`` has normals for the global search; ``check`` is a
    fixed subset of ``coarse`` for cheap overlap checks of many hypotheses.
    """

    fine: o3d.geometry.PointCloud
    coarse: o3d.geometry.PointCloud
    check: np.ndarray
    extras: dict = field(default_factory=dict)  # lazily computed features (FPFH, grids)

    @property
    def fine_points(self) -> np.ndarray:
        return np.asarray(self.fine.points)

    @property
    def fine_normals(self) -> np.ndarray:
        return np.asarray(self.fine.normals)

    @property
    def coarse_points(self) -> np.ndarray:
        return np.asarray(self.coarse.points)

    @property
    def coarse_normals(self) -> np.ndarray:
        return np.asarray(self.coarse.normals)

    @cached_property
    def fine_tree(self) -> cKDTree:
        return _tree(self.fine_points)

    @cached_property
    def coarse_tree(self) -> cKDTree:
        return _tree(self.coarse_points)


def _tree(points: np.ndarray) -> cKDTree:
    return cKDTree(points if len(points) else np.full((1, 3), np.inf))


def to_o3d(xyz: np.ndarray, rgb: np.ndarray | None = None) -> o3d.geometry.PointCloud:
    """An open3d cloud; ``rgb`` as uint8 0..255 or float 0..1."""
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(xyz, np.float64)))
    if rgb is not None and len(rgb) == len(xyz):
        colors = np.asarray(rgb, np.float64)
        if np.issubdtype(np.asarray(rgb).dtype, np.integer) or (colors.size and colors.max() > 1):
            colors = colors / 255.0
        cloud.colors = o3d.utility.Vector3dVector(colors)
    return cloud


def _finite(xyz: np.ndarray, rgb: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    xyz = np.asarray(xyz).reshape(-1, 3)
    keep = np.isfinite(xyz).all(axis=1)
    if rgb is not None:
        rgb = np.asarray(rgb).reshape(-1, 3)
        rgb = rgb[keep] if len(rgb) == len(xyz) else None
    return xyz[keep], rgb


def prepare_cloud(
    xyz: np.ndarray,
    rgb: np.ndarray | None,
    fine_voxel_m: float,
    coarse_voxel_m: float,
    fine_normals: bool,
    max_fine_points: int = 0,
    back_face_depth_m: float = 0.0,
    max_check_points: int = 400,
    seed: int = 0,
) -> PreparedCloud:
    """Downsample and estimate normals (open3d).

    ``fine_normals``: the scene needs them (ICP target), a query does not. ``max_fine_points``
    > 0 caps the fine cloud by a fixed-seed random subset (ICP time is linear in it).
    ``back_face_depth_m`` > 0 removes back faces of thin slabs (:func:`remove_back_faces`); use
    it on stored scene clouds, never on a query.
    """
    xyz, rgb = _finite(xyz, rgb)
    rng = np.random.default_rng(seed)
    fine = to_o3d(xyz, rgb).voxel_down_sample(fine_voxel_m)
    if fine_normals and len(fine.points):
        fine.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(2.5 * fine_voxel_m, 20))
        if back_face_depth_m > 0.0:
            fine = fine.select_by_index(remove_back_faces(fine, back_face_depth_m, fine_voxel_m))
    if max_fine_points and len(fine.points) > max_fine_points:
        keep = np.sort(rng.choice(len(fine.points), max_fine_points, replace=False))
        fine = fine.select_by_index(keep)
    coarse = fine.voxel_down_sample(coarse_voxel_m)
    if len(coarse.points):
        coarse.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(2.5 * coarse_voxel_m, 15))
    check = np.asarray(coarse.points)
    if len(check) > max_check_points:
        check = check[np.sort(rng.choice(len(check), max_check_points, replace=False))]
    return PreparedCloud(fine, coarse, check)


def remove_back_faces(
    cloud: o3d.geometry.PointCloud, max_depth_m: float, spacing_m: float
) -> np.ndarray:
    """Indices of the points that are not the hidden back face of a wall or floor slab.

    Clouds sampled from meshes (generated scans, some CAD-derived maps) hold both faces of each
    wall and of the floor slab, ~10 cm apart; a camera inside the room sees only the inner ones,
    and ICP can lock onto the outer face, a wall thickness off. With normals turned towards the
    cloud's middle (at 1.2 m above its lowest point, a viewpoint inside the room), a point is a
    back face when a parallel surface lies in front of it within ``max_depth_m``. Scanned clouds
    have no such pairs and lose (nearly) nothing.
    """
    points = np.asarray(cloud.points)
    centre = 0.5 * (points.min(axis=0) + points.max(axis=0))
    centre[2] = points[:, 2].min() + 1.2
    # normals of wide patches: both faces of a slab then share the right direction (a patch
    # about as wide as the slab is thick would mix them up)
    oriented = o3d.geometry.PointCloud(cloud.points)
    oriented.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(5.0 * spacing_m, 60))
    oriented.orient_normals_towards_camera_location(centre)
    normals = np.asarray(oriented.normals)
    tree = cKDTree(points)
    hidden = np.zeros(len(points), bool)
    # probes start past the point's own surface (radius < first depth) and step by half the
    # radius, so a sparse (5 cm, randomly sampled) face in front is still found
    for depth in np.arange(1.2 * spacing_m, max_depth_m + 1e-9, 0.5 * spacing_m):
        distance, index = tree.query(points + depth * normals, distance_upper_bound=spacing_m)
        found = np.flatnonzero(np.isfinite(distance) & ~hidden)
        parallel = np.abs(np.einsum("ij,ij->i", normals[found], normals[index[found]])) > 0.9
        hidden[found[parallel]] = True
    return np.flatnonzero(~hidden)


@dataclass(frozen=True)
class IcpResult:
    transform: np.ndarray
    fitness: float  # share of query points with a map point within the final distance
    rmse_m: float  # point-to-point RMSE of those (open3d's inlier_rmse)


def refine_icp(
    query: PreparedCloud,
    target: PreparedCloud,
    init: np.ndarray,
    distances_m: tuple[float, ...],
    iterations: tuple[int, ...],
) -> IcpResult:
    """Coarse-to-fine point-to-plane ICP with a Tukey kernel as wide as each stage's distance."""
    transform = np.asarray(init, np.float64)
    result = None
    for distance, steps in zip(distances_m, iterations, strict=True):
        method = reg.TransformationEstimationPointToPlane(reg.TukeyLoss(k=distance))
        criteria = reg.ICPConvergenceCriteria(
            relative_fitness=1e-4, relative_rmse=1e-4, max_iteration=steps
        )
        result = reg.registration_icp(
            query.fine, target.fine, distance, transform, method, criteria
        )
        transform = np.asarray(result.transformation)
    assert result is not None
    return IcpResult(transform, float(result.fitness), float(result.inlier_rmse))


def fitness(points: np.ndarray, transform: np.ndarray, tree: cKDTree, distance_m: float) -> float:
    """Share of ``points`` (query frame) within ``distance_m`` of the tree's points once moved."""
    if len(points) == 0:
        return 0.0
    moved = points @ transform[:3, :3].T + transform[:3, 3]
    found, _ = tree.query(moved, distance_upper_bound=distance_m)
    return float(np.isfinite(found).mean())


def fitness_many(
    points: np.ndarray, transforms: list[np.ndarray], tree: cKDTree, distance_m: float
) -> list[float]:
    """:func:`fitness` of several transforms in one tree query."""
    if not transforms or len(points) == 0:
        return [0.0] * len(transforms)
    stack = np.asarray(transforms)
    moved = np.einsum("hij,nj->hni", stack[:, :3, :3], points) + stack[:, None, :3, 3]
    found, _ = tree.query(moved.reshape(-1, 3), distance_upper_bound=distance_m)
    return list(np.isfinite(found).reshape(len(transforms), -1).mean(axis=1))


@dataclass(frozen=True)
class FitQuality:
    """What the final fit says about itself."""

    num_inliers: int
    rmse_m: float  # point-to-plane RMSE of the inliers
    covariance: np.ndarray  # 6x6, (x, y, z, roll, pitch, yaw), map frame
    constraint: float  # smallest normalised eigenvalue of H: ~0 means a free direction


def fit_quality(
    query: PreparedCloud,
    target: PreparedCloud,
    transform: np.ndarray,
    distance_m: float,
    min_variance_m2: float = 1e-6,
) -> FitQuality:
    """Inliers, residual, covariance and degeneracy of the point-to-plane fit at ``transform``.

    The covariance treats residuals as independent, so it is optimistic for neighbouring points;
    ``min_variance_m2`` keeps it from collapsing on noise-free data.
    """
    points = query.fine_points @ transform[:3, :3].T + transform[:3, 3]
    found, index = target.fine_tree.query(points, distance_upper_bound=distance_m)
    keep = np.isfinite(found)
    n = int(keep.sum())
    if n < 6:
        return FitQuality(n, float("inf"), np.full((6, 6), np.inf), 0.0)
    p = points[keep]
    normals = target.fine_normals[index[keep]]
    residual = np.einsum("ij,ij->i", p - target.fine_points[index[keep]], normals)
    centre = transform[:3, 3]
    jacobian = np.hstack([normals, np.cross(p - centre, normals)])
    information = jacobian.T @ jacobian
    variance = max(float(residual @ residual) / max(n - 6, 1), min_variance_m2)
    try:
        covariance = variance * np.linalg.inv(information)
    except np.linalg.LinAlgError:
        covariance = np.full((6, 6), np.inf)
    # scale-free degeneracy of what the query itself observed (its own normals: the scene's
    # normals near edges would vary even under a single wall): the smallest eigenvalue of the
    # information of unit normals, rotations measured as motion at the cloud's RMS radius
    rotation = transform[:3, :3]
    coarse = query.coarse_points @ rotation.T + transform[:3, 3]
    found, _ = target.fine_tree.query(coarse, distance_upper_bound=distance_m)
    seen = np.isfinite(found)
    constraint = 0.0
    if seen.sum() >= 6:
        q = coarse[seen] - coarse[seen].mean(axis=0)
        qn = query.coarse_normals[seen] @ rotation.T
        radius = max(float(np.sqrt((q**2).sum(axis=1).mean())), 1e-3)
        unit = np.hstack([qn, np.cross(q, qn) / radius])
        constraint = float(np.linalg.eigvalsh(unit.T @ unit / len(q))[0])
    return FitQuality(n, float(np.sqrt(np.mean(residual**2))), covariance, constraint)
