import sqlite3

import numpy as np
import pytest

from crossover_ros.errors import MapDatabaseError
from crossover_ros.mapdb import SceneRecord, SQLiteMapDatabase


def _unit(rng, n, dim=8):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "map.sqlite"


def test_round_trip_and_ranking(db_path):
    rng = np.random.default_rng(0)
    scenes = {f"s{i}": _unit(rng, 4) for i in range(5)}
    with SQLiteMapDatabase.create(db_path, "model-a", 8) as db:
        for scene_id, vectors in scenes.items():
            db.add_scene(
                SceneRecord(scene_id, "b", f"r{scene_id}"),
                {"rgb": vectors},
                [{"id": 3, "label": "chair", "centroid": [1.0, 2.0, 0.5]}],
            )
    with SQLiteMapDatabase.open(db_path, "model-a") as db:
        assert [s.scene_id for s in db.scenes()] == sorted(scenes)
        assert db.modalities() == ["rgb"]
        assert db.instances("s2") == [{"id": 3, "label": "chair", "centroid": [1.0, 2.0, 0.5]}]
        for scene_id, vectors in scenes.items():
            ranked = db.query(vectors[:2], "rgb", top_k=3)
            assert ranked[0].scene_id == scene_id
            assert ranked[0].score == pytest.approx(1.0, abs=1e-5)
            assert len(ranked) == 3
            assert ranked[0].score >= ranked[1].score >= ranked[2].score


def test_score_is_mean_of_best_match_per_query_vector(db_path):
    with SQLiteMapDatabase.create(db_path, "m", 2) as db:
        db.add_scene(SceneRecord("a", "b", "r"), {"rgb": np.array([[1, 0], [0, 1]], np.float32)})
        db.add_scene(SceneRecord("c", "b", "r"), {"rgb": np.array([[1, 0]], np.float32)})
        query = np.array([[1, 0], [0, 1]], np.float32)
        ranked = {c.scene_id: c.score for c in db.query(query, "rgb")}
    assert ranked["a"] == pytest.approx(1.0)
    assert ranked["c"] == pytest.approx(0.5)  # (1 + 0) / 2


def test_object_set_similarity_hand_computed():
    from crossover_ros.mapdb.search import object_set_similarity

    e = np.eye(3)
    query = np.stack([e[0], e[1]])
    scene = np.stack([e[0], e[2], (e[1] + e[2]) / np.sqrt(2)])
    # query -> scene: 1 and 0.7071; scene -> query: 1, 0 and 0.7071
    expected = 0.5 * ((1 + 0.5**0.5) / 2 + (1 + 0 + 0.5**0.5) / 3)
    assert object_set_similarity(query, scene) == pytest.approx(expected)
    assert object_set_similarity(scene, query) == pytest.approx(expected)  # symmetric
    assert object_set_similarity(query, query) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least one object"):
        object_set_similarity(query, np.zeros((0, 3)))


def _moved(xyz, yaw, shift):
    c, s = np.cos(yaw), np.sin(yaw)
    return xyz @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T + np.array([*shift, 0.0])


def test_object_layout_similarity_tells_places_apart_in_any_frame():
    """Two rooms holding the same objects, two of them elsewhere: the object-set similarity
    cannot tell which one the query is, the layout can, whatever frame the query is in."""
    from crossover_ros.mapdb.search import (
        LayoutCfg,
        object_layout_similarity,
        object_set_similarity,
    )

    rng = np.random.default_rng(0)
    objects = _unit(rng, 6)
    places = rng.uniform(0, 5, (6, 3))
    elsewhere = places.copy()
    elsewhere[[1, 4], :2] += [[2.0, 0.0], [0.0, -2.0]]
    query_xyz = _moved(places, yaw=2.0, shift=(7.0, -3.0))  # the robot's own frame
    same = object_layout_similarity(objects, query_xyz, objects, places)
    other = object_layout_similarity(objects, query_xyz, objects, elsewhere)
    assert object_set_similarity(objects, objects) == pytest.approx(1.0)  # no help: both 1
    assert same == pytest.approx(1.0 + LayoutCfg().set_weight, abs=1e-5)  # all 6 placed
    assert other == pytest.approx(4 / 6 + LayoutCfg().set_weight, abs=1e-5)  # 4 of 6
    assert object_layout_similarity(objects, places, objects, places) == pytest.approx(same)
    # one object gives no layout: only the set similarity's small share
    one = object_layout_similarity(objects[:1], places[:1], objects, places)
    weight = LayoutCfg().set_weight
    assert one == pytest.approx(weight * object_set_similarity(objects[:1], objects))
    with pytest.raises(ValueError, match="one position per object"):
        object_layout_similarity(objects, places[:3], objects, places)
    with pytest.raises(ValueError, match="at least one object"):
        object_layout_similarity(objects[:0], places[:0], objects, places)


