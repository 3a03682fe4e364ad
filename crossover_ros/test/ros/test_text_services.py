"""~/find_room and ~/find_object on the scene_recognizer node, in-process over real DDS."""

from rclpy.parameter import Parameter
from ros_harness import Rig

from crossover_msgs.srv import FindObject, FindRoom
from crossover_ros.mapdb import SQLiteMapDatabase
from crossover_ros.ros.nodes.scene_recognizer import SceneRecognizerNode


def _call(rig: Rig, kind, name: str, timeout_s: float = 30.0, **fields):
    client = rig.source.create_client(kind, f"/scene_recognizer/{name}")
    try:
        assert client.wait_for_service(timeout_sec=timeout_s), f"no service {name}"
        future = client.call_async(kind.Request(**fields))
        assert rig.wait_for(future.done, timeout_s), f"{name} did not answer"
        return future.result()
    finally:
        rig.source.destroy_client(client)


def test_text_services_answer_bad_requests_and_go_with_cleanup(ros_context, gd_map):
    with SQLiteMapDatabase.open(gd_map, read_only=True) as db:
        scene = db.scenes()[0]
        label = db.instances(scene.scene_id)[0]["label"]
    node = SceneRecognizerNode(
        context=ros_context,
        parameter_overrides=[
            Parameter("map.path", value=str(gd_map)),
            Parameter("model.name", value="global_descriptor"),
            Parameter("relocalization.map_frame", value="world"),
        ],
    )
    rig = Rig(ros_context, node)
    try:
        rooms = _call(rig, FindRoom, "find_room", text=f"the room with the {label}", k=2)
        assert rooms.success, rooms.message
        assert len(rooms.scene_ids) == len(rooms.poses) == len(rooms.frame_ids) == 2
        assert set(rooms.frame_ids) == {"world"}  # generated rooms have a building pose
        assert rooms.scores[0] >= rooms.scores[1]
        objects = _call(rig, FindObject, "find_object", text=f"the {label}", k=0)  # 0: 5
        assert objects.success and len(objects.labels) == 5 and objects.labels[0] == label
        box_min, box_max, position = objects.box_mins[0], objects.box_maxs[0], objects.positions[0]
        assert box_min.x <= position.x <= box_max.x and box_min.z <= position.z <= box_max.z
        bad = _call(rig, FindObject, "find_object", text="  ", k=3)
        assert not bad.success and "empty" in bad.message and "\n" not in bad.message
        bad = _call(rig, FindRoom, "find_room", text="a desk", k=3, building="nowhere")
        assert not bad.success and "no building" in bad.message and not bad.scene_ids
        # still serving after bad requests
        assert _call(rig, FindRoom, "find_room", text=label, k=1).success
        node.trigger_deactivate()
        node.trigger_cleanup()
        client = rig.source.create_client(FindRoom, "/scene_recognizer/find_room")
        assert rig.wait_for(lambda: not client.service_is_ready(), 10)
        rig.source.destroy_client(client)
    finally:
        rig.close()
