"""What changed in a recognised room since the map was made: objects moved, gone or new.

Runs after a confirmed relocalisation (``pipeline/relocalize.py``), on what it found: the
objects segmented from the fused cloud with their embeddings, the pose of the cloud in the
scene, and the cameras of the fused keyframes. Three tests, each on geometry the map stores:

- *new at its place*: an observed object whose points mostly lie where the scene's stored cloud
  has nothing (``novel_distance_m``); a static object or a wall lies on the stored surfaces;
- *moved*: such an object matched by embedding (cosine + Hungarian, ``match_threshold``) to a
  stored instance that is not where the map has it, at least ``moved_threshold_m`` away;
  *added*: one matched to nothing;
- *removed*: a stored instance whose box the cameras covered (depth rays of at least
  ``min_covered_pixels`` pixels pass through it, not stopped in front of it), but which stops
  fewer than ``removed_below`` of those rays, and was not seen elsewhere. Only what the cameras
  covered can be gone: an instance out of view or behind something stays unknown.

Evidence is pooled over a visit (:class:`ChangeTracker`, reset when the room changes), so the
report grows as the robot looks around. Positions are reported in the map frame (the building's,
or the scene's own when it has no place in a building). No ROS here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from crossover_ros.config import setting, validate
from crossover_ros.mapdb.base import MapBase
from crossover_ros.mapdb.records import normalise_rows
from crossover_ros.model import modalities as mod
from crossover_ros.pipeline.fusion import CameraView
from crossover_ros.pipeline.keyframes import rotation_angle_deg
from crossover_ros.pipeline.relocalize import Relocalization
from crossover_ros.pose.estimate import PoseEstimate

STATIC, MOVED, REMOVED, ADDED = "static", "moved", "removed", "added"
CHANGE_TYPES = (STATIC, MOVED, REMOVED, ADDED)
NO_INSTANCE = -1  # map instance id of an added object
PENDING = 3  # unconfirmed relocalisations kept until a confirmed pose agrees with them


@dataclass(frozen=True)
class ChangeCfg:
    enabled: bool = setting(
        True,
        "After a confirmed pose, compare the objects seen with the room's stored instances and"
        " publish what moved, what is gone and what is new (needs a model that embeds objects).",
    )
    moved_threshold_m: float = setting(
        0.3, "An object found at least this far from its stored place has moved.", 0.01, 10.0
    )
    match_threshold: float = setting(
        0.5,
        "Cosine of object identities (the token half of the descriptors) at or above which an"
        " object in a new place is a stored one that moved; below it, the object is new.",
        -1.0,
        1.0,
    )
    novel_distance_m: float = setting(
        0.1,
        "An observed point this far from the scene's stored cloud is where the map had nothing.",
        0.01,
        1.0,
    )
    novel_fraction: float = setting(
        0.6,
        "An object with at least this share of its points where the map had nothing is new at"
        " its place (moved there or added).",
        0.0,
        1.0,
    )
    min_covered_pixels: int = setting(
        30,
        "A stored object counts as covered when depth rays of at least this many pixels (at the"
        " fusion's pixel stride) reach its box unobstructed; only covered objects can be gone.",
        1,
        1_000_000,
    )
    removed_below: float = setting(
        0.15,
        "A covered object whose box stops fewer than this share of the rays through it is gone.",
        0.0,
        1.0,
    )
    box_shrink_m: float = 0.04  # rays this close to a box's faces (floor, wall behind) don't count
    occlusion_margin_m: float = 0.05  # depth this far in front of a box: something hides it
    box_margin_m: float = 0.15  # an object centred this far outside a stored box is not in it
    merge_m: float = 0.3  # added objects seen this close in two windows are one
    agree_m: float = 0.3  # an unconfirmed pose this close to the confirmed one is pooled
    agree_deg: float = 5.0
    match_by_token: bool = True  # moved objects are matched by what they are, not by context

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class SceneChange:
    """One stored instance's fate, or one new object; positions in the report's frame."""

    kind: str  # STATIC, MOVED, REMOVED or ADDED
    instance_id: int  # NO_INSTANCE for an added object
    label: str
    before: np.ndarray | None  # stored centroid (None: added)
    after: np.ndarray | None  # seen centroid (None: removed; the stored one: static)
    displacement_m: float = 0.0


@dataclass(frozen=True)
class ChangeReport:
    """What changed in ``scene_id``, pooled over the visit so far; ``frame_id``: the frame of the
    positions; ``stamps``: the keyframes whose views it rests on."""

    scene_id: str
    frame_id: str
    stamp: float
    changes: tuple[SceneChange, ...]
    stamps: tuple[float, ...] = ()

    def of(self, kind: str) -> list[SceneChange]:
        return [c for c in self.changes if c.kind == kind]


@dataclass
class _Evidence:
    """Pooled over a visit of one scene, in the scene's frame."""

    hit: dict[int, int] = field(default_factory=dict)  # instance -> rays its box stopped
    through: dict[int, int] = field(default_factory=dict)  # ... rays that passed through it
    moved: dict[int, np.ndarray] = field(default_factory=dict)  # instance -> where seen
    added: list[tuple[np.ndarray, str, int]] = field(default_factory=list)  # (where, label, seen)
    stamps: set[float] = field(default_factory=set)


