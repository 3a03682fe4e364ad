"""Geometric verification: a window's fused depth re-ranks the recogniser's candidates."""

import math

import pytest

from crossover_ros.datasets.scan import load_building
from crossover_ros.errors import MapDatabaseError
from crossover_ros.pipeline.fusion import FusionCfg
from crossover_ros.pipeline.recognizer import RecognizerCfg, SceneRecognizer
from crossover_ros.pipeline.verification import GeometricVerifier, VerificationCfg

UNIQUE = "test_room002_00"  # the small building's room without a look-alike
TWINS = ["test_room000_00", "test_room001_00"]  # same template


@pytest.fixture(scope="module")
def gd_map(small_building, tmp_path_factory):
    from crossover_ros.mapdb import open_map
    from crossover_ros.mapdb.build import build_map
    from crossover_ros.model.global_descriptor import GlobalDescriptorEncoder

    path = tmp_path_factory.mktemp("verify") / "map.sqlite"
    encoder = GlobalDescriptorEncoder()
    build_map(small_building, path, encoder, progress=False).close()
    with open_map(path, encoder.fingerprint) as db:
        yield encoder, db


def _rescan(small_building, room="test_room002_01"):
    return list(load_building(small_building).scan(room).frames())


def _verifier(top_k=3):
    return GeometricVerifier(VerificationCfg(top_k=top_k, fusion=FusionCfg(pixel_stride=1)))


def test_the_room_the_depth_fits_goes_first(gd_map, small_building):
    """The scene vectors put the unique room last; its rescan's depth fits it (about 95 % of
    the points), the look-alike pair about 70 %: it goes first."""
    _, db = gd_map
    verifier = _verifier()
    for frame in _rescan(small_building):
        verifier.add(frame, frame.camera_to_world)
    ids, scores, fitness = verifier.rerank(db, [*TWINS, UNIQUE], [0.9, 0.8, 0.1])
    assert ids[0] == UNIQUE and sorted(ids[1:]) == TWINS
    assert fitness[0] > 0.9 and max(fitness[1:]) < 0.8
    assert scores[0] == pytest.approx(fitness[0] + verifier.cfg.score_weight * 0.1)
    assert scores == sorted(scores, reverse=True)
    # only the first candidate is fitted: it fits poorly, but the unfitted count as 0
    verifier.cfg = VerificationCfg(top_k=1)
    ids, _, fitness = verifier.rerank(db, [*TWINS, UNIQUE], [0.9, 0.8, 0.1])
    assert ids == [*TWINS, UNIQUE] and fitness[0] < 0.8 and all(map(math.isnan, fitness[1:]))


def test_too_little_depth_or_a_broken_chain_leaves_the_ranking(gd_map, small_building):
    _, db = gd_map
    verifier = _verifier()
    unchanged = ([*TWINS, UNIQUE], [0.9, 0.8, 0.1])
    ids, scores, fitness = verifier.rerank(db, *unchanged)
    assert (ids, scores) == unchanged and all(map(math.isnan, fitness))  # nothing seen yet
    frames = _rescan(small_building)
    for frame in frames:
        verifier.add(frame, frame.camera_to_world)
    verifier.add(frames[0], None)  # no odometry for this keyframe: the window restarts
    assert verifier.rerank(db, *unchanged)[:2] == unchanged


class _Map:
    """Stored clouds by scene id; one scene has none, one is corrupt."""

    def __init__(self, clouds):
        self.clouds = clouds

    def point_cloud(self, scene_id):
        if scene_id == "corrupt":
            raise MapDatabaseError("point cloud of corrupt cannot be read")
        return self.clouds.get(scene_id)


def test_scenes_without_a_cloud_rank_as_unfitted_and_a_bad_cloud_keeps_the_order(
    gd_map, small_building
):
    _, db = gd_map
    verifier = _verifier()
    for frame in _rescan(small_building):
        verifier.add(frame, frame.camera_to_world)
    stored = _Map({UNIQUE: db.point_cloud(UNIQUE)})
    ids, _, fitness = verifier.rerank(stored, ["no_cloud", UNIQUE], [0.9, 0.1])
    assert ids == [UNIQUE, "no_cloud"] and math.isnan(fitness[1])
    # a map without clouds: the scene vectors' ranking and scores, as without verification
    assert verifier.rerank(_Map({}), ["a", "b"], [0.9, 0.1])[:2] == (["a", "b"], [0.9, 0.1])
    ids, scores, fitness = verifier.rerank(stored, ["corrupt", UNIQUE], [0.9, 0.1])
    assert ids == ["corrupt", UNIQUE] and scores == [0.9, 0.1] and all(map(math.isnan, fitness))
    assert verifier.failures == 1 and "cannot be read" in verifier.last_error


