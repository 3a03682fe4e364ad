"""Adding the current visit as a new scan of the recognised room (pipeline/map_update.py)."""

from types import SimpleNamespace

import numpy as np
import pytest
from fake_encoders import ColourEncoder

from crossover_ros.frames import CameraIntrinsics, RGBDFrame
from crossover_ros.mapdb import SceneRecord, SQLiteMapDatabase
from crossover_ros.pipeline.events import MatchEvent, RelocalizationEvent
from crossover_ros.pipeline.fusion import FusionCfg, PointCloudFusion
from crossover_ros.pipeline.map_update import MapUpdateCfg, MapUpdateError, MapUpdater
from crossover_ros.pipeline.recognizer import SceneMatchResult
from crossover_ros.pipeline.recording import RecordingCfg, SceneRecording
from crossover_ros.pipeline.stream import StreamKeyframe
from crossover_ros.pose.estimate import PoseEstimate

RED, BLUE = (200, 50, 50), (40, 60, 200)
PLACE = tuple(float(v) for v in np.eye(4).reshape(-1))  # the room's frame in the building


def _frame(stamp, colour=RED):
    intrinsics = CameraIntrinsics.from_fov(32, 24, 60.0)
    depth = np.full((24, 32), 2.0, np.float32)
    return RGBDFrame(np.full((24, 32, 3), colour, np.uint8), depth, intrinsics, stamp)


def _match(stamp, answer, top=None, colour=RED, x=0.0):
    result = SceneMatchResult(stamp, answer, 0.9, 0.9, [top or answer], [0.9], "rgb", "rgb", 6, 0.0)
    pose = np.eye(4)
    pose[0, 3] = x
    keyframe = StreamKeyframe(_frame(stamp, colour), None, pose, "odom", result)
    return MatchEvent(keyframe, 0.0)


def _confirmed_pose(scene_id, odom_to_scene):
    estimate = PoseEstimate(odom_to_scene, np.eye(6), 0.9, 0.01, 100, "test", 0.0)
    found = SimpleNamespace(scene_id=scene_id, pose=estimate, confirmed=True)
    return RelocalizationEvent(None, found, "map", np.eye(4), np.eye(6), np.eye(4))


@pytest.fixture
def mapdb(tmp_path):
    encoder = ColourEncoder()
    db = SQLiteMapDatabase.create(tmp_path / "m.sqlite", encoder.fingerprint, encoder.dim)
    old_cloud = (np.array([[50.0, 0.0, 0.0], [50.0, 1.0, 0.0]], np.float32), np.zeros((2, 3)))
    db.add_scene(
        SceneRecord("red", "b", "r1", 0, None, "room", PLACE, source="map build"),
        {"rgb": encoder.frame_features([np.full((4, 4, 3), RED, np.uint8)])},
        cloud=(old_cloud[0], old_cloud[1].astype(np.uint8)),
    )
    db.add_scene(
        SceneRecord("blue", "b", "r2", 0, None, "room", PLACE, source="map build"),
        {"rgb": encoder.frame_features([np.full((4, 4, 3), BLUE, np.uint8)])},
    )
    yield db
    db.close()


def _updater(mapdb, **cfg):
    recording = SceneRecording(
        RecordingCfg(max_keyframes=8), PointCloudFusion(FusionCfg(max_keyframes=2))
    )
    return MapUpdater(MapUpdateCfg(**cfg), mapdb, ColourEncoder(), recording)


def test_a_visit_with_a_confirmed_pose_becomes_a_placed_rescan(mapdb):
    updater = _updater(mapdb)
    for i in range(5):
        updater.observe(_match(1000.0 + i, "red", x=0.5 * i))
    shift = np.eye(4)
    shift[:3, 3] = (10.0, 0.0, 0.0)  # odometry -> room frame
    updater.observe(_confirmed_pose("red", shift))
    recorded, _ = updater.recording.cloud()
    record = updater.add_visit("r1")
    assert record.scene_id == "red@1" and record.scan_index == 1
    assert (record.parent_scene, record.source) == ("red", "node update")
    assert record.scan_time == 1000.0 and record.frame == "room"
    assert record.frame_to_building == PLACE
    stored = mapdb.scene("red@1")
    assert (stored.parent_scene, stored.source, stored.room_id) == ("red", "node update", "r1")
    xyz, _ = mapdb.point_cloud("red@1")
    seen = xyz[:, 0] < 40.0
    assert len(xyz[seen]) == len(recorded)
    moved = recorded.mean(axis=0) + np.array([10.0, 0.0, 0.0])
    np.testing.assert_allclose(xyz[seen].mean(axis=0), moved, atol=1e-3)
    assert len(xyz[~seen]) == 2, "what the visit did not see keeps the old scan's geometry"
    assert len(updater.recording) == 0, "the visit so far is stored: the recording restarts"
    assert [s.scene_id for s in mapdb.scans("b", "r1")] == ["red@1", "red"]
    # the next visit of the room is a rescan of the newest scan
    for i in range(4):
        updater.observe(_match(2000.0 + i, "red@1", x=0.5 * i))
    updater.observe(_confirmed_pose("red@1", np.eye(4)))
    second = updater.add_visit()
    assert (second.scene_id, second.parent_scene, second.scan_index) == ("red@2", "red@1", 2)


