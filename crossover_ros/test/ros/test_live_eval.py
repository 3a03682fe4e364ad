"""Live bag evaluation: the real scene_recognizer in this process, the bag over real DDS."""

from __future__ import annotations

import pytest

from crossover_ros.bags.reader import iter_raw_messages
from crossover_ros.errors import BagError
from crossover_ros.eval.bag_eval import BagEvalCfg, compute_metrics, evaluate_offline
from crossover_ros.eval.bag_report import format_report
from crossover_ros.ros.live_eval import evaluate_live
from crossover_ros.synthetic.query_bag import QueryBagCfg, record_query_bag


@pytest.fixture(scope="module")
def query_bag(small_building, tmp_path_factory):
    out = tmp_path_factory.mktemp("live") / "bag"
    cfg = QueryBagCfg(seed=5, seconds_per_room=2.0, transit_seconds=0.5)
    return record_query_bag(small_building, out, cfg, progress=False)


@pytest.fixture(scope="module")
def map_path(small_building, tmp_path_factory):
    from crossover_ros.mapdb.build import build_map
    from crossover_ros.model.global_descriptor import GlobalDescriptorEncoder

    path = tmp_path_factory.mktemp("live_map") / "map.sqlite"
    build_map(small_building, path, GlobalDescriptorEncoder(), progress=False).close()
    return path


def test_live_against_the_real_node_in_process(query_bag, map_path):
    cfg = BagEvalCfg()
    pipeline = cfg.pipeline_for(map_path, "global_descriptor", None)
    record = evaluate_live(
        query_bag,
        cfg,
        pipeline=pipeline,
        rate=2.0,
        drain_s=3.0,
        progress=False,
    )
    colour_stamps = {m.timestamp_ns for m in iter_raw_messages(query_bag, [cfg.topics.color])}
    assert record.matches, "the node published nothing"
    assert {m.stamp_ns for m in record.matches} <= colour_stamps  # answers carry frame stamps
    assert all(len(m.candidate_ids) == 3 for m in record.matches)  # top_k 10, 3 scenes mapped
    assert record.pair == "I->I" and record.mode == "live x2"
    assert record.frames_in_bag == len(colour_stamps)
    assert 0 < record.frames_processed <= record.frames_in_bag

    metrics = compute_metrics([record], cfg)
    assert metrics.windows == len(record.matches)
    assert metrics.recall[10] == 1.0  # every scene ranked: the true one is always there
    assert metrics.latency_ms["end_to_end"]["p50"] > 0  # over DDS, frame out -> match in
    assert metrics.latency_ms["frame_features"]["n"] >= metrics.windows  # the node's encoder
    assert metrics.dropped_frames == record.frames_in_bag - record.frames_processed + (
        record.frames_rejected
    )
    assert metrics.peak_memory_mb > 100

    # The same bag offline, through the same pipeline: same rooms.
    offline = evaluate_offline(query_bag, pipeline, cfg, "offline", progress=False)
    offline_metrics = compute_metrics([offline], cfg)
    assert len(offline_metrics.visits) == len(metrics.visits) == 3
    report = format_report(
        [metrics, offline_metrics], [record.contents], cfg, {"mode": "live x2", "maps": []}
    )
    assert "| global_descriptor | I->I |" in report and "| offline | I->I |" in report


def test_live_on_a_truncated_bag_says_the_player_cannot_read_it(query_bag, tmp_path):
    import shutil

    bag = tmp_path / "truncated"
    shutil.copytree(query_bag, bag)
    mcap = next(bag.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    with pytest.raises(BagError, match="cannot read bag"):
        evaluate_live(bag, in_process=False, ready_timeout_s=1.0, progress=False)
