"""From a recognised room to instance correspondences and a 6-DoF pose in that room's frame.

After the recogniser has settled on a scene, the fused keyframe cloud (odometry frame) is cut
into objects (``pipeline/objects.py``); with a model that embeds objects (CrossOver) they are
matched to the scene's stored instances (cosine + Hungarian, unmatched allowed), and the matched
centroids seed the pose search (``pose/``), which then registers the cloud to the scene's stored
cloud. Partial views of objects make many embedding matches wrong, so once a pose holds, the
published correspondences are re-derived from geometry: an object pairs with the stored
instance its centroid falls into (the embedding match if it agrees), scored by the cosine of
their embeddings. Without object embeddings (the global-descriptor baseline) the pose comes
from the global search alone. It is work of tens to hundreds of milliseconds, so it runs at
most every ``interval_s`` and only on a confident answer.

Geometry cannot tell look-alike rooms apart: in the wrong twin the pose fits perfectly, in the
wrong place. Odometry can: the odometry frame's pose in the map (``map_from_odom``) is the same
whatever room the robot stands in, so estimates are pooled (:class:`PoseConsensus`) and a pose
is confirmed only when it agrees with the best-supported ``map_from_odom``, seen at least twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from crossover_ros.mapdb.base import MapBase
from crossover_ros.model import modalities as mod
from crossover_ros.pipeline.keyframes import rotation_angle_deg
from crossover_ros.pipeline.objects import QueryObject, SegmentationCfg, segment_objects
from crossover_ros.pose.estimate import NoPose, PoseCfg, PoseEstimate, PoseEstimator


@dataclass(frozen=True)
class ConsensusCfg:
    translation_m: float = 0.3  # two map_from_odom estimates this close are the same hypothesis
    rotation_deg: float = 5.0
    min_support: int = 2  # estimates a hypothesis needs before its poses are published
    memory_s: float = 120.0  # support older than this is forgotten (odometry drifts)


class PoseConsensus:
    """Hypotheses of ``map_from_odom`` with the stamps of the estimates that support them."""

    def __init__(self, cfg: ConsensusCfg | None = None) -> None:
        self.cfg = cfg or ConsensusCfg()
        self._hypotheses: list[tuple[np.ndarray, list[float]]] = []

    def reset(self) -> None:
        self._hypotheses = []

    def vote(self, map_from_odom: np.ndarray, stamp: float) -> tuple[bool, int]:
        """Add one estimate; (confirmed, its hypothesis' support). Confirmed: the hypothesis
        has ``min_support`` and more than any other (a tie confirms neither)."""
        cfg = self.cfg
        kept = []
        for transform, stamps in self._hypotheses:
            recent = [t for t in stamps if stamp - cfg.memory_s <= t <= stamp]
            if recent:
                kept.append((transform, recent))
        self._hypotheses = kept
        for index, (transform, stamps) in enumerate(self._hypotheses):
            moved = np.linalg.norm(transform[:3, 3] - map_from_odom[:3, 3])
            turned = rotation_angle_deg(transform[:3, :3], map_from_odom[:3, :3])
            if moved <= cfg.translation_m and turned <= cfg.rotation_deg:
                self._hypotheses[index] = (map_from_odom, [*stamps, stamp])
                break
        else:
            self._hypotheses.append((map_from_odom, [stamp]))
            index = len(self._hypotheses) - 1
        support = len(self._hypotheses[index][1])
        best_other = max(
            (len(s) for i, (_, s) in enumerate(self._hypotheses) if i != index), default=0
        )
        return support >= cfg.min_support and support > best_other, support


@dataclass(frozen=True)
class RelocalizerCfg:
    interval_s: float = 2.0  # at most one relocalisation per this much sensor time
    min_confidence: float = 0.0  # the recogniser's confidence needed to try
    min_keyframes: int = 3  # fused since the answer last changed: one view sees too little
    min_points: int = 500  # a fused cloud with fewer points sees too little of the room
    instance_threshold: float = 0.5  # cosine below which an object stays unmatched
    box_margin_m: float = 0.15  # an object's centroid this far outside a stored box still counts
    consensus: ConsensusCfg = field(default_factory=lambda: ConsensusCfg())
    segmentation: SegmentationCfg = field(default_factory=SegmentationCfg)
    pose: PoseCfg = field(default_factory=PoseCfg)


@dataclass(frozen=True)
class Correspondence:
    """A segmented query object paired with a stored instance of the scene."""

    query_id: int
    map_instance_id: int
    label: str
    score: float
    query_centroid: np.ndarray  # odometry frame, metres
    map_centroid: np.ndarray  # scene frame, metres
    map_box_min: np.ndarray | None = None
    map_box_max: np.ndarray | None = None


@dataclass(frozen=True)
class Relocalization:
    """What one relocalisation found; ``pose`` is a PoseEstimate or a reasoned NoPose."""

    stamp: float
    scene_id: str
    scene_frame: str
    correspondences: list[Correspondence]
    pose: PoseEstimate | NoPose
    camera_to_odom: np.ndarray
    num_objects: int
    compute_time_s: float
    confirmed: bool = False  # the pose agrees with the best-supported map_from_odom
    support: int = 0  # estimates behind that hypothesis, this one included

    @property
    def camera_in_scene(self) -> np.ndarray | None:
        """4x4 camera pose in the scene's frame, when a pose was found."""
        if isinstance(self.pose, PoseEstimate):
            return self.pose.map_from_query @ self.camera_to_odom
        return None


class Relocalizer:
    """Keeps one pose estimator (scene clouds prepared once each) for a map and an encoder.

    ``encoder`` is optional; if it has ``embed_objects`` and the scene stores 'point_cloud'
    instance embeddings, objects are matched and correspondences reported.
    """

    def __init__(self, mapdb: MapBase, encoder: object = None, cfg: RelocalizerCfg | None = None):
        self.cfg = cfg or RelocalizerCfg()
        self.mapdb = mapdb
        self.encoder = encoder
        self.estimator = PoseEstimator(self.cfg.pose)
        # one per map frame: a building's, or a scene's own when it has no pose in a building
        self._consensus: dict[str, PoseConsensus] = {}
        self._last_stamp: float | None = None

    def reset(self) -> None:
        """Forget the rate limit and the pooled poses (a bag loop, ``~/reset``)."""
        self._last_stamp = None
        self._consensus.clear()

    def due(self, stamp: float, scene_id: str, confidence: float) -> bool:
        """Whether to relocalise now: a confident answer, and the interval has passed."""
        if not scene_id or confidence < self.cfg.min_confidence:
            return False
        if self._last_stamp is not None and stamp < self._last_stamp:
            self._last_stamp = None  # time went back (a bag loop)
        return self._last_stamp is None or stamp - self._last_stamp >= self.cfg.interval_s

    def relocalize(
        self,
        stamp: float,
        scene_id: str,
        cloud: tuple[np.ndarray, np.ndarray],
        camera_to_odom: np.ndarray,
    ) -> Relocalization:
        """Correspondences and pose of the fused ``cloud`` (odometry frame) in ``scene_id``."""
        started = time.perf_counter()
        self._last_stamp = stamp
        xyz, rgb = cloud
        record = self.mapdb.scene(scene_id)
        stored = self.mapdb.point_cloud(scene_id)
        correspondences: list[Correspondence] = []
        num_objects = 0
        if len(xyz) < self.cfg.min_points:
            pose: PoseEstimate | NoPose = NoPose(f"fused cloud has {len(xyz)} points")
        elif stored is None:
            pose = NoPose(f"scene {scene_id} stores no point cloud")
        else:
            objects, vectors = [], None
            instances = self._scene_instances(scene_id)
            if instances is not None:
                objects = segment_objects(xyz, rgb, self.cfg.segmentation)
                num_objects = len(objects)
                if objects:
                    vectors = self.encoder.embed_objects(objects)
                    correspondences = self._match(scene_id, objects, vectors, instances)
            pairs = [(c.query_centroid, c.map_centroid) for c in correspondences]
            map_xyz, map_rgb = stored
            pose = self.estimator.estimate(
                xyz, rgb, map_xyz, map_rgb.astype(np.float32) / 255.0, pairs or None, scene_id
            )
            if isinstance(pose, PoseEstimate) and objects:
                correspondences = self._associate(objects, vectors, pose, instances)
        confirmed, support = False, 0
        if isinstance(pose, PoseEstimate):
            if record.frame_to_building is not None:
                frame = f"building {record.building_id}"
                scene_to_map = np.asarray(record.frame_to_building, np.float64).reshape(4, 4)
            else:  # a scene in its own frame: its poses pool with no other scene's
                frame, scene_to_map = f"scene {scene_id}", np.eye(4)
            consensus = self._consensus.setdefault(frame, PoseConsensus(self.cfg.consensus))
            confirmed, support = consensus.vote(scene_to_map @ pose.map_from_query, stamp)
        return Relocalization(
            stamp=stamp,
            scene_id=scene_id,
            scene_frame=record.frame,
            correspondences=correspondences,
            pose=pose,
            camera_to_odom=np.asarray(camera_to_odom, np.float64),
            num_objects=num_objects,
            compute_time_s=time.perf_counter() - started,
            confirmed=confirmed,
            support=support,
        )

    def _scene_instances(self, scene_id: str) -> _SceneInstances | None:
        """The scene's instances and their 'point_cloud' embeddings, read once per
        relocalisation; None unless the model embeds objects and the scene stores them."""
        if not hasattr(self.encoder, "embed_objects"):
            return None
        ids, stored = self.mapdb.instance_embeddings(scene_id, mod.POINT_CLOUD)
        if not ids:
            return None
        by_id = {inst["id"]: inst for inst in self.mapdb.instances(scene_id)}
        return _SceneInstances(by_id, ids, stored)

    def _match(
        self,
        scene_id: str,
        objects: list[QueryObject],
        vectors: np.ndarray,
        instances: _SceneInstances,
    ) -> list[Correspondence]:
        """Pairs by embedding alone: cosine + Hungarian with a threshold."""
        matching = self.mapdb.match_instances(
            scene_id, vectors, mod.POINT_CLOUD, self.cfg.instance_threshold
        )
        return [
            _pair(match.query_index, objects[match.query_index],
                  instances.by_id[match.instance_id], match.score)
            for match in matching.matches
        ]  # fmt: skip

    def _associate(
        self,
        objects: list[QueryObject],
        vectors: np.ndarray,
        pose: PoseEstimate,
        scene: _SceneInstances,
    ) -> list[Correspondence]:
        """Pairs by geometry under ``pose``: each object with the stored instance its centroid
        falls into (the smallest box, if several), one object per instance, best cosine first."""
        instances, ids, stored = scene.by_id, scene.ids, scene.stored
        row_of = {instance_id: row for row, instance_id in enumerate(ids)}
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        similarity = (vectors / np.maximum(norms, 1e-12)) @ stored.T
        candidates = []
        for index, obj in enumerate(objects):
            centre = pose.map_from_query[:3, :3] @ obj.centroid + pose.map_from_query[:3, 3]
            inside = [
                inst
                for inst in instances.values()
                if inst["id"] in row_of and _contains(inst, centre, self.cfg.box_margin_m)
            ]
            if not inside:
                continue
            inst = min(inside, key=_box_volume)
            score = float(similarity[index, row_of[inst["id"]]])
            candidates.append((score, index, inst))
        out, taken = [], set()
        for score, index, inst in sorted(candidates, key=lambda c: -c[0]):
            if inst["id"] not in taken:
                taken.add(inst["id"])
                out.append(_pair(index, objects[index], inst, score))
        return sorted(out, key=lambda c: c.query_id)


@dataclass(frozen=True)
class _SceneInstances:
    by_id: dict[int, dict]  # id, label, centroid, box of each stored instance
    ids: list[int]  # rows of ``stored``
    stored: np.ndarray  # (K, D) 'point_cloud' embeddings


def _pair(index: int, obj: QueryObject, inst: dict, score: float) -> Correspondence:
    box_min, box_max = inst.get("box_min"), inst.get("box_max")
    return Correspondence(
        query_id=index,
        map_instance_id=int(inst["id"]),
        label=inst["label"],
        score=float(score),
        query_centroid=obj.centroid.astype(np.float64),
        map_centroid=np.asarray(inst["centroid"], np.float64),
        map_box_min=None if box_min is None else np.asarray(box_min, np.float64),
        map_box_max=None if box_max is None else np.asarray(box_max, np.float64),
    )


def _contains(inst: dict, point: np.ndarray, margin: float) -> bool:
    """Inside the instance's box grown by ``margin``; without a box, within ``margin`` of the
    centroid."""
    if inst.get("box_min") is None or inst.get("box_max") is None:
        return bool(np.linalg.norm(point - np.asarray(inst["centroid"])) <= margin)
    low = np.asarray(inst["box_min"]) - margin
    high = np.asarray(inst["box_max"]) + margin
    return bool(np.all(point >= low) and np.all(point <= high))


def _box_volume(inst: dict) -> float:
    if inst.get("box_min") is None or inst.get("box_max") is None:
        return 0.0
    return float(np.prod(np.asarray(inst["box_max"]) - np.asarray(inst["box_min"])))
