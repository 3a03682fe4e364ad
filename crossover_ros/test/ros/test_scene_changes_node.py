"""The node publishes the pipeline's change reports on ~/scene_changes and as markers, and a
report it cannot convert is said, not fatal."""

import numpy as np
from rclpy.parameter import Parameter
from ros_harness import Rig
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from crossover_msgs.msg import SceneChange, SceneChanges
from crossover_ros.frames import CameraIntrinsics, RGBDFrame
from crossover_ros.pipeline.changes import ADDED, MOVED, REMOVED, STATIC, ChangeReport
from crossover_ros.pipeline.changes import SceneChange as Change
from crossover_ros.pipeline.events import ChangeEvent
from crossover_ros.pipeline.stream import StreamKeyframe
from crossover_ros.ros.convert import seconds_to_stamp
from crossover_ros.ros.nodes.scene_recognizer import SceneRecognizerNode

CHANGES = (
    Change(STATIC, 4, "desk", np.array([1.0, 2.0, 0.4]), np.array([1.0, 2.0, 0.4])),
    Change(MOVED, 1, "chair", np.array([1.0, 1.0, 0.4]), np.array([3.0, 1.0, 0.4]), 2.0),
    Change(REMOVED, 2, "plant", np.array([2.0, 3.0, 0.5]), None),
    Change(ADDED, -1, "trash can", None, np.array([0.5, 0.5, 0.2])),
)


def _event(stamp_s: float, changes=CHANGES) -> ChangeEvent:
    frame = RGBDFrame(
        np.zeros((2, 2, 3), np.uint8),
        np.ones((2, 2), np.float32),
        CameraIntrinsics(2, 2, 1, 1, 1, 1),
    )
    header = Header(stamp=seconds_to_stamp(stamp_s), frame_id="camera")
    keyframe = StreamKeyframe(frame, header, np.eye(4), "odom", None)
    return ChangeEvent(keyframe, ChangeReport("red", "map", stamp_s, tuple(changes)))


def test_change_reports_are_published_and_a_bad_one_is_survived(
    ros_context, colour_map, stub_encoder
):
    node = SceneRecognizerNode(
        context=ros_context, parameter_overrides=[Parameter("map.path", value=str(colour_map))]
    )
    rig = Rig(ros_context, node)
    reports: list[SceneChanges] = []
    markers: list[MarkerArray] = []
    rig.source.create_subscription(
        SceneChanges, "/scene_recognizer/scene_changes", reports.append, 10
    )
    rig.source.create_subscription(
        MarkerArray, "/scene_recognizer/scene_changes/markers", markers.append, 10
    )
    try:
        assert rig.wait_connected()
        assert rig.wait_for(
            lambda: rig.source.count_publishers("/scene_recognizer/scene_changes") > 0
        )
        bad = Change(MOVED, 1, 5, np.zeros(3), np.ones(3), 1.7)  # a label that is no string
        node._on_event(_event(9.0, (bad,)))
        node._on_event(_event(10.0))
        assert rig.wait_for(lambda: len(reports) >= 1 and len(markers) >= 1, 20.0)
    finally:
        rig.close()
    assert len(reports) == 1  # the bad one was dropped, the node went on
    msg = reports[0]
    assert msg.scene_id == "red" and msg.header.frame_id == "map" and msg.header.stamp.sec == 10
    types = [c.type for c in msg.changes]
    assert types == [SceneChange.STATIC, SceneChange.MOVED, SceneChange.REMOVED, SceneChange.ADDED]
    moved = msg.changes[1]
    assert (moved.map_instance_id, moved.label) == (1, "chair")
    assert (moved.position_after.x, moved.displacement) == (3.0, 2.0)
    assert msg.changes[3].map_instance_id == -1 and msg.changes[3].position_after.z == 0.2
    drawn = markers[0].markers
    assert drawn[0].action == Marker.DELETEALL
    assert [m.type for m in drawn[1::2]] == [Marker.ARROW, Marker.CUBE, Marker.SPHERE]
