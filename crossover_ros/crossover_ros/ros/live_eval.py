"""Live bag evaluation: the bag on real ROS 2 topics, the real ``scene_recognizer`` answering.

The bag is published at its recorded rate (or a factor of it) by :class:`BagPlayer`; the node
runs in this process (its own executor thread, so the messages still cross DDS) or is already
running elsewhere; its SceneMatch messages are collected and scored by the same
:func:`crossover_ros.eval.bag_eval.compute_metrics` as an offline run. With the node in this
process its frame counters, per-stage timings and the peak memory are measured as well.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from crossover_ros.bags.reader import BagTopics
from crossover_ros.errors import CrossoverError
from crossover_ros.eval.bag_eval import (
    STAGES,
    BagEvalCfg,
    RunRecord,
    pair_name,
    peak_memory_mb,
    read_bag,
    reset_peak_memory,
)
from crossover_ros.eval.visits import first_per_window
from crossover_ros.pipeline.config import PipelineCfg
from crossover_ros.pipeline.events import Event, MatchEvent, RelocalizationEvent
from crossover_ros.ros.nodes.scene_recognizer import SceneRecognizerNode
from crossover_ros.ros.params import parameters_of
from crossover_ros.ros.replay import MATCH_TOPIC, replay_detailed


def node_parameters(cfg: PipelineCfg, topics: BagTopics) -> list[Parameter]:
    """The scene_recognizer's parameters for an evaluation: the pipeline tree as it is, the
    bag's topics, and one SceneMatch per query window (no periodic repeats)."""
    return [
        *parameters_of(cfg),
        Parameter("topics.color", value=topics.color),
        Parameter("topics.depth", value=topics.depth),
        Parameter("topics.camera_info", value=topics.camera_info),
        Parameter("topics.odom", value=topics.odometry),
        Parameter("publish.rate_hz", value=0.0),
    ]


class InProcessNode:
    """A scene_recognizer spinning in its own thread of this process; stop() ends it.

    Its pipeline's events also reach :attr:`stages`, the per-stage timings of each keyframe.
    """

    def __init__(self, parameters: list[Parameter]) -> None:
        self.node = SceneRecognizerNode(parameter_overrides=parameters)
        if self.node.pipeline is None:
            self.node.destroy_node()
            raise CrossoverError("the scene_recognizer did not configure: see its log above")
        self.stages: dict[str, list[float]] = {name: [] for name in STAGES}
        self.node.pipeline.add_listener(self._time)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _time(self, event: Event) -> None:
        if isinstance(event, MatchEvent):
            for stage, seconds in event.keyframe.result.timings.items():
                self.stages[stage].append(seconds)
        elif isinstance(event, RelocalizationEvent):
            self.stages["relocalization"].append(event.relocalization.compute_time_s)

    def stop(self) -> None:
        self.executor.shutdown()
        self.thread.join(timeout=10)
        self.node.destroy_node()


def evaluate_live(
    bag: Path,
    cfg: BagEvalCfg | None = None,
    *,
    pipeline: PipelineCfg | None = None,
    in_process: bool = True,
    rate: float = 1.0,
    label: str = "",
    match_topic: str = MATCH_TOPIC,
    ready_timeout_s: float = 120.0,
    drain_s: float = 3.0,
    progress: bool = True,
) -> RunRecord:
    """Replay ``bag`` over ROS 2 to a scene_recognizer and score what it publishes.

    ``in_process``: start the node here, running ``pipeline`` (its map and model); otherwise a
    node must already be running and publishing on ``match_topic``. Calls
    ``rclpy.init`` (and shutdown) itself unless rclpy is already initialised.
    """
    cfg = cfg or BagEvalCfg()
    bag = Path(bag)
    contents, truth = read_bag(bag, cfg, None, progress, desc="ground truth")
    owns_rclpy = not rclpy.ok()
    if owns_rclpy:
        rclpy.init()
    node = None
    notes: list[str] = []
    try:
        if in_process:
            if pipeline is None:
                raise CrossoverError("live evaluation with the node in-process needs its pipeline")
            node = InProcessNode(node_parameters(pipeline, cfg.topics))
        memory_reset = reset_peak_memory()
        started = time.perf_counter()
        outcome = replay_detailed(
            bag,
            rate=rate,
            match_topic=match_topic,
            ready_timeout_s=ready_timeout_s,
            drain_s=drain_s,
            color_topic=cfg.topics.color,
        )
        wall = time.perf_counter() - started
        stream = node.node.pipeline.stream if node else None
        counters = dict(stream.counters) if stream else {}
        sync_dropped = stream.sync.dropped if stream else None
        map_scenes = node.node.pipeline.scene_count() if node else None
    finally:
        if node is not None:
            node.stop()
        if owns_rclpy:
            rclpy.try_shutdown()
    if outcome.play_error:
        contents.read_error = contents.read_error or outcome.play_error
    matches = first_per_window(outcome.matches)
    first = matches[0] if matches else None
    pair = pair_name(first.modality, first.map_modality) if first else "-"
    if not in_process:
        notes.append("external node: frame counters, stage timings and memory not visible")
    elif not memory_reset:
        notes.append("peak memory is the process's since it started")
    frames_processed = counters.get("frames") if in_process else None
    return RunRecord(
        label=label or (pipeline.model.name if pipeline else "external node"),
        pair=pair,
        mode=f"live x{rate:g}" if rate else "live (as fast as possible)",
        bag=str(bag),
        matches=matches,
        contents=contents,
        truth=truth,
        stages=node.stages if node else {},
        relocalizations=outcome.relocalizations,
        frames_in_bag=outcome.published.get(cfg.topics.color, 0),
        frames_processed=frames_processed,
        frames_rejected=counters.get("rejected", 0),
        keyframes=counters.get("keyframes"),
        sync_dropped=sync_dropped,
        map_scenes=map_scenes,
        peak_memory_mb=peak_memory_mb() if in_process else None,
        wall_s=wall,
        notes=notes,
    )
