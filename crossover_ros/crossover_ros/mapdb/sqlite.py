"""Embedded map database: one SQLite file (WAL, one transaction per write) + in-memory search.

The file records its schema version and the fingerprint of the model that made the vectors, so
a query with another model or a file of another schema fails loudly instead of giving wrong
answers. Every scene is written in one transaction: a process killed mid-build leaves a file
that opens and holds every scene committed before the kill. Readers in other processes see new
scenes on their next query (``PRAGMA data_version``).
"""

from __future__ import annotations

import json
import sqlite3
import struct
import threading
import time
from pathlib import Path

import numpy as np

from crossover_ros.errors import MapDatabaseError, MapNotFoundError
from crossover_ros.mapdb.base import MapBase, fingerprint_error, schema_error
from crossover_ros.mapdb.records import (
    MIGRATABLE_SCHEMA_VERSION,
    SCHEMA_VERSION,
    SceneCandidate,
    SceneData,
    check_embeddings,
    check_instances,
    decode_cloud,
    encode_cloud,
)
from crossover_ros.mapdb.search import ModalityIndex, SearchCfg

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE buildings (building_id TEXT PRIMARY KEY);
CREATE TABLE modalities (bit INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE scenes (
    scene_id TEXT PRIMARY KEY,
    building_id TEXT NOT NULL REFERENCES buildings(building_id),
    room_id TEXT NOT NULL,
    scan_index INTEGER NOT NULL,
    scan_time REAL,
    frame TEXT NOT NULL,
    frame_to_building TEXT,
    modality_mask INTEGER NOT NULL,
    added_at REAL NOT NULL,
    parent_scene TEXT,
    source TEXT NOT NULL DEFAULT ''
);
CREATE INDEX scenes_building ON scenes(building_id);
CREATE TABLE scene_embeddings (
    scene_id TEXT NOT NULL REFERENCES scenes(scene_id) ON DELETE CASCADE,
    modality TEXT NOT NULL,
    count INTEGER NOT NULL,
    vectors BLOB NOT NULL,
    PRIMARY KEY (scene_id, modality)
);
CREATE TABLE instances (
    scene_id TEXT NOT NULL REFERENCES scenes(scene_id) ON DELETE CASCADE,
    instance_id INTEGER NOT NULL,
    label TEXT NOT NULL,
    centroid TEXT NOT NULL,
    box_min TEXT,
    box_max TEXT,
    PRIMARY KEY (scene_id, instance_id)
);
CREATE TABLE instance_embeddings (
    scene_id TEXT NOT NULL,
    instance_id INTEGER NOT NULL,
    modality TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (scene_id, instance_id, modality),
    FOREIGN KEY (scene_id, instance_id) REFERENCES instances(scene_id, instance_id)
        ON DELETE CASCADE
);
CREATE TABLE scene_clouds (
    scene_id TEXT PRIMARY KEY REFERENCES scenes(scene_id) ON DELETE CASCADE,
    num_points INTEGER NOT NULL,
    data BLOB NOT NULL
);
"""

# schema 2 -> 3: the scans' provenance, appended so both schemas keep one column order
_MIGRATION_3 = (
    "ALTER TABLE scenes ADD COLUMN parent_scene TEXT",
    "ALTER TABLE scenes ADD COLUMN source TEXT NOT NULL DEFAULT ''",
)

_SQLITE_MAGIC = b"SQLite format 3\x00"


def _check_header(path: Path) -> None:
    """Catch a truncated file before SQLite half-reads it (the header states the page count)."""
    with path.open("rb") as file:
        header = file.read(100)
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise MapDatabaseError(f"{path} is not a map database (no SQLite header)")
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    change_counter, pages = struct.unpack(">II", header[24:32])
    valid_for = struct.unpack(">I", header[92:96])[0]
    wal = path.with_name(path.name + "-wal")
    wal_pending = wal.exists() and wal.stat().st_size > 0
    if valid_for == change_counter and not wal_pending and path.stat().st_size < page_size * pages:
        raise MapDatabaseError(
            f"{path} is truncated ({path.stat().st_size} of {page_size * pages} bytes):"
            " restore it or rebuild the map"
        )


_TABLES = ("meta", "buildings", "modalities", "scenes", "scene_embeddings", "instances")
_TABLES += ("instance_embeddings", "scene_clouds")


def _wal_mode(path: Path) -> bool:
    """Whether the file's header says WAL (file format versions 2 at offsets 18-19)."""
    with path.open("rb") as file:
        header = file.read(20)
    return header[18:20] == b"\x02\x02"


def _check_tables(db: sqlite3.Connection, path: Path, tables: tuple[str, ...] = _TABLES) -> None:
    """Say which tables a map lacks rather than SQLite's 'no such table: meta'."""
    names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    missing = [name for name in tables if name not in names]
    if not missing:
        return
    wal = path.with_name(path.name + "-wal")
    hint = (
        f"was it copied without its {wal.name} file (a map being written keeps recent scenes"
        f" there)? Copy {wal.name} beside it, or rebuild it with 'map build'"
        if not wal.exists()
        else "rebuild it with 'map build'"
    )
    what = "no map tables" if not names else f"no {', '.join(missing)} table"
    raise MapDatabaseError(f"{path} is an SQLite file with {what}: {hint}")


def _open_error(path: Path, err: sqlite3.DatabaseError, read_only: bool) -> MapDatabaseError:
    """A failure to open: a permission or lock problem is not a damaged map."""
    text = str(err)
    if isinstance(err, sqlite3.OperationalError) and any(
        word in text for word in ("unable to open", "readonly", "read-only", "locked", "denied")
    ):
        advice = (
            "check the file and its folder are readable"
            if read_only
            else "the map and its folder must be writable to add to it (a node only reading it"
            " opens it read-only)"
        )
        return MapDatabaseError(f"cannot open map database {path} ({text}): {advice}")
    return MapDatabaseError(f"{path} is not a readable map database ({text})")


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Schema 2 -> 3 in one transaction (a concurrent opener may have done it already)."""
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is not None and row[0] == str(MIGRATABLE_SCHEMA_VERSION):
                for statement in _MIGRATION_3:
                    db.execute(statement)
                db.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    except sqlite3.DatabaseError as err:
        raise MapDatabaseError(
            f"cannot migrate {path} from schema {MIGRATABLE_SCHEMA_VERSION} to {SCHEMA_VERSION}"
            f" ({err}): open it read-only, or make it writable"
        ) from err


class SQLiteMapDatabase(MapBase):
    """The embedded backend; open with :meth:`create` or :meth:`open`, use as a context manager."""

    def __init__(
        self, path: Path, connection: sqlite3.Connection, search: SearchCfg | None = None
    ) -> None:
        self.path = path
        self._db = connection
        self._lock = threading.RLock()
        self._search_cfg = search or SearchCfg()
        self._search_cache: dict[str, ModalityIndex] = {}
        self._data_version = -1
        self._writes = 0  # own commits, which PRAGMA data_version does not count
        self._writable = True
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        self.model_fingerprint = meta["model_fingerprint"]
        self.embedding_dim = int(meta["embedding_dim"])
        # maps made before instance vectors could differ in width have one width for both
        self.instance_dim = int(meta.get("instance_dim", self.embedding_dim))

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        model_fingerprint: str,
        embedding_dim: int,
        instance_dim: int | None = None,
        search: SearchCfg | None = None,
    ) -> SQLiteMapDatabase:
        """A new, empty database; refuses to overwrite an existing file. ``instance_dim`` is
        the width of instance vectors (default: ``embedding_dim``, that of scene vectors)."""
        path = Path(path)
        if path.exists():
            raise MapDatabaseError(
                f"{path} already exists; choose another path ('map build --resume' adds the"
                " scenes it lacks, '--overwrite' replaces it)"
            )
        instance_dim = embedding_dim if instance_dim is None else instance_dim
        if min(int(embedding_dim), int(instance_dim)) < 1:
            raise MapDatabaseError(
                f"vector widths must be positive, got {embedding_dim} and {instance_dim}"
            )
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
                    ("instance_dim", str(int(instance_dim))),
                    ("created_at", str(time.time())),
                ],
            )
        return cls(path, db, search)

    @classmethod
    def open(
        cls,
        path: str | Path,
        model_fingerprint: str | None = None,
        search: SearchCfg | None = None,
        verify: bool = False,
        read_only: bool = False,
    ) -> SQLiteMapDatabase:
        """Open an existing database, checking its schema and (if given) the model fingerprint.

        ``verify`` also runs SQLite's page-level ``quick_check`` (seconds on a large map).
        ``read_only`` opens it as a reader only (the node, ``map info``, ``eval``): nothing is
        written beside or into the file, so a map on a read-only filesystem opens.
        """
        path = Path(path)
        if not path.is_file():
            raise MapNotFoundError(f"map database {path} not found; build it with 'map build'")
        _check_header(path)
        db = None
        try:
            db = cls._connect_read_only(path) if read_only else cls._connect(path)
            _check_tables(db, path, ("meta",))
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if verify:
                result = db.execute("PRAGMA quick_check").fetchone()[0]
                if result != "ok":
                    raise sqlite3.DatabaseError(result)
        except (sqlite3.DatabaseError, MapDatabaseError) as err:
            if db is not None:
                db.close()
            if isinstance(err, MapDatabaseError):
                raise
            raise _open_error(path, err, read_only) from err
        try:
            version = int(meta.get("schema_version", -1))
        except ValueError:
            version = -1
        provenance = version == SCHEMA_VERSION
        if version == MIGRATABLE_SCHEMA_VERSION and not read_only:
            try:
                _migrate(db, path)
            except MapDatabaseError:
                db.close()
                raise
            provenance = True
        elif version not in (SCHEMA_VERSION, MIGRATABLE_SCHEMA_VERSION):
            db.close()
            raise schema_error(str(path), version)
        stored = meta.get("model_fingerprint")
        if model_fingerprint is not None and stored != model_fingerprint:
            db.close()
            raise fingerprint_error(str(path), str(stored), model_fingerprint)
        try:
            _check_tables(db, path)
        except MapDatabaseError:
            db.close()
            raise
        out = cls(path, db, search)
        out._writable = not read_only
        out.has_provenance = provenance
        return out

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, timeout=30.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: committed scenes survive kill -9
        db.execute("PRAGMA foreign_keys=ON")
        return db

    @staticmethod
    def _connect_read_only(path: Path) -> sqlite3.Connection:
        """``mode=ro``: no write, no journal switch. A WAL-mode file with no ``-wal`` beside it
        has no writer and nothing pending: it is opened ``immutable`` as SQLite would otherwise
        create ``-wal``/``-shm`` files beside it (impossible on a read-only filesystem)."""
        uri = f"{path.resolve().as_uri()}?mode=ro"
        if _wal_mode(path) and not path.with_name(path.name + "-wal").exists():
            uri += "&immutable=1"
        return sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30.0)

    def close(self) -> None:
        if self._writable:
            # Back to a rollback journal at rest: readers then open the file without creating
            # -wal/-shm files. Skipped (at once, not after a busy wait) while others use it.
            try:
                self._db.execute("PRAGMA busy_timeout=0")
                self._db.execute("PRAGMA journal_mode=DELETE")
            except sqlite3.DatabaseError:
                pass
        self._db.close()

    def discard(self) -> None:
        self.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    # -- reading ---------------------------------------------------------------------------
    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.DatabaseError as err:
                raise MapDatabaseError(f"{self.path} cannot be read ({err})") from err

    def _fetch(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self._rows(sql.replace("{s}.", ""), args)

    @property
    def writable(self) -> bool:
        return self._writable

    def _cache_token(self) -> object:
        with self._lock:
            return (self._db.execute("PRAGMA data_version").fetchone()[0], self._writes)

    def _modality_bits(self) -> dict[str, int]:
        return {name: bit for bit, name in self._rows("SELECT bit, name FROM modalities")}

    def scene_embeddings(self, scene_id: str) -> dict[str, np.ndarray]:
        rows = self._rows(
            "SELECT modality, count, vectors FROM scene_embeddings WHERE scene_id = ?",
            (scene_id,),
        )
        return {
            m: self._unpack(blob, count, self.embedding_dim, scene_id) for m, count, blob in rows
        }

    def _unpack(self, blob: bytes, count: int, dim: int, scene_id: str) -> np.ndarray:
        if len(blob) != count * dim * 4:
            raise MapDatabaseError(f"{self.path}: corrupt vectors of scene {scene_id}")
        return np.frombuffer(blob, dtype=np.float32).reshape(count, dim)

    def instance_embeddings(self, scene_id: str, modality: str) -> tuple[list[int], np.ndarray]:
        rows = self._rows(
            "SELECT instance_id, vector FROM instance_embeddings"
            " WHERE scene_id = ? AND modality = ? ORDER BY instance_id",
            (scene_id, modality),
        )
        if not rows:
            return [], np.zeros((0, self.instance_dim), np.float32)
        matrix = np.stack(
            [self._unpack(blob, 1, self.instance_dim, scene_id)[0] for _, blob in rows]
        )
        return [r[0] for r in rows], matrix

    def point_cloud(self, scene_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        rows = self._rows("SELECT data FROM scene_clouds WHERE scene_id = ?", (scene_id,))
        return decode_cloud(rows[0][0], scene_id) if rows else None

    # -- writing ---------------------------------------------------------------------------
    def add_scenes(self, scenes: list[SceneData]) -> None:
        """Store scenes in one transaction (all or none): batches make bulk imports fast."""
        prepared = [
            (
                data,
                check_embeddings(data.record, data.embeddings, self.embedding_dim),
                check_instances(data.record, data.instances, self.instance_dim),
            )
            for data in scenes
        ]
        with self._lock:
            try:
                with self._db:
                    bits = self._modality_bits()
                    for data, embeddings, instances in prepared:
                        self._insert(data, embeddings, instances, bits)
            except sqlite3.IntegrityError as err:
                ids = ", ".join(d.record.scene_id for d in scenes[:3])
                raise MapDatabaseError(
                    f"scene {ids} is already in {self.path} (or inconsistent: {err})"
                ) from err
            except sqlite3.DatabaseError as err:
                raise MapDatabaseError(f"{self.path} cannot be written ({err})") from err
            self._search_cache.clear()
            self._writes += 1

    def _insert(
        self,
        data: SceneData,
        embeddings: dict[str, np.ndarray],
        instances: list[dict],
        bits: dict[str, int],
    ) -> None:
        record = data.record
        names = set(embeddings) | {m for inst in instances for m in inst.get("embeddings", {})}
        for name in sorted(names - set(bits)):
            bits[name] = len(bits)
            if bits[name] >= 62:
                raise MapDatabaseError(f"{self.path}: too many modalities (at most 62)")
            self._db.execute("INSERT INTO modalities VALUES (?, ?)", (bits[name], name))
        mask = 0
        for name in embeddings:
            mask |= 1 << bits[name]
        self._db.execute("INSERT OR IGNORE INTO buildings VALUES (?)", (str(record.building_id),))
        pose = record.frame_to_building
        self._db.execute(
            "INSERT INTO scenes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.scene_id,
                str(record.building_id),
                str(record.room_id),
                int(record.scan_index),
                None if record.scan_time is None else float(record.scan_time),
                record.frame,
                None if pose is None else json.dumps([float(v) for v in pose]),
                mask,
                time.time(),
                record.parent_scene,
                record.source,
            ),
        )
        self._db.executemany(
            "INSERT INTO scene_embeddings VALUES (?, ?, ?, ?)",
            [(record.scene_id, m, len(v), v.tobytes()) for m, v in embeddings.items()],
        )
        self._db.executemany(
            "INSERT INTO instances VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    record.scene_id,
                    inst["id"],
                    inst["label"],
                    json.dumps(inst["centroid"]),
                    json.dumps(inst["box_min"]) if "box_min" in inst else None,
                    json.dumps(inst["box_max"]) if "box_max" in inst else None,
                )
                for inst in instances
            ],
        )
        self._db.executemany(
            "INSERT INTO instance_embeddings VALUES (?, ?, ?, ?)",
            [
                (record.scene_id, inst["id"], m, v.tobytes())
                for inst in instances
                for m, v in inst.get("embeddings", {}).items()
            ],
        )
        if data.cloud is not None:
            xyz, rgb = data.cloud
            self._db.execute(
                "INSERT INTO scene_clouds VALUES (?, ?, ?)",
                (record.scene_id, len(xyz), encode_cloud(xyz, rgb)),
            )

    def remove_scene(self, scene_id: str) -> None:
        """Delete a scene with its embeddings, instances and point cloud."""
        with self._lock:
            with self._db:
                deleted = self._db.execute(
                    "DELETE FROM scenes WHERE scene_id = ?", (scene_id,)
                ).rowcount
                self._db.execute(
                    "DELETE FROM buildings WHERE building_id NOT IN"
                    " (SELECT DISTINCT building_id FROM scenes)"
                )
            self._search_cache.clear()
            self._writes += 1
        if not deleted:
            raise MapDatabaseError(f"no scene {scene_id} in {self.path}")

    # -- querying --------------------------------------------------------------------------
    def _index(self, modality: str) -> ModalityIndex:
        """The modality's search index, reloaded when any connection has committed since."""
        with self._lock:
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            if version != self._data_version:
                self._search_cache.clear()
                self._data_version = version
            if modality not in self._search_cache:
                rows = self._rows(
                    "SELECT e.scene_id, s.building_id, s.room_id, e.count, e.vectors"
                    " FROM scene_embeddings e JOIN scenes s USING (scene_id)"
                    " WHERE e.modality = ? ORDER BY e.scene_id",
                    (modality,),
                )
                dim = self.embedding_dim
                counts = np.array([row[3] for row in rows], np.int64)
                if any(len(row[4]) != row[3] * dim * 4 for row in rows):
                    raise MapDatabaseError(f"{self.path}: corrupt '{modality}' vectors")
                matrix = np.frombuffer(b"".join(row[4] for row in rows), np.float32)
                self._search_cache[modality] = ModalityIndex(
                    [row[0] for row in rows],
                    [row[1] for row in rows],
                    [row[2] for row in rows],
                    matrix.reshape(-1, dim),
                    counts,
                    self._search_cfg,
                )
            return self._search_cache[modality]

    def _search(
        self, vectors: np.ndarray, modality: str, top_k: int, building_id: str | None
    ) -> list[SceneCandidate]:
        index = self._index(modality)
        if not index.scene_ids:
            return []
        scenes, scores = index.search(vectors, top_k, building_id)
        return [
            SceneCandidate(
                index.scene_ids[i], float(s), str(index.building_ids[i]), index.room_ids[i]
            )
            for i, s in zip(scenes, scores, strict=True)
        ]