def test_object_layout_similarity_on_large_scans_keeps_the_strongest_motions():
    from crossover_ros.mapdb.search import LayoutCfg, object_layout_similarity

    rng = np.random.default_rng(1)
    objects, places = _unit(rng, 80, dim=64), rng.uniform(0, 20, (80, 3))
    cfg = LayoutCfg(max_motions=500)  # 160 proposals: 12k pairs, far more than 500
    score = object_layout_similarity(objects, _moved(places, 0.5, (1, 2)), objects, places, cfg)
    assert score == pytest.approx(1.0 + cfg.set_weight, abs=1e-5)


def test_wrong_model_fingerprint_is_refused(db_path):
    SQLiteMapDatabase.create(db_path, "model-a", 8).close()
    with pytest.raises(MapDatabaseError, match="rebuild"):
        SQLiteMapDatabase.open(db_path, "model-b")


def test_other_schema_version_is_refused(db_path):
    SQLiteMapDatabase.create(db_path, "m", 8).close()
    with sqlite3.connect(db_path) as raw:
        raw.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(MapDatabaseError, match="schema version 99"):
        SQLiteMapDatabase.open(db_path)


@pytest.mark.parametrize("content", [b"", b"not a database at all" * 100])
def test_corrupt_or_empty_file_is_refused(db_path, content):
    db_path.write_bytes(content)
    with pytest.raises(MapDatabaseError):
        SQLiteMapDatabase.open(db_path)


def test_missing_file_and_existing_target(db_path):
    with pytest.raises(MapDatabaseError, match="not found"):
        SQLiteMapDatabase.open(db_path)
    SQLiteMapDatabase.create(db_path, "m", 8).close()
    with pytest.raises(MapDatabaseError, match="already exists"):
        SQLiteMapDatabase.create(db_path, "m", 8)


def test_bad_vectors_and_duplicates_leave_the_map_unchanged(db_path):
    rng = np.random.default_rng(1)
    with SQLiteMapDatabase.create(db_path, "m", 8) as db:
        db.add_scene(SceneRecord("a", "b", "r"), {"rgb": _unit(rng, 2)})
        with pytest.raises(MapDatabaseError, match="already"):
            db.add_scene(SceneRecord("a", "b", "r"), {"rgb": _unit(rng, 2)})
        with pytest.raises(MapDatabaseError, match="must be"):
            db.add_scene(SceneRecord("x", "b", "r"), {"rgb": _unit(rng, 2, dim=4)})
        bad = _unit(rng, 2)
        bad[0, 0] = np.nan
        with pytest.raises(MapDatabaseError, match="non-finite"):
            db.add_scene(SceneRecord("y", "b", "r"), {"rgb": bad})
        with pytest.raises(MapDatabaseError, match="dimension"):
            db.query(np.ones((1, 3), np.float32), "rgb")
        assert [s.scene_id for s in db.scenes()] == ["a"]
        assert db.query(_unit(rng, 1), "depth") == []


def test_instance_vectors_have_their_own_width(db_path):
    """CrossOver's instance vectors ([context | token]) are twice as wide as its scene vectors;
    a map made before the two widths could differ reads back with one width for both."""
    rng = np.random.default_rng(0)
    chair = {"id": 3, "label": "chair", "centroid": [0.0, 0.0, 0.0]}
    stored = _unit(rng, 1, 8)
    with SQLiteMapDatabase.create(db_path, "m", 4, instance_dim=8) as db:
        db.add_scene(
            SceneRecord("s", "b", "r"),
            {"rgb": _unit(rng, 1, 4)},
            [{**chair, "embeddings": {"point_cloud": stored[0]}}],
        )
        (match,) = db.match_instances("s", stored, "point_cloud").matches
        assert (match.query_index, match.instance_id) == (0, 3)
        with pytest.raises(MapDatabaseError, match=r"\(K>0, 8\)"):
            db.match_instances("s", _unit(rng, 1, 4), "point_cloud")
        assert db.query(_unit(rng, 1, 4), "rgb")[0].scene_id == "s"
        with pytest.raises(MapDatabaseError, match=r"\(K>0, 8\)"):  # a scene-width instance
            db.add_scene(
                SceneRecord("t", "b", "r"),
                {"rgb": _unit(rng, 1, 4)},
                [{**chair, "embeddings": {"point_cloud": _unit(rng, 1, 4)[0]}}],
            )
    with SQLiteMapDatabase.open(db_path, "m") as db:
        assert (db.embedding_dim, db.instance_dim) == (4, 8)
        ids, vectors = db.instance_embeddings("s", "point_cloud")
        assert ids == [3] and vectors.shape == (1, 8)
        assert db.instance_embeddings("t", "point_cloud")[1].shape == (0, 8)
        assert [s.scene_id for s in db.scenes()] == ["s"]  # the refused scene left nothing
    with sqlite3.connect(db_path) as raw:  # as an older version wrote it
        raw.execute("DELETE FROM meta WHERE key = 'instance_dim'")
    with SQLiteMapDatabase.open(db_path, "m") as db:
        assert db.instance_dim == 4
