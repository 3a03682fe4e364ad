"""Map database v2: both backends through one API, crash safety, concurrency, bad files."""

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading

import numpy as np
import pytest

from crossover_ros.errors import MapDatabaseError
from crossover_ros.mapdb import SceneRecord, SearchCfg, SQLiteMapDatabase, copy_map, open_map
from crossover_ros.mapdb.search import ModalityIndex


def _unit(rng, n, dim=8):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def pg_url():
    pgserver = pytest.importorskip("pgserver", reason="pgserver not installed")
    pytest.importorskip("psycopg", reason="psycopg not installed")
    folder = tempfile.mkdtemp(prefix="pg")
    try:
        server = pgserver.get_server(folder, cleanup_mode="stop")
    except Exception as err:  # any start failure means: no server here, skip
        pytest.skip(f"pgserver could not start a PostgreSQL server: {err}")
    yield server.get_uri()
    server.cleanup()


_counter = iter(range(10_000))


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "map.sqlite")
    return f"{request.getfixturevalue('pg_url')}#m{next(_counter)}"


def _create(location, fingerprint="model-a", dim=8):
    from crossover_ros.mapdb import create_map

    return create_map(location, fingerprint, dim)


def _fill(db, rng, n=12):
    scenes = {}
    for i in range(n):
        vectors = _unit(rng, 1 + i % 3)
        inst = _unit(rng, 3)
        scenes[f"s{i:02d}"] = (vectors, inst)
        db.add_scene(
            SceneRecord(f"s{i:02d}", "b1" if i < 6 else "b2", f"r{i}", i % 2, 1700000000.0 + i),
            {"rgb": vectors, "point_cloud": vectors[:1]},
            [
                {
                    "id": k + 1,
                    "label": "chair",
                    "centroid": [0.0, 1.0, float(k)],
                    "box_min": [0.0, 0.0, 0.0],
                    "box_max": [1.0, 1.0, 1.0],
                    "embeddings": {"rgb": inst[k]},
                }
                for k in range(3)
            ],
            cloud=(rng.random((50, 3)).astype(np.float32), np.full((50, 3), 7, np.uint8)),
        )
    return scenes


def test_round_trip_queries_and_matching(location):
    rng = np.random.default_rng(0)
    with _create(location) as db:
        scenes = _fill(db, rng)
    with open_map(location, "model-a") as db:
        assert [s.scene_id for s in db.scenes()] == sorted(scenes)
        assert db.modalities() == ["point_cloud", "rgb"]
        assert db.scene("s03").scan_time == pytest.approx(1700000003.0)
        assert db.scene_modalities("s03") == ["point_cloud", "rgb"]
        assert db.instances("s03")[0]["box_max"] == [1.0, 1.0, 1.0]
        xyz, rgb = db.point_cloud("s03")
        assert xyz.shape == (50, 3) and rgb.dtype == np.uint8
        for scene_id, (vectors, _) in scenes.items():
            ranked = db.query(vectors, "rgb", top_k=3)
            assert ranked[0].scene_id == scene_id
            assert ranked[0].score == pytest.approx(1.0, abs=1e-4)
            # cross-modal: the stored point_cloud row of the scene
            assert db.query(vectors[:1], "point_cloud", top_k=1)[0].scene_id == scene_id
        only_b2 = db.query(scenes["s01"][0], "rgb", top_k=20, building_id="b2")
        assert {c.building_id for c in only_b2} == {"b2"} and len(only_b2) == 6
        # instance matching: two seen objects (one noisy), one unknown object, one vanished
        stored = scenes["s04"][1]
        seen = np.stack([stored[2], stored[0] + 0.05, -stored[1]])
        result = db.match_instances("s04", seen, "rgb", threshold=0.5)
        assert [(m.query_index, m.instance_id) for m in result.matches] == [(0, 3), (1, 1)]
        assert result.unmatched_queries == [2] and result.unmatched_instances == [2]
        db.remove_scene("s00")
        assert "s00" not in {s.scene_id for s in db.scenes()}
        with pytest.raises(MapDatabaseError, match="no scene"):
            db.remove_scene("s00")


