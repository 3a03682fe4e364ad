"""The encoders the recogniser and the map builder use: CrossOver end to end on a small building."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from crossover_ros.datasets.scan import load_building
from crossover_ros.errors import CrossoverError, ModelError
from crossover_ros.mapdb.build import build_map
from crossover_ros.model import modalities as mod
from crossover_ros.model.crossover import CrossOverModel
from crossover_ros.model.crossover_encoder import CrossOverEncoder
from crossover_ros.model.registry import create_encoder
from crossover_ros.pipeline.recognizer import RecognizerCfg, SceneRecognizer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "crossover.safetensors"
    CrossOverModel().save(path)
    return path


@pytest.fixture(scope="module")
def crossover_map(small_building, checkpoint, tmp_path_factory):
    encoder = CrossOverEncoder(checkpoint, mod.POINT_CLOUD)
    path = tmp_path_factory.mktemp("map") / "map.sqlite"
    build_map(small_building, path, encoder, progress=False).close()
    return encoder, path


def test_map_holds_every_scene_modality_and_instance_embeddings(crossover_map, small_building):
    from crossover_ros.mapdb import open_map

    encoder, path = crossover_map
    with open_map(path, encoder.fingerprint) as db:
        assert {mod.RGB, mod.POINT_CLOUD, mod.FLOORPLAN, mod.SCENE} <= set(db.modalities())
        references = [s for s in load_building(small_building).scans if s.scan_index == 0]
        assert sorted(s.scene_id for s in db.scenes()) == sorted(s.scan_id for s in references)
        ids, vectors = db.instance_embeddings(references[0].scan_id, mod.POINT_CLOUD)
        assert len(ids) > 0 and vectors.shape == (len(ids), encoder.instance_dim)


def test_recogniser_ranks_frames_against_point_clouds(crossover_map, small_building):
    from crossover_ros.mapdb import open_map

    encoder, path = crossover_map
    scan = load_building(small_building).scan(
        next(s.scan_id for s in load_building(small_building).scans if s.scan_index == 0)
    )
    cfg = RecognizerCfg(window_size=3)
    with open_map(path, encoder.fingerprint) as db:
        recognizer = SceneRecognizer(encoder, db, cfg)
        results = [recognizer.recognise(frame) for frame in scan.frames()]
    assert all(r is not None for r in results)
    assert [r.num_frames for r in results][:4] == [1, 2, 3, 3]
    last = results[-1]
    assert last.map_modality == mod.POINT_CLOUD and last.modality == mod.RGB
    assert set(last.candidate_ids) <= {s.scene_id for s in open_map(path).scenes()}


def test_frames_give_their_objects_and_the_recogniser_ranks_by_them(
    crossover_map, small_building, checkpoint
):
    """One backbone pass gives a keyframe's features and the objects the region encoder finds
    in it (every cell here: objectness threshold 0); the recogniser ranks by them."""
    from crossover_ros.mapdb import open_map
    from crossover_ros.pipeline.object_ranking import ObjectSetRanker

    _, path = crossover_map
    encoder = CrossOverEncoder(checkpoint, mod.POINT_CLOUD)
    regions = encoder.model.regions
    regions.cfg = replace(regions.cfg, min_objectness=0.0)
    building = load_building(small_building)
    scan = building.scan(next(s.scan_id for s in building.scans if s.scan_index == 0))
    images = [frame.color for frame in scan.frames()][:2]
    features, objects = encoder.frame_objects(images)
    np.testing.assert_allclose(features, encoder.frame_features(images), atol=1e-4)
    cells = regions.cfg.grid[0] * regions.cfg.grid[1]
    assert [o.shape for o in objects] == [(cells, encoder.instance_dim)] * 2
    assert np.allclose(np.linalg.norm(objects[0], axis=1), 1.0, atol=1e-5)
    cfg = RecognizerCfg(window_size=3, top_k=2)
    with open_map(path, encoder.fingerprint) as db:
        ranker = ObjectSetRanker(cfg.window_size)
        recognizer = SceneRecognizer(encoder, db, cfg, ranker=ranker)
        last = [recognizer.recognise(frame) for frame in scan.frames()][-1]
        stored = db.instance_embeddings(last.candidate_ids[0], mod.POINT_CLOUD)[1]
    seen = np.concatenate(list(ranker._window))
    assert last.candidate_scores[0] == pytest.approx((seen @ stored.T).max(axis=1).mean())


def test_relocaliser_matches_segmented_objects_against_the_maps_instances(crossover_map):
    """The node's path for correspondences: objects segmented from a cloud, embedded by the
    encoder, matched against the instance vectors the map builder stored (same width)."""
    from crossover_ros.mapdb import open_map
    from crossover_ros.pipeline.relocalize import Relocalizer, RelocalizerCfg

    encoder, path = crossover_map
    with open_map(path, encoder.fingerprint) as db:
        scene_id = db.scenes()[0].scene_id
        xyz, rgb = db.point_cloud(scene_id)  # the scene itself, seen from its own frame
        relocalizer = Relocalizer(db, encoder, RelocalizerCfg(interval_s=0.0))
        found = relocalizer.relocalize(0.0, scene_id, (xyz, rgb / 255.0), np.eye(4))
    assert found.num_objects > 0 and found.correspondences
    assert all(c.score >= relocalizer.cfg.instance_threshold for c in found.correspondences)


def test_benchmark_keeps_a_current_map_and_makes_a_stale_one_again(
    small_building, checkpoint, tmp_path
):
    """``eval --benchmark`` reuses its maps; one the recogniser would refuse is rebuilt."""
    import sqlite3
    from contextlib import closing

    from crossover_ros.cli.eval_bags import _ensure_multi_map

    path = tmp_path / "map_crossover.sqlite"
    _ensure_multi_map([small_building], path, str(checkpoint), "crossover", progress=False)
    made = path.stat().st_mtime_ns
    _ensure_multi_map([small_building], path, str(checkpoint), "crossover", progress=False)
    assert path.stat().st_mtime_ns == made
    with closing(sqlite3.connect(path)) as db, db:  # as a version before instance widths wrote it
        db.execute("DELETE FROM meta WHERE key = 'instance_dim'")
    _ensure_multi_map([small_building], path, str(checkpoint), "crossover", progress=False)
    with closing(sqlite3.connect(path)) as db:
        (width,) = db.execute("SELECT value FROM meta WHERE key = 'instance_dim'").fetchone()
    assert int(width) == CrossOverModel.load(checkpoint)[0].instance.out_dim


def test_a_map_of_another_model_is_refused(crossover_map, tmp_path):
    from crossover_ros.mapdb import open_map

    _, path = crossover_map
    torch.manual_seed(1)
    other = tmp_path / "other.safetensors"
    CrossOverModel().save(other)
    encoder = CrossOverEncoder(other)
    with pytest.raises(CrossoverError, match="rebuild"):
        open_map(path, encoder.fingerprint)


def test_load_encoder_errors(tmp_path, checkpoint):
    with pytest.raises(ModelError, match="not found"):
        create_encoder(str(tmp_path / "missing.safetensors"))
    with pytest.raises(ModelError, match="map_modality"):
        create_encoder(str(checkpoint), map_modality="smell")
    assert create_encoder("global_descriptor").map_modality == mod.RGB


def test_a_recorded_run_becomes_a_scene_with_placed_objects(small_building, checkpoint, tmp_path):
    """The map recorder's CrossOver path, no instance masks: scene vectors from the keyframes
    and the fused cloud, the region encoder's objects (every cell here: objectness 0) placed
    by depth inside the room."""
    from crossover_ros.mapdb import SQLiteMapDatabase
    from crossover_ros.pipeline.fusion import FusionCfg, PointCloudFusion
    from crossover_ros.pipeline.recording import SceneRecording

    encoder = CrossOverEncoder(checkpoint, mod.POINT_CLOUD)
    encoder.model.regions.cfg = replace(encoder.model.regions.cfg, min_objectness=0.0)
    building = load_building(small_building)
    scan = building.scan(next(s.scan_id for s in building.scans if s.scan_index == 0))
    recording = SceneRecording(fusion=PointCloudFusion(FusionCfg()), cell_grid=encoder.cell_grid)
    frames = list(scan.frames())
    for frame in frames:
        recording.add(frame, frame.camera_to_world, "room")
    cloud = recording.cloud()
    with SQLiteMapDatabase.create(
        tmp_path / "m.sqlite", encoder.fingerprint, encoder.dim, encoder.instance_dim
    ) as db:
        recording.save(db, encoder, "lab", "b", "r")
        stored = db.scene_embeddings("lab")
        assert {m: v.shape for m, v in stored.items()} == {
            mod.RGB: (1, encoder.dim),
            mod.POINT_CLOUD: (1, encoder.dim),
        }
        np.testing.assert_allclose(stored[mod.POINT_CLOUD], encoder.embed_cloud(*cloud), atol=1e-5)
        instances = db.instances("lab")
        ids, vectors = db.instance_embeddings("lab", mod.POINT_CLOUD)
    cells = encoder.cell_grid[0] * encoder.cell_grid[1]
    assert 0 < len(instances) <= cells * len(frames) and len(ids) == len(instances)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    centroids = np.array([inst["centroid"] for inst in instances])
    room = np.asarray(scan.room_size)
    assert np.all(centroids >= -0.2) and np.all(centroids[:, :2] <= room[:2] + 0.2)
