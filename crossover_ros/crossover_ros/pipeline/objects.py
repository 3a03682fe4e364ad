"""Objects in the robot's fused point cloud, without a segmentation network.

Instance correspondences need the query's objects. The node takes no instance masks (no
segmentation network runs offline here), so objects come from geometry: the large planes (floor,
walls, ceiling) are removed with RANSAC and what stands in the room is split into Euclidean
clusters (DBSCAN). Objects that touch each other merge, small ones vanish: good enough to anchor
a pose, and the instance matcher leaves what it cannot pair unmatched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crossover_ros.pose.registration import o3d


@dataclass(frozen=True)
class SegmentationCfg:
    plane_distance_m: float = 0.04  # RANSAC inlier distance of a structural plane
    max_planes: int = 14  # planes tried: floor, ceiling, walls and their pieces
    min_plane_fraction: float = 0.01  # a plane holding less of the cloud is not structure
    up_axis: int = 2  # gravity axis of the cloud's frame (z in REP 103 odom and map frames)
    level_tolerance_m: float = 0.15  # a horizontal plane this near the lowest/highest point
    wall_min_height_m: float = 2.1  # a vertical plane this tall (or this wide) is a wall,
    wall_min_width_m: float = 2.5  # smaller ones are the fronts of cabinets and shelves
    cluster_eps_m: float = 0.08  # DBSCAN neighbourhood: about two voxels of the fused cloud
    core_neighbours: int = 6  # DBSCAN core point: this many points within cluster_eps_m
    min_cluster_points: int = 25  # smaller clusters are fragments, not objects
    max_object_extent_m: float = 3.0  # a bigger cluster is leftover structure, not an object
    max_objects: int = 64
    seed: int = 0


@dataclass(frozen=True)
class QueryObject:
    """One segmented object: its points (in the cloud's frame) and box."""

    xyz: np.ndarray  # (N, 3) float32
    rgb: np.ndarray  # (N, 3) float32 in 0..1
    centroid: np.ndarray  # (3,)
    box_min: np.ndarray  # (3,)
    box_max: np.ndarray  # (3,)


def segment_objects(
    xyz: np.ndarray, rgb: np.ndarray, cfg: SegmentationCfg | None = None
) -> list[QueryObject]:
    """Objects of a point cloud (xyz metres, rgb 0..1), largest first."""
    cfg = cfg or SegmentationCfg()
    if len(xyz) < cfg.min_cluster_points:
        return []
    o3d.utility.random.seed(cfg.seed)  # RANSAC plane picks: same cloud, same objects
    points = np.asarray(xyz, np.float64)
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    keep = np.ones(len(xyz), bool)  # not structure
    candidates = np.ones(len(xyz), bool)  # may still belong to a structural plane
    for _ in range(cfg.max_planes):
        remaining = np.flatnonzero(candidates)
        if len(remaining) < 3:
            break
        part = cloud.select_by_index(remaining)
        plane, inliers = part.segment_plane(cfg.plane_distance_m, 3, 200)
        if len(inliers) < cfg.min_plane_fraction * len(xyz):
            break
        members = remaining[np.asarray(inliers)]
        candidates[members] = False
        if _is_structure(np.asarray(plane), points, members, cfg):
            keep[members] = False
    remaining = np.flatnonzero(keep)
    if len(remaining) < cfg.min_cluster_points:
        return []
    labels = np.asarray(
        cloud.select_by_index(remaining).cluster_dbscan(cfg.cluster_eps_m, cfg.core_neighbours)
    )
    objects = []
    for label in range(labels.max() + 1 if len(labels) else 0):
        members = remaining[labels == label]
        object_xyz = np.asarray(xyz[members], np.float32)
        low, high = object_xyz.min(axis=0), object_xyz.max(axis=0)
        if len(members) < cfg.min_cluster_points or (high - low).max() > cfg.max_object_extent_m:
            continue
        object_rgb = np.asarray(rgb[members], np.float32)
        objects.append(QueryObject(object_xyz, object_rgb, object_xyz.mean(axis=0), low, high))
    objects.sort(key=lambda obj: -len(obj.xyz))
    return objects[: cfg.max_objects]


def _is_structure(
    plane: np.ndarray, xyz: np.ndarray, members: np.ndarray, cfg: SegmentationCfg
) -> bool:
    """Walls, floor and ceiling; not a table top or the front of a wardrobe.

    A horizontal plane is structure only at the bottom or top of the cloud, a vertical one
    only if it is wall-sized: large furniture is what the robot should match.
    """
    normal = plane[:3] / max(np.linalg.norm(plane[:3]), 1e-9)
    height = xyz[:, cfg.up_axis]
    if abs(normal[cfg.up_axis]) < 0.9:
        points = xyz[members]
        span = points.max(axis=0) - points.min(axis=0)
        horizontal = np.delete(span, cfg.up_axis).max()
        return span[cfg.up_axis] >= cfg.wall_min_height_m or horizontal >= cfg.wall_min_width_m
    level = float(np.median(height[members]))
    return (
        level - height.min() < cfg.level_tolerance_m or height.max() - level < cfg.level_tolerance_m
    )


def object_point_sets(
    objects: list[QueryObject], num_points: int, rng: np.random.Generator
) -> np.ndarray:
    """(K, num_points, 6) inputs of the object point encoder: xyz - centroid, rgb 0..1.

    Sampled the way the training features were (with replacement only when an object has
    fewer points than asked), so the encoder sees what it was trained on.
    """
    out = np.zeros((len(objects), num_points, 6), np.float32)
    for row, obj in enumerate(objects):
        n = len(obj.xyz)
        pick = rng.choice(n, num_points, replace=n < num_points)
        out[row, :, :3] = obj.xyz[pick] - obj.centroid
        out[row, :, 3:] = obj.rgb[pick]
    return out
