"""Replay a query bag over ROS 2 topics to a running scene_recognizer; collect its answers."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from crossover_msgs.msg import InstanceCorrespondences, SceneMatch
from crossover_ros.data.bag import BagTopics
from crossover_ros.errors import BagError, CrossoverError
from crossover_ros.eval.visits import ObservedMatch
from crossover_ros.ros.nodes.bag_player import BagPlayer

MATCH_TOPIC = "/scene_recognizer/scene_match"


class MatchCollector(Node):
    """Records every SceneMatch with the wall time it arrived, and the instance correspondences
    published next to it (``instance_correspondences`` beside the match topic), by stamp."""

    def __init__(self, topic: str = MATCH_TOPIC) -> None:
        super().__init__("match_collector")
        self.received: list[tuple[SceneMatch, float]] = []
        self.correspondences: dict[tuple[int, str], tuple[tuple[int, int], ...]] = {}
        self.create_subscription(SceneMatch, topic, self._on_match, 50)
        instances_topic = topic.rsplit("/", 1)[0] + "/instance_correspondences"
        self.create_subscription(InstanceCorrespondences, instances_topic, self._on_instances, 50)

    def _on_match(self, msg: SceneMatch) -> None:
        self.received.append((msg, time.monotonic()))

    def _on_instances(self, msg: InstanceCorrespondences) -> None:
        stamp_ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        pairs = tuple((c.query_instance_id, c.map_instance_id) for c in msg.correspondences)
        self.correspondences[(stamp_ns, msg.scene_id)] = pairs


@dataclass
class ReplayOutcome:
    """What a replay saw: the matches, how many messages went out per topic, a play error."""

    matches: list[ObservedMatch]
    published: dict[str, int] = field(default_factory=dict)
    play_error: str | None = None  # the bag broke off mid-way (the matches so far are kept)


def replay(
    bag: Path,
    rate: float = 1.0,
    match_topic: str = MATCH_TOPIC,
    ready_timeout_s: float = 120.0,
    drain_s: float = 3.0,
) -> list[ObservedMatch]:
    """Play ``bag`` once the recogniser subscribes; return the matches it published.

    Must run inside ``rclpy.init()``; the recogniser runs elsewhere (another process or node).
    """
    return replay_detailed(bag, rate, match_topic, ready_timeout_s, drain_s).matches


def replay_detailed(
    bag: Path,
    rate: float = 1.0,
    match_topic: str = MATCH_TOPIC,
    ready_timeout_s: float = 120.0,
    drain_s: float = 3.0,
    color_topic: str | None = None,
) -> ReplayOutcome:
    """:func:`replay` with the message counts and the error of a bag that breaks off."""
    player = BagPlayer(bag, rate=rate)
    collector = MatchCollector(match_topic)
    executor = SingleThreadedExecutor()
    executor.add_node(collector)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    color_topic = color_topic or BagTopics().color
    play_error = None
    try:
        deadline = time.monotonic() + ready_timeout_s
        while (
            player.count_subscribers(color_topic) == 0
            or collector.count_publishers(match_topic) == 0
        ):
            if time.monotonic() > deadline:
                raise CrossoverError(
                    f"no scene_recognizer subscribed to {color_topic} within {ready_timeout_s} s"
                )
            time.sleep(0.2)
        try:
            player.play()
        except BagError as err:  # a truncated bag: score what was played
            play_error = str(err)
        time.sleep(drain_s)
    finally:
        executor.shutdown()
        spinner.join(timeout=5)
    matches = []
    for msg, received in collector.received:
        stamp_ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        sent = player.published_at.get((color_topic, stamp_ns))
        matches.append(
            ObservedMatch(
                stamp_ns=stamp_ns,
                scene_id=msg.scene_id,
                score=msg.score,
                confidence=msg.confidence,
                latency_s=(received - sent) if sent is not None else None,
                candidate_ids=tuple(msg.candidate_ids),
                candidate_scores=tuple(float(v) for v in msg.candidate_scores),
                modality=msg.modality,
                map_modality=msg.map_modality,
                correspondences=collector.correspondences.get((stamp_ns, msg.scene_id)),
            )
        )
    published: dict[str, int] = {}
    for topic, _ in player.published_at:
        published[topic] = published.get(topic, 0) + 1
    player.destroy_node()
    collector.destroy_node()
    return ReplayOutcome(matches, published, play_error)


def replay_in_this_process(bag: Path, rate: float = 1.0, **kwargs) -> list[ObservedMatch]:
    """``rclpy.init`` + :func:`replay` + shutdown, for the CLI."""
    rclpy.init()
    try:
        return replay(bag, rate=rate, **kwargs)
    finally:
        rclpy.try_shutdown()