def test_wrong_model_and_schema_on_both_backends(location):
    _create(location).close()
    with pytest.raises(MapDatabaseError, match="rebuild the map with the same model"):
        open_map(location, "model-b")
    with pytest.raises(MapDatabaseError, match="already"):
        _create(location)


def test_export_import_between_backends(tmp_path, pg_url):
    rng = np.random.default_rng(1)
    lite = tmp_path / "a.sqlite"
    with _create(lite) as db:
        scenes = _fill(db, rng, n=5)
    url = f"{pg_url}#exported"
    back = tmp_path / "b.sqlite"
    with open_map(lite) as source, _create(url) as target:
        assert copy_map(source, target) == 5
        assert copy_map(source, target) == 0  # import adds only missing scenes
    with open_map(url) as source, _create(back) as target:
        copy_map(source, target)
    with open_map(lite) as a, open_map(back) as b:
        assert a.scenes() == b.scenes()
        for scene_id in scenes:
            x, y = a.scene_data(scene_id), b.scene_data(scene_id)
            plain = [{k: v for k, v in i.items() if k != "embeddings"} for i in x.instances]
            assert plain == [{k: v for k, v in i.items() if k != "embeddings"} for i in y.instances]
            for i, j in zip(x.instances, y.instances, strict=True):
                np.testing.assert_allclose(
                    i["embeddings"]["rgb"], j["embeddings"]["rgb"], atol=1e-6
                )
            np.testing.assert_allclose(x.embeddings["rgb"], y.embeddings["rgb"], atol=1e-6)
            np.testing.assert_array_equal(x.cloud[1], y.cloud[1])
    with (
        _create(tmp_path / "other.sqlite", "model-b") as other,
        open_map(lite) as source,
        pytest.raises(MapDatabaseError, match="same model"),
    ):
        copy_map(source, other)


def test_v1_file_asks_for_rebuild(tmp_path):
    path = tmp_path / "v1.sqlite"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        raw.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [("schema_version", "1"), ("model_fingerprint", "m"), ("embedding_dim", "8")],
        )
    with pytest.raises(MapDatabaseError, match=r"schema version 1.*rebuild"):
        SQLiteMapDatabase.open(path)


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "t.sqlite"
    with SQLiteMapDatabase.create(path, "m", 64) as db:
        _ = [
            db.add_scene(SceneRecord(f"s{i}", "b", "r"), {"rgb": np.ones((40, 64))})
            for i in range(20)
        ]
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MapDatabaseError, match="truncated"):
        SQLiteMapDatabase.open(path)


_WRITER = """
import sys, numpy as np
from crossover_ros.mapdb import SQLiteMapDatabase, SceneRecord
with SQLiteMapDatabase.create(sys.argv[1], "m", 16) as db:
    for i in range(100000):
        db.add_scene(SceneRecord(f"s{i:05d}", "b", "r"), {"rgb": np.ones((4, 16), np.float32)},
                     [{"id": 1, "label": "x", "centroid": [0, 0, 0]}])
        print(f"s{i:05d}", flush=True)
"""


def test_kill_minus_9_mid_build_keeps_committed_scenes(tmp_path):
    path = tmp_path / "k.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    committed = [proc.stdout.readline().strip() for _ in range(40)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with SQLiteMapDatabase.open(path, "m") as db:
        stored = {s.scene_id for s in db.scenes()}
        assert set(committed) <= stored
        for scene_id in stored:
            assert db.instances(scene_id) == [{"id": 1, "label": "x", "centroid": [0, 0, 0]}]
            assert db.scene_embeddings(scene_id)["rgb"].shape == (4, 16)


