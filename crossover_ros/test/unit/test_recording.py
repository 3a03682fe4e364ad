"""Recording a scene on a mapping run: bounded keyframes, fused cloud, saved into the map."""

import numpy as np
import pytest
from fake_encoders import ColourEncoder

from crossover_ros.errors import CrossoverError
from crossover_ros.frames import CameraIntrinsics, RGBDFrame
from crossover_ros.mapdb import SQLiteMapDatabase
from crossover_ros.model.crossover_encoder import RegionMergeCfg, merge_region_objects
from crossover_ros.pipeline.recording import (
    KeyframeImages,
    RecordingCfg,
    SceneRecording,
    cell_points,
)


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
    with SQLiteMapDatabase.create(tmp_path / "m.sqlite", encoder.fingerprint, encoder.dim) as db:
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
    db = SQLiteMapDatabase.create(tmp_path / "m.sqlite", "another-model", 3)
    with db, pytest.raises(CrossoverError, match="another-model"):
        recording.save(db, encoder, "lab", "b", "r")
    assert len(recording) == 1 and recording.cloud() is None


def test_keyframe_extras_are_thinned_with_their_images_and_due_says_which_are_kept():
    store = KeyframeImages(capacity=4)
    for i in range(40):
        due = store.due()
        kept = store.add(np.full((2, 2, 3), i, np.uint8), float(i), extra=i)
        assert due == kept, f"offer {i}"
    assert store.extras == [int(s) for s in store.stamps]
    assert [int(img[0, 0, 0]) for img in store.images()] == store.extras


def test_cell_points_place_each_cell_by_its_depth():
    intrinsics = CameraIntrinsics.from_fov(40, 20, 90.0)
    depth = np.full((20, 40), 2.0, np.float32)
    depth[:10, :8] = np.nan  # the top-left cell of a 2 x 5 grid sees nothing
    depth[10:, 32:] = 4.0  # the bottom-right one sees something further away
    frame = RGBDFrame(np.zeros((20, 40, 3), np.uint8), depth, intrinsics, 0.0)
    pose = np.eye(4)
    pose[:3, 3] = (10.0, 0.0, 0.0)
    places = cell_points(frame, pose, (2, 5), stride=1)
    assert places.shape == (10, 3)
    assert np.isnan(places[0]).all() and np.isfinite(places[1:]).all()
    assert places[1:9, 2] == pytest.approx(2.0) and places[9, 2] == pytest.approx(4.0)
    # columns from left to right (x grows), rows from top to bottom (y grows), moved by the pose
    assert np.all(np.diff(places[5:9, 0]) > 0) and places[6, 1] > places[1, 1]
    centre_u = 19.5  # pixels 16..23 of the middle column straddle the principal point
    assert places[2, 0] == pytest.approx(10.0 + (centre_u - intrinsics.cx) / intrinsics.fx * 2.0)


def test_merged_region_objects_join_views_of_one_object_only():
    rng = np.random.default_rng(0)
    chair, lamp = np.eye(8)[0], np.eye(8)[1]

    def view(descriptor, place):
        noisy = descriptor + 0.05 * rng.normal(size=8)
        return noisy / np.linalg.norm(noisy), np.asarray(place) + 0.05 * rng.normal(size=3)

    seen = [
        view(chair, (1.0, 1.0, 0.5)),
        view(lamp, (1.2, 1.0, 0.5)),  # near the chair, another object
        view(chair, (1.0, 1.1, 0.5)),
        view(chair, (4.0, 1.0, 0.5)),  # a second chair across the room
        view(lamp, (1.2, 1.1, 0.5)),
    ]
    instances = merge_region_objects(
        np.stack([d for d, _ in seen]), np.stack([p for _, p in seen]), RegionMergeCfg()
    )
    assert len(instances) == 3
    first_chair = instances[0]
    assert first_chair["centroid"] == pytest.approx([1.0, 1.05, 0.5], abs=0.1)
    vector = np.asarray(first_chair["embeddings"]["point_cloud"])
    assert np.linalg.norm(vector) == pytest.approx(1.0) and vector @ chair > 0.95
    for inst in instances:
        low, high = np.asarray(inst["box_min"]), np.asarray(inst["box_max"])
        assert np.all(low < inst["centroid"]) and np.all(np.asarray(inst["centroid"]) < high)
    assert merge_region_objects(np.zeros((0, 8)), np.zeros((0, 3))) == []


class _ObjectFinder(ColourEncoder):
    """Finds one object per keyframe, in its top-left cell of a 2 x 2 grid."""

    cell_grid = (2, 2)

    def embed_recording(self, recording):
        places = [p[0] for p in recording.cell_points() if p is not None]
        descriptors = np.tile(np.eye(3)[0], (len(places), 1))
        return self.embed_scan(recording)[0], merge_region_objects(descriptors, np.stack(places))


def test_save_stores_the_objects_the_encoder_places_in_the_recording(tmp_path):
    encoder = _ObjectFinder()
    recording = SceneRecording(RecordingCfg(max_keyframes=4), cell_grid=encoder.cell_grid)
    recording.add(_frame(1.0), None)  # no pose: its cells cannot be placed
    for i in range(3):
        pose = np.eye(4)
        pose[0, 3] = 0.1 * i
        recording.add(_frame(2.0 + i), pose)
    points = recording.cell_points()
    assert points[0] is None and all(p.shape == (4, 3) for p in points[1:])
    with SQLiteMapDatabase.create(tmp_path / "m.sqlite", encoder.fingerprint, 3, 3) as db:
        recording.save(db, encoder, "lab", "b", "r", frame_to_building=np.eye(4))
        assert db.scene("lab").frame_to_building == tuple(np.eye(4).reshape(-1))
        (instance,) = db.instances("lab")
        assert instance["centroid"][2] == pytest.approx(2.0)  # the cells' depth, 2 m ahead
        assert instance["centroid"][0] == pytest.approx(0.1 + points[1][0][0], abs=1e-5)


def test_a_bag_without_camera_topics_records_nothing_and_says_why(tmp_path):
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    from crossover_ros.errors import BagError, DataError
    from crossover_ros.pipeline.config import RecordingPipelineCfg
    from crossover_ros.pipeline.mapping_bag import record_map_from_bag
    from crossover_ros.pipeline.runner import open_recording

    store = get_typestore(Stores.ROS2_JAZZY)
    with Writer(tmp_path / "bag", version=9) as writer:
        connection = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=store)
        message = store.types["std_msgs/msg/String"](data="hello")
        writer.write(connection, 1, store.serialize_cdr(message, "std_msgs/msg/String"))
    encoder = ColourEncoder()
    with SQLiteMapDatabase.create(tmp_path / "m.sqlite", encoder.fingerprint, encoder.dim) as db:
        pipeline = open_recording(RecordingPipelineCfg(), print, encoder=encoder, mapdb=db)
        with pytest.raises(DataError, match="camera_info"):
            record_map_from_bag(tmp_path / "bag", pipeline, scene_id="lab", progress=False)
        with pytest.raises(BagError, match=r"ground_truth\.json.*name its scene_id"):
            record_map_from_bag(tmp_path / "bag", pipeline, progress=False)
        assert db.scenes() == []
