import numpy as np
import pytest
from fake_encoders import ColourEncoder

from crossover_ros.errors import CrossoverError
from crossover_ros.frames import CameraIntrinsics, RGBDFrame
from crossover_ros.mapdb import SceneRecord, SQLiteMapDatabase
from crossover_ros.pipeline.hysteresis import HysteresisCfg
from crossover_ros.pipeline.keyframes import KeyframeCfg, KeyframeSelector
from crossover_ros.pipeline.recognizer import (
    RecognizerCfg,
    SceneRecognizer,
    softmax_confidence,
)

INTRINSICS = CameraIntrinsics.from_fov(8, 6, 60.0)


def _frame(colour, stamp):
    color = np.full((6, 8, 3), colour, np.uint8)
    return RGBDFrame(color, np.ones((6, 8), np.float32), INTRINSICS, stamp)


def _pose(x=0.0, yaw_deg=0.0):
    pose = np.eye(4)
    c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
    pose[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    pose[0, 3] = x
    return pose


@pytest.fixture
def mapdb(tmp_path):
    encoder = ColourEncoder()
    db = SQLiteMapDatabase.create(tmp_path / "m.sqlite", encoder.fingerprint, encoder.dim)
    for name, colour in {
        "red": (250, 10, 10),
        "green": (10, 250, 10),
        "blue": (10, 10, 250),
    }.items():
        db.add_scene(
            SceneRecord(name, "b", name), {"rgb": encoder.frame_features([_frame(colour, 0).color])}
        )
    yield db
    db.close()


def test_keyframes_by_motion_turn_and_time():
    selector = KeyframeSelector(
        KeyframeCfg(min_translation_m=0.5, min_rotation_deg=20, max_interval_s=2)
    )
    assert selector.accept(0.0, _pose())
    assert not selector.accept(0.1, _pose(x=0.3))
    assert selector.accept(0.2, _pose(x=0.6))
    assert not selector.accept(0.3, _pose(x=0.6, yaw_deg=10))
    assert selector.accept(0.4, _pose(x=0.6, yaw_deg=25))
    assert not selector.accept(1.0, None)
    assert selector.accept(2.5, None)
    assert selector.accept(1.0, None), "a time jump backwards restarts selection"


def test_recognises_the_room_and_reports_candidates(mapdb):
    recognizer = SceneRecognizer(ColourEncoder(), mapdb, RecognizerCfg(top_k=3))
    first = recognizer.recognise(_frame((240, 20, 20), 0.0), _pose())
    assert first.candidate_ids[0] == "red" and first.scene_id == "", "one frame names no room"
    result = recognizer.recognise(_frame((240, 20, 20), 0.5), _pose())
    assert result.scene_id == "red" and result.changed
    assert result.candidate_ids[0] == "red" and len(result.candidate_ids) == 3
    assert result.candidate_scores == sorted(result.candidate_scores, reverse=True)
    assert 0.5 < result.confidence <= 1.0
    assert set(result.timings) == {"frame_features", "query_encoder", "map_search"}


def test_confidences_do_not_depend_on_how_many_candidates_are_published(mapdb):
    frames = [_frame((130, 130, 10), t) for t in range(3)]  # between red and green
    answers = []
    for top_k in (1, 3):
        recognizer = SceneRecognizer(ColourEncoder(), mapdb, RecognizerCfg(top_k=top_k))
        answers.append([recognizer.recognise(f).candidate_confidences[0] for f in frames])
    assert answers[0] == pytest.approx(answers[1]) and answers[0][0] < 1.0 - 1e-6


def test_window_follows_the_robot_into_another_room(mapdb):
    cfg = RecognizerCfg(window_size=2)
    recognizer = SceneRecognizer(ColourEncoder(), mapdb, cfg)
    answers = [
        recognizer.recognise(_frame(colour, t), None).scene_id
        for t, colour in enumerate([(250, 0, 0)] * 3 + [(0, 0, 250)] * 3)
    ]
    assert answers[:3] == ["", "red", "red"], "the first keyframe alone names no room"
    assert answers[-1] == "blue"
    assert recognizer.window_length == 2


def test_map_of_another_model_is_refused(mapdb):
    class Other(ColourEncoder):
        fingerprint = "other"

    with pytest.raises(CrossoverError, match="rebuild"):
        SceneRecognizer(Other(), mapdb)


def test_map_of_the_same_model_with_other_vector_widths_is_refused(tmp_path):
    """Same weights, instance vectors of an older definition: matching them would fail later."""
    encoder = ColourEncoder()
    with (
        SQLiteMapDatabase.create(tmp_path / "old.sqlite", encoder.fingerprint, 3, 6) as db,
        pytest.raises(CrossoverError, match=r"3-d and 3-d.*rebuild"),
    ):
        SceneRecognizer(encoder, db)


def test_confidence_is_low_for_near_ties():
    assert softmax_confidence([0.9, 0.9], 0.01) == pytest.approx(0.5)
    assert softmax_confidence([0.9, 0.5], 0.01) > 0.99
    assert softmax_confidence([], 0.01) == 0.0


def test_one_odd_keyframe_does_not_flip_the_room(mapdb):
    cfg = RecognizerCfg(
        window_size=1,  # no window smoothing: only the filter keeps the answer
        hysteresis=HysteresisCfg(switch_after_windows=3, switch_margin=1.0),
    )
    recognizer = SceneRecognizer(ColourEncoder(), mapdb, cfg)
    colours = [(250, 0, 0)] * 3 + [(0, 0, 250)] + [(250, 0, 0)] * 2 + [(0, 0, 250)] * 3
    results = [recognizer.recognise(_frame(c, t), None) for t, c in enumerate(colours)]
    assert [r.scene_id for r in results] == [""] * 2 + ["red"] * 5 + ["red", "blue"]
    assert [r.changed for r in results].count(True) == 2
    odd = results[3]
    assert odd.candidate_ids[0] == "blue", "the window itself saw blue"
    assert odd.scene_id == "red" and odd.confidence < 0.01
    assert odd.score == pytest.approx(odd.candidate_scores[odd.candidate_ids.index("red")])


def test_score_is_nan_when_the_answer_left_the_candidates(mapdb):
    cfg = RecognizerCfg(
        top_k=1,
        hysteresis=HysteresisCfg(switch_after_windows=2, switch_margin=1.0),
        window_size=1,
    )
    recognizer = SceneRecognizer(ColourEncoder(), mapdb, cfg)
    recognizer.recognise(_frame((250, 0, 0), 0.0))
    assert recognizer.recognise(_frame((250, 0, 0), 1.0)).scene_id == "red"
    odd = recognizer.recognise(_frame((0, 250, 0), 2.0))
    assert odd.scene_id == "red" and np.isnan(odd.score) and odd.confidence == 0.0


def test_an_empty_map_is_accepted_and_answers_nothing(tmp_path):
    encoder = ColourEncoder()
    with SQLiteMapDatabase.create(tmp_path / "e.sqlite", encoder.fingerprint, encoder.dim) as db:
        recognizer = SceneRecognizer(encoder, db)
        assert recognizer.recognise(_frame((250, 0, 0), 0.0)) is None


def test_replace_map_keeps_the_window_and_checks_the_model(mapdb, tmp_path):
    encoder = ColourEncoder()
    recognizer = SceneRecognizer(encoder, mapdb, RecognizerCfg(window_size=3))
    recognizer.recognise(_frame((250, 0, 0), 0.0))
    other = SQLiteMapDatabase.create(tmp_path / "o.sqlite", "another-model", encoder.dim)
    with pytest.raises(CrossoverError, match="rebuild"):
        recognizer.replace_map(other)
    other.close()
    fresh = SQLiteMapDatabase.create(tmp_path / "f.sqlite", encoder.fingerprint, encoder.dim)
    fresh.add_scene(
        SceneRecord("pink", "b", "pink"),
        {"rgb": encoder.frame_features([_frame((250, 10, 10), 0).color])},
    )
    assert recognizer.replace_map(fresh) is mapdb
    result = recognizer.recognise(_frame((250, 0, 0), 2.0))
    assert result.candidate_ids == ["pink"] and result.num_frames == 2
    fresh.close()