class ChangeDetector:
    """Compares relocalisations in a room with its stored instances; pools them per visit."""

    def __init__(self, mapdb: MapBase, cfg: ChangeCfg | None = None, map_frame: str = "map"):
        self.cfg = cfg or ChangeCfg()
        self.mapdb = mapdb
        self.map_frame = map_frame
        self._trees: dict[str, cKDTree | None] = {}
        self.reset()

    def reset(self) -> None:
        """Forget the visit (a new room, ``~/reset``, a bag loop)."""
        self._scene_id, self._evidence = "", _Evidence()
        self._pending: list[tuple[np.ndarray, WindowChanges]] = []  # unconfirmed poses'

    def replace_map(self, mapdb: MapBase) -> None:
        self.mapdb, self._trees = mapdb, {}
        self.reset()

    def observe(self, found: Relocalization, confirmed: bool) -> ChangeReport | None:
        """Add one relocalisation's evidence; the visit's report, None without a pose or
        object embeddings (nothing to compare) or while the pose is not ``confirmed``.

        An unconfirmed pose's evidence is kept aside and pooled once a confirmed pose in the
        same scene agrees with it (the first estimates in a room are rarely confirmed, and a
        visit lasts only a few relocalisations)."""
        if not isinstance(found.pose, PoseEstimate) or found.object_vectors is None:
            return None
        ids, stored = self.mapdb.instance_embeddings(found.scene_id, mod.POINT_CLOUD)
        if not ids:
            return None
        instances = {inst["id"]: inst for inst in self.mapdb.instances(found.scene_id)}
        if found.scene_id != self._scene_id:
            self.reset()
            self._scene_id = found.scene_id
        window = compare(instances, ids, stored, found, self._tree(found.scene_id), self.cfg)
        pose = found.pose.map_from_query
        if not confirmed:
            self._pending = [*self._pending[-(PENDING - 1) :], (pose, window)]
            return None
        for earlier, evidence in self._pending:
            if _agree(earlier, pose, self.cfg):
                self._pool(evidence)
        self._pending = []
        self._pool(window)
        return self._report(found)

    def _tree(self, scene_id: str) -> cKDTree | None:
        if scene_id not in self._trees:
            stored = self.mapdb.point_cloud(scene_id)
            self._trees[scene_id] = None if stored is None else cKDTree(stored[0])
        return self._trees[scene_id]

    def _pool(self, window: WindowChanges) -> None:
        evidence = self._evidence
        for instance_id, (hit, through) in window.rays.items():
            evidence.hit[instance_id] = evidence.hit.get(instance_id, 0) + hit
            evidence.through[instance_id] = evidence.through.get(instance_id, 0) + through
        evidence.moved.update(window.moved)
        evidence.stamps.update(window.stamps)
        for where, label in window.added:
            near = [
                i
                for i, (seen, _, _) in enumerate(evidence.added)
                if np.linalg.norm(seen - where) < self.cfg.merge_m
            ]
            if near:
                _, old_label, count = evidence.added[near[0]]
                evidence.added[near[0]] = (where, old_label, count + 1)
            else:
                evidence.added.append((where, label, 1))
        # a new object that turned out to be a moved one is not also added
        evidence.added = [
            entry
            for entry in evidence.added
            if all(
                np.linalg.norm(entry[0] - p) >= self.cfg.merge_m for p in evidence.moved.values()
            )
        ]

    def _report(self, found: Relocalization) -> ChangeReport:
        record = self.mapdb.scene(found.scene_id)
        if record.frame_to_building is None:
            frame_id, to_map = record.scene_id, np.eye(4)
        else:
            frame_id = self.map_frame
            to_map = np.asarray(record.frame_to_building, np.float64).reshape(4, 4)

        def place(point: np.ndarray) -> np.ndarray:
            return to_map[:3, :3] @ point + to_map[:3, 3]

        evidence, cfg = self._evidence, self.cfg
        changes = []
        for inst in self.mapdb.instances(found.scene_id):
            instance_id, centroid = int(inst["id"]), np.asarray(inst["centroid"], np.float64)
            before = place(centroid)
            if instance_id in evidence.moved:
                after = place(evidence.moved[instance_id])
                changes.append(
                    SceneChange(
                        MOVED,
                        instance_id,
                        inst["label"],
                        before,
                        after,
                        float(np.linalg.norm(after - before)),
                    )
                )
                continue
            hit, through = evidence.hit.get(instance_id, 0), evidence.through.get(instance_id, 0)
            if hit + through < cfg.min_covered_pixels:
                continue  # not covered: unknown
            kind = REMOVED if hit < cfg.removed_below * (hit + through) else STATIC
            after = None if kind == REMOVED else before
            changes.append(SceneChange(kind, instance_id, inst["label"], before, after))
        for where, label, _ in evidence.added:
            changes.append(SceneChange(ADDED, NO_INSTANCE, label, None, place(where)))
        return ChangeReport(
            found.scene_id, frame_id, found.stamp, tuple(changes), tuple(sorted(evidence.stamps))
        )


