"""map_recorder in-process over real DDS: a generated scan recorded live becomes a map scene
that the recogniser then matches."""

import shutil

import numpy as np
import pytest
from rclpy.parameter import Parameter
from ros_harness import Rig

from crossover_ros.datasets.scan import load_building
from crossover_ros.mapdb import open_map
from crossover_ros.model.global_descriptor import GlobalDescriptorEncoder
from crossover_ros.pipeline.recognizer import RecognizerCfg, SceneRecognizer
from crossover_ros.ros.nodes.map_recorder import MapRecorderNode


def _recorder(context, map_path, params=None):
    overrides = {
        "map.path": str(map_path),
        "scene.id": "recorded_room",
        "scene.building_id": "test",
        "scene.room_id": "lab",
        "keyframes.max_interval_s": 0.01,
        **(params or {}),
    }
    return MapRecorderNode(
        context=context,
        parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
    )


def test_a_recorded_room_is_added_to_the_map_and_recognised(
    ros_context, small_building, gd_map, tmp_path
):
    building = load_building(small_building)
    reference = next(s for s in building.scans if s.scan_index == 0)
    frames = list(building.scan(reference.scan_id).frames())
    map_path = tmp_path / "map.sqlite"
    shutil.copy(gd_map, map_path)
    with open_map(map_path) as db:
        db.remove_scene(reference.scan_id)  # the map does not know this room yet
        before = len(db.scenes())

    rig = Rig(ros_context, _recorder(ros_context, map_path), node_name="map_recorder")
    node = rig.node
    try:
        assert rig.wait_connected(matches=False)
        assert not rig.call("save_scene").success, "nothing recorded yet"
        rig.send(frames, 50.0)
        assert len(node.pipeline.recording) == len(frames)
        response = rig.call("save_scene")
        assert response.success, response.message
        assert "recorded_room" in response.message and len(node.pipeline.recording) == 0
        response = rig.call("save_scene")
        assert not response.success and "no keyframes" in response.message

        # The next room, saved when the node shuts down.
        # another room: a scene of the same room_id would be a newer scan of "lab", which
        # the recogniser would then answer for it (MapBase.query by_room)
        node.set_parameters(
            [Parameter("scene.id", value="second_room"), Parameter("scene.room_id", value="hall")]
        )
        rig.send(frames[:2], 80.0)
        node.save_pending()
    finally:
        rig.close()

    encoder = GlobalDescriptorEncoder()
    with open_map(map_path, encoder.fingerprint) as db:
        assert len(db.scenes()) == before + 2
        record = db.scene("recorded_room")
        assert (record.building_id, record.room_id, record.frame) == ("test", "lab", "odom")
        assert record.frame_to_building is None, "its own frame unless odometry is the building's"
        assert db.scene_embeddings("recorded_room")["rgb"].shape == (len(frames), encoder.dim)
        xyz, rgb = db.point_cloud("recorded_room")
        assert len(xyz) > 100 and rgb.shape == xyz.shape
        assert db.scene("second_room").scene_id == "second_room"

        recognizer = SceneRecognizer(encoder, db, RecognizerCfg(window_size=3))
        results = [recognizer.recognise(frame) for frame in frames]
    assert results[-1].candidate_ids[0] == "recorded_room"
    assert results[-1].scene_id == "recorded_room"
    assert results[-1].score == pytest.approx(1.0, abs=1e-3)


def test_a_crossover_room_is_recorded_with_scene_vectors_and_placed_cells(
    ros_context, small_building, tmp_path
):
    building = load_building(small_building)
    reference = next(s for s in building.scans if s.scan_index == 0)
    frames = list(building.scan(reference.scan_id).frames())
    map_path = tmp_path / "crossover.sqlite"
    recorder = _recorder(
        ros_context, map_path, {"model.name": "crossover", "scene.odom_is_building_frame": True}
    )
    rig = Rig(ros_context, recorder, node_name="map_recorder")
    node = rig.node
    try:
        assert rig.wait_connected(matches=False)
        rig.send(frames, 50.0)
        places = node.pipeline.recording.cell_points()
        assert len(places) == len(frames)
        assert all(p.shape == (20, 3) and np.isfinite(p).any() for p in places)
        response = rig.call("save_scene")
        assert response.success, response.message
    finally:
        rig.close()
    with open_map(map_path) as db:
        assert db.scene("recorded_room").frame_to_building == tuple(np.eye(4).reshape(-1))
        stored = db.scene_embeddings("recorded_room")
        assert sorted(stored) == ["point_cloud", "rgb"]
        assert all(v.shape == (1, db.embedding_dim) for v in stored.values())
