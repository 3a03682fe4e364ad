"""Rosbag replay evaluation: the numbers to check before a robot relies on the recogniser.

A query bag (rosbag2, MCAP or sqlite3, read with ``rosbags``) is replayed through the recogniser
and what it answers is scored against the bag's ground truth:

- offline (:func:`evaluate_offline`): the messages go straight into the node's own recognition
  pipeline (``pipeline.runner``, built from the same configuration tree), in the reading thread,
  as fast as possible and deterministically;
- live (``crossover_ros/ros/live_eval.py``): the bag is published on ROS 2 topics to a running
  ``scene_recognizer`` (in this process or another) and its SceneMatch messages are scored,
  so the real node and the DDS path are measured.

Both give a :class:`RunRecord` (the matches, stage timings, frame counters, what the bag
reader found); :func:`compute_metrics` turns the records of one model into a :class:`Metrics`
row: scene recall@K per query window, time and distance to the first correct answer per
visit, the rate of confident wrong answers, instance correspondence precision/recall and pose
error where the pipeline publishes them, latency percentiles per stage, peak memory, dropped
frames. Nothing here imports ROS.
"""

from __future__ import annotations

import json
import math
import resource
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from crossover_ros.bags.reader import (
    GROUND_TRUTH_FILE,
    BagReadStatus,
    BagTopics,
    RawMessage,
    deserialize,
    iter_raw_messages,
)
from crossover_ros.errors import BagError, CrossoverError
from crossover_ros.eval.metrics import Calibration, calibration
from crossover_ros.eval.visits import ObservedMatch, VisitResult, summarize_visits
from crossover_ros.mapdb.base import MapBase
from crossover_ros.model import modalities as mod
from crossover_ros.model.registry import RecognitionEncoder
from crossover_ros.pipeline.config import PipelineCfg
from crossover_ros.pipeline.decode import odometry_to_pose, pose_stamped_to_matrix
from crossover_ros.pipeline.events import Event, MatchEvent, RelocalizationEvent, WarningEvent
from crossover_ros.pipeline.keyframes import rotation_angle_deg
from crossover_ros.pipeline.runner import open_recognition

COLOR, DEPTH, CAMERA_INFO, ODOMETRY, GROUND_TRUTH, GROUND_TRUTH_POSE = (
    "color",
    "depth",
    "camera_info",
    "odometry",
    "ground_truth",
    "ground_truth_pose",
)
EXPECTED_TYPES = {
    COLOR: "sensor_msgs/msg/Image",
    DEPTH: "sensor_msgs/msg/Image",
    CAMERA_INFO: "sensor_msgs/msg/CameraInfo",
    ODOMETRY: "nav_msgs/msg/Odometry",
    GROUND_TRUTH: "std_msgs/msg/String",
    GROUND_TRUTH_POSE: "geometry_msgs/msg/PoseStamped",
}
# roles a bag may lack without a problem: older bags have no ground-truth pose topic (their
# odometry is in the map frame and stands in for it, with a note in the report)
OPTIONAL_ROLES = (GROUND_TRUTH_POSE,)
SHORT = {
    mod.RGB: "I",
    mod.POINT_CLOUD: "P",
    mod.REFERRAL: "R",
    mod.FLOORPLAN: "F",
    mod.MESH: "M",
    mod.SCENE: "S",
}
STAGES = (
    "deserialize",  # bag CDR bytes -> message object (offline only: DDS does this live)
    "stream",  # decode, colour/depth pairing, checks, keyframe decision
    "frame_features",  # the image backbone on the keyframe
    "query_encoder",  # window of frame features -> query vectors
    "map_search",  # top-k against the map database
    "object_ranking",  # the best candidates re-scored by the objects in the window's frames
    "verification",  # the keyframe fused, the best candidates re-ranked by the window's depth
    "relocalization",  # objects, instance matching and pose in the answered room, when due
    "end_to_end",  # offline: message read -> match; live: frame published -> match received
    "per_frame",  # a frame that did not become a keyframe, end to end
)
TRAIN_INSTANCE_BASELINE = (
    "not available: train with `crossover_ros train --instance-baseline --buildings ..."
    " --cache ... --out work_dirs/runs/instance_baseline`"
)


def pair_name(modality: str, map_modality: str) -> str:
    """ "I->P" for rgb frames ranked against stored point clouds, as the paper writes pairs."""
    return f"{SHORT.get(modality, modality)}->{SHORT.get(map_modality, map_modality)}"


