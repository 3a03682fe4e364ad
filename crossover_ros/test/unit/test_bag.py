"""Query bags: written with rosbags, read back with rosbags and with the mcap library."""

import json

import numpy as np
import pytest

from crossover_ros.bags.reader import (
    BagTopics,
    bag_topics,
    deserialize,
    iter_raw_messages,
    read_ground_truth,
)
from crossover_ros.datasets.scan import load_building
from crossover_ros.errors import BagError
from crossover_ros.synthetic.query_bag import QueryBagCfg, record_query_bag

TOPICS = BagTopics()


@pytest.fixture(scope="module", params=["mcap", "sqlite3"])
def bag(request, small_building, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "bag"
    cfg = QueryBagCfg(seed=3, storage=request.param, seconds_per_room=1.0, transit_seconds=0.5)
    return record_query_bag(small_building, out, cfg, progress=False)


def test_topics_rates_and_encodings(bag):
    assert bag_topics(bag) == {
        TOPICS.color: "sensor_msgs/msg/Image",
        TOPICS.depth: "sensor_msgs/msg/Image",
        TOPICS.camera_info: "sensor_msgs/msg/CameraInfo",
        TOPICS.odometry: "nav_msgs/msg/Odometry",
        TOPICS.ground_truth: "std_msgs/msg/String",
        TOPICS.ground_truth_pose: "geometry_msgs/msg/PoseStamped",
    }
    messages = list(iter_raw_messages(bag))
    counts = {topic: sum(m.topic == topic for m in messages) for topic in bag_topics(bag)}
    rooms = len(read_ground_truth(bag)["visits"])
    assert counts[TOPICS.color] == counts[TOPICS.depth] == counts[TOPICS.camera_info] == 15 * rooms
    assert counts[TOPICS.odometry] > 2 * counts[TOPICS.color]  # 30 Hz, also during transit
    assert counts[TOPICS.ground_truth_pose] == counts[TOPICS.odometry]  # the truth beside it
    stamps = [m.timestamp_ns for m in messages]
    assert stamps == sorted(stamps)

    color = deserialize(next(m for m in messages if m.topic == TOPICS.color))
    depth = deserialize(next(m for m in messages if m.topic == TOPICS.depth))
    assert (color.encoding, depth.encoding) == ("rgb8", "16UC1")
    assert color.step == color.width * 3 and depth.step == depth.width * 2
    assert color.header.stamp == depth.header.stamp
    depth_mm = np.frombuffer(depth.data, np.uint16).reshape(depth.height, depth.width)
    valid = depth_mm[depth_mm > 0]
    assert valid.size > 0.5 * depth_mm.size, "most pixels see a surface"
    assert 200 < np.median(valid) < 8000, "room-scale depths in millimetres"


def test_ground_truth_topic_matches_sidecar_and_building(bag, small_building):
    building = load_building(small_building)
    sidecar = read_ground_truth(bag)
    reference_of_room = {s.room_id: s.scan_id for s in building.scans if s.scan_index == 0}
    for visit in sidecar["visits"]:
        assert visit["scene_id"] == reference_of_room[visit["room_id"]]
        assert visit["query_scan_id"] != visit["scene_id"], "the robot walks through rescans"
    truths = [
        json.loads(deserialize(m).data) for m in iter_raw_messages(bag, [TOPICS.ground_truth])
    ]
    assert truths
    for truth in truths:
        visit = next(
            v for v in sidecar["visits"] if v["start_ns"] <= truth["stamp_ns"] <= v["end_ns"]
        )
        assert truth["scene_id"] == visit["scene_id"]
        reference_ids = {i.id for i in building.scan(visit["scene_id"]).instances}
        for query_id, map_id in truth["instances"].items():
            assert map_id == (int(query_id) if int(query_id) in reference_ids else None)


def test_mcap_library_reads_the_bag(bag):
    if not any(p.suffix == ".mcap" for p in bag.iterdir()):
        pytest.skip("sqlite3 bag")
    from mcap_ros2.reader import read_ros2_messages

    path = next(p for p in bag.iterdir() if p.suffix == ".mcap")
    images = [m.ros_msg for m in read_ros2_messages(str(path), topics=[TOPICS.color])]
    assert images and images[0].encoding == "rgb8"
    assert len(images[0].data) == images[0].height * images[0].step


def test_bad_requests_and_bad_bags_raise_bag_error(small_building, tmp_path):
    with pytest.raises(BagError, match="storage"):
        record_query_bag(small_building, tmp_path / "x", QueryBagCfg(storage="rosbag1"))
    with pytest.raises(BagError, match="not in building"):
        record_query_bag(small_building, tmp_path / "y", QueryBagCfg(rooms=("nowhere",)))
    (tmp_path / "exists").mkdir()
    (tmp_path / "exists" / "old.mcap").write_bytes(b"")
    with pytest.raises(BagError, match="already exists"):
        record_query_bag(small_building, tmp_path / "exists")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 9\n")
    with pytest.raises(BagError, match="cannot read bag"):
        list(iter_raw_messages(broken))
    with pytest.raises(BagError, match="not a crossover_ros query bag"):
        read_ground_truth(broken)
