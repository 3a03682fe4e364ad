"""Embedded map database: one SQLite file (WAL, one transaction per scene) + an in-memory matrix.

Each scene stores, per modality, a small set of unit vectors (for the image baseline: one per
mapped frame). A query of several vectors (the robot's keyframe window) scores every scene by
the mean over query vectors of the best cosine similarity among the scene's vectors.
The file records its schema version and the fingerprint of the model that made the vectors, so
a query with another model or an old file fails loudly instead of giving wrong answers.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crossover_ros.errors import MapDatabaseError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE scenes (
    scene_id TEXT PRIMARY KEY,
    building_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    scan_index INTEGER NOT NULL
);
CREATE TABLE embeddings (
    scene_id TEXT NOT NULL REFERENCES scenes(scene_id) ON DELETE CASCADE,
    modality TEXT NOT NULL,
    vectors BLOB NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (scene_id, modality)
);
CREATE TABLE instances (
    scene_id TEXT NOT NULL REFERENCES scenes(scene_id) ON DELETE CASCADE,
    instance_id INTEGER NOT NULL,
    label TEXT NOT NULL,
    centroid TEXT NOT NULL,
    PRIMARY KEY (scene_id, instance_id)
);
"""


@dataclass(frozen=True)
class SceneRecord:
    """Identity of one stored scan."""

    scene_id: str
    building_id: str
    room_id: str
    scan_index: int = 0


@dataclass(frozen=True)
class SceneCandidate:
    scene_id: str
    score: float


