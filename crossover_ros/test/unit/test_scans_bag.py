"""Query bags replayed from scans in any layout: the topics and truth of a recorded walk, and
the node recognising the rooms from them against a map of the same layout."""

import json

import pytest

from crossover_ros.bags.odometry import OdometryNoiseCfg
from crossover_ros.bags.reader import iter_raw_messages, read_ground_truth
from crossover_ros.bags.scans_bag import ScansBagCfg, record_scans_bag
from crossover_ros.errors import CrossoverError
from crossover_ros.eval.bag_eval import BagEvalCfg, compute_metrics, evaluate_offline
from crossover_ros.mapdb.build import build_map
from crossover_ros.model.registry import create_encoder
from crossover_ros.pipeline.config import ModelCfg, PipelineCfg


def _topics(bag):
    counts: dict[str, int] = {}
    for message in iter_raw_messages(bag):
        counts[message.topic] = counts.get(message.topic, 0) + 1
    return counts


@pytest.mark.parametrize("layout", ["generated", "scannet", "3rscan"])
def test_each_rooms_newest_scan_is_replayed_with_its_reference_as_truth(layouts, layout, tmp_path):
    bag = record_scans_bag(layouts[layout], tmp_path / "bag", progress=False)
    truth = read_ground_truth(bag)
    visits = truth["visits"]
    assert len(visits) == 3 and truth["layout"] == layout
    references = {v["scene_id"] for v in visits}
    walked = {v["query_scan_id"] for v in visits}
    assert not references & walked  # rescans walked, references named
    counts = _topics(bag)
    frames = counts["/camera/color/image_raw"]
    assert frames == counts["/camera/aligned_depth_to_color/image_raw"] > 0
    assert counts["/odom"] > frames  # the transits between rooms: odometry only
    # a ScanNet rescan lies in a frame nothing relates to its reference: no true pose
    has_pose = layout != "scannet"
    assert all(v["ground_truth_pose"] is has_pose for v in visits)
    assert (counts.get("/crossover/ground_truth_pose", 0) > 0) is has_pose
    assert truth["odometry"]["noise"]["enabled"]


def test_the_node_recognises_the_rooms_of_a_3rscan_replay(layouts, tmp_path):
    encoder = create_encoder("crossover")
    bag = record_scans_bag(
        layouts["3rscan"], tmp_path / "bag", ScansBagCfg(frame_step=1), progress=False
    )
    with build_map(layouts["3rscan"], tmp_path / "m.sqlite", encoder, progress=False) as mapdb:
        record = evaluate_offline(
            bag,
            PipelineCfg(model=ModelCfg(name="crossover")),
            BagEvalCfg(),
            "CrossOver",
            progress=False,
            encoder=encoder,
            mapdb=mapdb,
        )
    metrics = compute_metrics([record])
    assert metrics.windows > 0 and metrics.recall[1] > 0.5  # 3 rooms, two of them twins
    assert metrics.pose_windows == 0 or metrics.pose_error_m["p50"] < 0.1  # against the truth


def test_a_failed_replay_leaves_no_bag(layouts, tmp_path):
    broken = tmp_path / "3rscan"
    broken.mkdir()
    for item in layouts["3rscan"].iterdir():
        (broken / item.name).symlink_to(item)
    meta = json.loads((broken / "3RScan.json").read_text())
    victim = meta[-1]["scans"][0]["reference"]
    (broken / victim).unlink()
    (broken / victim).mkdir()  # the rescan's folder is there, its files are not
    with pytest.raises(CrossoverError):
        record_scans_bag(broken, tmp_path / "bag", progress=False)
    assert not (tmp_path / "bag").exists()
    with pytest.raises(CrossoverError):
        record_scans_bag(layouts["3rscan"], tmp_path / "b2", ScansBagCfg(scans="all"))
    with pytest.raises(CrossoverError):
        record_scans_bag(
            layouts["3rscan"], tmp_path / "b3", ScansBagCfg(odometry=OdometryNoiseCfg(drift=2.0))
        )
    assert not (tmp_path / "b2").exists() and not (tmp_path / "b3").exists()
