"""Choosing a backend from a path or a URL, and copying maps between backends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from crossover_ros.errors import MapDatabaseError
from crossover_ros.mapdb.base import MapBase
from crossover_ros.mapdb.postgres import PostgresMapDatabase
from crossover_ros.mapdb.sqlite import SQLiteMapDatabase


def is_postgres_url(location: str | Path) -> bool:
    return str(location).startswith(("postgresql://", "postgres://"))


def open_map(
    location: str | Path,
    model_fingerprint: str | None = None,
    *,
    password_file: str = "",
    read_only: bool = False,
) -> MapBase:
    """A SQLite file path or a ``postgresql://...[#map_name]`` URL; ``password_file`` holds
    the PostgreSQL password (default: libpq's PGPASSWORD, PGPASSFILE or ~/.pgpass).
    ``read_only``: a SQLite file is opened as a reader only (works on a read-only filesystem)."""
    if is_postgres_url(location):
        return PostgresMapDatabase.open(
            str(location), model_fingerprint, password_file=password_file
        )
    return SQLiteMapDatabase.open(location, model_fingerprint, read_only=read_only)


def create_map(
    location: str | Path,
    model_fingerprint: str,
    embedding_dim: int,
    instance_dim: int | None = None,
    *,
    password_file: str = "",
) -> MapBase:
    if is_postgres_url(location):
        return PostgresMapDatabase.create(
            str(location),
            model_fingerprint,
            embedding_dim,
            instance_dim,
            password_file=password_file,
        )
    return SQLiteMapDatabase.create(location, model_fingerprint, embedding_dim, instance_dim)


def open_or_create_map(location: str | Path, encoder: Any, password_file: str = "") -> MapBase:
    """The map to record into: opened for ``encoder``'s model (a map of another model is
    refused), or created for it where a SQLite file does not exist yet."""
    if not is_postgres_url(location) and not Path(location).exists():
        return create_map(location, encoder.fingerprint, encoder.dim, encoder.instance_dim)
    return open_map(location, encoder.fingerprint, password_file=password_file)


def copy_map(
    source: MapBase,
    target: MapBase,
    batch: int = 256,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Copy every scene of ``source`` missing from ``target``; returns how many were copied.

    Both maps must come from the same model: mixing embedding spaces gives wrong answers.
    """
    if (source.model_fingerprint, source.embedding_dim, source.instance_dim) != (
        target.model_fingerprint,
        target.embedding_dim,
        target.instance_dim,
    ):
        raise MapDatabaseError(
            f"{source.path} holds model {source.model_fingerprint}"
            f" ({source.embedding_dim}/{source.instance_dim}-d scene/instance vectors),"
            f" {target.path} model {target.model_fingerprint}"
            f" ({target.embedding_dim}/{target.instance_dim}-d):"
            " copy only between maps of the same model"
        )
    present = {s.scene_id for s in target.scenes()}
    todo = [s.scene_id for s in source.scenes() if s.scene_id not in present]
    for begin in range(0, len(todo), batch):
        chunk = [source.scene_data(scene_id) for scene_id in todo[begin : begin + batch]]
        target.add_scenes(chunk)
        if progress is not None:
            progress(len(chunk))
    return len(todo)