def test_concurrent_readers_while_a_writer_adds_scenes(tmp_path):
    path = tmp_path / "c.sqlite"
    rng = np.random.default_rng(3)
    vectors = _unit(rng, 60)
    SQLiteMapDatabase.create(path, "m", 8).close()
    errors, seen_counts = [], []
    done = threading.Event()

    def reader():
        try:
            with SQLiteMapDatabase.open(path, "m") as db:
                while not done.is_set():
                    found = db.query(vectors[0], "rgb", top_k=100)
                    seen_counts.append(len(found))
                    if found:
                        assert found[0].scene_id == "s00"
        except Exception as err:  # reported below, not swallowed
            errors.append(err)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    with SQLiteMapDatabase.open(path, "m") as writer:
        for i, v in enumerate(vectors):
            writer.add_scene(SceneRecord(f"s{i:02d}", "b", "r"), {"rgb": v[None]})
    done.set()
    for t in threads:
        t.join()
    assert not errors
    with SQLiteMapDatabase.open(path, "m") as db:
        assert len(db.query(vectors[0], "rgb", top_k=100)) == 60


def test_ivf_search_finds_what_exact_search_finds():
    rng = np.random.default_rng(4)
    centres = _unit(rng, 200, dim=32)
    matrix = np.repeat(centres, 20, axis=0) + 0.06 * rng.normal(size=(4000, 32))
    matrix = (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)
    ids = [f"s{i}" for i in range(4000)]
    index = ModalityIndex(ids, ["b"] * 4000, ["r"] * 4000, matrix, np.ones(4000), SearchCfg(
        ivf_min_rows=1, rows_per_cell=64, nprobe=8))  # fmt: skip
    recalls = []
    for q in matrix[rng.integers(0, 4000, 30)]:
        exact, _ = index.exact(q[None], 10)
        approx, _ = index.search(q[None], 10)
        recalls.append(len(set(exact) & set(approx)) / 10)
    assert np.mean(recalls) >= 0.9


def test_ivf_search_with_several_rows_per_scene_agrees_with_exact_search():
    """Multi-row scenes (one row per mapped frame) score by their best row, also after the
    IVF cells reorder the matrix; a building filter then still searches exactly."""
    rng = np.random.default_rng(5)
    counts = rng.integers(1, 5, 600)
    matrix = _unit(rng, int(counts.sum()), dim=32).astype(np.float32)
    ids = [f"s{i}" for i in range(600)]
    buildings = ["a" if i % 2 else "b" for i in range(600)]
    cfg = SearchCfg(ivf_min_rows=1, rows_per_cell=32, nprobe=64)  # every cell: exact
    index = ModalityIndex(ids, buildings, ["r"] * 600, matrix, counts, cfg)
    reference = ModalityIndex(ids, buildings, ["r"] * 600, matrix.copy(), counts, cfg)
    query = matrix[[3, 10]]
    exact_scenes, exact_scores = reference.exact(query, 10)
    ivf_scenes, ivf_scores = index.search(query, 10)
    np.testing.assert_array_equal(ivf_scenes, exact_scenes)
    np.testing.assert_allclose(ivf_scores, exact_scores, rtol=1e-5)
    filtered, _ = index.search(query, 5, building_id="a")
    assert all(buildings[s] == "a" for s in filtered)
    np.testing.assert_array_equal(filtered, reference.search(query, 5, building_id="a")[0])


def _small_map(path):
    with SQLiteMapDatabase.create(path, "m", 8) as db:
        db.add_scene(SceneRecord("s00", "b", "r"), {"rgb": _unit(np.random.default_rng(0), 2)})


def _sidecars(path):
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


@pytest.mark.parametrize("journal", ["as_written", "wal_at_rest"])
def test_read_only_open_writes_nothing(tmp_path, journal, capsys):
    from crossover_ros.cli.main import main

    path = tmp_path / "ro.sqlite"
    _small_map(path)
    if journal == "wal_at_rest":  # a map left in WAL mode by an older version
        with sqlite3.connect(path) as raw:
            raw.execute("PRAGMA journal_mode=WAL")
        raw.close()
    assert _sidecars(path) == []
    before = (path.stat().st_mtime_ns, path.read_bytes())
    with open_map(path, "m", read_only=True) as db:
        assert [s.scene_id for s in db.scenes()] == ["s00"]
        assert len(db.query(_unit(np.random.default_rng(0), 1), "rgb")) == 1
        with pytest.raises(MapDatabaseError, match="readonly"):  # opened mode=ro, really
            db.add_scene(SceneRecord("s01", "b", "r"), {"rgb": _unit(np.random.default_rng(1), 1)})
    assert main(["map", "info", str(path)]) == 0
    assert "scenes: 1" in capsys.readouterr().out
    assert _sidecars(path) == [], "no -wal/-shm created beside a map only read"
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before


