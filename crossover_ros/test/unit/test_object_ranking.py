"""Ranking the recogniser's candidates by the objects found in its window's frames."""

import numpy as np
import pytest
from fake_encoders import ColourEncoder

from crossover_ros.errors import CrossoverError, MapDatabaseError
from crossover_ros.frames import CameraIntrinsics, RGBDFrame
from crossover_ros.mapdb import SceneRecord, SQLiteMapDatabase
from crossover_ros.pipeline.object_ranking import ObjectRankingCfg, ObjectSetRanker
from crossover_ros.pipeline.recognizer import RecognizerCfg, SceneRecognizer

AXES = np.eye(3, dtype=np.float32)  # three kinds of object: red, green and blue things
INTRINSICS = CameraIntrinsics.from_fov(8, 6, 60.0)


class ObjectColourEncoder(ColourEncoder):
    """Also finds one object per frame: the thing of the frame's strongest colour."""

    finds_objects = True

    def frame_objects(self, images):
        found = [AXES[[int(np.argmax(image.reshape(-1, 3).mean(axis=0)))]] for image in images]
        return self.frame_features(images), found


def _frame(colour, stamp):
    return RGBDFrame(np.full((6, 8, 3), colour, np.uint8), np.ones((6, 8)), INTRINSICS, stamp)


def _objects(*kinds):
    return [
        {
            "id": i + 1,
            "label": "thing",
            "centroid": [0.0, 0.0, 0.0],
            "embeddings": {"point_cloud": AXES[k]},
        }
        for i, k in enumerate(kinds)
    ]


@pytest.fixture
def mapdb(tmp_path):
    """'red' looks most like a reddish frame but holds blue things; 'pink' holds a red thing;
    'bare' stores no objects."""
    encoder = ColourEncoder()
    db = SQLiteMapDatabase.create(tmp_path / "m.sqlite", encoder.fingerprint, encoder.dim)
    for name, colour, objects in [
        ("red", (250, 10, 10), _objects(2, 2)),
        ("pink", (230, 90, 90), _objects(0, 1)),
        ("bare", (10, 250, 10), []),
    ]:
        vector = encoder.frame_features([_frame(colour, 0).color])
        db.add_scene(SceneRecord(name, "b", name), {"rgb": vector}, objects)
    yield db
    db.close()


def test_the_objects_seen_outrank_the_scene_vector(mapdb):
    cfg = RecognizerCfg(top_k=3)
    frame = _frame((240, 20, 20), 0.0)
    plain = SceneRecognizer(ObjectColourEncoder(), mapdb, cfg).recognise(frame)
    assert plain.candidate_ids[:2] == ["red", "pink"]
    ranker = ObjectSetRanker(cfg.window_size, ObjectRankingCfg(top_k=3))
    ranked = SceneRecognizer(ObjectColourEncoder(), mapdb, cfg, ranker=ranker).recognise(frame)
    # a red thing seen: 'pink' holds one (cosine 1; its unseen green thing does not count
    # against it), 'red' only blue things (0), 'bare' nothing (-1)
    assert ranked.candidate_ids == ["pink", "red", "bare"]
    assert ranked.candidate_scores == pytest.approx([1.0, 0.0, -1.0])


def test_only_the_head_is_reranked_and_the_window_slides(mapdb):
    ranker = ObjectSetRanker(window_size=2, cfg=ObjectRankingCfg(top_k=2))
    ids, scores = ["red", "pink", "bare"], [0.9, 0.8, 0.7]
    assert ranker.rerank(mapdb, ids, scores) == (ids, scores)  # nothing seen yet
    ranker.add(np.zeros((0, 3), np.float32))  # a keyframe with no object in it
    assert ranker.rerank(mapdb, ids, scores) == (ids, scores)
    ranker.add(AXES[[2]])  # a blue thing: 'red' explains it
    assert ranker.rerank(mapdb, ids, scores) == (["red", "pink", "bare"], [1.0, 0.0, 0.7])
    ranker.add(AXES[[0]])
    ranker.add(AXES[[0]])  # the blue thing has left the 2-keyframe window
    assert ranker.rerank(mapdb, ids, scores) == (["pink", "red", "bare"], [1.0, 0.0, 0.7])
    ranker.reset()
    assert ranker.rerank(mapdb, ids, scores) == (ids, scores)


def test_ranking_by_objects_needs_a_model_that_finds_them(mapdb):
    with pytest.raises(CrossoverError, match="region encoder"):
        SceneRecognizer(ColourEncoder(), mapdb, ranker=ObjectSetRanker(6))


def test_a_map_that_fails_to_give_its_objects_keeps_the_order():
    class Broken:
        def instance_embeddings(self, scene_id, modality):
            raise MapDatabaseError(f"corrupt instance row of {scene_id}")

    ranker = ObjectSetRanker(window_size=2)
    ranker.add(AXES[[0]])
    ids, scores = ["red", "pink"], [0.9, 0.8]
    assert ranker.rerank(Broken(), ids, scores) == (ids, scores)
    assert ranker.failures == 1 and "corrupt instance row of red" in ranker.last_error


def test_stored_objects_are_read_once_per_scene_and_the_cache_is_bounded(mapdb):
    reads = []

    class Counting:
        def instance_embeddings(self, scene_id, modality):
            reads.append(scene_id)
            return mapdb.instance_embeddings(scene_id, modality)

    ranker = ObjectSetRanker(2, ObjectRankingCfg(top_k=2, scene_cache_size=2))
    ranker.add(AXES[[0]])
    for _ in range(2):
        ranker.rerank(Counting(), ["red", "pink"], [0.9, 0.8])
    assert reads == ["red", "pink"]
    ranker.rerank(Counting(), ["bare"], [0.9])  # pushes out 'red', the least recently used
    ranker.rerank(Counting(), ["pink", "red"], [0.9, 0.8])
    assert reads == ["red", "pink", "bare", "red"]