@dataclass(frozen=True)
class BagEvalCfg:
    """Topics, ground truth and thresholds of an evaluation, and the pipeline it runs: the node's
    own configuration tree (its defaults are the node's)."""

    topics: BagTopics = field(default_factory=BagTopics)
    ground_truth: Path | None = None  # sidecar JSON; default: ground_truth.json inside the bag
    ks: tuple[int, ...] = (1, 5, 10)
    confident: float = 0.5  # a wrong answer at or above this confidence is a confident one
    pipeline: PipelineCfg = field(default_factory=PipelineCfg)
    box_margin_m: float = 0.15  # a matched object counts as right this close to its true box
    wrong_pose_m: float = 0.5  # a pose this far off, or this many degrees, is wrong
    wrong_pose_deg: float = 10.0

    @property
    def top_k(self) -> int:
        """Candidates the recogniser must publish: enough for the largest K reported."""
        return max(max(self.ks), self.pipeline.recognizer.top_k)

    def pipeline_for(self, map_path: str, model: str, map_modality: str | None) -> PipelineCfg:
        """The pipeline of one row: this map and model, candidates enough for every K (the
        confidences do not depend on how many are published)."""
        cfg = self.pipeline
        return replace(
            cfg,
            map=replace(cfg.map, path=str(map_path)),
            model=replace(cfg.model, name=str(model), map_modality=map_modality or ""),
            recognizer=replace(cfg.recognizer, top_k=self.top_k),
        )

    def roles(self) -> dict[str, str]:
        t = self.topics
        return {
            t.color: COLOR,
            t.depth: DEPTH,
            t.camera_info: CAMERA_INFO,
            t.odometry: ODOMETRY,
            t.ground_truth: GROUND_TRUTH,
            t.ground_truth_pose: GROUND_TRUTH_POSE,
        }


# -- reading a bag ------------------------------------------------------------------------------


@dataclass
class BagContents:
    """What the reader found in one bag: topics, counts, and every problem, in words."""

    path: str
    storage: str = "?"
    topics: dict[str, str] = field(default_factory=dict)  # topic -> message type, as read
    counts: dict[str, int] = field(default_factory=dict)  # messages read per topic
    indexed: int | None = None  # messages the bag's index announces (None: index unreadable)
    duration_s: float = 0.0
    missing: dict[str, str] = field(default_factory=dict)  # role -> expected topic not in bag
    undecodable: dict[str, int] = field(default_factory=dict)  # topic -> messages not readable
    undecodable_reason: dict[str, str] = field(default_factory=dict)  # topic -> first error
    wrong_type: dict[str, str] = field(default_factory=dict)  # topic -> type found (skipped)
    rejected: dict[str, int] = field(default_factory=dict)  # pipeline rejection reason -> count
    rejected_example: dict[str, str] = field(default_factory=dict)  # reason -> first message
    read_error: str | None = None
    salvaged: bool = False
    expected_topics: dict[str, str] = field(default_factory=dict)  # role -> topic
    last_stamp_ns: int | None = None  # newest message read
    last_frame_ns: int | None = None  # newest colour image read

    @property
    def read(self) -> int:
        return sum(self.counts.values())

    def problems(self) -> list[str]:
        """One line per problem, for the report; empty for a clean bag."""
        out = []
        if self.read_error:
            kept = f"{self.read} messages read"
            if self.indexed:
                kept += f" of {self.indexed} indexed"
            out.append(f"bag is damaged, evaluated as far as readable ({kept}): {self.read_error}")
        elif self.salvaged:
            out.append("bag index unreadable: messages salvaged from the storage file")
        for role, topic in self.missing.items():
            consequence = {
                COLOR: "no frames: nothing to recognise",
                DEPTH: "no depth: colour frames are never paired, nothing is recognised",
                CAMERA_INFO: "no camera_info: every frame is dropped by the pipeline",
                ODOMETRY: "no odometry: keyframes by time only, distances n/a",
                GROUND_TRUTH: "no per-frame ground truth: instance metrics n/a",
            }[role]
            out.append(f"missing topic {topic} ({role}): {consequence}")
        for topic, msgtype in self.wrong_type.items():
            role = next((r for r, t in self.expected_topics.items() if t == topic), "?")
            out.append(
                f"{topic} carries {msgtype}, not {EXPECTED_TYPES.get(role, '?')}: skipped"
                " (compressed images: republish them raw, e.g. image_transport republish)"
            )
        for topic, count in self.undecodable.items():
            reason = self.undecodable_reason[topic]
            out.append(f"{count} messages on {topic} could not be decoded: {reason}")
        for reason, count in sorted(self.rejected.items(), key=lambda kv: -kv[1]):
            example = self.rejected_example.get(reason, "")
            detail = f" ({example})" if example and example != reason else ""
            out.append(f"{count} messages rejected by the pipeline: {reason}{detail}")
        return out


_MAX_GAP_NS = 100_000_000  # a pose this close in time stands for the stamp's


