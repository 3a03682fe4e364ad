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
is confirmed only when its ``map_from_odom`` leads, seen at least twice. An estimate that does
not agree with the leading hypothesis is also fitted to rival scenes: the scene's look-alikes
(its nearest scenes in the map), the recogniser's runners-up, and the scenes where the pooled
hypotheses put the cloud. Every rival that fits the cloud about as well or better gets a vote
too: twins tie, so no pose goes out until a room without a twin breaks the tie, and a stranger
that fits nearly as well as the right room (a room of another building, say) never gathers
support unopposed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import islice

import numpy as np

from crossover_ros.config import setting, validate
from crossover_ros.mapdb.base import MapBase
from crossover_ros.mapdb.records import SceneCandidate, SceneRecord
from crossover_ros.model import modalities as mod
from crossover_ros.model.features import FeatureCfg
from crossover_ros.pipeline.fusion import CameraView
from crossover_ros.pipeline.keyframes import rotation_angle_deg
from crossover_ros.pipeline.objects import (
    QueryObject,
    SegmentationCfg,
    object_point_sets,
    segment_objects,
)
from crossover_ros.pose.estimate import NoPose, PoseCfg, PoseEstimate, PoseEstimator, SceneCache
from crossover_ros.pose.registration import PreparedCloud


@dataclass(frozen=True)
class ConsensusCfg:
    translation_m: float = 0.3  # two map_from_odom estimates this close are the same hypothesis
    rotation_deg: float = 5.0
    min_support: int = 2  # estimates a hypothesis needs before its poses are published
    memory_s: float = 120.0  # support older than this is forgotten (odometry drifts)


class PoseConsensus:
    """Hypotheses of where the odometry frame lies in a map frame (a building's, or a scene's
    own), each with the stamps of the estimates that support it. Hypotheses in different map
    frames compete too: the robot is in one building."""

    def __init__(self, cfg: ConsensusCfg | None = None) -> None:
        self.cfg = cfg or ConsensusCfg()
        self._hypotheses: list[tuple[str, np.ndarray, list[float]]] = []

    def reset(self) -> None:
        self._hypotheses = []

    def hypotheses(self, stamp: float) -> list[tuple[str, np.ndarray, int]]:
        """(map frame, map_from_odom, support) of the hypotheses remembered at ``stamp``, best
        supported first."""
        self._forget(stamp)
        ranked = sorted(self._hypotheses, key=lambda h: -len(h[2]))
        return [(frame, transform, len(stamps)) for frame, transform, stamps in ranked]

    def vote(
        self, estimates: Sequence[tuple[str, np.ndarray]], stamp: float
    ) -> list[tuple[bool, int]]:
        """Add one relocalisation's ``(map frame, map_from_odom)`` estimates (several when
        look-alike scenes fit alike); per estimate (confirmed, its hypothesis' support).
        Confirmed: the hypothesis has ``min_support`` and more than any other (a tie confirms
        neither)."""
        self._forget(stamp)
        indices = []
        for frame, transform in estimates:
            index = self._find(frame, transform)
            if index is None:
                self._hypotheses.append((frame, transform, [stamp]))
                index = len(self._hypotheses) - 1
            elif index not in indices:  # one vote per hypothesis and relocalisation
                _, _, stamps = self._hypotheses[index]
                self._hypotheses[index] = (frame, transform, [*stamps, stamp])
            indices.append(index)
        return [(self._leads(index), len(self._hypotheses[index][2])) for index in indices]

    def leads(self, frame: str, map_from_odom: np.ndarray) -> bool:
        """Whether this estimate agrees with the confirmed hypothesis."""
        index = self._find(frame, map_from_odom)
        return index is not None and self._leads(index)

    def _forget(self, stamp: float) -> None:
        """Drop support older than ``memory_s`` (odometry drifts) or from the future (a loop)."""
        kept = []
        for frame, transform, stamps in self._hypotheses:
            recent = [t for t in stamps if stamp - self.cfg.memory_s <= t <= stamp]
            if recent:
                kept.append((frame, transform, recent))
        self._hypotheses = kept

    def _find(self, frame: str, map_from_odom: np.ndarray) -> int | None:
        for index, (known_frame, transform, _) in enumerate(self._hypotheses):
            if known_frame != frame:
                continue
            moved = np.linalg.norm(transform[:3, 3] - map_from_odom[:3, 3])
            turned = rotation_angle_deg(transform[:3, :3], map_from_odom[:3, :3])
            if moved <= self.cfg.translation_m and turned <= self.cfg.rotation_deg:
                return index
        return None

    def _leads(self, index: int) -> bool:
        support = len(self._hypotheses[index][2])
        others = (len(s) for i, (_, _, s) in enumerate(self._hypotheses) if i != index)
        return support >= self.cfg.min_support and support > max(others, default=0)


