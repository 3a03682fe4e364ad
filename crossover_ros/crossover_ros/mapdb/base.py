"""What both backends share: the public API's checks, instance matching and scene export."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod

import numpy as np

from crossover_ros.errors import MapDatabaseError
from crossover_ros.mapdb.records import (
    MIGRATABLE_SCHEMA_VERSION,
    SCHEMA_VERSION,
    InstanceMatching,
    SceneCandidate,
    SceneData,
    SceneRecord,
    check_vectors,
    newest_first_key,
    normalise_rows,
)
from crossover_ros.mapdb.search import hungarian_match


def schema_error(where: str, version: int) -> MapDatabaseError:
    """The one message for a map of another schema: what it is and what to do."""
    if version < MIGRATABLE_SCHEMA_VERSION:
        action = (
            "rebuild the map with 'crossover_ros map build' (maps older than schema"
            f" {MIGRATABLE_SCHEMA_VERSION} lack instance boxes, point clouds and modality masks,"
            " so they cannot be migrated)"
        )
    else:
        action = "update crossover_ros to read it, or rebuild the map with this version"
    return MapDatabaseError(
        f"{where} has schema version {version}, this crossover_ros reads {SCHEMA_VERSION}: {action}"
    )


def fingerprint_error(where: str, stored: str, wanted: str) -> MapDatabaseError:
    return MapDatabaseError(
        f"{where} was built with model {stored}, but the query model is {wanted}:"
        " rebuild the map with the same model"
    )


class MapBase(ABC):
    """The map API; subclasses store, this class checks and composes."""

    path: str | object
    embedding_dim: int  # scene vectors
    instance_dim: int  # instance vectors
    model_fingerprint: str
    # False for a schema-2 map opened read-only: its scans read with empty provenance
    has_provenance: bool = True
    _rooms_cache: tuple[object, RoomTable] | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def discard(self) -> None:
        """Close and delete the whole map: what a build that failed half-way leaves behind."""

    @abstractmethod
    def _fetch(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Rows of a query written once for both backends: ``?`` placeholders, ``{s}.`` before
        each table name (the PostgreSQL schema of the map; nothing in SQLite)."""

    @property
    def writable(self) -> bool:
        """Whether scenes may be added (a SQLite map opened read-only may not)."""
        return True

    def _cache_token(self) -> object:
        """Changes whenever the map's scenes may have changed; None: never cache."""
        return None

    @property
    def _scene_select(self) -> str:
        provenance = "parent_scene, source" if self.has_provenance else "NULL, ''"
        return _SCENE_SELECT.format(provenance=provenance)

    def scene(self, scene_id: str) -> SceneRecord:
        """One scene's record, or MapDatabaseError if the map lacks it."""
        rows = self._fetch(self._scene_select + " WHERE scene_id = ?", (scene_id,))
        if not rows:
            raise MapDatabaseError(f"no scene {scene_id} in {self.path}")
        return _record(rows[0])

    def scenes(self, building_id: str | None = None) -> list[SceneRecord]:
        if building_id is None:
            rows = self._fetch(self._scene_select + " ORDER BY scene_id")
        else:
            rows = self._fetch(
                self._scene_select + " WHERE building_id = ? ORDER BY scene_id", (building_id,)
            )
        return [_record(row) for row in rows]

    def scans(self, building_id: str, room_id: str) -> list[SceneRecord]:
        """A room's scans, newest first (scan time, then scan index): the map keeps every scan
        of a room that changes, the newest stands for it (:meth:`query` with ``by_room``)."""
        rows = self._fetch(
            self._scene_select + " WHERE building_id = ? AND room_id = ?",
            (str(building_id), str(room_id)),
        )
        return sorted((_record(row) for row in rows), key=newest_first_key, reverse=True)

    def rooms(self) -> RoomTable:
        """Every room's scans, newest first (cached while the map is unchanged)."""
        token = self._cache_token()
        cached = self._rooms_cache
        if token is not None and cached is not None and cached[0] == token:
            return cached[1]
        table = RoomTable(self.scenes())
        if token is not None:
            self._rooms_cache = (token, table)
        return table

    def buildings(self) -> list[str]:
        return [r[0] for r in self._fetch("SELECT building_id FROM {s}.buildings ORDER BY 1")]

    def modalities(self) -> list[str]:
        rows = self._fetch("SELECT DISTINCT modality FROM {s}.scene_embeddings ORDER BY 1")
        return [r[0] for r in rows]

    def scene_modalities(self, scene_id: str) -> list[str]:
        """The scene's modality mask as names."""
        rows = self._fetch("SELECT modality_mask FROM {s}.scenes WHERE scene_id = ?", (scene_id,))
        if not rows:
            raise MapDatabaseError(f"no scene {scene_id} in {self.path}")
        bits = self._fetch("SELECT bit, name FROM {s}.modalities")
        return sorted(name for bit, name in bits if rows[0][0] >> bit & 1)

    @abstractmethod
    def remove_scene(self, scene_id: str) -> None: ...

    @abstractmethod
    def scene_embeddings(self, scene_id: str) -> dict[str, np.ndarray]: ...

    def instances(self, scene_id: str) -> list[dict]:
        """A scene's instances: id, label, centroid, and box_min/box_max where stored."""
        rows = self._fetch(
            "SELECT instance_id, label, centroid, box_min, box_max FROM {s}.instances"
            " WHERE scene_id = ? ORDER BY instance_id",
            (scene_id,),
        )
        out = []
        for inst_id, label, centroid, box_min, box_max in rows:
            item = {"id": inst_id, "label": label, "centroid": json.loads(centroid)}
            if box_min is not None:
                item["box_min"] = json.loads(box_min)
            if box_max is not None:
                item["box_max"] = json.loads(box_max)
            out.append(item)
        return out

    @abstractmethod
    def instance_embeddings(self, scene_id: str, modality: str) -> tuple[list[int], np.ndarray]: ...

    @abstractmethod
    def point_cloud(self, scene_id: str) -> tuple[np.ndarray, np.ndarray] | None: ...

    @abstractmethod
    def add_scenes(self, scenes: list[SceneData]) -> None: ...

    @abstractmethod
    def _search(
        self, vectors: np.ndarray, modality: str, top_k: int, building_id: str | None
    ) -> list[SceneCandidate]: ...

    def add_scene(
        self,
        record: SceneRecord,
        embeddings: dict[str, np.ndarray],
        instances: list[dict] | None = None,
        cloud: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Store one scene atomically: a crash leaves either all of it or none.

        ``instances`` are dicts with id, label, centroid and optionally box_min, box_max and
        ``embeddings`` {modality: (D,) vector}; ``cloud`` is (xyz float32, rgb uint8), stored as
        given (downsample it first, see ``records.voxel_downsample``).
        """
        self.add_scenes([SceneData(record, embeddings, instances or [], cloud)])

    def query(
        self,
        vectors: np.ndarray,
        modality: str,
        top_k: int = 5,
        building_id: str | None = None,
        by_room: bool = False,
    ) -> list[SceneCandidate]:
        """Rank scenes for query vectors (Q, D) of any modality against the stored ``modality``.

        CrossOver puts all modalities in one space, so an rgb query can search 'point_cloud'
        rows. Score: mean over query rows of the best cosine among the scene's rows.
        ``by_room``: one answer per room, named by its newest scan (whose cloud and objects the
        recogniser then checks) and scored by its best-scoring scan, so older scans still count
        as evidence; a map of one scan per room answers exactly as without.
        """
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if vectors.ndim != 2 or vectors.shape[1] != self.embedding_dim:
            raise MapDatabaseError(
                f"query vectors have dimension {vectors.shape[-1]}, the map {self.embedding_dim}"
            )
        if top_k < 1:
            raise MapDatabaseError(f"top_k must be at least 1, got {top_k}")
        vectors = normalise_rows(vectors)
        if not by_room:
            return self._search(vectors, modality, top_k, building_id)
        rooms = self.rooms()
        if rooms.most_scans <= 1:
            return self._search(vectors, modality, top_k, building_id)
        # the top_k rooms' best scans are among the top top_k * (most scans of a room) scans
        wanted = min(top_k * rooms.most_scans, len(rooms.room_of))
        best: dict[tuple[str, str], SceneCandidate] = {}
        for candidate in self._search(vectors, modality, wanted, building_id):
            # a scene added since the table was read stands for itself
            room = rooms.room_of.get(candidate.scene_id, (candidate.scene_id, ""))
            if room not in best:  # candidates come best first
                newest = rooms.newest.get(room, candidate.scene_id)
                best[room] = SceneCandidate(
                    newest, candidate.score, candidate.building_id, candidate.room_id
                )
        ranked = list(best.values())
        ranked.sort(key=lambda c: (-c.score, c.scene_id))
        return ranked[:top_k]

    def match_instances(
        self,
        scene_id: str,
        vectors: np.ndarray,
        modality: str,
        threshold: float = 0.5,
    ) -> InstanceMatching:
        """Match observed objects (M, D) to the scene's instances: cosine + Hungarian.

        A pair scoring below ``threshold`` is left unmatched rather than forced: objects that
        appeared or vanished since the scan are the normal case in a lived-in building.
        """
        vectors = np.asarray(vectors, np.float32)
        if vectors.size == 0:
            vectors = vectors.reshape(0, self.instance_dim)
        query = (
            normalise_rows(check_vectors(vectors, self.instance_dim, "query"))
            if len(vectors)
            else vectors
        )
        ids, stored = self.instance_embeddings(scene_id, modality)
        return hungarian_match(query, ids, stored, threshold)

    def scene_data(self, scene_id: str) -> SceneData:
        """All of one scene, for export to another map."""
        record = self.scene(scene_id)
        instances = self.instances(scene_id)
        by_id = {inst["id"]: inst for inst in instances}
        for modality in self.modalities():
            ids, matrix = self.instance_embeddings(scene_id, modality)
            for inst_id, vector in zip(ids, matrix, strict=True):
                by_id[inst_id].setdefault("embeddings", {})[modality] = vector
        return SceneData(
            record, self.scene_embeddings(scene_id), instances, self.point_cloud(scene_id)
        )

    def describe(self) -> dict:
        """Counts for ``map info``."""
        scenes = self.scenes()
        return {
            "map": str(self.path),
            "schema_version": SCHEMA_VERSION if self.has_provenance else MIGRATABLE_SCHEMA_VERSION,
            "model": self.model_fingerprint,
            "embedding_dim": self.embedding_dim,
            "instance_dim": self.instance_dim,
            "modalities": self.modalities(),
            "buildings": sorted({s.building_id for s in scenes}),
            "scenes": len(scenes),
        }


class RoomTable:
    """Which room each scene belongs to, and each room's scans newest first."""

    def __init__(self, records: list[SceneRecord]) -> None:
        self.scans: dict[tuple[str, str], list[SceneRecord]] = {}
        for record in sorted(records, key=newest_first_key, reverse=True):
            self.scans.setdefault((record.building_id, record.room_id), []).append(record)
        self.room_of = {scan.scene_id: room for room, scans in self.scans.items() for scan in scans}
        self.newest = {room: scans[0].scene_id for room, scans in self.scans.items()}
        self.most_scans = max((len(s) for s in self.scans.values()), default=0)

    def first_scan(self, scene_id: str) -> str:
        """The id of the oldest scan of ``scene_id``'s room (the id a room's ground truth
        names); ``scene_id`` itself if the map lacks it."""
        room = self.room_of.get(scene_id)
        return self.scans[room][-1].scene_id if room is not None else scene_id


_SCENE_SELECT = (
    "SELECT scene_id, building_id, room_id, scan_index, scan_time, frame, frame_to_building,"
    " {provenance} FROM {{s}}.scenes"
)


def _record(row: tuple) -> SceneRecord:
    pose = None if row[6] is None else tuple(json.loads(row[6]))
    return SceneRecord(row[0], row[1], row[2], row[3], row[4], row[5], pose, row[7], row[8] or "")