@dataclass(frozen=True)
class WindowChanges:
    """One relocalisation's evidence, in the scene's frame."""

    rays: dict[int, tuple[int, int]]  # instance -> (rays its box stopped, rays through it)
    moved: dict[int, np.ndarray]  # instance -> where it was seen
    added: list[tuple[np.ndarray, str]]  # (where, label of the most similar stored instance)
    stamps: tuple[float, ...] = ()


def compare(
    instances: dict[int, dict],
    ids: Sequence[int],
    stored: np.ndarray,
    found: Relocalization,
    stored_cloud: cKDTree | None,
    cfg: ChangeCfg,
) -> WindowChanges:
    """The evidence of one relocalisation (``found``, with a pose) against a scene's instances
    (``ids`` rows of their embeddings ``stored``) and stored cloud."""
    scene_from_odom = found.pose.map_from_query  # type: ignore[union-attr]
    rays = {
        instance_id: box_rays(inst, scene_from_odom, found.views, cfg, stored_cloud)
        for instance_id, inst in instances.items()
        if inst.get("box_min") is not None and inst.get("box_max") is not None
    }
    novel = [
        index
        for index, obj in enumerate(found.objects)
        if stored_cloud is None
        or novel_share(obj.xyz, scene_from_odom, stored_cloud, cfg.novel_distance_m)
        >= cfg.novel_fraction
    ]
    moved: dict[int, np.ndarray] = {}
    added: list[tuple[np.ndarray, str]] = []
    if novel:
        vectors = _identity(np.asarray(found.object_vectors, np.float64)[novel], cfg)
        similarity = vectors @ _identity(np.asarray(stored, np.float64), cfg).T
        where = [_apply(scene_from_odom, found.objects[i].centroid) for i in novel]
        # candidates: stored instances not seen where the map has them: their box is empty or
        # not covered, or no object the map already had there stands in it
        known = [
            _apply(scene_from_odom, obj.centroid)
            for index, obj in enumerate(found.objects)
            if index not in novel
        ]
        absent = [
            column
            for column, instance_id in enumerate(ids)
            if instance_id in instances
            and (
                _present(rays.get(instance_id, (0, 0)), cfg) is not True
                or not any(_inside(instances[instance_id], p, cfg.box_margin_m) for p in known)
            )
        ]
        taken: set[int] = set()
        if absent:
            rows, columns = linear_sum_assignment(-similarity[:, absent])
            for row, column in zip(rows, columns, strict=True):
                instance_id = ids[absent[column]]
                centroid = np.asarray(instances[instance_id]["centroid"], np.float64)
                far = np.linalg.norm(where[row] - centroid) >= cfg.moved_threshold_m
                if similarity[row, absent[column]] >= cfg.match_threshold and far:
                    moved[instance_id] = where[row]
                    taken.add(row)
        for row in range(len(novel)):
            if row not in taken:
                best = ids[int(np.argmax(similarity[row]))]
                added.append((where[row], str(instances.get(best, {}).get("label", "object"))))
    return WindowChanges(rays, moved, added, tuple(view.stamp for view in found.views))


