"""The map database: a building's scans as embeddings, built once and queried many times.

Two backends, one API: :class:`SQLiteMapDatabase` (one SQLite file, the default) and
:class:`~crossover_ros.mapdb.postgres.PostgresMapDatabase` (PostgreSQL + pgvector, for a fleet).
:func:`open_map` / :func:`create_map` pick one from a file path or a ``postgresql://`` URL.
"""

from crossover_ros.mapdb.base import MapBase
from crossover_ros.mapdb.open import (
    copy_map,
    create_map,
    is_postgres_url,
    open_map,
    open_or_create_map,
)
from crossover_ros.mapdb.records import (
    SCHEMA_VERSION,
    InstanceMatch,
    InstanceMatching,
    SceneCandidate,
    SceneData,
    SceneRecord,
)
from crossover_ros.mapdb.search import SearchCfg
from crossover_ros.mapdb.sqlite import SQLiteMapDatabase

__all__ = [
    "SCHEMA_VERSION",
    "InstanceMatch",
    "InstanceMatching",
    "MapBase",
    "SQLiteMapDatabase",
    "SceneCandidate",
    "SceneData",
    "SceneRecord",
    "SearchCfg",
    "copy_map",
    "create_map",
    "is_postgres_url",
    "open_map",
    "open_or_create_map",
]
