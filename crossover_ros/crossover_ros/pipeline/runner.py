"""The recogniser and the recorder as the nodes run them, built by one factory each.

:func:`open_recognition` builds a :class:`RecognitionPipeline` from a
:class:`~crossover_ros.pipeline.config.PipelineCfg`: the encoder, the map, the stream with its
keyframe rule and fused cloud, ranking by objects, verification, relocalisation. It owns its
worker threads (``threaded``: the node; without, everything runs in the caller's thread, in
order: the offline evaluation) and says what happens through typed events
(:mod:`crossover_ros.pipeline.events`). The ``scene_recognizer`` node turns the events into
messages; ``crossover_ros eval`` scores them: one code path, so an evaluation's number is the
robot's. :func:`open_recording` does the same for the ``map_recorder`` node and ``map record``.

Threads, when ``threaded``: the callbacks only pair colour and depth (cheap) and hand the pair
to a :class:`~crossover_ros.pipeline.stream.FrameWorker`, whose one thread always processes the
newest pair (encoder, map query, ranking, verification); pairs superseded meanwhile are counted
as dropped. Relocalisation (objects, pose: up to hundreds of milliseconds) runs in a second
worker on the newest answered keyframe, so it never delays an answer. Events come from those
threads: the owner hands them to its own thread if it must (a ROS executor).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from crossover_ros.errors import CrossoverError
from crossover_ros.mapdb.base import MapBase
from crossover_ros.mapdb.open import open_map, open_or_create_map
from crossover_ros.mapdb.records import SceneRecord
from crossover_ros.model.registry import RecognitionEncoder, create_encoder
from crossover_ros.pipeline.changes import ChangeDetector
from crossover_ros.pipeline.config import ModelCfg, PipelineCfg, RecordingPipelineCfg
from crossover_ros.pipeline.events import (
    ChangeEvent,
    Event,
    MatchEvent,
    RelocalizationEvent,
    WarningEvent,
)
from crossover_ros.pipeline.fusion import FusionCfg, PointCloudFusion
from crossover_ros.pipeline.map_update import MapUpdateError, MapUpdater
from crossover_ros.pipeline.object_ranking import ObjectSetRanker
from crossover_ros.pipeline.recognizer import SceneRecognizer
from crossover_ros.pipeline.recording import RecordingCfg, SceneRecording
from crossover_ros.pipeline.relocalize import Relocalization, Relocalizer
from crossover_ros.pipeline.stats import StreamStats, WarnThrottle, assess
from crossover_ros.pipeline.stream import (
    FrameRejectedError,
    FrameWorker,
    RelocalizationError,
    SensorStream,
    StreamKeyframe,
)
from crossover_ros.pipeline.verification import GeometricVerifier
from crossover_ros.pose.estimate import PoseEstimate
from crossover_ros.pose.registration import HAS_OPEN3D

Emit = Callable[[Event], None]
RECORDING_WINDOW = 20  # keyframes fused before a recording folds them into its cloud
SCENE_COUNT_REFRESH_S = 10.0  # the map's scene count in the status (another process may add)
WARN_PERIOD_S = 5.0


def create_model_encoder(cfg: ModelCfg, map_modality: str = "") -> RecognitionEncoder:
    """The encoder ``cfg`` names (``model.registry.create_encoder``), ranking ``map_modality``."""
    return create_encoder(cfg.name, map_modality, cfg.num_threads, backend=cfg.backend)


def recording_fusion(cfg: FusionCfg) -> PointCloudFusion | None:
    """The fusion a recording folds into its cloud every RECORDING_WINDOW keyframes; None
    without open3d."""
    if not HAS_OPEN3D:
        return None
    return PointCloudFusion(replace(cfg, max_keyframes=RECORDING_WINDOW))


def open_recognition(
    cfg: PipelineCfg,
    emit: Emit,
    *,
    threaded: bool = True,
    encoder: RecognitionEncoder | None = None,
    mapdb: MapBase | None = None,
) -> RecognitionPipeline:
    """The pipeline ``cfg`` describes; ``encoder`` and ``mapdb`` are made from it unless given
    (a caller evaluating several bags shares one of each). CrossoverError if they do not fit."""
    encoder = encoder or create_model_encoder(cfg.model, cfg.model.map_modality)
    owns_map = mapdb is None
    mapdb = mapdb or open_map(
        cfg.map.path,
        encoder.fingerprint,
        password_file=cfg.map.password_file,
        read_only=not cfg.map.allow_updates,  # written only by map updates
    )
    try:
        return RecognitionPipeline(cfg, encoder, mapdb, emit, threaded, owns_map)
    except BaseException:
        if owns_map:
            mapdb.close()
        raise


class _SensorPipeline:
    """What both pipelines do alike: take camera info and odometry, say what went wrong."""

    stream: SensorStream

    def __init__(self, emit: Emit) -> None:
        self._listeners: list[Emit] = [emit]
        self._throttle = WarnThrottle(WARN_PERIOD_S)

    def add_listener(self, emit: Emit) -> None:
        """Also hand every event to ``emit`` (the live evaluation's stage timings)."""
        self._listeners.append(emit)

    def on_camera_info(self, msg: Any) -> None:
        self.stream.on_camera_info(msg)

    def on_odometry(self, msg: Any) -> None:
        try:
            self.stream.on_odometry(msg)
        except FrameRejectedError as err:
            self._warn(err.reason, str(err))

    def _emit(self, event: Event) -> None:
        for listener in self._listeners:
            listener(event)

    def _warn(self, key: str, message: str) -> None:
        text = self._throttle(key, message)
        if text is not None:
            self._emit(WarningEvent(key, text))


class RecognitionPipeline(_SensorPipeline):
    """Sensor messages in (rclpy or rosbags objects alike), events out."""

    def __init__(
        self,
        cfg: PipelineCfg,
        encoder: RecognitionEncoder,
        mapdb: MapBase,
        emit: Emit,
        threaded: bool,
        owns_map: bool = False,
    ) -> None:
        self.cfg = cfg
        self.encoder = encoder
        self.mapdb = mapdb
        self.notes: list[str] = []  # stages left out, and why
        super().__init__(emit)
        self.stats = StreamStats()
        self._owns_map = owns_map
        self._scenes: int | None = None
        self._scenes_checked = -np.inf
        geometry = HAS_OPEN3D or self._note("open3d is not installed: no verification, no pose")
        verifier = self._verifier() if geometry else None
        recognizer = SceneRecognizer(encoder, mapdb, cfg.recognizer, verifier, self._ranker())
        fusion = relocalizer = None
        self.changes: ChangeDetector | None = None
        if geometry and cfg.relocalization.enabled:
            fusion = PointCloudFusion(cfg.fusion)
            # verification fits the same scenes: each is prepared once, for both
            scenes = verifier.estimator.scenes if verifier is not None else None
            if scenes is not None and not scenes.prepares_like(cfg.relocalization.pose):
                scenes = None
            relocalizer = Relocalizer(mapdb, encoder, cfg.relocalization, scenes)
            if cfg.changes.enabled:
                self.changes = ChangeDetector(mapdb, cfg.changes, cfg.relocalization.map_frame)
        self.stream = SensorStream(
            recognizer, cfg.stream, fusion, cfg.keyframes, self.stats, relocalizer
        )
        self.updater: MapUpdater | None = None
        if cfg.map.allow_updates:  # the visit so far, for update_map
            recording = SceneRecording(
                RecordingCfg(max_keyframes=cfg.map_update.max_keyframes),
                recording_fusion(cfg.fusion),
                encoder.cell_grid,
            )
            lag = cfg.recognizer.window_size  # the windows lag behind a room change
            self.updater = MapUpdater(cfg.map_update, mapdb, encoder, recording, lag=lag)
            self.add_listener(self.updater.observe)
        self.workers: tuple[FrameWorker, FrameWorker] | None = None  # recognition, relocalisation
        if threaded:
            self.workers = (
                FrameWorker(self._process, self._on_worker_error, "recognition"),
                FrameWorker(self._relocalize, self._on_worker_error, "relocalization"),
            )

    def _note(self, why: str) -> bool:
        self.notes.append(why)
        return False

    def _verifier(self) -> GeometricVerifier | None:
        cfg = self.cfg
        if cfg.verification.top_k <= 0:
            return None
        # the window's keyframes, fused as the relocalisation cloud is
        fusion = replace(
            cfg.verification.fusion,
            max_keyframes=cfg.recognizer.window_size,
            pixel_stride=cfg.fusion.pixel_stride,
        )
        return GeometricVerifier(replace(cfg.verification, fusion=fusion))

    def _ranker(self) -> ObjectSetRanker | None:
        if self.cfg.ranking.top_k <= 0:
            return None
        if not self.encoder.finds_objects:
            self._note("the model finds no objects in frames: candidates ranked by scene vectors")
            return None
        return ObjectSetRanker(self.cfg.recognizer.window_size, self.cfg.ranking)

    # -- life --------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers (threaded) and the "no frames since" clock."""
        self.stats.reset_clock()
        for worker in self.workers or ():
            worker.start()

    def stop(self) -> list[str]:
        """Stop the workers after the work in hand; the names of those that did not stop."""
        return [w.name for w in self.workers or () if not w.stop()]

    def close(self) -> None:
        self.stop()
        if self.stream.recognizer.verifier is not None:
            self.stream.recognizer.verifier.close()
        if self._owns_map:
            self.mapdb.close()

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Wait until both workers have nothing waiting or in hand (tests, benchmarks)."""
        return all(worker.wait_idle(timeout_s) for worker in self.workers or ())

    @property
    def dropped(self) -> int:
        """Pairs superseded before the worker got to them."""
        return self.workers[0].dropped if self.workers else 0

    def reset(self) -> None:
        """Forget the window, the filtered answer, the fused cloud, the pooled poses and the
        changes seen."""
        self.stream.reset()
        if self.changes is not None:
            self.changes.reset()
        if self.updater is not None:
            self.updater.reset()

    def update_map(self, hint: str = "") -> SceneRecord:
        """Add the current visit to the map as a new scan of the recognised room
        (:meth:`MapUpdater.add_visit`); MapUpdateError says why not, in one line."""
        if self.updater is None:
            raise MapUpdateError(
                "map updates are off: start with map.allow_updates true (the map is then"
                " opened writable)"
            )
        with self.stream.recognizer.exclusive():  # one user of the encoder at a time
            return self.updater.add_visit(hint)

    def replace_map(self, mapdb: MapBase) -> MapBase:
        """Rank against ``mapdb`` from now on (same model); returns the old map, which the
        caller closes (or, if this pipeline opened it, this call closes)."""
        old = self.stream.recognizer.replace_map(mapdb)
        if self.stream.relocalizer is not None:
            self.stream.relocalizer.replace_map(mapdb)
        if self.changes is not None:
            self.changes.replace_map(mapdb)
        if self.updater is not None:
            self.updater.replace_map(mapdb)
        self.mapdb, self._scenes_checked = mapdb, -np.inf
        if self._owns_map:
            old.close()
        self._owns_map = True
        return old

    # -- messages ----------------------------------------------------------------------------
    def on_color(self, msg: Any) -> None:
        self._pair(self.stream.sync_color(msg))

    def on_depth(self, msg: Any) -> None:
        self._pair(self.stream.sync_depth(msg))

    def _pair(self, pair: tuple[Any, Any] | None) -> None:
        if pair is None:
            return
        item = (*pair, time.monotonic())
        if self.workers is not None:
            self.workers[0].submit(item)
        else:
            self._process(item)

    # -- work --------------------------------------------------------------------------------
    def _process(self, item: tuple[Any, Any, float]) -> None:
        color, depth, synced_at = item
        try:
            keyframe = self.stream.process(color, depth, synced_at)
        except FrameRejectedError as err:
            self._warn(err.reason, str(err))
            return
        if keyframe is None:
            return
        if keyframe.result is None:
            self._warn("empty_map", "the map has no scenes: no answer to publish")
            return
        for stage, error in keyframe.result.errors.items():  # the answer went out without it
            self._warn(stage, error)
        self._emit(MatchEvent(keyframe, time.monotonic() - synced_at))
        if self.workers is not None:
            self.workers[1].submit(keyframe)
        else:
            self._relocalize(keyframe)

    def _relocalize(self, keyframe: StreamKeyframe) -> None:
        try:
            found = self.stream.relocalize(keyframe)
        except RelocalizationError as err:
            self._warn("relocalization", str(err))
            return
        if found is None:
            return
        event = self._locate(keyframe, found)
        if event.pose is None:
            self._warn("no_pose", f"no pose in {found.scene_id}: {found.pose.reason}")
        elif not event.confirmed:  # a single estimate, one odometry disagrees with, or a twin
            twins = f"; fits {', '.join(found.rivals)} as well" if found.rivals else ""
            self._warn(
                "unconfirmed_pose",
                f"pose in {found.scene_id} not confirmed yet ({found.support} agreeing"
                f" estimate(s){twins}); not published",
            )
        self._emit(event)
        if event.pose is not None and self.changes is not None:
            self._compare(keyframe, found, event.confirmed)

    def _compare(self, keyframe: StreamKeyframe, found: Relocalization, confirmed: bool) -> None:
        """What changed in the room: a failure loses the report, never the pose."""
        try:
            report = self.changes.observe(found, confirmed)
        except (CrossoverError, ValueError) as err:
            self._warn("changes", f"change detection in {found.scene_id} failed: {err}")
            return
        if report is not None:
            self._emit(ChangeEvent(keyframe, report))

    def _locate(self, keyframe: StreamKeyframe, found: Relocalization) -> RelocalizationEvent:
        """The body's pose in the map frame (or the scene's own), as the node publishes it."""
        record = self.mapdb.scene(found.scene_id)
        if not isinstance(found.pose, PoseEstimate):
            return RelocalizationEvent(keyframe, found, found.scene_id, None, None, None)
        body_in_scene = found.camera_in_scene
        covariance = found.pose.covariance_at(found.camera_to_odom[:3, 3])
        scene_to_odom = found.pose.map_from_query
        if record.frame_to_building is None:
            frame_id, scene_to_map = record.scene_id, np.eye(4)
        else:
            frame_id = self.cfg.relocalization.map_frame
            scene_to_map = np.asarray(record.frame_to_building, np.float64).reshape(4, 4)
        rotate = np.kron(np.eye(2), scene_to_map[:3, :3])  # the same rotation for both halves
        return RelocalizationEvent(
            keyframe,
            found,
            frame_id,
            scene_to_map @ body_in_scene,
            rotate @ covariance @ rotate.T,
            scene_to_map @ scene_to_odom,
        )

    def _on_worker_error(self, err: BaseException) -> None:
        self._emit(WarningEvent("worker", f"recognition failed unexpectedly: {err!r}"))

    # -- status ------------------------------------------------------------------------------
    def scene_count(self) -> int | None:
        """The map's scene count, re-read every few seconds (another process may add)."""
        if time.monotonic() - self._scenes_checked > SCENE_COUNT_REFRESH_S:
            self._scenes_checked = time.monotonic()
            try:
                self._scenes = len(self.mapdb.scenes())
            except CrossoverError as err:
                self._warn("map_read", f"cannot count the map's scenes: {err}")
        return self._scenes

    def status(self, active: bool, answer: MatchEvent | None) -> tuple[int, str, dict]:
        """(level, message, values) for diagnostics; ``answer``: the newest match published."""
        snapshot = self.stats.snapshot()
        scenes = self.scene_count()
        level, message = assess(snapshot, True, active, scenes, self.cfg.health)
        result = answer.keyframe.result if answer is not None else None
        values: dict[str, object] = {
            "state": "active" if active else "inactive",
            "model": self.cfg.model.name,
            "backend": getattr(self.encoder, "backend", self.cfg.model.backend),
            "map": self.mapdb.path,
            "scenes": scenes,
            "scene_id": result.scene_id if result is not None else "",
            "confidence": result.confidence if result is not None else None,
        }
        for name in ("color", "depth", "odometry", "camera_info", "pairs", "frames", "keyframes"):
            values[f"{name} rate (Hz)"] = snapshot[f"{name}_hz"]
        for name in ("recognition", "pair_to_result"):
            for q in ("p50", "p95"):
                values[f"{name.replace('_', ' ')} {q} (ms)"] = snapshot[f"{name}_{q}_ms"]
        values["seconds since last frame"] = snapshot["since_last_frame_s"]
        values.update(self.stream.counts())
        for stage, recent in snapshot["stages"].items():
            values[f"{stage} failures"] = recent["total_failures"]
        values["dropped"] = self.dropped
        values["worker errors"] = sum(w.errors for w in self.workers or ())
        values["switches"] = self.stream.recognizer.filter.switches
        if self.stream.fusion is not None:
            values["fused keyframes"] = len(self.stream.fusion)
        return level, message, values