def _agree(first: np.ndarray, second: np.ndarray, cfg: ChangeCfg) -> bool:
    """Two poses of the odometry frame in a scene that are the same hypothesis."""
    moved = np.linalg.norm(first[:3, 3] - second[:3, 3])
    return (
        moved <= cfg.agree_m and rotation_angle_deg(first[:3, :3], second[:3, :3]) <= cfg.agree_deg
    )


def _inside(inst: dict, point: np.ndarray, margin: float) -> bool:
    low = np.asarray(inst.get("box_min", inst["centroid"]), np.float64) - margin
    high = np.asarray(inst.get("box_max", inst["centroid"]), np.float64) + margin
    return bool(np.all(point >= low) and np.all(point <= high))


def _present(rays: tuple[int, int], cfg: ChangeCfg) -> bool | None:
    """True where the box stops enough rays, False where it is covered and empty, None where
    it was not covered."""
    hit, through = rays
    if hit + through < cfg.min_covered_pixels:
        return None
    return hit >= cfg.removed_below * (hit + through)


def box_rays(
    inst: dict,
    scene_from_odom: np.ndarray,
    views: Sequence[CameraView],
    cfg: ChangeCfg,
    stored_cloud: cKDTree | None = None,
) -> tuple[int, int]:
    """(rays stopped inside the instance's box, rays that passed through it) over ``views``.

    A ray counts when it crosses the box shrunk by ``box_shrink_m`` (so a floor under the box or
    a wall behind it does not fill it); it is stopped inside when its depth ends before the
    shrunk box's far side on a surface of the ``stored_cloud`` (not on something new standing
    in the box: an object moved a little, or added where one was removed), and hidden (not
    counted) when it ends in front of the full box.
    """
    low = np.asarray(inst["box_min"], np.float64)
    high = np.asarray(inst["box_max"], np.float64)
    shrink = np.minimum(cfg.box_shrink_m, (high - low) / 4.0)
    inner = (low + shrink, high - shrink)
    hit = through = 0
    for view in views:
        scene_from_camera = scene_from_odom @ view.camera_to_odom
        pixels = _pixels_towards(inner, np.linalg.inv(scene_from_camera), view)
        if pixels is None:
            continue
        u, v = pixels
        intr = view.intrinsics
        directions = np.stack(
            [(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones(len(u))], axis=1
        )
        rotation, origin = scene_from_camera[:3, :3], scene_from_camera[:3, 3]
        rays = directions @ rotation.T  # scene frame; depth z is the ray parameter
        near_in, far_in = _slab(origin, rays, *inner)
        crosses = far_in > np.maximum(near_in, 0.0)
        if not crosses.any():
            continue
        near_full, _ = _slab(origin, rays[crosses], low, high)
        depth = view.depth[v[crosses], u[crosses]]
        seen = np.isfinite(depth) & (depth >= near_full - cfg.occlusion_margin_m)
        stopped = seen & (depth <= far_in[crosses])
        if stored_cloud is not None and stopped.any():
            # stopped by what the map has there, not by something new in the box
            ends = origin + rays[crosses][stopped] * depth[stopped, None]
            distance, _ = stored_cloud.query(ends, distance_upper_bound=cfg.novel_distance_m)
            stopped[np.flatnonzero(stopped)[~np.isfinite(distance)]] = False
        hit += int(stopped.sum())
        through += int((seen & ~stopped).sum())
    return hit, through


def _pixels_towards(
    box: tuple[np.ndarray, np.ndarray], camera_from_scene: np.ndarray, view: CameraView
) -> tuple[np.ndarray, np.ndarray] | None:
    """(u, v) of the pixels of ``view`` whose rays may cross ``box``: its projection's bounds
    (the whole image if the box reaches behind the camera); None if it is out of view."""
    low, high = box
    corners = np.array(
        [[x, y, z] for x in (low[0], high[0]) for y in (low[1], high[1]) for z in (low[2], high[2])]
    )
    camera = corners @ camera_from_scene[:3, :3].T + camera_from_scene[:3, 3]
    intr = view.intrinsics
    if np.all(camera[:, 2] <= 0.0):
        return None
    if np.any(camera[:, 2] <= 0.01):
        u0, u1, v0, v1 = 0, intr.width - 1, 0, intr.height - 1
    else:
        u = intr.fx * camera[:, 0] / camera[:, 2] + intr.cx
        v = intr.fy * camera[:, 1] / camera[:, 2] + intr.cy
        u0, u1 = max(int(np.floor(u.min())), 0), min(int(np.ceil(u.max())), intr.width - 1)
        v0, v1 = max(int(np.floor(v.min())), 0), min(int(np.ceil(v.max())), intr.height - 1)
        if u0 > u1 or v0 > v1:
            return None
    grid_v, grid_u = np.mgrid[v0 : v1 + 1, u0 : u1 + 1]
    return grid_u.reshape(-1), grid_v.reshape(-1)


def _slab(
    origin: np.ndarray, rays: np.ndarray, low: np.ndarray, high: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ray parameters where each ray enters and leaves the box (enter > leave: it misses)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        first = (low - origin) / rays
        second = (high - origin) / rays
    first = np.where(np.isnan(first), -np.inf, first)
    second = np.where(np.isnan(second), np.inf, second)
    return np.minimum(first, second).max(axis=1), np.maximum(first, second).min(axis=1)


def novel_share(
    xyz: np.ndarray, scene_from_odom: np.ndarray, stored_cloud: cKDTree, distance_m: float
) -> float:
    """Share of an object's points (odometry frame) farther than ``distance_m`` from the
    scene's stored cloud: 0 for what the map already had there, 1 for something new there."""
    if len(xyz) == 0:
        return 0.0
    points = np.asarray(xyz, np.float64) @ scene_from_odom[:3, :3].T + scene_from_odom[:3, 3]
    nearest, _ = stored_cloud.query(points, distance_upper_bound=distance_m)
    return float(np.mean(~np.isfinite(nearest)))


def _apply(transform: np.ndarray, point: np.ndarray) -> np.ndarray:
    return transform[:3, :3] @ np.asarray(point, np.float64) + transform[:3, 3]


def _identity(vectors: np.ndarray, cfg: ChangeCfg) -> np.ndarray:
    """What an object is, whatever its place: the token half of CrossOver's [context | token]
    descriptors (the context changes when furniture moves), as unit vectors."""
    if cfg.match_by_token and vectors.shape[1] % 2 == 0:
        vectors = vectors[:, vectors.shape[1] // 2 :]
    return normalise_rows(vectors)