@dataclass
class GroundTruth:
    """Where the robot was: visits (room stays), per-frame truth, the odometry path the node
    consumed (``path``, in the odometry frame, drifting) and the true camera path in the map
    frame (``ground_truth_path``, from the ground-truth pose topic) that poses are scored on."""

    visits: list[dict] = field(default_factory=list)
    frames: dict[int, dict] = field(default_factory=dict)  # stamp_ns -> per-frame truth
    path: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (stamp_ns, 4x4 pose)
    ground_truth_path: list[tuple[int, np.ndarray]] = field(default_factory=list)
    building_id: str | None = None
    source: str = ""

    def visit_at(self, stamp_ns: int) -> dict | None:
        return next((v for v in self.visits if v["start_ns"] <= stamp_ns <= v["end_ns"]), None)

    def scene_at(self, stamp_ns: int) -> str | None:
        frame = self.frames.get(stamp_ns)
        if frame is not None:
            return frame.get("scene_id")
        visit = self.visit_at(stamp_ns)
        return None if visit is None else visit["scene_id"]

    def pose_at(self, stamp_ns: int, max_gap_ns: int = _MAX_GAP_NS) -> np.ndarray | None:
        """The odometry pose (the odometry frame's, as the node consumed it) nearest the stamp."""
        return _nearest(self.path, stamp_ns, max_gap_ns)

    def true_pose_at(self, stamp_ns: int, max_gap_ns: int = _MAX_GAP_NS) -> np.ndarray | None:
        """The body's true pose in the map frame: the ground-truth pose topic's; for an older
        bag without one, its odometry, which those bags wrote in the map frame."""
        if not self.ground_truth_path:
            return self.pose_at(stamp_ns, max_gap_ns)
        return _nearest(self.ground_truth_path, stamp_ns, max_gap_ns)

    def odom_to_map_at(self, stamp_ns: int, max_gap_ns: int = _MAX_GAP_NS) -> np.ndarray | None:
        """The true ``map -> odom`` transform (the odometry frame in the map) at the stamp:
        ``true pose @ inv(odometry pose)``; the identity for an older bag (odometry in the map
        frame); None where either pose is missing."""
        if not self.ground_truth_path:
            return np.eye(4)
        true, odometry = self.true_pose_at(stamp_ns, max_gap_ns), self.pose_at(stamp_ns, max_gap_ns)
        if true is None or odometry is None:
            return None
        return true @ np.linalg.inv(odometry)


def _nearest(
    path: list[tuple[int, np.ndarray]], stamp_ns: int, max_gap_ns: int
) -> np.ndarray | None:
    """The pose of ``path`` nearest ``stamp_ns``, if one is within ``max_gap_ns``."""
    if not path:
        return None
    stamps = np.fromiter((s for s, _ in path), np.int64, len(path))
    index = int(np.argmin(np.abs(stamps - stamp_ns)))
    return path[index][1] if abs(int(stamps[index]) - stamp_ns) <= max_gap_ns else None


def _bag_index(bag: Path) -> tuple[str, int | None, dict[str, int]]:
    """(storage, message count, per-topic counts) from the bag's index, if it opens."""
    from rosbags.highlevel import AnyReader

    storage = "mcap" if list(bag.glob("*.mcap")) else "sqlite3" if list(bag.glob("*.db3")) else "?"
    try:
        with AnyReader([bag]) as reader:
            counts = Counter()
            for connection in reader.connections:
                counts[connection.topic] += connection.msgcount
            return storage, reader.message_count, dict(counts)
    except Exception:
        return storage, None, {}


def _visits_from_frames(frames: dict[int, dict], gap_ns: int = 1_500_000_000) -> list[dict]:
    """Visits as runs of frames with one scene, for bags without the sidecar."""
    visits: list[dict] = []
    for stamp in sorted(frames):
        scene = frames[stamp].get("scene_id")
        last = visits[-1] if visits else None
        if last and last["scene_id"] == scene and stamp - last["end_ns"] <= gap_ns:
            last["end_ns"] = stamp
        else:
            room = frames[stamp].get("room_id", frames[stamp].get("query_scan_id", ""))
            visits.append({"scene_id": scene, "room_id": room, "start_ns": stamp, "end_ns": stamp})
    return visits


