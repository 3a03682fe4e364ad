"""A room's scans over time: provenance, schema-2 migration, one answer per room."""

import sqlite3

import numpy as np
import pytest

from crossover_ros.errors import MapDatabaseError
from crossover_ros.mapdb import SCHEMA_VERSION, SceneRecord, SQLiteMapDatabase


def _unit(rng, n, dim=8):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _downgrade_to_schema_2(path):
    """What a map written before provenance looks like: no parent_scene/source, version 2."""
    with sqlite3.connect(path) as raw:
        raw.execute("ALTER TABLE scenes DROP COLUMN parent_scene")
        raw.execute("ALTER TABLE scenes DROP COLUMN source")
        raw.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    raw.close()


def _columns(path):
    with sqlite3.connect(path) as raw:
        names = [row[1] for row in raw.execute("PRAGMA table_info(scenes)")]
        version = raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    raw.close()
    return names, version[0]


def test_provenance_round_trip(tmp_path):
    path = tmp_path / "map.sqlite"
    rng = np.random.default_rng(0)
    with SQLiteMapDatabase.create(path, "m", 8) as db:
        db.add_scene(SceneRecord("k", "b", "kitchen", source="map build"), {"rgb": _unit(rng, 2)})
        db.add_scene(
            SceneRecord("k@1", "b", "kitchen", 1, 100.0, parent_scene="k", source="bag walk"),
            {"rgb": _unit(rng, 2)},
        )
    with SQLiteMapDatabase.open(path, read_only=True) as db:
        assert db.scene("k@1").parent_scene == "k"
        assert db.scene("k@1").source == "bag walk"
        assert db.scene("k").parent_scene is None
        assert db.scene("k").source == "map build"
        assert db.describe()["schema_version"] == SCHEMA_VERSION == 3


def test_scans_newest_first_by_time_then_index(tmp_path):
    rng = np.random.default_rng(1)
    with SQLiteMapDatabase.create(tmp_path / "map.sqlite", "m", 8) as db:
        for record in (
            SceneRecord("a", "b", "r", 0, None),
            SceneRecord("a@2", "b", "r", 2, 50.0),
            SceneRecord("a@1", "b", "r", 1, 50.0),
            SceneRecord("a@3", "b", "r", 3, 10.0),  # higher index, older time
            SceneRecord("x", "b", "other", 0, 999.0),
        ):
            db.add_scene(record, {"rgb": _unit(rng, 1)})
        assert [s.scene_id for s in db.scans("b", "r")] == ["a@2", "a@1", "a@3", "a"]
        assert db.rooms().first_scan("a@2") == "a"


def test_schema_2_map_opens_read_only_and_migrates_when_writable(tmp_path):
    path = tmp_path / "old.sqlite"
    rng = np.random.default_rng(2)
    vectors = _unit(rng, 3)
    with SQLiteMapDatabase.create(path, "m", 8) as db:
        db.add_scene(SceneRecord("s", "b", "r", 0, 5.0), {"rgb": vectors})
    _downgrade_to_schema_2(path)
    assert _columns(path) == (_columns(path)[0], "2")
    assert "parent_scene" not in _columns(path)[0]

    with SQLiteMapDatabase.open(path, "m", read_only=True) as db:
        assert not db.has_provenance
        record = db.scene("s")
        assert (record.parent_scene, record.source, record.scan_time) == (None, "", 5.0)
        assert db.query(vectors, "rgb", by_room=True)[0].scene_id == "s"
        assert db.describe()["schema_version"] == 2
    assert _columns(path)[1] == "2"  # a reader changes nothing

    with SQLiteMapDatabase.open(path, "m") as db:  # writable: migrated
        assert db.has_provenance
        db.add_scene(
            SceneRecord("s@1", "b", "r", 1, 6.0, parent_scene="s", source="node update"),
            {"rgb": _unit(rng, 1)},
        )
    names, version = _columns(path)
    assert version == str(SCHEMA_VERSION)
    assert names[-2:] == ["parent_scene", "source"]
    with SQLiteMapDatabase.open(path, "m", read_only=True) as db:
        assert db.scene("s@1").parent_scene == "s"
        assert db.scene("s").source == ""


def test_older_schemas_still_say_rebuild(tmp_path):
    path = tmp_path / "old.sqlite"
    SQLiteMapDatabase.create(path, "m", 8).close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    raw.close()
    with pytest.raises(MapDatabaseError, match=r"schema version 1.*rebuild"):
        SQLiteMapDatabase.open(path)


def test_by_room_names_the_newest_scan_and_scores_by_the_best(tmp_path):
    e = np.eye(4, dtype=np.float32)
    with SQLiteMapDatabase.create(tmp_path / "map.sqlite", "m", 4) as db:
        db.add_scene(SceneRecord("r1", "b", "one", 0), {"rgb": e[[0]]})
        db.add_scene(SceneRecord("r1@1", "b", "one", 1, 10.0, "r1"), {"rgb": e[[1]]})
        db.add_scene(SceneRecord("r2", "b", "two", 0), {"rgb": (e[[0]] + e[[2]]) / 2**0.5})
        query = e[[0]]
        plain = db.query(query, "rgb", top_k=3)
        assert [c.scene_id for c in plain] == ["r1", "r2", "r1@1"]
        ranked = db.query(query, "rgb", top_k=3, by_room=True)
        # room one: named by its newest scan, scored by its old scan that matches best
        assert [(c.scene_id, c.room_id) for c in ranked] == [("r1@1", "one"), ("r2", "two")]
        assert ranked[0].score == pytest.approx(1.0)
        assert ranked[1].score == pytest.approx(0.5**0.5)
        assert [c.scene_id for c in db.query(query, "rgb", top_k=1, by_room=True)] == ["r1@1"]
        db.remove_scene("r1@1")  # the map forgets the rescan: the old scan names the room again
        assert db.query(query, "rgb", top_k=1, by_room=True)[0].scene_id == "r1"


def test_by_room_equals_plain_query_with_one_scan_per_room(tmp_path):
    rng = np.random.default_rng(3)
    with SQLiteMapDatabase.create(tmp_path / "map.sqlite", "m", 8) as db:
        for i in range(12):
            db.add_scene(SceneRecord(f"s{i}", f"b{i % 2}", f"r{i}"), {"rgb": _unit(rng, 3)})
        for _ in range(5):
            query = _unit(rng, 4)
            for top_k in (1, 5, 20):
                for building in (None, "b1"):
                    assert db.query(query, "rgb", top_k, building, by_room=True) == db.query(
                        query, "rgb", top_k, building
                    )