class MapDatabase:
    """Open with :meth:`create` or :meth:`open`; use as a context manager."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection
        self._search_cache: dict[str, tuple[list[str], np.ndarray, np.ndarray]] = {}

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, model_fingerprint: str, embedding_dim: int) -> MapDatabase:
        """A new, empty database; refuses to overwrite an existing file."""
        path = Path(path)
        if path.exists():
            raise MapDatabaseError(f"{path} already exists; remove it or choose another path")
        path.parent.mkdir(parents=True, exist_ok=True)
        db = cls._connect(path)
        with db:
            db.executescript(_SCHEMA)
            db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("model_fingerprint", model_fingerprint),
                    ("embedding_dim", str(int(embedding_dim))),
                ],
            )
        return cls(path, db)

    @classmethod
    def open(cls, path: str | Path, model_fingerprint: str | None = None) -> MapDatabase:
        """Open an existing database, checking its schema and (if given) the model fingerprint."""
        path = Path(path)
        if not path.is_file():
            raise MapDatabaseError(f"map database {path} not found; build it with 'map build'")
        try:
            db = cls._connect(path)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as err:
            raise MapDatabaseError(f"{path} is not a readable map database ({err})") from err
        version = int(meta.get("schema_version", -1))
        if version != SCHEMA_VERSION:
            db.close()
            raise MapDatabaseError(
                f"{path} has schema version {version}, this crossover_ros reads {SCHEMA_VERSION}:"
                " rebuild the map with 'crossover_ros map build'"
            )
        stored = meta.get("model_fingerprint")
        if model_fingerprint is not None and stored != model_fingerprint:
            db.close()
            raise MapDatabaseError(
                f"{path} was built with model {stored}, but the query model is "
                f"{model_fingerprint}: rebuild the map with the same model"
            )
        return cls(path, db)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> MapDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- metadata --------------------------------------------------------------------------
    def _meta(self, key: str) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise MapDatabaseError(f"{self.path} lacks '{key}' in its metadata")
        return row[0]

    @property
    def model_fingerprint(self) -> str:
        return self._meta("model_fingerprint")

    @property
    def embedding_dim(self) -> int:
        return int(self._meta("embedding_dim"))

    def scenes(self) -> list[SceneRecord]:
        rows = self._db.execute(
            "SELECT scene_id, building_id, room_id, scan_index FROM scenes ORDER BY scene_id"
        )
        return [SceneRecord(*row) for row in rows]

    def modalities(self) -> list[str]:
        rows = self._db.execute("SELECT DISTINCT modality FROM embeddings ORDER BY modality")
        return [row[0] for row in rows]

    def instances(self, scene_id: str) -> list[dict]:
        rows = self._db.execute(
            "SELECT instance_id, label, centroid FROM instances WHERE scene_id = ?"
            " ORDER BY instance_id",
            (scene_id,),
        )
        return [{"id": i, "label": label, "centroid": json.loads(c)} for i, label, c in rows]

    # -- writing ---------------------------------------------------------------------------
    def add_scene(
        self,
        record: SceneRecord,
        embeddings: dict[str, np.ndarray],
        instances: list[dict] | None = None,
    ) -> None:
        """Store one scene atomically: a crash leaves either all of it or none."""
        dim = self.embedding_dim
        rows = []
        for modality, vectors in embeddings.items():
            vectors = np.asarray(vectors, dtype=np.float32)
            if vectors.ndim != 2 or vectors.shape[1] != dim or len(vectors) == 0:
                raise MapDatabaseError(
                    f"scene {record.scene_id}: '{modality}' vectors must be (K>0, {dim}),"
                    f" got {vectors.shape}"
                )
            if not np.isfinite(vectors).all():
                raise MapDatabaseError(f"scene {record.scene_id}: non-finite '{modality}' vectors")
            rows.append((record.scene_id, modality, vectors.tobytes(), len(vectors)))
        try:
            with self._db:
                self._db.execute(
                    "INSERT INTO scenes VALUES (?, ?, ?, ?)",
                    (record.scene_id, record.building_id, record.room_id, record.scan_index),
                )
                self._db.executemany("INSERT INTO embeddings VALUES (?, ?, ?, ?)", rows)
                self._db.executemany(
                    "INSERT INTO instances VALUES (?, ?, ?, ?)",
                    [
                        (
                            record.scene_id,
                            int(inst["id"]),
                            inst["label"],
                            json.dumps(inst["centroid"]),
                        )
                        for inst in instances or []
                    ],
                )
        except sqlite3.IntegrityError as err:
            raise MapDatabaseError(f"scene {record.scene_id} is already in {self.path}") from err
        self._search_cache.clear()

    # -- querying --------------------------------------------------------------------------
    def _search_matrix(self, modality: str) -> tuple[list[str], np.ndarray, np.ndarray]:
        """All vectors of one modality as one matrix, with each scene's first row index."""
        if modality not in self._search_cache:
            rows = self._db.execute(
                "SELECT scene_id, vectors, count FROM embeddings WHERE modality = ?"
                " ORDER BY scene_id",
                (modality,),
            ).fetchall()
            dim = self.embedding_dim
            ids = [row[0] for row in rows]
            blocks = [np.frombuffer(row[1], dtype=np.float32).reshape(row[2], dim) for row in rows]
            matrix = np.concatenate(blocks) if blocks else np.zeros((0, dim), np.float32)
            starts = np.cumsum([0] + [row[2] for row in rows[:-1]]).astype(np.int64)
            self._search_cache[modality] = (ids, matrix, starts)
        return self._search_cache[modality]

    def query(self, vectors: np.ndarray, modality: str, top_k: int = 5) -> list[SceneCandidate]:
        """Rank scenes for query vectors (Q, D), best first."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if vectors.shape[1] != self.embedding_dim:
            raise MapDatabaseError(
                f"query vectors have dimension {vectors.shape[1]}, the map {self.embedding_dim}"
            )
        ids, matrix, starts = self._search_matrix(modality)
        if not ids:
            return []
        similarity = vectors @ matrix.T  # (Q, N)
        best_per_scene = np.maximum.reduceat(similarity, starts, axis=1)  # (Q, S)
        scores = best_per_scene.mean(axis=0)
        order = np.argsort(-scores)[:top_k]
        return [SceneCandidate(ids[i], float(scores[i])) for i in order]
