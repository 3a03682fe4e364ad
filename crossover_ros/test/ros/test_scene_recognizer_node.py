"""The node in-process over real DDS: frames in on topics, SceneMatch out."""

import time

import numpy as np
import pytest
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image

from crossover_msgs.msg import SceneMatch
from crossover_ros.data.scan import load_building
from crossover_ros.mapdb.build import build_map
from crossover_ros.pipeline.encoders import GlobalDescriptorEncoder
from crossover_ros.ros.convert import (
    depth_to_image,
    intrinsics_to_camera_info,
    pose_to_odometry,
    rgb_to_image,
    seconds_to_stamp,
)
from crossover_ros.ros.nodes.scene_recognizer import SceneRecognizerNode


@pytest.fixture(scope="module")
def map_path(small_building, tmp_path_factory):
    path = tmp_path_factory.mktemp("map") / "map.sqlite"
    build_map(small_building, path, GlobalDescriptorEncoder(), progress=False).close()
    return path


def _spin_until(executor, condition, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    return condition()


def test_publishes_the_scene_of_mapped_frames_and_survives_bad_input(
    ros_context, small_building, map_path
):
    import rclpy

    building = load_building(small_building)
    reference = next(s for s in building.scans if s.scan_index == 0)
    frames = list(building.scan(reference.scan_id).frames())

    node = SceneRecognizerNode(
        context=ros_context,
        parameter_overrides=[
            Parameter("map_path", value=str(map_path)),
            Parameter("model", value="global_descriptor"),
            Parameter("keyframe_max_interval_s", value=0.01),
        ],
    )
    source = rclpy.create_node("test_camera", context=ros_context)
    color_pub = source.create_publisher(Image, "/camera/color/image_raw", 10)
    depth_pub = source.create_publisher(Image, "/camera/aligned_depth_to_color/image_raw", 10)
    info_pub = source.create_publisher(CameraInfo, "/camera/color/camera_info", 10)
    odom_pub = source.create_publisher(Odometry, "/odom", 10)
    received: list[SceneMatch] = []
    source.create_subscription(SceneMatch, "/scene_recognizer/scene_match", received.append, 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(source)
    try:
        assert _spin_until(executor, lambda: color_pub.get_subscription_count() > 0)
        assert _spin_until(
            executor, lambda: source.count_publishers("/scene_recognizer/scene_match") > 0
        )

        def publish(frame, stamp_s, color_encoding="rgb8"):
            stamp = seconds_to_stamp(stamp_s)
            frame_id = "camera_color_optical_frame"
            info_pub.publish(intrinsics_to_camera_info(frame.intrinsics, stamp, frame_id))
            odom_pub.publish(pose_to_odometry(frame.camera_to_world, stamp, "odom", frame_id))
            color = rgb_to_image(frame.color, stamp, frame_id)
            if color_encoding != "rgb8":
                color.encoding = color_encoding
            color_pub.publish(color)
            depth_pub.publish(depth_to_image(frame.depth, stamp, frame_id, encoding="16UC1"))

        info_pub.publish(
            intrinsics_to_camera_info(frames[0].intrinsics, seconds_to_stamp(99.0), "camera")
        )
        assert _spin_until(executor, lambda: node.stream.has_camera_info)
        # A malformed frame first: wrong encoding is rejected, counted, and the node lives on.
        publish(frames[0], 100.0, color_encoding="yuv422")
        assert _spin_until(executor, lambda: node.stream.counters["rejected"] >= 1)
        for index, frame in enumerate(frames[:3]):
            publish(frame, 101.0 + index)
        assert _spin_until(executor, lambda: len(received) >= 3)
    finally:
        executor.shutdown()
        node.destroy_node()
        source.destroy_node()

    match = received[-1]
    assert match.scene_id == reference.scan_id
    assert match.score == pytest.approx(1.0, abs=1e-3)  # the very frames the map was built from
    assert match.candidate_ids[0] == match.scene_id
    assert list(match.candidate_scores) == sorted(match.candidate_scores, reverse=True)
    assert match.num_frames == 3 and match.modality == "rgb"
    assert match.header.stamp.sec == 103
    assert np.isfinite(match.confidence)


def test_a_missing_map_leaves_the_node_unconfigured_and_alive(ros_context, tmp_path):
    node = SceneRecognizerNode(
        context=ros_context,
        parameter_overrides=[
            Parameter("map_path", value=str(tmp_path / "no_map.sqlite")),
            Parameter("model", value="global_descriptor"),
        ],
    )
    try:
        assert node._state_machine.current_state[1] == "unconfigured"
        assert node.stream is None and node._mapdb is None
    finally:
        node.destroy_node()