def read_bag(
    bag: Path,
    cfg: BagEvalCfg,
    on_message: Callable[[str, Any, RawMessage, float], None] | None = None,
    progress: bool = True,
    desc: str = "reading bag",
) -> tuple[BagContents, GroundTruth]:
    """One pass over ``bag``: collect ground truth and odometry, hand sensor messages on.

    ``on_message(role, message, raw, deserialize_s)`` gets every message of the configured
    topics in bag order; without it colour and depth are not even deserialised. A damaged bag
    is read up to the damage; every problem ends up in the returned :class:`BagContents`.
    """
    bag = Path(bag)
    if not bag.exists():
        raise BagError(f"bag {bag} does not exist")
    contents = BagContents(str(bag))
    contents.expected_topics = {role: topic for topic, role in cfg.roles().items()}
    contents.storage, contents.indexed, indexed_counts = _bag_index(bag)
    truth = GroundTruth()
    roles = cfg.roles()
    status = BagReadStatus()
    counts: Counter[str] = Counter()
    first_ns = None
    messages = iter_raw_messages(bag, None, status)
    for raw in tqdm(messages, total=contents.indexed, desc=desc, unit="msg", disable=not progress):
        counts[raw.topic] += 1
        contents.topics.setdefault(raw.topic, raw.msgtype)
        first_ns = raw.timestamp_ns if first_ns is None else min(first_ns, raw.timestamp_ns)
        contents.last_stamp_ns = max(contents.last_stamp_ns or 0, raw.timestamp_ns)
        role = roles.get(raw.topic)
        if role == COLOR:
            contents.last_frame_ns = max(contents.last_frame_ns or 0, raw.timestamp_ns)
        if role is None:
            continue
        if raw.msgtype != EXPECTED_TYPES[role]:
            contents.wrong_type[raw.topic] = raw.msgtype
            continue
        if role in (COLOR, DEPTH, CAMERA_INFO) and on_message is None:
            continue
        started = time.perf_counter()
        try:
            msg = deserialize(raw)
            if role == ODOMETRY:
                stamp = msg.header.stamp
                truth.path.append((stamp.sec * 10**9 + stamp.nanosec, odometry_to_pose(msg)))
            elif role == GROUND_TRUTH_POSE:
                stamp = msg.header.stamp
                pose = pose_stamped_to_matrix(msg)
                truth.ground_truth_path.append((stamp.sec * 10**9 + stamp.nanosec, pose))
            elif role == GROUND_TRUTH:
                frame = json.loads(msg.data)
                truth.frames[int(frame["stamp_ns"])] = frame
        except Exception as err:  # unknown type, other serialisation, garbage, bad JSON
            contents.undecodable[raw.topic] = contents.undecodable.get(raw.topic, 0) + 1
            contents.undecodable_reason.setdefault(raw.topic, f"{type(err).__name__}: {err}")
            continue
        if on_message is not None:
            on_message(role, msg, raw, time.perf_counter() - started)
    contents.counts = dict(counts)
    contents.read_error = status.error
    contents.salvaged = status.salvaged
    if first_ns is not None:
        contents.duration_s = (contents.last_stamp_ns - first_ns) / 1e9
    present = set(contents.topics) | set(indexed_counts)
    contents.missing = {
        role: topic
        for topic, role in roles.items()
        if topic not in present and role not in OPTIONAL_ROLES
    }
    if status.error and not contents.read:
        raise BagError(f"cannot read bag {bag}: {status.error}")
    required = {role: contents.missing[role] for role in (COLOR, DEPTH) if role in contents.missing}
    if required and not status.error:  # nothing could be recognised: not a result of zero
        names = ", ".join(f"{topic} ({role})" for role, topic in required.items())
        flags = " / ".join(f"--{role.replace('_', '-')}-topic" for role in required)
        raise BagError(
            f"bag {bag} lacks the topic {names} that the recogniser needs; its topics:"
            f" {', '.join(sorted(contents.topics)) or 'none'} (name others with {flags})"
        )
    _attach_visits(bag, cfg, contents, truth)
    return contents, truth


def _attach_visits(bag: Path, cfg: BagEvalCfg, contents: BagContents, truth: GroundTruth) -> None:
    sidecar_path = Path(cfg.ground_truth) if cfg.ground_truth else bag / GROUND_TRUTH_FILE
    sidecar = None
    if sidecar_path.is_file():
        try:
            sidecar = json.loads(sidecar_path.read_text())
        except json.JSONDecodeError as err:
            raise BagError(f"ground truth {sidecar_path} is not valid JSON: {err}") from err
    if sidecar is not None and sidecar.get("visits"):
        truth.visits = [dict(v) for v in sidecar["visits"]]
        truth.building_id = sidecar.get("building_id")
        truth.source = str(sidecar_path)
    elif truth.frames:
        truth.visits = _visits_from_frames(truth.frames)
        truth.source = f"topic {cfg.topics.ground_truth}"
    else:
        raise BagError(
            f"{bag}: no ground truth: neither {sidecar_path} nor messages on"
            f" {cfg.topics.ground_truth} (pass --ground-truth or --gt-topic)"
        )
    if contents.read_error:  # score only the visits whose frames were read
        last = contents.last_frame_ns or 0
        kept = [v for v in truth.visits if v["start_ns"] <= last]
        for visit in kept:
            visit["end_ns"] = min(visit["end_ns"], last)
        truth.visits = kept


# -- peak memory ----------------------------------------------------------------------------------


def reset_peak_memory() -> bool:
    """Restart the kernel's peak-RSS counter of this process (Linux); False where impossible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_memory_mb() -> float:
    """Peak resident memory of this process since the last reset (or since it started)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# -- results ---------------------------------------------------------------------------------------