def test_a_reader_sees_scenes_a_writer_adds_later(tmp_path):
    path = tmp_path / "live.sqlite"
    _small_map(path)
    with SQLiteMapDatabase.open(path, "m", read_only=True) as reader:
        with SQLiteMapDatabase.open(path, "m") as writer:
            writer.add_scene(
                SceneRecord("s01", "b", "r"), {"rgb": _unit(np.random.default_rng(1), 1)}
            )
        assert [s.scene_id for s in reader.scenes()] == ["s00", "s01"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_a_map_on_a_read_only_folder_opens_read_only(tmp_path):
    folder = tmp_path / "image"
    folder.mkdir()
    path = folder / "ro.sqlite"
    _small_map(path)
    path.chmod(0o444)
    folder.chmod(0o555)
    try:
        with open_map(path, "m", read_only=True) as db:
            assert len(db.scenes()) == 1
        with pytest.raises(MapDatabaseError) as info:
            open_map(path, "m").scenes()
        assert "not a readable map database" not in str(info.value)
    finally:
        folder.chmod(0o755)


def test_a_permission_problem_is_not_called_a_damaged_map(tmp_path, monkeypatch):
    path = tmp_path / "ok.sqlite"
    _small_map(path)

    def refuse(_path):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(SQLiteMapDatabase, "_connect", staticmethod(refuse))
    with pytest.raises(MapDatabaseError) as info:
        SQLiteMapDatabase.open(path)
    assert "not a readable map database" not in str(info.value)
    assert "cannot open map database" in str(info.value) and "read-only" in str(info.value)


def _downgrade(db, location):
    """The map as schema 2 wrote it: no provenance columns, version 2."""
    if location.startswith("postgres"):
        with db._transaction() as raw:
            s = db._schema
            raw.execute(f"ALTER TABLE {s}.scenes DROP COLUMN parent_scene, DROP COLUMN source")
            raw.execute(f"UPDATE {s}.meta SET value = '2' WHERE key = 'schema_version'")
        db.close()
    else:
        db.close()
        with sqlite3.connect(location) as raw:
            raw.execute("ALTER TABLE scenes DROP COLUMN parent_scene")
            raw.execute("ALTER TABLE scenes DROP COLUMN source")
            raw.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        raw.close()


def test_scans_by_room_and_schema_2_migration_on_both_backends(location):
    rng = np.random.default_rng(7)
    old, new, other = _unit(rng, 1), _unit(rng, 1), _unit(rng, 1)
    db = _create(location)
    db.add_scene(SceneRecord("k", "b", "kitchen", 0, 10.0, source="map build"), {"rgb": old})
    db.add_scene(SceneRecord("o", "b", "office", 0, 10.0), {"rgb": other})
    _downgrade(db, location)
    with open_map(location) as db:  # writable: migrated to schema 3
        assert db.has_provenance and db.scene("k").source == ""
        db.add_scene(
            SceneRecord("k@1", "b", "kitchen", 1, 20.0, parent_scene="k", source="bag x"),
            {"rgb": new},
        )
    with open_map(location, read_only=True) as db:
        assert [s.scene_id for s in db.scans("b", "kitchen")] == ["k@1", "k"]
        assert (db.scene("k@1").parent_scene, db.scene("k@1").source) == ("k", "bag x")
        ranked = db.query(old, "rgb", top_k=2, by_room=True)
        assert [c.scene_id for c in ranked] == ["k@1", "o"]  # named by the newest scan
        assert ranked[0].score == pytest.approx(1.0)  # scored by the old scan that fits
        assert db.describe()["schema_version"] == 3
