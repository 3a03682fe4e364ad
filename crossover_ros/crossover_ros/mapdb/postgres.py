"""Fleet backend: PostgreSQL + pgvector, so many robots share one map server.

Scene rows live in one table with a ``vector(D)`` column and one partial HNSW index (cosine) per
modality; a query asks the index for candidate scenes and scores them exactly in numpy, so the
scores equal the embedded backend's. Connect with a libpq URL; credentials come from libpq's
environment (PGPASSWORD, PGPASSFILE, ~/.pgpass) or a service file, and every message shows the
URL with any password masked. Several maps share a server as PostgreSQL schemas: the URL's
fragment names one (``postgresql://host/db#office_maps``; default ``crossover_map``).
"""

from __future__ import annotations

import json
import re
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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

DEFAULT_SCHEMA = "crossover_map"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class PgSearchCfg:
    """HNSW parameters (pgvector's defaults are m=16, ef_construction=64, ef_search=40)."""

    m: int = 16
    ef_construction: int = 64
    ef_search: int = 100
    candidates_per_row: int = 40  # index hits per query row before exact re-scoring
    maintenance_work_mem: str = "1GB"  # HNSW builds are slow once the graph exceeds it


def _credentials_span(url: str) -> tuple[int, int] | None:
    """Where ``user[:password]`` lies in ``url``: between ``://`` and the last ``@`` (a password
    may hold an unencoded ``/``, ``?``, ``#`` or ``@``, so the URL's own parsing cannot find it)."""
    start = url.find("://")
    end = url.rfind("@")
    if start < 0 or end < start + 3:
        return None
    return start + 3, end


def _password_of(url: str) -> str:
    span = _credentials_span(url)
    secret = ""
    if span is not None:
        user_info = url[span[0] : span[1]]
        secret = user_info.partition(":")[2]
    match = re.search(r"password=([^&\s#]*)", url)
    return secret or (match.group(1) if match else "")


