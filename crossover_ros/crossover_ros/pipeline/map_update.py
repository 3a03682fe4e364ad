"""A map that keeps up with the building: the current visit added as a new scan of its room.

Furniture moves, so a room's scan from months ago matches today's frames less and less. With
``map.allow_updates``, the recognition pipeline keeps a bounded :class:`SceneRecording` of the
current visit (the recorder's own: keyframe images spread over the visit, the depth fused in
the odometry frame, the objects' places) and :meth:`MapUpdater.add_visit` stores it as a new
scan of the recognised room: id ``<the room's first scan>@<n>``, ``parent_scene`` the room's
newest scan, ``scan_time`` the visit's. Old scans stay (``map scans`` lists them, ``map
remove-scene`` removes one); the recogniser names each room by its newest scan and scores it by
its best (``MapBase.query(by_room=True)``).

A scan is useful to the relocaliser only in a known frame: a visit is stored in the frame of
the scan a confirmed pose registered it to (cloud and objects moved there), with that scan's
place in the building; its cloud is joined to that scan's, as a visit sees only part of the
room (verification fits the depth to the newest scan's cloud). It is refused without one
unless ``map_update.require_pose`` is off (it is then stored unplaced, in the odometry frame).
Only keyframes whose own window agrees with the filtered answer on the room are recorded, and
each only once ``lag`` (a window's length) later keyframes agreed too: the windows and the
filter lag behind a room change, so the last keyframes before it are often the next room's.
A change of room drops them and starts the recording afresh.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from crossover_ros.config import setting, validate
from crossover_ros.errors import CrossoverError
from crossover_ros.mapdb.base import MapBase
from crossover_ros.mapdb.records import SceneRecord
from crossover_ros.pipeline.events import Event, MatchEvent, RelocalizationEvent
from crossover_ros.pipeline.recording import SceneRecording
from crossover_ros.pose.estimate import PoseEstimate

__all__ = ["MapUpdateCfg", "MapUpdateError", "MapUpdater"]

Room = tuple[str, str]  # (building, room)


@dataclass(frozen=True)
class MapUpdateCfg:
    """How ``~/update_map`` adds the current visit (with ``map.allow_updates`` only)."""

    require_pose: bool = setting(
        True,
        "Add a visit only when a confirmed pose registers it to a scan of the room (it is then"
        " stored in that scan's frame); false: a visit without one is stored unplaced, in the"
        " odometry frame.",
    )
    min_keyframes: int = setting(
        4, "A visit needs at least this many recorded keyframes to be added.", 1, 10000
    )
    max_keyframes: int = setting(
        60,
        "Colour keyframes kept of the current visit (when full, every second one is dropped,"
        " so they still cover the visit).",
        2,
        10000,
    )

    def __post_init__(self) -> None:
        validate(self)


class MapUpdateError(CrossoverError):
    """Why the visit was not added, in one line."""


class MapUpdater:
    """Records the current visit from the pipeline's events; :meth:`add_visit` stores it.

    ``observe`` is a pipeline listener (called from its worker threads); ``add_visit`` may come
    from another thread (a service): one lock guards the visit. ``add_on_room_change``: store
    each visit when the room changes, as ``map update`` does for a bag of many rooms
    (``outcomes`` then holds each stored record or refusal). ``lag``: keyframes held back
    before they are recorded, dropped on a room change (the recogniser's window length).
    """

    def __init__(
        self,
        cfg: MapUpdateCfg,
        mapdb: MapBase,
        encoder: Any,
        recording: SceneRecording,
        source: str = "node update",
        lag: int = 0,
    ) -> None:
        self.cfg = cfg
        self.mapdb = mapdb
        self.encoder = encoder
        self.recording = recording
        self.source = source
        self.add_on_room_change = False
        self.outcomes: list[SceneRecord | MapUpdateError] = []
        self._lock = threading.RLock()
        self.room: Room | None = None
        self._placed: tuple[str, np.ndarray] | None = None  # (scene, odometry -> its frame)
        self.lag = lag
        self._pending: deque[tuple] = deque()  # (frame, pose, odom frame), not yet recorded

    # -- the visit ---------------------------------------------------------------------------
    def observe(self, event: Event) -> None:
        if isinstance(event, MatchEvent):
            self._on_match(event)
        elif isinstance(event, RelocalizationEvent) and event.confirmed:
            found = event.relocalization
            with self._lock:
                if isinstance(found.pose, PoseEstimate) and self._room_of(found.scene_id) == (
                    self.room
                ):
                    self._placed = (found.scene_id, np.array(found.pose.map_from_query))

    def _on_match(self, event: MatchEvent) -> None:
        keyframe = event.keyframe
        result = keyframe.result
        if result is None or not result.scene_id:
            return
        with self._lock:
            room = self._room_of(result.scene_id)
            if room != self.room:
                self._pending.clear()  # most likely the next room's already
                if self.room is not None and self.add_on_room_change:
                    try:
                        self.outcomes.append(self.add_visit())
                    except MapUpdateError as refused:
                        self.outcomes.append(refused)
                self.reset()
                self.room = room
            top = result.candidate_ids[0] if result.candidate_ids else ""
            if room is None or self._room_of(top) != room:
                return  # this window sees another room: the filter may be about to switch
            self._pending.append((keyframe.frame, keyframe.pose, keyframe.odom_frame))
            while len(self._pending) > self.lag:
                self._record(*self._pending.popleft())

    def _record(self, frame: Any, pose: np.ndarray | None, odom_frame: str) -> None:
        with contextlib.suppress(ValueError):  # a frame fusion cannot use: its image is kept
            self.recording.add(frame, pose, odom_frame)

    def _room_of(self, scene_id: str) -> Room | None:
        return self.mapdb.rooms().room_of.get(scene_id)

    def reset(self) -> None:
        """Forget the visit (a new room, a reset, another map)."""
        with self._lock:
            self.recording.clear()
            self._pending.clear()
            self.room = None
            self._placed = None

    def replace_map(self, mapdb: MapBase) -> None:
        with self._lock:
            self.mapdb = mapdb
            self.reset()

    # -- storing -----------------------------------------------------------------------------
    def add_visit(self, hint: str = "") -> SceneRecord:
        """Store the visit so far as a new scan of the recognised room; MapUpdateError (one
        line, nothing stored) when it cannot be. ``hint``: a scene or room id the caller
        expects; refused if it is not the recognised room."""
        with self._lock:
            if not self.mapdb.writable:
                raise MapUpdateError(
                    f"map {self.mapdb.path} is opened read-only: nothing can be added"
                )
            if self.room is None:
                raise MapUpdateError("no room recognised in this visit yet: nothing to add")
            building, room = self.room
            scans = self.mapdb.scans(building, room)
            if not scans:
                raise MapUpdateError(f"room {room} is no longer in map {self.mapdb.path}")
            ids = {scan.scene_id for scan in scans}
            if hint and hint != room and hint not in ids:
                raise MapUpdateError(
                    f"'{hint}' is not the recognised room {room} ({scans[0].scene_id})"
                )
            while self._pending:  # asked while in the room: its latest keyframes count
                self._record(*self._pending.popleft())
            if len(self.recording) < self.cfg.min_keyframes:
                raise MapUpdateError(
                    f"only {len(self.recording)} keyframe(s) of room {room} recorded, at least"
                    f" {self.cfg.min_keyframes} needed (map_update.min_keyframes)"
                )
            recording, frame_to_building = self._placed_recording(room)
            index = max(scan.scan_index for scan in scans) + 1
            first = scans[-1].scene_id
            while f"{first}@{index}" in ids:
                index += 1
            try:
                record = recording.save(
                    self.mapdb,
                    self.encoder,
                    f"{first}@{index}",
                    building,
                    room,
                    index,
                    frame_to_building,
                    parent_scene=scans[0].scene_id,
                    source=self.source,
                )
            except CrossoverError as err:
                raise MapUpdateError(f"the visit of room {room} was not stored: {err}") from err
            self.recording.clear()
            self._placed = None
            return record

    def _placed_recording(self, room: str) -> tuple[SceneRecording, np.ndarray | None]:
        """The recording in the frame of the scan a confirmed pose registered it to, with
        that scan's place in the building and its cloud joined to the visit's (a visit sees
        part of a room: the rest keeps its old geometry); else (if allowed) as recorded."""
        if self._placed is not None:
            scene_id, odom_to_scene = self._placed
            target = self.mapdb.scene(scene_id)
            pose = target.frame_to_building
            place = None if pose is None else np.asarray(pose, np.float64).reshape(4, 4)
            base = self.mapdb.point_cloud(scene_id)
            return self.recording.in_frame(odom_to_scene, target.frame, base), place
        if self.cfg.require_pose:
            raise MapUpdateError(
                f"no confirmed pose in room {room} yet: the visit cannot be placed in the"
                " room's frame (map_update.require_pose)"
            )
        return self.recording, None
