"""Recording a scene on a mapping run: bounded keyframes, fused cloud, saved into the map."""

import numpy as np
import pytest
from fake_encoders import ColourEncoder

from crossover_ros.errors import CrossoverError
from crossover_ros.frames import CameraIntrinsics, RGBDFrame
from crossover_ros.mapdb import MapDatabase
from crossover_ros.pipeline.recording import KeyframeImages, RecordingCfg, SceneRecording


def test_keyframe_images_stay_bounded_and_spread_over_the_run():
    store = KeyframeImages(capacity=8)
    for i in range(100):
        store.add(np.full((2, 2, 3), i, np.uint8), float(i))
        assert len(store) <= 8
    stamps = store.stamps
    assert stamps[0] == 0.0 and stamps[-1] >= 80.0, "start and end of the run are both kept"
    assert np.all(np.diff(stamps) == np.diff(stamps)[0]), "evenly spaced"
    view = np.full((2, 2, 3), 7, np.uint8)
    store.clear()
    store.add(view, 0.0)
    view[:] = 0
    assert store.images()[0][0, 0, 0] == 7, "images are copied (they may be message buffers)"


def _frame(stamp, colour=(200, 50, 50)):
    intrinsics = CameraIntrinsics.from_fov(32, 24, 60.0)
    depth = np.full((24, 32), 2.0, np.float32)
    return RGBDFrame(np.full((24, 32, 3), colour, np.uint8), depth, intrinsics, stamp)


def test_save_embeds_the_keyframes_and_stores_the_fused_cloud(tmp_path):
    from crossover_ros.pipeline.fusion import FusionCfg, PointCloudFusion

    encoder = ColourEncoder()
    recording = SceneRecording(
        RecordingCfg(max_keyframes=4), PointCloudFusion(FusionCfg(max_keyframes=2))
    )
    for i in range(5):
        pose = np.eye(4)
        pose[0, 3] = 0.5 * i  # walking along x: the cloud grows
        recording.add(_frame(1000.0 + i), pose, "odom")
    xyz, rgb = recording.cloud()
    assert len(xyz) > 0 and rgb.dtype == np.uint8
    assert xyz[:, 0].max() - xyz[:, 0].min() > 2.0, "every keyframe's depth is in the cloud"
    with MapDatabase.create(tmp_path / "m.sqlite", encoder.fingerprint, encoder.dim) as db:
        record = recording.save(db, encoder, "lab", "b1", "r7")
        assert record.frame == "odom" and record.scan_time == 1000.0
        assert [s.scene_id for s in db.scenes()] == ["lab"]
        assert db.scene("lab").room_id == "r7"
        assert db.scene_embeddings("lab")["rgb"].shape == (3, 3), "4 max, thinned to every 2nd"
        stored_xyz, _ = db.point_cloud("lab")
        assert len(stored_xyz) == len(xyz)
        assert len(recording) == 0, "cleared after saving"
        with pytest.raises(CrossoverError, match="no keyframes"):
            recording.save(db, encoder, "lab2", "b1", "r8")


def test_a_failed_save_keeps_the_recording(tmp_path):
    encoder = ColourEncoder()
    recording = SceneRecording(RecordingCfg(max_keyframes=4))
    recording.add(_frame(1.0), None)
    db = MapDatabase.create(tmp_path / "m.sqlite", "another-model", 3)
    with db, pytest.raises(CrossoverError, match="another-model"):
        recording.save(db, encoder, "lab", "b", "r")
    assert len(recording) == 1 and recording.cloud() is None
