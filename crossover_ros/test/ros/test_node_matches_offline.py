"""The node and the offline evaluation run one pipeline: fed the same bag, they answer the same.

The bag's messages go to the node exactly as its subscriptions hand them over (rclpy messages
into the pipeline's inputs), one frame pair at a time so its worker drops none; what it
publishes is compared with what ``evaluate_offline`` records for the same bag and settings.
"""

from __future__ import annotations

import pytest
from rclpy.serialization import deserialize_message
from ros_harness import Rig

from crossover_ros.bags.reader import iter_raw_messages
from crossover_ros.config import build
from crossover_ros.eval.bag_eval import BagEvalCfg, evaluate_offline
from crossover_ros.ros.live_eval import node_parameters
from crossover_ros.ros.nodes.bag_player import message_class
from crossover_ros.ros.nodes.scene_recognizer import SceneRecognizerNode
from crossover_ros.synthetic.query_bag import QueryBagCfg, record_query_bag


@pytest.fixture(scope="module")
def bag_and_map(small_building, tmp_path_factory):
    from crossover_ros.mapdb.build import build_map
    from crossover_ros.model.global_descriptor import GlobalDescriptorEncoder

    root = tmp_path_factory.mktemp("same_answers")
    cfg = QueryBagCfg(seed=11, seconds_per_room=1.5, transit_seconds=0.5)
    bag = record_query_bag(small_building, root / "bag", cfg, progress=False)
    build_map(
        small_building, root / "map.sqlite", GlobalDescriptorEncoder(), progress=False
    ).close()
    return bag, root / "map.sqlite"


def test_the_node_publishes_what_the_offline_evaluation_scores(ros_context, bag_and_map):
    bag, map_path = bag_and_map
    eval_cfg = BagEvalCfg()
    # a hysteresis setting the offline path once dropped: it must reach both
    pipeline = build(
        type(eval_cfg.pipeline),
        {"recognizer.hysteresis.switch_after_windows": 2},
        eval_cfg.pipeline_for(map_path, "global_descriptor", None),
    )
    offline = evaluate_offline(bag, pipeline, eval_cfg, "offline", progress=False)
    assert len(offline.matches) > 5 and any(m.scene_id for m in offline.matches)

    node = SceneRecognizerNode(
        context=ros_context, parameter_overrides=node_parameters(pipeline, eval_cfg.topics)
    )
    rig = Rig(ros_context, node)
    try:
        assert rig.wait_connected()
        inputs = node.pipeline
        handlers = {
            eval_cfg.topics.camera_info: inputs.on_camera_info,
            eval_cfg.topics.odometry: inputs.on_odometry,
            eval_cfg.topics.color: inputs.on_color,
            eval_cfg.topics.depth: inputs.on_depth,
        }
        for raw in iter_raw_messages(bag, list(handlers)):
            handlers[raw.topic](deserialize_message(raw.data, message_class(raw.msgtype)))
            if raw.topic == eval_cfg.topics.depth:  # a pair formed: let the worker finish it
                assert node.pipeline.wait_idle(30.0)
        assert rig.wait_for(lambda: len(rig.matches) >= len(offline.matches), 30)
        assert node.pipeline.dropped == 0
    finally:
        rig.close()

    def answers(items):
        return [(m.stamp_ns, m.scene_id, tuple(m.candidate_ids)) for m in items]

    live = [
        (m.header.stamp.sec * 10**9 + m.header.stamp.nanosec, m.scene_id, tuple(m.candidate_ids))
        for m in rig.matches
    ]
    assert live == answers(offline.matches)
    confidences = [m.confidence for m in rig.matches]
    assert confidences == pytest.approx([m.confidence for m in offline.matches])