@dataclass(frozen=True)
class RelocalizerCfg:
    enabled: bool = setting(
        True,
        "After a confident answer, match objects of the fused cloud to the room's instances and"
        " estimate the pose in the map (needs odometry and open3d).",
    )
    # 1 s rather than 2 once scenes were shared and prepared at configure (a relocalisation
    # 167 ms p50): validation and bench A published 40-60 % more poses, none wrong
    interval_s: float = setting(1.0, "At most one relocalisation this often.", 0.0, 3600.0)
    map_frame: str = setting(
        "map",
        "Frame of the poses found in scenes stored with their place in the building (the"
        " building frame; other scenes' poses are in a frame named after the scene).",
    )
    min_confidence: float = setting(
        0.5,
        "Answers below this confidence are not relocalised in (look-alike rooms: a pose in the"
        " wrong twin is worse than none).",
        0.0,
        1.0,
    )
    min_keyframes: int = 3  # fused since the answer last changed: one view sees too little
    min_points: int = 500  # a fused cloud with fewer points sees too little of the room
    instance_threshold: float = 0.5  # cosine below which an object stays unmatched
    box_margin_m: float = 0.15  # an object's centroid this far outside a stored box still counts
    max_rivals: int = setting(
        4,
        "A pose that disagrees with the established one is also fitted to this many look-alike"
        " scenes (nearest in the map); if one fits as well, no pose until another room decides.",
        0,
        10,
    )
    max_candidates: int = setting(
        3, "... and to this many of the recogniser's runners-up (other rooms).", 0, 10
    )
    max_predictions: int = setting(
        3,
        "... and to the room where each of this many pooled hypotheses (best supported) puts"
        " the robot, so a stranger that fits nearly as well never gathers support unopposed.",
        0,
        10,
    )
    scene_margin_m: float = 0.5  # a cloud centred this far outside a scene's bounds is not in it
    # a rival fits alike when it leaves at most this many times the best fit's unexplained share
    # of the cloud unexplained (twins differ by a few objects: a few percent of the points)
    rival_ratio: float = 2.0
    consensus: ConsensusCfg = field(default_factory=lambda: ConsensusCfg())
    segmentation: SegmentationCfg = field(default_factory=SegmentationCfg)
    pose: PoseCfg = field(default_factory=PoseCfg)

    def __post_init__(self) -> None:
        validate(self)


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
    rivals: tuple[str, ...] = ()  # other scenes the cloud fits as well or better (twins)
    objects: tuple[QueryObject, ...] = ()  # segmented from the fused cloud (odometry frame)
    object_vectors: np.ndarray | None = None  # (len(objects), D) their embeddings
    views: tuple[CameraView, ...] = ()  # the fused keyframes' cameras: what the cloud covers

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

    def __init__(
        self,
        mapdb: MapBase,
        encoder: object = None,
        cfg: RelocalizerCfg | None = None,
        scenes: SceneCache | None = None,
    ):
        self.cfg = cfg or RelocalizerCfg()
        self.mapdb = mapdb
        self.encoder = encoder
        self.estimator = PoseEstimator(self.cfg.pose, scenes)  # scenes: shared with verifying
        self.consensus = PoseConsensus(self.cfg.consensus)
        self._rivals: dict[str, list[str]] = {}  # scene -> its look-alikes in the map
        self._frames: dict[str, list[SceneRecord]] | None = None  # map frame -> its rooms
        self._bounds: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}  # scene -> cloud's
        self._last_stamp: float | None = None

    def reset(self) -> None:
        """Forget the rate limit and the pooled poses (a bag loop, ``~/reset``)."""
        self._last_stamp = None
        self.consensus.reset()

    def replace_map(self, mapdb: MapBase) -> None:
        """Relocalise in ``mapdb`` from now on: scenes prepared from the old map are forgotten."""
        self.mapdb = mapdb  # the estimator's scenes are dropped when it first asks for one
        self._rivals, self._frames, self._bounds = {}, None, {}
        self.reset()

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
        candidates: Sequence[str] = (),
        views: Sequence[CameraView] = (),
    ) -> Relocalization:
        """Correspondences and pose of the fused ``cloud`` (odometry frame) in ``scene_id``;
        ``candidates``: the recogniser's ranking of this window (its runners-up are rivals);
        ``views``: the cameras that saw the cloud, kept for the change detector."""
        started = time.perf_counter()
        self._last_stamp = stamp
        xyz, rgb = cloud
        record = self.mapdb.scene(scene_id)
        correspondences: list[Correspondence] = []
        num_objects = 0
        objects: list[QueryObject] = []
        vectors = None
        if len(xyz) < self.cfg.min_points:
            pose: PoseEstimate | NoPose = NoPose(f"fused cloud has {len(xyz)} points")
        elif (target := self._prepared(scene_id)) is None:
            pose = NoPose(f"scene {scene_id} stores no point cloud")
        else:
            instances = self._scene_instances(scene_id)
            if instances is not None:
                objects = segment_objects(xyz, rgb, self.cfg.segmentation)
                num_objects = len(objects)
                if objects:
                    points = object_point_sets(
                        objects, FeatureCfg().object_points, np.random.default_rng(0)
                    )
                    centroids = np.stack([obj.centroid for obj in objects])
                    vectors = self.encoder.embed_objects(points, centroids)
                    correspondences = self._match(scene_id, objects, vectors, instances)
            pairs = [(c.query_centroid, c.map_centroid) for c in correspondences]
            pose = self.estimator.estimate(xyz, rgb, target, pairs or None)
            if isinstance(pose, PoseEstimate) and objects:
                correspondences = self._associate(objects, vectors, pose, instances)
        confirmed, support, rivals = False, 0, ()
        if isinstance(pose, PoseEstimate):
            own = self._map_from_odom(record, pose)
            fits = {scene_id: (pose.fitness, own)}
            if not self.consensus.leads(*own):
                fits.update(self._rival_fits(xyz, rgb, record, candidates, stamp))
            # a perfect fit (misfit 0) must not make every twin's last percent decisive
            best_misfit = max(1.0 - max(fit for fit, _ in fits.values()), 0.01)
            alike = {
                scene: estimate
                for scene, (fit, estimate) in fits.items()
                if 1.0 - fit <= self.cfg.rival_ratio * best_misfit
            }
            rivals = tuple(scene for scene in alike if scene != scene_id)
            votes = self.consensus.vote(list(alike.values()), stamp)
            if scene_id in alike:
                confirmed, support = votes[list(alike).index(scene_id)]
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
            rivals=rivals,
            objects=tuple(objects),
            object_vectors=vectors,
            views=tuple(views),
        )

    def _prepared(self, scene_id: str) -> PreparedCloud | None:
        """The scene's stored cloud, prepared for fitting (decoded only when not yet prepared)."""
        return self.estimator.scene(scene_id, partial(self.mapdb.point_cloud, scene_id), self.mapdb)

    @staticmethod
    def _map_from_odom(record: SceneRecord, pose: PoseEstimate) -> tuple[str, np.ndarray]:
        """(map frame, map_from_odom) of a pose in the scene."""
        return _map_frame(record), _scene_to_map(record) @ pose.map_from_query

    def _rival_fits(
        self,
        xyz: np.ndarray,
        rgb: np.ndarray,
        record: SceneRecord,
        candidates: Sequence[str],
        stamp: float,
    ) -> dict[str, tuple[float, tuple[str, np.ndarray]]]:
        """Fitness and map_from_odom of the cloud in the rival scenes that it fits (by geometry
        alone: their objects are not matched)."""
        out = {}
        for rival, guesses in self._rivals_of(xyz, record, candidates, stamp).items():
            target = self._prepared(rival)
            if target is None:
                continue
            pose = self.estimator.estimate(xyz, rgb, target, guesses=guesses)
            if isinstance(pose, PoseEstimate):
                out[rival] = (pose.fitness, self._map_from_odom(self.mapdb.scene(rival), pose))
        return out

    def _rivals_of(
        self, xyz: np.ndarray, record: SceneRecord, candidates: Sequence[str], stamp: float
    ) -> dict[str, list[np.ndarray]]:
        """Scenes of other rooms to fit the cloud to, each with guessed poses: the scene's
        look-alikes in the map (twins), the recogniser's runners-up (rooms it hesitates
        over), and where the best-supported hypotheses put the cloud (with their pose as
        the guess; a hypothesis from an earlier room predicts this one)."""
        rivals: dict[str, list[np.ndarray]] = {s: [] for s in self._look_alikes(record.scene_id)}
        others = (c for c in map(self.mapdb.scene, candidates) if _room(c) != _room(record))
        for other in islice(others, self.cfg.max_candidates):  # reads no more records than used
            rivals.setdefault(other.scene_id, [])
        centre = xyz.mean(axis=0)
        for frame, map_from_odom, _ in self.consensus.hypotheses(stamp)[: self.cfg.max_predictions]:
            for scene in self._scenes_in(frame):
                bounds = self._cloud_bounds(scene.scene_id)
                if _room(scene) == _room(record) or bounds is None:
                    continue
                low, high = bounds
                scene_from_odom = np.linalg.inv(_scene_to_map(scene)) @ map_from_odom
                inside = scene_from_odom[:3, :3] @ centre + scene_from_odom[:3, 3]
                margin = self.cfg.scene_margin_m
                if np.all(inside >= low - margin) and np.all(inside <= high + margin):
                    rivals.setdefault(scene.scene_id, []).append(scene_from_odom)
        return rivals

    def _scenes_in(self, frame: str) -> list[SceneRecord]:
        """The scenes in a map frame, one per room, its newest scan (its rescans would predict
        alike)."""
        if self._frames is None:
            self._frames, seen, rooms = {}, set(), self.mapdb.rooms()
            for scene in self.mapdb.scenes():
                if _room(scene) not in seen:
                    seen.add(_room(scene))
                    newest = rooms.scans.get(_room(scene), [scene])[0]
                    self._frames.setdefault(_map_frame(newest), []).append(newest)
        return self._frames.get(frame, [])

    def _cloud_bounds(self, scene_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Lower and upper corner of the scene's stored cloud (None without one), read once."""
        if scene_id not in self._bounds:
            stored = self.mapdb.point_cloud(scene_id)
            self._bounds[scene_id] = (
                None if stored is None else (stored[0].min(axis=0), stored[0].max(axis=0))
            )
        return self._bounds[scene_id]

    def _look_alikes(self, scene_id: str) -> list[str]:
        """The ``max_rivals`` scenes of other rooms nearest to ``scene_id`` in the map's own
        embedding space (its 'point_cloud' rows if stored): where a twin would be. The map
        ranks them, not the recogniser, whose cross-modal ranking often puts a twin far down."""
        if scene_id not in self._rivals:
            record = self.mapdb.scene(scene_id)
            stored = self.mapdb.scene_embeddings(scene_id)
            modality = mod.POINT_CLOUD if mod.POINT_CLOUD in stored else next(iter(stored), None)
            found = []
            if modality is not None and self.cfg.max_rivals > 0:
                ranked = self.mapdb.query(  # other rooms by their newest scans
                    stored[modality], modality, 4 * self.cfg.max_rivals + 1, by_room=True
                )
                found = [c.scene_id for c in ranked if _room(c) != _room(record)][
                    : self.cfg.max_rivals
                ]
            self._rivals[scene_id] = found
        return self._rivals[scene_id]

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


def _map_frame(record: SceneRecord) -> str:
    """The frame a scene's poses pool in: its building's, or its own when it has no pose in a
    building (then they pool with no other scene's)."""
    if record.frame_to_building is None:
        return f"scene {record.scene_id}"
    return f"building {record.building_id}"


def _scene_to_map(record: SceneRecord) -> np.ndarray:
    if record.frame_to_building is None:
        return np.eye(4)
    return np.asarray(record.frame_to_building, np.float64).reshape(4, 4)


def _room(place: SceneRecord | SceneCandidate) -> tuple[str, str]:
    return place.building_id, place.room_id


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