def observed(event: MatchEvent, latency_s: float | None) -> ObservedMatch:
    """An :class:`ObservedMatch` from a match event."""
    r = event.keyframe.result
    return ObservedMatch(
        stamp_ns=event.stamp_ns,
        scene_id=r.scene_id,
        score=float(r.score),
        confidence=float(r.confidence),
        latency_s=latency_s,
        candidate_ids=tuple(r.candidate_ids),
        candidate_scores=tuple(float(s) for s in r.candidate_scores),
        modality=r.modality,
        map_modality=r.map_modality,
    )


@dataclass(frozen=True)
class ObservedRelocalization:
    """One relocalisation as published: the pose of the odometry's body in the map frame (the
    building's, ``map_to_odom @ odometry``; None for NoPose) and the matched objects."""

    stamp_ns: int
    scene_id: str
    pose_in_map: np.ndarray | None
    # (query object centroid in the odometry frame, map instance id)
    correspondences: tuple[tuple[tuple[float, float, float], int], ...] = ()


def observed_relocalization(event: RelocalizationEvent) -> ObservedRelocalization:
    """What the node publishes for ``event``: the pose only when confirmed."""
    return ObservedRelocalization(
        stamp_ns=event.stamp_ns,
        scene_id=event.relocalization.scene_id,
        pose_in_map=event.pose if event.confirmed else None,
        correspondences=tuple(
            (tuple(float(v) for v in c.query_centroid), c.map_instance_id)
            for c in event.relocalization.correspondences
        ),
    )


@dataclass
class RunRecord:
    """One bag replayed through one model: everything metrics need."""

    label: str
    pair: str
    mode: str
    bag: str
    matches: list[ObservedMatch]
    contents: BagContents
    truth: GroundTruth
    stages: dict[str, list[float]] = field(default_factory=dict)
    relocalizations: list[ObservedRelocalization] = field(default_factory=list)
    frames_in_bag: int = 0  # colour images read (offline) or published (live)
    frames_processed: int | None = None  # colour/depth pairs that reached the pipeline
    frames_rejected: int = 0  # of which rejected (bad encoding, sizes, no camera_info)
    keyframes: int | None = None
    sync_dropped: int | None = None
    map_scenes: int | None = None  # scenes the recogniser ranks (recall@K above it is exact)
    peak_memory_mb: float | None = None
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def dropped_frames(self) -> int | None:
        """Colour frames that never reached the recogniser (unpaired, lost, rejected)."""
        if self.frames_processed is None:
            return None
        return max(0, self.frames_in_bag - self.frames_processed) + self.frames_rejected


def evaluate_offline(
    bag: Path,
    cfg: PipelineCfg,
    eval_cfg: BagEvalCfg | None = None,
    label: str = "",
    progress: bool = True,
    *,
    encoder: RecognitionEncoder | None = None,
    mapdb: MapBase | None = None,
    listeners: Sequence[Callable[[Event], None]] = (),
) -> RunRecord:
    """Feed ``bag`` through the pipeline ``cfg`` describes, as fast as it reads; return the run.

    ``encoder``/``mapdb``: share one across bags (default: made from ``cfg``, as the node does);
    ``listeners`` also get every event (``crossover_ros changes`` keeps the change reports).
    """
    eval_cfg = eval_cfg or BagEvalCfg()
    matches: list[ObservedMatch] = []
    relocalizations: list[ObservedRelocalization] = []
    samples: dict[str, list[float]] = {name: [] for name in STAGES}
    events: list[Event] = []
    notes: list[str] = []
    frames = 0
    pipeline = open_recognition(cfg, events.append, threaded=False, encoder=encoder, mapdb=mapdb)
    for listener in listeners:
        pipeline.add_listener(listener)
    inputs = {
        CAMERA_INFO: pipeline.on_camera_info,
        ODOMETRY: pipeline.on_odometry,
        COLOR: pipeline.on_color,
        DEPTH: pipeline.on_depth,
    }

    def handle(role: str, msg: Any, raw: RawMessage, deserialize_s: float) -> None:
        nonlocal frames
        if role not in inputs:
            return
        frames += role == COLOR
        started = time.perf_counter()
        inputs[role](msg)
        elapsed = time.perf_counter() - started + deserialize_s
        if role in (CAMERA_INFO, ODOMETRY):
            return
        answered = [e for e in events if isinstance(e, MatchEvent)]
        if not answered:
            samples["per_frame"].append(elapsed)
        for event in events:
            if isinstance(event, MatchEvent):
                timings = event.keyframe.result.timings
                for stage, seconds in timings.items():
                    samples[stage].append(seconds)
                samples["deserialize"].append(deserialize_s)
                relocalization_s = sum(
                    e.relocalization.compute_time_s
                    for e in events
                    if isinstance(e, RelocalizationEvent)
                )
                answer_s = elapsed - relocalization_s  # the answer went out before the pose
                samples["stream"].append(max(0.0, answer_s - deserialize_s - sum(timings.values())))
                samples["end_to_end"].append(answer_s)
                matches.append(observed(event, answer_s))
            elif isinstance(event, RelocalizationEvent):
                samples["relocalization"].append(event.relocalization.compute_time_s)
                relocalizations.append(observed_relocalization(event))
            elif isinstance(event, WarningEvent) and event.message not in notes:
                notes.append(event.message)
        events.clear()

    memory_reset = reset_peak_memory()
    started = time.perf_counter()
    try:
        contents, truth = read_bag(Path(bag), eval_cfg, handle, progress, label or "offline")
    finally:
        pipeline.close()
    wall = time.perf_counter() - started
    frame_log = pipeline.stats.stages["frames"]
    contents.rejected = dict(frame_log.failures_by_reason)
    contents.rejected_example = dict(frame_log.examples)
    counters = pipeline.stream.counters
    record = RunRecord(
        label=label or pipeline.encoder.fingerprint,
        pair=pair_name(pipeline.encoder.modality, pipeline.encoder.map_modality),
        mode="offline",
        bag=str(bag),
        matches=matches,
        contents=contents,
        truth=truth,
        stages=samples,
        relocalizations=relocalizations,
        frames_in_bag=frames,
        frames_processed=counters["frames"],
        frames_rejected=frame_log.failures,
        keyframes=counters["keyframes"],
        sync_dropped=pipeline.stream.sync.dropped,
        map_scenes=pipeline.scene_count(),
        peak_memory_mb=peak_memory_mb(),
        wall_s=wall,
        notes=pipeline.notes + notes,
    )
    if not memory_reset:
        record.notes.append("peak memory is the process's since it started")
    return record