def test_refusals_say_why_and_store_nothing(mapdb, tmp_path):
    updater = _updater(mapdb)
    with pytest.raises(MapUpdateError, match="no room recognised"):
        updater.add_visit()
    updater.observe(_match(1.0, "red"))
    with pytest.raises(MapUpdateError, match=r"only 1 keyframe.*at least 4"):
        updater.add_visit()
    for i in range(4):
        updater.observe(_match(2.0 + i, "red", x=0.3 * i))
    with pytest.raises(MapUpdateError, match="no confirmed pose in room r1"):
        updater.add_visit()
    with pytest.raises(MapUpdateError, match="'r2' is not the recognised room r1"):
        updater.add_visit("r2")
    updater.observe(_confirmed_pose("blue", np.eye(4)))  # a pose in another room: no use
    with pytest.raises(MapUpdateError, match="no confirmed pose"):
        updater.add_visit()
    assert [s.scene_id for s in mapdb.scenes()] == ["blue", "red"]

    path = mapdb.path
    with SQLiteMapDatabase.open(path, read_only=True) as reader:
        readonly = _updater(reader)
        for i in range(5):
            readonly.observe(_match(1.0 + i, "red"))
        with pytest.raises(MapUpdateError, match="read-only"):
            readonly.add_visit()


def test_without_require_pose_a_visit_is_stored_unplaced(mapdb):
    updater = _updater(mapdb, require_pose=False)
    for i in range(4):
        updater.observe(_match(5.0 + i, "red", x=0.3 * i))
    record = updater.add_visit()
    assert record.frame == "odom" and record.frame_to_building is None
    assert record.parent_scene == "red"


def test_a_room_change_starts_afresh_and_windows_of_another_room_are_not_recorded(mapdb):
    updater = _updater(mapdb, require_pose=False)
    for i in range(4):
        updater.observe(_match(1.0 + i, "red"))
    assert len(updater.recording) == 4
    # the filter still says red, the window already blue: the next room's frames stay out
    updater.observe(_match(6.0, "red", top="blue", colour=BLUE))
    assert len(updater.recording) == 4
    updater.observe(_match(7.0, "blue", colour=BLUE))
    assert updater.room == ("b", "r2") and len(updater.recording) == 1
    # in a bag's replay each finished visit is stored when the room changes
    updater.add_on_room_change = True
    for i in range(4):
        updater.observe(_match(8.0 + i, "blue", colour=BLUE))
    updater.observe(_match(20.0, "red"))
    (stored,) = updater.outcomes
    assert stored.scene_id == "blue@1" and stored.room_id == "r2"


def test_updates_are_off_unless_allowed(tmp_path):
    from crossover_ros.pipeline.config import PipelineCfg
    from crossover_ros.pipeline.runner import RecognitionPipeline

    encoder = ColourEncoder()
    with SQLiteMapDatabase.create(tmp_path / "m.sqlite", encoder.fingerprint, encoder.dim) as db:
        pipeline = RecognitionPipeline(PipelineCfg(), encoder, db, lambda e: None, False)
        assert pipeline.updater is None
        with pytest.raises(MapUpdateError, match=r"map updates are off.*allow_updates"):
            pipeline.update_map()


def test_keyframes_are_held_back_by_the_lag_and_dropped_on_a_room_change(mapdb):
    updater = MapUpdater(
        MapUpdateCfg(require_pose=False, min_keyframes=2),
        mapdb,
        ColourEncoder(),
        SceneRecording(RecordingCfg(max_keyframes=8)),
        lag=3,
    )
    for i in range(5):
        updater.observe(_match(1.0 + i, "red"))
    assert len(updater.recording) == 2, "the last 3 wait for later windows to agree"
    updater.observe(_match(9.0, "blue", colour=BLUE))  # they were the next room's: dropped
    assert len(updater.recording) == 0 and updater.room == ("b", "r2")
    for i in range(2):
        updater.observe(_match(10.0 + i, "blue", colour=BLUE))
    assert len(updater.recording) == 0
    record = updater.add_visit()  # asked while in the room: the held-back keyframes count
    assert record.room_id == "r2" and record.scan_time == 9.0
