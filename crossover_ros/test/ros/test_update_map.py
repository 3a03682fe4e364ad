"""~/update_map on the scene_recognizer node, in-process over real DDS (colour stand-in model)."""

from rclpy.parameter import Parameter
from ros_harness import Rig, colour_frame

from crossover_msgs.srv import UpdateMap
from crossover_ros.mapdb import SQLiteMapDatabase
from crossover_ros.ros.nodes.scene_recognizer import SceneRecognizerNode


def _update(rig: Rig, hint: str = "", timeout_s: float = 30.0) -> UpdateMap.Response:
    client = rig.source.create_client(UpdateMap, "/scene_recognizer/update_map")
    try:
        assert client.wait_for_service(timeout_sec=timeout_s), "no service update_map"
        future = client.call_async(UpdateMap.Request(hint=hint))
        assert rig.wait_for(future.done, timeout_s), "update_map did not answer"
        return future.result()
    finally:
        rig.source.destroy_client(client)


def _node(context, colour_map, *extra):
    overrides = [Parameter("map.path", value=str(colour_map)), *extra]
    return SceneRecognizerNode(context=context, parameter_overrides=overrides)


def test_update_map_adds_the_visit_as_a_rescan_of_the_recognised_room(
    ros_context, colour_map, stub_encoder
):
    node = _node(
        ros_context,
        colour_map,
        Parameter("map.allow_updates", value=True),
        Parameter("map_update.require_pose", value=False),  # colour frames give no pose
        Parameter("map_update.min_keyframes", value=2),
    )
    assert node.describe_parameter("map.allow_updates").description.startswith("Keep a record")
    rig = Rig(ros_context, node)
    try:
        early = _update(rig)
        assert not early.success and "no room recognised" in early.message
        assert rig.wait_connected()
        rig.send([colour_frame("red", 0.0) for _ in range(5)], start_s=100.0)
        assert rig.wait_for(lambda: rig.matches and rig.matches[-1].scene_id == "red", 30)
        wrong = _update(rig, "blue")
        assert not wrong.success and "not the recognised room red" in wrong.message
        added = _update(rig, "red")
        assert added.success, added.message
        assert added.scene_id == "red@1" and "rescan of red" in added.message
        with SQLiteMapDatabase.open(colour_map, read_only=True) as db:
            scan = db.scene("red@1")
            assert (scan.room_id, scan.parent_scene, scan.source) == ("red", "red", "node update")
            # the visit starts with the first keyframe the recogniser had an answer for
            assert 100.0 < scan.scan_time < 104.0
            assert [s.scene_id for s in db.scans("b", "red")] == ["red@1", "red"]
        again = _update(rig)  # the recording restarted with the stored visit
        assert not again.success and "keyframe" in again.message and "\n" not in again.message
    finally:
        rig.close()


def test_update_map_is_refused_unless_allowed(ros_context, colour_map, stub_encoder):
    rig = Rig(ros_context, _node(ros_context, colour_map))
    try:
        refused = _update(rig)
        assert not refused.success and "map.allow_updates" in refused.message
        assert not refused.scene_id
    finally:
        rig.close()
    with SQLiteMapDatabase.open(colour_map, read_only=True) as db:
        assert [s.scene_id for s in db.scenes()] == ["blue", "green", "red"]