# -- metrics ---------------------------------------------------------------------------------------


def percentiles(values: Sequence[float], qs: Iterable[int] = (50, 95, 99)) -> dict[str, float]:
    """{"p50": ..., "n": count} in milliseconds for durations in seconds; {} without values."""
    if not len(values):
        return {}
    array = np.asarray(values, dtype=np.float64) * 1e3
    out = {f"p{q}": float(np.percentile(array, q)) for q in qs}
    out["n"] = len(array)
    return out


@dataclass
class Metrics:
    """One row of the report: one model (and modality pair) over every bag given."""

    label: str
    pair: str = ""
    mode: str = ""
    available: bool = True
    unavailable_reason: str = ""
    bags: int = 0
    windows: int = 0  # published matches = query windows scored
    recall: dict[int, float] = field(default_factory=dict)
    recall_curve: list[float] = field(default_factory=list)  # K = 1 .. len
    recall_capped_at: int | None = None  # fewest candidates published: R@K above it is a bound
    rooms_recognised: int = 0
    visits: list[VisitResult] = field(default_factory=list)
    first_correct_s: list[float | None] = field(default_factory=list)  # per visit
    first_correct_m: list[float | None] = field(default_factory=list)
    confident_wrong: int = 0
    calibration: Calibration | None = None  # of the published answers' confidence
    instance_precision: float | None = None
    instance_recall: float | None = None
    instance_windows: int = 0  # relocalisations in the right room with object matching
    relocalizations: int = 0  # attempted (pose or NoPose)
    pose_error_m: dict[str, float] = field(default_factory=dict)
    pose_error_deg: dict[str, float] = field(default_factory=dict)
    pose_windows: int = 0  # poses published (with ground truth to compare)
    wrong_poses: int = 0  # off by more than BagEvalCfg.wrong_pose_m / wrong_pose_deg
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    end_to_end_ms: list[float] = field(default_factory=list)  # for the histogram
    peak_memory_mb: float | None = None
    frames_in_bag: int = 0
    frames_processed: int | None = None
    dropped_frames: int | None = None
    keyframes: int | None = None
    rejected: int = 0
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def wrong_pose_rate(self) -> float | None:
        return self.wrong_poses / self.pose_windows if self.pose_windows else None

    @property
    def no_pose_rate(self) -> float | None:
        if not self.relocalizations:
            return None
        return 1.0 - self.pose_windows / self.relocalizations

    @property
    def confident_wrong_rate(self) -> float | None:
        return self.confident_wrong / self.windows if self.windows else None

    @property
    def never_correct(self) -> int:
        return sum(v is None for v in self.first_correct_s)

    def median_first_correct(self) -> tuple[float | None, float | None]:
        seconds = [v for v in self.first_correct_s if v is not None]
        metres = [v for v in self.first_correct_m if v is not None]
        return (
            float(np.median(seconds)) if seconds else None,
            float(np.median(metres)) if metres else None,
        )

    def to_dict(self) -> dict:
        out = asdict(self)
        out["recall"] = {str(k): v for k, v in self.recall.items()}
        out["confident_wrong_rate"] = self.confident_wrong_rate
        out["wrong_pose_rate"] = self.wrong_pose_rate
        out["no_pose_rate"] = self.no_pose_rate
        out["never_correct"] = self.never_correct
        out["first_correct_median_s"], out["first_correct_median_m"] = self.median_first_correct()
        return _finite(out)