def test_recogniser_ranks_with_the_verifier_and_resets_it(gd_map, small_building):
    """It verifies all three scenes and publishes its top_k (two) of the new ranking."""
    encoder, db = gd_map
    cfg = RecognizerCfg(window_size=6, top_k=2)
    recognizer = SceneRecognizer(encoder, db, cfg, _verifier(top_k=3))
    results = [recognizer.recognise(f, f.camera_to_world) for f in _rescan(small_building)]
    last = results[-1]
    assert last.candidate_ids[0] == UNIQUE and last.candidate_fitness[0] > 0.9
    assert len(last.candidate_ids) == len(last.candidate_fitness) == 2
    assert last.candidate_scores == sorted(last.candidate_scores, reverse=True)
    recognizer.reset()
    assert len(recognizer.verifier.window) == 0
    plain = SceneRecognizer(encoder, db, cfg).recognise(_rescan(small_building)[0])
    assert all(map(math.isnan, plain.candidate_fitness))


def test_the_map_clouds_are_prepared_before_the_first_frame(gd_map, small_building):
    """A recogniser with a verifier reads and prepares every stored cloud when it is made (the
    node's configure), so no window waits for one."""
    encoder, db = gd_map
    reads = []

    class CountingMap:
        def __getattr__(self, name):
            return getattr(db, name)

        def point_cloud(self, scene_id):
            reads.append(scene_id)
            return db.point_cloud(scene_id)

    recognizer = SceneRecognizer(encoder, CountingMap(), RecognizerCfg(top_k=3), _verifier(3))
    assert sorted(reads) == sorted(s.scene_id for s in db.scenes())
    for frame in _rescan(small_building):
        recognizer.recognise(frame, frame.camera_to_world)
    assert len(reads) == len(db.scenes())


def test_only_each_rooms_newest_scan_is_prepared(gd_map, tmp_path):
    """The map answers a room by its newest scan, so that is the cloud worth preparing."""
    from dataclasses import replace

    from crossover_ros.mapdb import SQLiteMapDatabase

    _, db = gd_map
    old = db.scene_data(UNIQUE)
    newer = replace(old, record=replace(old.record, scene_id=f"{UNIQUE}@1", scan_time=2e9))
    reads = []
    with SQLiteMapDatabase.create(
        tmp_path / "rescanned.sqlite", db.model_fingerprint, db.embedding_dim, db.instance_dim
    ) as rescanned:
        rescanned.add_scenes([replace(old, record=replace(old.record, scan_time=1e9)), newer])
        rescanned.point_cloud = lambda scene_id: reads.append(scene_id) or db.point_cloud(UNIQUE)
        _verifier().prepare(rescanned)
    assert reads == [f"{UNIQUE}@1"]


def test_the_pipeline_prepares_each_scene_once_for_verifying_and_relocalising(gd_map):
    """The node's pipeline gives its verifier and its relocaliser one cache of the map's
    prepared scenes: what the verifier prepared at configure, the relocaliser fits against."""
    from crossover_ros.pipeline.config import PipelineCfg
    from crossover_ros.pipeline.runner import RecognitionPipeline

    encoder, db = gd_map
    pipeline = RecognitionPipeline(PipelineCfg(), encoder, db, lambda event: None, False)
    verifier, relocalizer = pipeline.stream.recognizer.verifier, pipeline.stream.relocalizer
    prepared = verifier.estimator.scene(UNIQUE, lambda: None, db)
    assert prepared is not None and relocalizer._prepared(UNIQUE) is prepared


def test_fits_in_threads_rank_alike(gd_map, small_building):
    """The fits of a window are independent: fitted two at a time, the same fits and ranking."""
    _, db = gd_map
    ranked = []
    for threads in (1, 2):
        verifier = GeometricVerifier(
            VerificationCfg(top_k=3, threads=threads, fusion=FusionCfg(pixel_stride=1))
        )
        for frame in _rescan(small_building):
            verifier.add(frame, frame.camera_to_world)
        ranked.append(verifier.rerank(db, [*TWINS, UNIQUE], [0.9, 0.8, 0.1]))
    assert ranked[1] == ranked[0] and ranked[0][0][0] == UNIQUE