def open_recording(
    cfg: RecordingPipelineCfg,
    emit: Emit,
    *,
    encoder: RecognitionEncoder | None = None,
    mapdb: MapBase | None = None,
) -> RecordingPipeline:
    """The recording pipeline ``cfg`` describes; the map is opened (or, for a SQLite file that
    does not exist yet, created) for the model unless given."""
    encoder = encoder or create_model_encoder(cfg.model)
    if mapdb is None:
        if not cfg.map.path:
            raise CrossoverError("map.path is empty: name the map to record into")
        mapdb = open_or_create_map(cfg.map.path, encoder, cfg.map.password_file)
        return RecordingPipeline(cfg, encoder, mapdb, emit, owns_map=True)
    return RecordingPipeline(cfg, encoder, mapdb, emit)


class RecordingPipeline(_SensorPipeline):
    """Keyframes of a mapping run into a :class:`SceneRecording`; :meth:`save` adds the scene.

    ``keyframe`` pairs and checks a message as the recogniser does (same stream, same keyframe
    rule); ``record`` keeps a keyframe. Callers that split a run into rooms (``map record``)
    decide between the two; the node records every keyframe (:meth:`on_color`).
    """

    def __init__(
        self,
        cfg: RecordingPipelineCfg,
        encoder: RecognitionEncoder,
        mapdb: MapBase,
        emit: Emit,
        owns_map: bool = False,
    ) -> None:
        super().__init__(emit)
        self.cfg = cfg
        self.encoder = encoder
        self.mapdb = mapdb
        self._owns_map = owns_map
        fusion = recording_fusion(cfg.fusion) if cfg.recording.fuse_cloud else None
        if cfg.recording.fuse_cloud and fusion is None:
            self._warn("open3d", "open3d is not installed: scenes are saved without a cloud")
        self.recording = SceneRecording(cfg.recording, fusion, encoder.cell_grid)
        self.stream = SensorStream(None, cfg.stream, keyframes=cfg.keyframes)

    def __len__(self) -> int:
        return len(self.recording)

    def close(self) -> None:
        if self._owns_map:
            self.mapdb.close()

    def on_color(self, msg: Any) -> None:
        self.record(self.keyframe(self.stream.sync_color(msg)))

    def on_depth(self, msg: Any) -> None:
        self.record(self.keyframe(self.stream.sync_depth(msg)))

    def keyframe(self, pair: tuple[Any, Any] | None) -> StreamKeyframe | None:
        """The pair as a keyframe, None if it is not one (or was rejected: said, counted)."""
        if pair is None:
            return None
        try:
            return self.stream.process(*pair)
        except FrameRejectedError as err:
            self._warn(err.reason, str(err))
            return None

    def record(self, keyframe: StreamKeyframe | None) -> None:
        if keyframe is None:
            return
        try:
            self.recording.add(keyframe.frame, keyframe.pose, keyframe.odom_frame)
        except ValueError as err:  # a frame fusion cannot use: keep recording
            self._warn("fusion", f"keyframe not fused: {err}")

    def save(self, scene_id: str, *scene: Any, **provenance: Any) -> SceneRecord:
        """Embed the recording and add it to the map as a scene: ``SceneRecording.save``'s
        arguments after the map and the model (building, room, scan index, frame; source)."""
        return self.recording.save(self.mapdb, self.encoder, scene_id, *scene, **provenance)
