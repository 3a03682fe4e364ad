"""A map from a mapping bag: the recorder's own logic on a recorded run, offline.

``crossover_ros map record`` runs this: the bag's messages go through a
:class:`~crossover_ros.pipeline.runner.RecordingPipeline`, as they would through the
``map_recorder`` node, and the end of each visit of the bag's ground truth stands in for the
``~/save_scene`` call a person makes at the end of each room. ``crossover_ros map update``
replays a bag through the recogniser instead (:func:`update_map_from_bag`): each recognised
visit is added as a new scan of its room, as ``~/update_map`` would at the end of each room.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from crossover_ros.bags.reader import BagTopics, deserialize, iter_raw_messages, read_ground_truth
from crossover_ros.errors import BagError, DataError
from crossover_ros.mapdb.records import SceneRecord
from crossover_ros.pipeline.map_update import MapUpdateError
from crossover_ros.pipeline.runner import RecognitionPipeline, RecordingPipeline


def record_map_from_bag(
    bag: Path,
    pipeline: RecordingPipeline,
    scene_id: str = "",
    building_id: str = "",
    topics: BagTopics | None = None,
    progress: bool = True,
) -> list[SceneRecord]:
    """One scene per visit of the bag's ground truth (``ground_truth.json``, as ``data
    record-bag`` writes it; scene and room ids from its visits); with ``scene_id``, the whole
    bag is one scene. Frames the stream rejects are skipped, as live. The bag's odometry frame
    is taken as the building frame (one mapping run, one frame for all its rooms)."""
    if scene_id:
        visits = [{"scene_id": scene_id, "room_id": scene_id, "start_ns": 0, "end_ns": 2**63}]
    else:
        try:
            truth = read_ground_truth(Path(bag))
        except BagError as err:
            hint = "to store the whole bag as one scene, name its scene_id"
            raise BagError(f"{err}; {hint}") from err
        visits = truth.get("visits") or []
        building_id = building_id or str(truth.get("building_id") or "")
        if not visits:
            raise DataError(f"{bag}: its ground truth lists no visits; name one scene_id instead")
    bag = Path(bag)
    building_id = building_id or "building"
    topics = topics or BagTopics()
    stream = pipeline.stream
    pairing = {topics.color: stream.sync_color, topics.depth: stream.sync_depth}
    inputs = {topics.camera_info: pipeline.on_camera_info, topics.odometry: pipeline.on_odometry}
    saved: list[SceneRecord] = []
    current: dict | None = None

    def save(visit: dict) -> None:
        if len(pipeline):
            room = str(visit.get("room_id", visit["scene_id"]))
            saved.append(
                pipeline.save(
                    visit["scene_id"], building_id, room, 0, np.eye(4), source=f"bag {bag.name}"
                )
            )

    for raw in tqdm(iter_raw_messages(Path(bag)), desc="recording", disable=not progress):
        if raw.topic in inputs:
            inputs[raw.topic](deserialize(raw))
            continue
        if raw.topic not in pairing:
            continue
        keyframe = pipeline.keyframe(pairing[raw.topic](deserialize(raw)))
        if keyframe is None:
            continue
        stamp = keyframe.header.stamp.sec * 10**9 + keyframe.header.stamp.nanosec
        visit = next((v for v in visits if v["start_ns"] <= stamp <= v["end_ns"]), None)
        if visit is not current and current is not None:
            save(current)
        current = visit
        if visit is not None:
            pipeline.record(keyframe)
    if current is not None:
        save(current)
    if not saved:
        raise DataError(
            f"no keyframe in {bag} became a scene: it needs colour, depth and camera_info on"
            f" {topics.color}, {topics.depth}, {topics.camera_info} (and, for a cloud, odometry"
            f" on {topics.odometry}) within its visits"
        )
    return saved


def update_map_from_bag(
    bag: Path,
    pipeline: RecognitionPipeline,
    topics: BagTopics | None = None,
    progress: bool = True,
) -> list[SceneRecord | MapUpdateError]:
    """Replay ``bag`` through ``pipeline`` (unthreaded, ``map.allow_updates`` on) and add each
    visit when the recognised room changes, and the last at the end: no ground truth needed.
    Returns each visit's stored record or the reason it was not stored."""
    if pipeline.updater is None or pipeline.workers is not None:
        raise DataError("map updates from a bag need an unthreaded pipeline with allow_updates")
    topics = topics or BagTopics()
    inputs = {
        topics.color: pipeline.on_color,
        topics.depth: pipeline.on_depth,
        topics.camera_info: pipeline.on_camera_info,
        topics.odometry: pipeline.on_odometry,
    }
    updater = pipeline.updater
    updater.add_on_room_change, updater.outcomes = True, []
    for raw in tqdm(iter_raw_messages(Path(bag)), desc="updating", disable=not progress):
        handler = inputs.get(raw.topic)
        if handler is not None:
            handler(deserialize(raw))
    if updater.room is not None:
        try:
            updater.outcomes.append(pipeline.update_map())
        except MapUpdateError as refused:
            updater.outcomes.append(refused)
    outcomes, updater.outcomes = updater.outcomes, []
    updater.add_on_room_change = False
    return outcomes
