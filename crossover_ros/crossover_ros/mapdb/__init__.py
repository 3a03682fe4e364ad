"""The map database: a building's scans as embeddings, built once and queried many times."""

from crossover_ros.mapdb.database import SCHEMA_VERSION, MapDatabase, SceneCandidate, SceneRecord

__all__ = ["SCHEMA_VERSION", "MapDatabase", "SceneCandidate", "SceneRecord"]
