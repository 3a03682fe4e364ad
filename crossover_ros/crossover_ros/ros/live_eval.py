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

from crossover_ros.errors import CrossoverError
from crossover_ros.eval.bag_eval import (
    ENCODER_STAGES,
    MAP_STAGES,
    RANKER_STAGES,
    VERIFIER_STAGES,
    BagEvalCfg,
    RunRecord,
    StageTimers,
    Timed,
    pair_name,
    peak_memory_mb,
    read_bag,
    reset_peak_memory,
)
from crossover_ros.eval.visits import first_per_window
from crossover_ros.ros.replay import MATCH_TOPIC, replay_detailed


def node_parameters(
    cfg: BagEvalCfg, map_path: Path | str, model: str, map_modality: str | None
) -> list[Parameter]:
    """The scene_recognizer's parameters for an evaluation: the bag's topics, top_k for R@K."""
    keyframes = cfg.recognizer.keyframes
    params = {
        "map_path": str(map_path),
        "model": str(model),
        "color_topic": cfg.topics.color,
        "depth_topic": cfg.topics.depth,
        "camera_info_topic": cfg.topics.camera_info,
        "odom_topic": cfg.topics.odometry,
        "top_k": int(cfg.top_k),
        "window_size": int(cfg.recognizer.window_size),
        "keyframe_min_translation_m": float(keyframes.min_translation_m),
        "keyframe_min_rotation_deg": float(keyframes.min_rotation_deg),
        "keyframe_max_interval_s": float(keyframes.max_interval_s),
        "sync_slop_s": float(cfg.stream.sync_slop_s),
        "odom_max_age_s": float(cfg.stream.odom_max_age_s),
        "publish_rate_hz": 0.0,  # one SceneMatch per query window, no periodic repeats
        "fuse_cloud": cfg.fusion is not None,
        "relocalize": cfg.relocalizer is not None,
        "verify_candidates": int(cfg.verification.top_k),
        "verify_score_weight": float(cfg.verification.score_weight),
        "object_candidates": int(cfg.object_ranking.top_k),
    }
    if cfg.fusion is not None:
        params["fusion_pixel_stride"] = int(cfg.fusion.pixel_stride)
    if cfg.relocalizer is not None:
        params["relocalize_interval_s"] = float(cfg.relocalizer.interval_s)
        params["relocalize_min_confidence"] = float(cfg.relocalizer.min_confidence)
    if map_modality:
        params["map_modality"] = map_modality
    return [Parameter(name, value=value) for name, value in params.items()]


class InProcessNode:
    """A scene_recognizer spinning in its own thread of this process; stop() ends it."""

    def __init__(self, parameters: list[Parameter]) -> None:
        from crossover_ros.ros.nodes.scene_recognizer import SceneRecognizerNode

        self.node = SceneRecognizerNode(parameter_overrides=parameters)
        self.stream = getattr(self.node, "stream", None)
        if self.stream is None:
            self.node.destroy_node()
            raise CrossoverError("the scene_recognizer did not configure: see its log above")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def instrument(self, timers: StageTimers) -> bool:
        """Time the node's encoder and map search; False if the node is not built that way."""
        recognizer = getattr(self.stream, "recognizer", None)
        if recognizer is None or not hasattr(recognizer, "encoder"):
            return False
        recognizer.encoder = Timed(recognizer.encoder, timers, ENCODER_STAGES)
        recognizer.mapdb = Timed(recognizer.mapdb, timers, MAP_STAGES)
        if recognizer.verifier is not None:
            recognizer.verifier = Timed(recognizer.verifier, timers, VERIFIER_STAGES)
        if recognizer.ranker is not None:
            recognizer.ranker = Timed(recognizer.ranker, timers, RANKER_STAGES)
        return True

    def stop(self) -> None:
        self.executor.shutdown()
        self.thread.join(timeout=10)
        self.node.destroy_node()


def evaluate_live(
    bag: Path,
    cfg: BagEvalCfg | None = None,
    *,
    map_path: Path | str | None = None,
    model: str = "global_descriptor",
    map_modality: str | None = None,
    in_process: bool = True,
    rate: float = 1.0,
    label: str = "",
    match_topic: str = MATCH_TOPIC,
    ready_timeout_s: float = 120.0,
    drain_s: float = 3.0,
    progress: bool = True,
) -> RunRecord:
    """Replay ``bag`` over ROS 2 to a scene_recognizer and score what it publishes.

    ``in_process``: start the node here with ``map_path``/``model``/``map_modality``;
    otherwise a node must already be running and publishing on ``match_topic``. Calls
    ``rclpy.init`` (and shutdown) itself unless rclpy is already initialised.
    """
    cfg = cfg or BagEvalCfg()
    bag = Path(bag)
    contents, truth = read_bag(bag, cfg, None, progress, desc="ground truth")
    owns_rclpy = not rclpy.ok()
    if owns_rclpy:
        rclpy.init()
    node = None
    timers = StageTimers(per_call=True)
    notes: list[str] = []
    try:
        if in_process:
            if map_path is None:
                raise CrossoverError("live evaluation with the node in-process needs the map")
            node = InProcessNode(node_parameters(cfg, map_path, model, map_modality))
            if not node.instrument(timers):
                notes.append("node internals changed: no per-stage timings live")
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
        counters = dict(getattr(node.stream, "counters", {})) if node else {}
        sync = getattr(node.stream, "sync", None) if node else None
        map_scenes = len(node.stream.recognizer.mapdb.scenes()) if node else None
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
        label=label or str(model),
        pair=pair,
        mode=f"live x{rate:g}" if rate else "live (as fast as possible)",
        bag=str(bag),
        matches=matches,
        contents=contents,
        truth=truth,
        stages=timers.samples,
        relocalizations=outcome.relocalizations,
        frames_in_bag=outcome.published.get(cfg.topics.color, 0),
        frames_processed=frames_processed,
        frames_rejected=counters.get("rejected", 0),
        keyframes=counters.get("keyframes"),
        sync_dropped=getattr(sync, "dropped", None),
        map_scenes=map_scenes,
        peak_memory_mb=peak_memory_mb() if in_process else None,
        wall_s=wall,
        notes=notes,
    )