def _finite(value: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python, recursively: JSON without surprises."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def unavailable(label: str, reason: str, pair: str = "") -> Metrics:
    """A row that says why a method has no numbers rather than inventing them."""
    return Metrics(label=label, pair=pair, available=False, unavailable_reason=reason)


def compute_metrics(
    records: Sequence[RunRecord],
    cfg: BagEvalCfg | None = None,
    geometry: MapGeometry | None = None,
) -> Metrics:
    """Pool the runs of one model over its bags into one :class:`Metrics` row.

    ``geometry``: the map's scene frames and instance boxes, to score instance pairs (a pair is
    right when the query object, placed by the true pose, lies in the paired instance's box).
    Poses are compared with the bag's ground-truth pose of the same stamp (the body in the map
    frame), never with the odometry the node consumed, which has its own frame and drifts; a
    bag without ground-truth poses (older bags, whose odometry is in the map frame) is scored
    against its odometry, and a note says so.
    """
    cfg = cfg or BagEvalCfg()
    if not records:
        raise CrossoverError("no runs to compute metrics from")
    first = records[0]
    out = Metrics(label=first.label, pair=first.pair, mode=first.mode, bags=len(records))
    max_k = max(cfg.ks)
    hits = np.zeros(max_k, dtype=np.int64)
    fewest_candidates: int | None = None
    rankable = max_k
    errors_m: list[float] = []
    errors_deg: list[float] = []
    instance_counts = np.zeros(4, np.int64)  # see _instance_counts
    answers: list[tuple[float, bool]] = []  # (confidence, right) of each published answer
    stage_samples: dict[str, list[float]] = {}
    first_scan = geometry.first_scan if geometry is not None else {}
    for record in records:
        truth = record.truth
        matches = [as_first_scans(match, first_scan) for match in record.matches]
        for match in matches:
            true_scene = truth.scene_at(match.stamp_ns)
            if true_scene is None:
                continue
            out.windows += 1
            ranked = match.ranked()
            if record.map_scenes:
                rankable = min(rankable, record.map_scenes)
            if fewest_candidates is None or len(ranked) < fewest_candidates:
                fewest_candidates = len(ranked)
            if true_scene in ranked[:max_k]:
                hits[ranked.index(true_scene) :] += 1
            wrong = bool(match.scene_id) and match.scene_id != true_scene
            if wrong and match.confidence >= cfg.confident:
                out.confident_wrong += 1
            if match.scene_id:
                answers.append((match.confidence, not wrong))
        if record.relocalizations and not truth.ground_truth_path:
            note = (
                f"{record.bag}: no ground-truth poses on {cfg.topics.ground_truth_pose}: poses"
                " and instance pairs scored against the odometry, taken to be in the map frame"
                " (as in bags recorded before odometry had its own frame)"
            )
            if note not in out.notes:
                out.notes.append(note)
        for found in record.relocalizations:
            out.relocalizations += 1
            true = truth.true_pose_at(found.stamp_ns)
            if found.pose_in_map is not None and true is not None:
                errors_m.append(float(np.linalg.norm(found.pose_in_map[:3, 3] - true[:3, 3])))
                errors_deg.append(rotation_angle_deg(found.pose_in_map[:3, :3], true[:3, :3]))
            if geometry is not None and truth.scene_at(found.stamp_ns) == found.scene_id:
                counts = _instance_counts(found, truth, geometry, cfg.box_margin_m)
                if counts is not None:
                    out.instance_windows += 1
                    instance_counts += counts
        visits = summarize_visits(truth.visits, matches, truth.path, cfg.confident)
        out.visits.extend(visits)
        out.first_correct_s.extend(v.first_correct_s for v in visits)
        out.first_correct_m.extend(v.first_correct_m if truth.path else None for v in visits)
        latencies = [m.latency_s for m in record.matches if m.latency_s is not None]
        out.end_to_end_ms.extend(1e3 * v for v in latencies)
        for stage, samples in record.stages.items():
            stage_samples.setdefault(stage, []).extend(samples)
        if "end_to_end" not in record.stages or not record.stages["end_to_end"]:
            stage_samples.setdefault("end_to_end", []).extend(latencies)
        if record.peak_memory_mb is not None:
            out.peak_memory_mb = max(out.peak_memory_mb or 0.0, record.peak_memory_mb)
        out.frames_in_bag += record.frames_in_bag
        if record.frames_processed is not None:
            out.frames_processed = (out.frames_processed or 0) + record.frames_processed
            out.dropped_frames = (out.dropped_frames or 0) + (record.dropped_frames or 0)
        if record.keyframes is not None:
            out.keyframes = (out.keyframes or 0) + record.keyframes
        out.rejected += sum(record.contents.rejected.values())
        out.wall_s += record.wall_s
        out.notes.extend(n for n in record.notes if n not in out.notes)
    out.rooms_recognised = sum(v.correct for v in out.visits)
    if answers:
        confidences, right = zip(*answers, strict=True)
        out.calibration = calibration(np.clip(confidences, 0.0, 1.0), right)
    if out.windows:
        curve = hits / out.windows
        out.recall_curve = [float(v) for v in curve]
        out.recall = {k: float(curve[k - 1]) for k in cfg.ks}
    if fewest_candidates is not None and fewest_candidates < rankable:
        out.recall_capped_at = fewest_candidates
    if out.instance_windows:
        correct, predicted, found_in_view, in_view = (int(v) for v in instance_counts)
        out.instance_precision = correct / predicted if predicted else None
        out.instance_recall = found_in_view / in_view if in_view else None
    if errors_m:
        out.pose_windows = len(errors_m)
        out.pose_error_m = _stats(errors_m)
        out.pose_error_deg = _stats(errors_deg)
        out.wrong_poses = sum(
            m > cfg.wrong_pose_m or d > cfg.wrong_pose_deg
            for m, d in zip(errors_m, errors_deg, strict=True)
        )
    out.latency_ms = {s: percentiles(v) for s, v in stage_samples.items() if v}
    return out


def _stats(values: list[float]) -> dict[str, float]:
    array = np.asarray(values)
    return {
        "p50": float(np.median(array)),
        "p95": float(np.percentile(array, 95)),
        "n": len(array),
    }


@dataclass(frozen=True)
class MapGeometry:
    """Where a map's scenes sit in the building and the boxes of their instances."""

    scene_to_map: dict[str, np.ndarray]  # 4x4, the map records' frame_to_building
    boxes: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]  # scene -> id -> (min, max)
    # a later scan of a room -> the room's first scan, the id the ground truth names
    first_scan: dict[str, str] = field(default_factory=dict)


