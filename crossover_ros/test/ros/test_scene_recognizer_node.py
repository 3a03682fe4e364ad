"""The node in-process over real DDS with the real model: frames in on topics, SceneMatch out."""

from dataclasses import replace

import numpy as np
import pytest
from rclpy.parameter import Parameter
from ros_harness import Rig

from crossover_ros.datasets.scan import load_building
from crossover_ros.ros.nodes.scene_recognizer import SceneRecognizerNode


@pytest.fixture
def map_path(gd_map):
    return gd_map


def test_publishes_the_scene_of_mapped_frames_and_survives_bad_input(
    ros_context, small_building, map_path
):
    building = load_building(small_building)
    reference = next(s for s in building.scans if s.scan_index == 0)
    frames = list(building.scan(reference.scan_id).frames())

    node = SceneRecognizerNode(
        context=ros_context,
        parameter_overrides=[
            Parameter("map.path", value=str(map_path)),
            Parameter("model.name", value="global_descriptor"),
            Parameter("keyframes.max_interval_s", value=0.01),
            Parameter("publish.rate_hz", value=0.0),  # every window
            # the scene vectors' own ranking: cosine 1 for the frames the map was built from
            # (verification would rank this room and its look-alike by their fit)
            Parameter("verification.top_k", value=0),
        ],
    )
    rig = Rig(ros_context, node)
    try:
        assert rig.wait_connected()
        # A malformed frame first: wrong encoding is rejected, counted, and the node lives on.
        from crossover_ros.ros.convert import rgb_to_image, seconds_to_stamp

        bad = rgb_to_image(frames[0].color, seconds_to_stamp(100.0), "camera")
        bad.encoding = "yuv422"
        rig.send([frames[0]], 100.0, color=bad)
        assert node.pipeline.stream.counters["rejected"] == 1
        rig.send(frames[:3], 101.0)
        assert rig.wait_for(lambda: len(rig.matches) >= 3)
    finally:
        rig.close()

    match = rig.matches[-1]
    assert match.scene_id == reference.scan_id
    assert match.score == pytest.approx(1.0, abs=1e-3)  # the very frames the map was built from
    assert match.candidate_ids[0] == match.scene_id
    assert list(match.candidate_scores) == sorted(match.candidate_scores, reverse=True)
    assert match.num_frames == 3 and match.modality == "rgb"
    assert match.header.stamp.sec == 103
    assert np.isfinite(match.confidence)
    # the first keyframe alone names no room; the second does, and only that one is a change
    assert rig.matches[0].scene_id == "" and [m.changed for m in rig.matches[1:]] == [True, False]


def test_a_missing_map_leaves_the_node_unconfigured_and_alive(ros_context, tmp_path):
    node = SceneRecognizerNode(
        context=ros_context,
        parameter_overrides=[
            Parameter("map.path", value=str(tmp_path / "no_map.sqlite")),
            Parameter("model.name", value="global_descriptor"),
        ],
    )
    rig = Rig(ros_context, node)
    try:
        assert node._state_machine.current_state[1] == "unconfigured"
        assert node.pipeline is None
        response = rig.call("reset")
        assert not response.success and "not configured" in response.message
        response = rig.call("reload_map")
        assert not response.success and "no_map.sqlite" in response.message
        assert rig.wait_for(lambda: rig.diagnostics, 5)
        status = rig.diagnostics[-1].status[0]
        assert status.level == b"\x02" and "no_map.sqlite" in status.message
    finally:
        rig.close()


def test_publishes_the_pose_and_map_to_odom_after_recognising_the_room(
    ros_context, small_building, map_path
):
    """Frames of a mapped room with odometry in a frame of its own (turned and shifted from the
    room's, as a robot's starts wherever it was switched on): the fused cloud registers to the
    stored one, ~/pose is the camera in the building (map) frame and ~/map_to_odom where the
    odometry frame is in it. The room has no look-alike (in a twin, a pose waits until another
    room decides: test_relocalize.py)."""
    from geometry_msgs.msg import PoseWithCovarianceStamped, TransformStamped

    from crossover_ros.bags.odometry import planar_pose
    from crossover_ros.pipeline.decode import quaternion_to_matrix

    building = load_building(small_building)
    unique = next(r["room_id"] for r in building.rooms if r["template_id"] is None)
    reference = next(s for s in building.scans if s.scan_index == 0 and s.room_id == unique)
    room_frames = list(building.scan(reference.scan_id).frames())
    room_to_building = building.room_pose(reference.room_id)
    odom_in_room = planar_pose(0.6, 1.5, -0.8)
    frames = [  # the camera in the odometry frame
        replace(f, camera_to_world=np.linalg.inv(odom_in_room) @ f.camera_to_world)
        for f in room_frames
    ]
    node = SceneRecognizerNode(
        context=ros_context,
        parameter_overrides=[
            Parameter("map.path", value=str(map_path)),
            Parameter("keyframes.max_interval_s", value=0.01),
            Parameter("recognizer.hysteresis.switch_after_windows", value=1),
            Parameter("fusion.pixel_stride", value=1),  # 160x120 frames
            Parameter("relocalization.interval_s", value=0.0),
            Parameter("relocalization.min_confidence", value=0.0),
            Parameter("publish.initialpose", value=True),
        ],
    )
    rig = Rig(ros_context, node)
    poses: list[PoseWithCovarianceStamped] = []
    initial: list[PoseWithCovarianceStamped] = []
    rig.source.create_subscription(
        PoseWithCovarianceStamped, "/scene_recognizer/pose", poses.append, 10
    )
    rig.source.create_subscription(PoseWithCovarianceStamped, "/initialpose", initial.append, 10)
    transforms: list[TransformStamped] = []
    rig.source.create_subscription(
        TransformStamped, "/scene_recognizer/map_to_odom", transforms.append, 10
    )
    try:
        assert rig.wait_connected()
        rig.send(frames, 200.0)
        assert rig.wait_for(lambda: poses and initial and rig.instances and transforms, 30)
    finally:
        rig.close()
    assert node.pipeline is None or node.pipeline.stream.counters["relocalization_errors"] == 0
    last = poses[-1]
    assert last.header.frame_id == "map"
    stamp_s = last.header.stamp.sec + last.header.stamp.nanosec * 1e-9
    camera = room_frames[round(stamp_s - 200.0)].camera_to_world
    expected = room_to_building @ camera
    p = last.pose.pose.position
    assert np.linalg.norm([p.x, p.y, p.z] - expected[:3, 3]) < 0.05
    covariance = np.asarray(last.pose.covariance).reshape(6, 6)
    assert np.all(np.linalg.eigvalsh(covariance) >= 0.0) and covariance[0, 0] < 0.01
    assert initial[-1].pose.pose.position.x == p.x
    transform = transforms[-1]
    assert (transform.header.frame_id, transform.child_frame_id) == ("map", "odom")
    assert transform.header.stamp == last.header.stamp
    t, r = transform.transform.translation, transform.transform.rotation
    map_to_odom = np.eye(4)
    map_to_odom[:3, :3] = quaternion_to_matrix(r.x, r.y, r.z, r.w)
    map_to_odom[:3, 3] = (t.x, t.y, t.z)
    assert np.allclose(map_to_odom, room_to_building @ odom_in_room, atol=0.05)
    assert node._map_to_odom is not None  # kept, re-stamped onto /tf where tf2_msgs exists
    assert rig.instances[-1].scene_id == reference.scan_id  # no object model: no pairs
    assert rig.instances[-1].correspondences == []
