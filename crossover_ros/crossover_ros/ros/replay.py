"""Replay a query bag over ROS 2 topics to a running scene_recognizer; collect its answers."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rclpy
from geometry_msgs.msg import PoseWithCovarianceStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from crossover_msgs.msg import InstanceCorrespondences, SceneMatch
from crossover_ros.bags.reader import BagTopics
from crossover_ros.errors import BagError, CrossoverError
from crossover_ros.eval.bag_eval import ObservedRelocalization
from crossover_ros.eval.visits import ObservedMatch
from crossover_ros.pipeline.decode import quaternion_to_matrix
from crossover_ros.ros.nodes.bag_player import BagPlayer

MATCH_TOPIC = "/scene_recognizer/scene_match"


def _stamp_ns(header) -> int:
    return header.stamp.sec * 10**9 + header.stamp.nanosec


class MatchCollector(Node):
    """Records every SceneMatch with the wall time it arrived, and the relocalisations the node
    publishes beside it (``instance_correspondences`` once per relocalisation, ``pose`` when
    one was found, both with the keyframe's stamp)."""

    def __init__(self, topic: str = MATCH_TOPIC) -> None:
        super().__init__("match_collector")
        self.received: list[tuple[SceneMatch, float]] = []
        self.instances: list[InstanceCorrespondences] = []
        self.poses: dict[int, np.ndarray] = {}
        namespace = topic.rsplit("/", 1)[0]
        self.create_subscription(SceneMatch, topic, self._on_match, 50)
        self.create_subscription(
            InstanceCorrespondences,
            f"{namespace}/instance_correspondences",
            self.instances.append,
            50,
        )
        self.create_subscription(PoseWithCovarianceStamped, f"{namespace}/pose", self._on_pose, 50)

    def _on_match(self, msg: SceneMatch) -> None:
        self.received.append((msg, time.monotonic()))

    def _on_pose(self, msg: PoseWithCovarianceStamped) -> None:
        p, o = msg.pose.pose.position, msg.pose.pose.orientation
        pose = np.eye(4)
        pose[:3, :3] = quaternion_to_matrix(o.x, o.y, o.z, o.w)
        pose[:3, 3] = (p.x, p.y, p.z)
        self.poses[_stamp_ns(msg.header)] = pose

    def relocalizations(self) -> list[ObservedRelocalization]:
        return [
            ObservedRelocalization(
                stamp_ns=_stamp_ns(msg.header),
                scene_id=msg.scene_id,
                pose_in_map=self.poses.get(_stamp_ns(msg.header)),
                correspondences=tuple(
                    (
                        (c.query_position.x, c.query_position.y, c.query_position.z),
                        int(c.map_instance_id),
                    )
                    for c in msg.correspondences
                ),
            )
            for msg in self.instances
        ]


@dataclass
class ReplayOutcome:
    """What a replay saw: the matches, how many messages went out per topic, a play error."""

    matches: list[ObservedMatch]
    relocalizations: list[ObservedRelocalization] = field(default_factory=list)
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
        stamp_ns = _stamp_ns(msg.header)
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
            )
        )
    published: dict[str, int] = {}
    for topic, _ in player.published_at:
        published[topic] = published.get(topic, 0) + 1
    player.destroy_node()
    collector.destroy_node()
    return ReplayOutcome(matches, collector.relocalizations(), published, play_error)


def replay_in_this_process(bag: Path, rate: float = 1.0, **kwargs) -> list[ObservedMatch]:
    """``rclpy.init`` + :func:`replay` + shutdown, for the CLI."""
    rclpy.init()
    try:
        return replay(bag, rate=rate, **kwargs)
    finally:
        rclpy.try_shutdown()