def map_geometry_of(mapdb: MapBase) -> MapGeometry:
    frames, boxes = {}, {}
    for record in mapdb.scenes():
        if record.frame_to_building is None:
            continue
        frames[record.scene_id] = np.asarray(record.frame_to_building, np.float64).reshape(4, 4)
        boxes[record.scene_id] = {
            int(inst["id"]): (np.asarray(inst["box_min"]), np.asarray(inst["box_max"]))
            for inst in mapdb.instances(record.scene_id)
            if inst.get("box_min") is not None and inst.get("box_max") is not None
        }
    rooms = mapdb.rooms()
    first = {scene: rooms.first_scan(scene) for scene in rooms.room_of}
    return MapGeometry(frames, boxes, {k: v for k, v in first.items() if k != v})


def as_first_scans(match: ObservedMatch, first_scan: dict[str, str]) -> ObservedMatch:
    """The match with each room named by its first scan, as ground truth names it: a map
    updated with later scans answers with the room's newest."""
    if not first_scan:
        return match
    return replace(
        match,
        scene_id=first_scan.get(match.scene_id, match.scene_id),
        candidate_ids=tuple(first_scan.get(c, c) for c in match.candidate_ids),
    )


def _instance_counts(
    found: ObservedRelocalization, truth: GroundTruth, geometry: MapGeometry, margin: float
) -> np.ndarray | None:
    """(correct, predicted, correct and in view, in view) pairs of one relocalisation in the
    right room.

    The query objects' centroids are in the odometry frame; the true ``map -> odom`` at the
    stamp (from the ground-truth pose: :meth:`GroundTruth.odom_to_map_at`) places them in the
    map, so the true place of a query object in the scene is
    ``inv(scene_to_map) @ odom_to_map @ centroid``; a pair is right if that lies in the paired
    instance's box (grown by ``margin``). True pairs: the map instances the ground truth says
    are in view at that stamp.
    """
    scene_to_map = geometry.scene_to_map.get(found.scene_id)
    boxes = geometry.boxes.get(found.scene_id)
    odom_to_map = truth.odom_to_map_at(found.stamp_ns)
    if scene_to_map is None or not boxes or odom_to_map is None:
        return None
    map_to_scene = np.linalg.inv(scene_to_map) @ odom_to_map  # odometry frame -> scene
    correct = set()
    for centroid, instance_id in found.correspondences:
        box = boxes.get(instance_id)
        point = map_to_scene[:3, :3] @ np.asarray(centroid) + map_to_scene[:3, 3]
        inside = box is not None and np.all(point >= box[0] - margin)
        if inside and np.all(point <= box[1] + margin):
            correct.add(instance_id)
    visible = truth.frames.get(found.stamp_ns, {}).get("instances", {})
    true = {int(m) for m in visible.values() if m is not None and int(m) in boxes}
    return np.array([len(correct), len(found.correspondences), len(correct & true), len(true)])