def redact_url(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    span = _credentials_span(url)
    if span is not None:
        user = url[span[0] : span[1]].partition(":")[0]
        url = (
            f"{url[: span[0]]}{user}:***{url[span[1] :]}" if ":" in url[span[0] : span[1]] else url
        )
    return re.sub(r"(password=)[^&\s]*", r"\1***", url)


def _redact_quoted(quoted: str, url: str) -> str:
    """A quoted piece of a driver message: masked where it is part of ``url``'s credentials
    (libpq quotes whatever it stopped parsing at, maybe the middle of a password)."""
    span = _credentials_span(url)
    at = url.find(quoted) if quoted else -1
    if span is None or at < 0 or at >= span[1] or at + len(quoted) <= span[0]:
        return quoted
    return redact_url(quoted) if "://" in quoted else "<part of the connection string>"


def redact_text(text: str, url: str) -> str:
    """``text`` (a driver's error message, which may quote the URL) without ``url``'s password."""
    secret = _password_of(url)
    text = re.sub(r'"([^"]*)"', lambda m: f'"{_redact_quoted(m.group(1), url)}"', str(text))
    text = re.sub(r"[a-z][a-z0-9+.-]*://\S+", lambda m: redact_url(m.group(0)), text)
    text = re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", text)
    return text.replace(secret, "***") if secret else text


def driver_message(err: BaseException, url: str) -> str:
    """The first line of a driver error, with no password in it."""
    lines = str(err).strip().splitlines()
    return redact_text(lines[0], url) if lines else type(err).__name__


def _split_schema(url: str) -> tuple[str, str]:
    span = _credentials_span(url)
    after = span[1] if span is not None else 0  # a '#' in the password is not the map name
    fragment_at = url.find("#", after)
    if fragment_at < 0:
        base, fragment = url, ""
    else:
        base, fragment = url[:fragment_at], url[fragment_at + 1 :]
    schema = fragment or DEFAULT_SCHEMA
    if not _IDENT.match(schema):
        raise MapDatabaseError(
            f"map name '{redact_text(schema, url)}' must be a lowercase SQL identifier"
        )
    return base, schema


def read_password_file(path: str) -> str:
    """The password in ``path`` (its first line), for a ``map.password_file`` setting."""
    try:
        lines = Path(path).expanduser().read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not text"
        raise MapDatabaseError(f"cannot read password_file {path}: {reason}") from None
    if not lines or not lines[0]:
        raise MapDatabaseError(f"password_file {path} is empty")
    return lines[0]


def _psycopg():
    try:
        import pgvector.psycopg  # noqa: F401  (the binary vector adapter, registered per connection)
        import psycopg
    except ImportError as err:
        raise MapDatabaseError(
            "the PostgreSQL backend needs psycopg and pgvector:"
            " pip install 'psycopg[binary]' pgvector"
        ) from err
    return psycopg


def _stack(vectors: list) -> np.ndarray:
    """(N, D) float32 from pgvector ``Vector`` objects."""
    return np.stack([v.to_numpy() for v in vectors]).astype(np.float32, copy=False)


class PostgresMapDatabase(MapBase):
    """The fleet backend; same API as :class:`~crossover_ros.mapdb.sqlite.SQLiteMapDatabase`."""

    def __init__(self, url: str, connection, schema: str, cfg: PgSearchCfg | None = None):
        self.path = redact_url(url)
        self._url = url  # for redacting driver messages; never shown
        self._db = connection
        self._schema = schema
        self._cfg = cfg or PgSearchCfg()
        self._lock = threading.RLock()
        # pgvector's adapter: vectors travel as binary float32 <-> numpy, not as text.
        from pgvector.psycopg import register_vector

        with self._lock:
            register_vector(connection)
        meta = dict(self._fetch("SELECT key, value FROM {s}.meta"))
        self.model_fingerprint = meta["model_fingerprint"]
        self.embedding_dim = int(meta["embedding_dim"])
        self.instance_dim = int(meta.get("instance_dim", self.embedding_dim))

    # -- opening ---------------------------------------------------------------------------
    @staticmethod
    def _connect(url: str, password_file: str = ""):
        """A connection; the password from ``password_file`` if given, else from the URL or
        libpq's environment (PGPASSWORD, PGPASSFILE, ~/.pgpass)."""
        psycopg = _psycopg()
        extra = {"password": read_password_file(password_file)} if password_file else {}
        try:
            return psycopg.connect(url, connect_timeout=10, **extra)
        except psycopg.Error as err:
            message = driver_message(err, url)
            if extra:
                message = message.replace(extra["password"], "***")
            raise MapDatabaseError(
                f"cannot connect to {redact_url(url)}: {message} (credentials come from"
                " map.password_file, PGPASSWORD, PGPASSFILE or ~/.pgpass)"
            ) from None

    @classmethod
    def create(
        cls,
        url: str,
        model_fingerprint: str,
        embedding_dim: int,
        instance_dim: int | None = None,
        cfg: PgSearchCfg | None = None,
        password_file: str = "",
    ) -> PostgresMapDatabase:
        """A new map in its own schema of the server; refuses to overwrite an existing map."""
        base, schema = _split_schema(url)
        dim = int(embedding_dim)
        instance_dim = dim if instance_dim is None else int(instance_dim)
        if not 1 <= dim <= 2000:
            raise MapDatabaseError(f"pgvector HNSW indexes take 1..2000 dimensions, got {dim}")
        if instance_dim < 1:
            raise MapDatabaseError(f"instance_dim must be positive, got {instance_dim}")
        db = cls._connect(base, password_file)
        psycopg = _psycopg()
        try:
            with db.transaction():
                exists = _map_exists(db, schema)
                if exists:
                    raise MapDatabaseError(
                        f"{redact_url(url)} already holds map '{schema}'; choose another name,"
                        " add the scenes it lacks with 'map build --resume', or remove it"
                        f" (DROP SCHEMA {schema} CASCADE)"
                    )
                db.execute("CREATE EXTENSION IF NOT EXISTS vector")
                db.execute(_PG_SCHEMA.format(s=schema, d=dim, di=instance_dim))
                db.cursor().executemany(
                    f"INSERT INTO {schema}.meta VALUES (%s, %s)",
                    [
                        ("schema_version", str(SCHEMA_VERSION)),
                        ("model_fingerprint", model_fingerprint),
                        ("embedding_dim", str(dim)),
                        ("instance_dim", str(instance_dim)),
                        ("created_at", str(time.time())),
                    ],
                )
        except psycopg.Error as err:
            db.close()
            raise MapDatabaseError(
                f"cannot create map on {redact_url(url)}: {driver_message(err, url)}"
            ) from None
        except MapDatabaseError:
            db.close()
            raise
        return cls(url, db, schema, cfg)

    @classmethod
    def open(
        cls,
        url: str,
        model_fingerprint: str | None = None,
        cfg: PgSearchCfg | None = None,
        password_file: str = "",
    ) -> PostgresMapDatabase:
        """Connect to an existing map, checking its schema and (if given) the model."""
        base, schema = _split_schema(url)
        db = cls._connect(base, password_file)
        psycopg = _psycopg()
        try:
            with db.transaction():
                exists = _map_exists(db, schema)
                meta = (
                    dict(db.execute(f"SELECT key, value FROM {schema}.meta").fetchall())
                    if exists
                    else None
                )
        except psycopg.Error as err:
            db.close()
            raise MapDatabaseError(
                f"{redact_url(url)} cannot be read: {driver_message(err, url)}"
            ) from None
        where = f"{redact_url(base)} map '{schema}'"
        if meta is None:
            db.close()
            raise MapNotFoundError(f"{where} not found; build it with 'map build' or 'map export'")
        try:
            version = int(meta.get("schema_version", -1))
        except ValueError:
            version = -1
        if version not in (SCHEMA_VERSION, MIGRATABLE_SCHEMA_VERSION):
            db.close()
            raise schema_error(where, version)
        if model_fingerprint is not None and meta.get("model_fingerprint") != model_fingerprint:
            db.close()
            raise fingerprint_error(where, str(meta.get("model_fingerprint")), model_fingerprint)
        provenance = True
        if version == MIGRATABLE_SCHEMA_VERSION:
            try:  # in one transaction; a role that may not ALTER reads it as schema 2
                with db.transaction():
                    db.execute(
                        f"ALTER TABLE {schema}.scenes ADD COLUMN IF NOT EXISTS parent_scene TEXT,"
                        " ADD COLUMN IF NOT EXISTS source TEXT NOT NULL DEFAULT ''"
                    )
                    db.execute(
                        f"UPDATE {schema}.meta SET value = %s WHERE key = 'schema_version'",
                        (str(SCHEMA_VERSION),),
                    )
            except psycopg.Error:
                provenance = False
        out = cls(url, db, schema, cfg)
        out.has_provenance = provenance
        return out

    def close(self) -> None:
        self._db.close()

    def discard(self) -> None:
        try:
            with self._transaction() as db:
                db.execute(f"DROP SCHEMA IF EXISTS {self._schema} CASCADE")
        finally:
            self.close()

    # -- plumbing --------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[object]:
        psycopg = _psycopg()
        with self._lock:
            try:
                with self._db.transaction():
                    yield self._db
            except psycopg.errors.UniqueViolation as err:
                message = driver_message(err, self._url)
                raise MapDatabaseError(
                    f"{self.path}: scene already in the map ({message})"
                ) from None
            except psycopg.Error as err:
                raise MapDatabaseError(f"{self.path}: {driver_message(err, self._url)}") from None

    def _fetch(self, sql: str, args: tuple = (), binary: bool = False) -> list[tuple]:
        """Rows of a query; ``binary`` fetches vectors as float32 bytes rather than text."""
        with self._transaction() as db:
            sql = sql.replace("?", "%s").format(s=self._schema)
            return db.execute(sql, args, binary=binary).fetchall()

    def _cache_token(self) -> object:
        """Scenes are only added or removed (never edited): their count and newest addition
        change with every write, from any client of the server."""
        return tuple(self._fetch("SELECT count(*), max(added_at) FROM {s}.scenes")[0])

    # -- reading ---------------------------------------------------------------------------
    def scene_embeddings(self, scene_id: str) -> dict[str, np.ndarray]:
        rows = self._fetch(
            "SELECT modality, embedding FROM {s}.scene_embeddings WHERE scene_id = %s"
            " ORDER BY modality, row_index",
            (scene_id,),
            binary=True,
        )
        out: dict[str, list[np.ndarray]] = {}
        for modality, vector in rows:
            out.setdefault(modality, []).append(vector.to_numpy())
        return {m: np.stack(v) for m, v in out.items()}

    def instance_embeddings(self, scene_id: str, modality: str) -> tuple[list[int], np.ndarray]:
        rows = self._fetch(
            "SELECT instance_id, embedding FROM {s}.instance_embeddings"
            " WHERE scene_id = %s AND modality = %s ORDER BY instance_id",
            (scene_id, modality),
            binary=True,
        )
        if not rows:
            return [], np.zeros((0, self.instance_dim), np.float32)
        return [r[0] for r in rows], _stack([r[1] for r in rows])

    def point_cloud(self, scene_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        rows = self._fetch("SELECT data FROM {s}.scene_clouds WHERE scene_id = %s", (scene_id,))
        return decode_cloud(bytes(rows[0][0]), scene_id) if rows else None

    # -- writing ---------------------------------------------------------------------------
    def add_scenes(self, scenes: list[SceneData]) -> None:
        """Store scenes in one transaction; vectors go in by binary COPY, indexes follow."""
        s = self._schema
        prepared = [
            (
                data,
                check_embeddings(data.record, data.embeddings, self.embedding_dim),
                check_instances(data.record, data.instances, self.instance_dim),
            )
            for data in scenes
        ]
        with self._transaction() as db:
            bits = dict(db.execute(f"SELECT name, bit FROM {s}.modalities").fetchall())
            names = sorted(
                {m for _, emb, _ in prepared for m in emb}
                | {m for _, _, insts in prepared for i in insts for m in i.get("embeddings", {})}
            )
            for name in names:
                if name not in bits:
                    bits[name] = len(bits)
                    db.execute(f"INSERT INTO {s}.modalities VALUES (%s, %s)", (bits[name], name))
            db.cursor().executemany(
                f"INSERT INTO {s}.buildings VALUES (%s) ON CONFLICT DO NOTHING",
                [(b,) for b in sorted({str(d.record.building_id) for d, _, _ in prepared})],
            )
            now = time.time()
            with db.cursor().copy(f"COPY {s}.scenes FROM STDIN") as copy:
                for data, emb, _ in prepared:
                    r = data.record
                    pose = r.frame_to_building
                    mask = sum(1 << bits[m] for m in emb)
                    copy.write_row(
                        (
                            r.scene_id,
                            str(r.building_id),
                            str(r.room_id),
                            int(r.scan_index),
                            r.scan_time,
                            r.frame,
                            None if pose is None else json.dumps([float(v) for v in pose]),
                            mask,
                            now,
                            r.parent_scene,
                            r.source,
                        )
                    )
            rows = [
                (data.record.scene_id, m, i, v)
                for data, emb, _ in prepared
                for m, vectors in emb.items()
                for i, v in enumerate(vectors)
            ]
            self._copy_vectors(db, f"{s}.scene_embeddings", rows, self.embedding_dim)
            instances = [(d.record.scene_id, inst) for d, _, insts in prepared for inst in insts]
            if instances:
                with db.cursor().copy(f"COPY {s}.instances FROM STDIN") as copy:
                    for scene_id, inst in instances:
                        copy.write_row(
                            (
                                scene_id,
                                inst["id"],
                                inst["label"],
                                json.dumps(inst["centroid"]),
                                json.dumps(inst["box_min"]) if "box_min" in inst else None,
                                json.dumps(inst["box_max"]) if "box_max" in inst else None,
                            )
                        )
                inst_rows = [
                    (scene_id, m, inst["id"], v)
                    for scene_id, inst in instances
                    for m, v in inst.get("embeddings", {}).items()
                ]
                self._copy_vectors(db, f"{s}.instance_embeddings", inst_rows, self.instance_dim)
            for data, _, _ in prepared:
                if data.cloud is not None:
                    xyz, rgb = data.cloud
                    db.execute(
                        f"INSERT INTO {s}.scene_clouds VALUES (%s, %s, %s)",
                        (data.record.scene_id, len(xyz), encode_cloud(xyz, rgb)),
                    )
            for name in {m for _, emb, _ in prepared for m in emb}:
                self._ensure_index(db, name, bits[name])

    def _copy_vectors(
        self, db, table: str, rows: list[tuple[str, str, int, np.ndarray]], dim: int
    ) -> None:
        """Binary COPY of (scene_id, modality, int, vector) rows: the fast path for big maps."""
        if not rows:
            return
        vec_head = struct.pack(">ihh", 4 + 4 * dim, dim, 0)
        chunks = [b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)]
        for scene_id, modality, number, vector in rows:
            sid, mod = scene_id.encode(), modality.encode()
            chunks.append(
                struct.pack(">hi", 4, len(sid))
                + sid
                + struct.pack(">i", len(mod))
                + mod
                + struct.pack(">ii", 4, int(number))
                + vec_head
                + vector.astype(">f4").tobytes()
            )
        chunks.append(struct.pack(">h", -1))
        columns = (
            "(scene_id, modality, row_index, embedding)"
            if table.endswith("scene_embeddings")
            else "(scene_id, modality, instance_id, embedding)"
        )
        with db.cursor().copy(f"COPY {table} {columns} FROM STDIN (FORMAT BINARY)") as copy:
            for begin in range(0, len(chunks), 4096):
                copy.write(b"".join(chunks[begin : begin + 4096]))

    def _ensure_index(self, db, modality: str, bit: int) -> None:
        """One partial HNSW index per modality, so a query never filters after the index."""
        s = self._schema
        name = f"scene_hnsw_{bit}"
        exists = db.execute(
            "SELECT 1 FROM pg_indexes WHERE schemaname = %s AND indexname = %s", (s, name)
        ).fetchone()
        if exists:
            return
        literal = modality.replace("'", "''")  # checked name; quoted all the same
        db.execute(f"SET LOCAL maintenance_work_mem = '{self._cfg.maintenance_work_mem}'")
        db.execute(
            f"CREATE INDEX {name} ON {s}.scene_embeddings USING hnsw (embedding vector_cosine_ops)"
            f" WITH (m = {int(self._cfg.m)}, ef_construction = {int(self._cfg.ef_construction)})"
            f" WHERE modality = '{literal}'"
        )

    def remove_scene(self, scene_id: str) -> None:
        s = self._schema
        with self._transaction() as db:
            deleted = db.execute(f"DELETE FROM {s}.scenes WHERE scene_id = %s", (scene_id,))
            db.execute(
                f"DELETE FROM {s}.buildings WHERE building_id NOT IN"
                f" (SELECT DISTINCT building_id FROM {s}.scenes)"
            )
        if not deleted.rowcount:
            raise MapDatabaseError(f"no scene {scene_id} in {self.path}")

    # -- querying --------------------------------------------------------------------------
    def _search(
        self, vectors: np.ndarray, modality: str, top_k: int, building_id: str | None
    ) -> list[SceneCandidate]:
        s = self._schema
        literal = modality.replace("'", "''")
        limit = max(top_k, self._cfg.candidates_per_row)
        candidates: set[str] = set()
        with self._transaction() as db:
            db.execute(f"SET LOCAL hnsw.ef_search = {max(int(self._cfg.ef_search), limit)}")
            if building_id is not None:
                # A building is small: scan it exactly rather than filter an index's answers.
                db.execute("SET LOCAL enable_indexscan = off")
            for vector in vectors:
                if building_id is None:
                    rows = db.execute(
                        f"SELECT scene_id FROM {s}.scene_embeddings WHERE modality = '{literal}'"
                        " ORDER BY embedding <=> %s LIMIT %s",
                        (vector, limit),
                    ).fetchall()
                else:
                    rows = db.execute(
                        f"SELECT e.scene_id FROM {s}.scene_embeddings e JOIN {s}.scenes c"
                        f" USING (scene_id) WHERE e.modality = '{literal}' AND c.building_id = %s"
                        " ORDER BY e.embedding <=> %s LIMIT %s",
                        (building_id, vector, limit),
                    ).fetchall()
                candidates.update(r[0] for r in rows)
            if not candidates:
                return []
            rows = db.execute(
                f"SELECT e.scene_id, c.building_id, c.room_id, e.embedding"
                f" FROM {s}.scene_embeddings e JOIN {s}.scenes c USING (scene_id)"
                f" WHERE e.modality = '{literal}' AND e.scene_id = ANY(%s)"
                " ORDER BY e.scene_id, e.row_index",
                (sorted(candidates),),
                binary=True,
            ).fetchall()
        ids: list[str] = []
        info: list[tuple[str, str]] = []
        counts: list[int] = []
        for scene_id, building, room, _ in rows:
            if not ids or ids[-1] != scene_id:
                ids.append(scene_id)
                info.append((building, room))
                counts.append(0)
            counts[-1] += 1
        matrix = _stack([r[3] for r in rows])
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        scores = np.maximum.reduceat(vectors @ matrix.T, starts, axis=1).mean(axis=0)
        order = sorted(range(len(ids)), key=lambda i: (-scores[i], ids[i]))[:top_k]
        return [SceneCandidate(ids[i], float(scores[i]), *info[i]) for i in order]


_PG_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE {s}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE {s}.buildings (building_id TEXT PRIMARY KEY);
CREATE TABLE {s}.modalities (bit INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE {s}.scenes (
    scene_id TEXT PRIMARY KEY,
    building_id TEXT NOT NULL REFERENCES {s}.buildings(building_id),
    room_id TEXT NOT NULL,
    scan_index INTEGER NOT NULL,
    scan_time DOUBLE PRECISION,
    frame TEXT NOT NULL,
    frame_to_building TEXT,
    modality_mask BIGINT NOT NULL,
    added_at DOUBLE PRECISION NOT NULL,
    parent_scene TEXT,
    source TEXT NOT NULL DEFAULT ''
);
CREATE INDEX ON {s}.scenes (building_id);
CREATE TABLE {s}.scene_embeddings (
    scene_id TEXT NOT NULL REFERENCES {s}.scenes(scene_id) ON DELETE CASCADE,
    modality TEXT NOT NULL,
    row_index INTEGER NOT NULL,
    embedding vector({d}) NOT NULL,
    PRIMARY KEY (scene_id, modality, row_index)
);
CREATE TABLE {s}.instances (
    scene_id TEXT NOT NULL REFERENCES {s}.scenes(scene_id) ON DELETE CASCADE,
    instance_id INTEGER NOT NULL,
    label TEXT NOT NULL,
    centroid TEXT NOT NULL,
    box_min TEXT,
    box_max TEXT,
    PRIMARY KEY (scene_id, instance_id)
);
CREATE TABLE {s}.instance_embeddings (
    scene_id TEXT NOT NULL,
    modality TEXT NOT NULL,
    instance_id INTEGER NOT NULL,
    embedding vector({di}) NOT NULL,
    PRIMARY KEY (scene_id, instance_id, modality),
    FOREIGN KEY (scene_id, instance_id) REFERENCES {s}.instances(scene_id, instance_id)
        ON DELETE CASCADE
);
CREATE TABLE {s}.scene_clouds (
    scene_id TEXT PRIMARY KEY REFERENCES {s}.scenes(scene_id) ON DELETE CASCADE,
    num_points INTEGER NOT NULL,
    data BYTEA NOT NULL
);
"""


def _map_exists(db, schema: str) -> bool:
    """Whether the server holds a map in ``schema`` (its meta table)."""
    row = db.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = 'meta'",
        (schema,),
    ).fetchone()
    return row is not None
