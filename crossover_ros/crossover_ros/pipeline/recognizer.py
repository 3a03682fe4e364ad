"""Scene recognition over a sliding window of keyframes, independent of ROS.

Each keyframe (chosen by the stream, :mod:`crossover_ros.pipeline.keyframes`) is encoded; the
last ``window_size`` keyframe embeddings form the query against the map database. With an
:class:`ObjectSetRanker`, the best candidates are re-scored by how well their stored objects
explain the objects found in the window's frames (:mod:`crossover_ros.pipeline.object_ranking`);
with a :class:`GeometricVerifier`, the best are then re-ranked by how well the window's fused
depth fits their stored clouds (:mod:`crossover_ros.pipeline.verification`). Each window's
ranking goes through a temporal filter (:mod:`crossover_ros.pipeline.hysteresis`), so one odd
keyframe does not flip the room. Each answer carries how long each stage took, so the node's
diagnostics and the evaluations read the same timings.

Thread-safe: one worker may add frames while another thread resets or swaps the map.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from crossover_ros.config import group, setting, validate
from crossover_ros.errors import CrossoverError
from crossover_ros.frames import RGBDFrame
from crossover_ros.mapdb.base import MapBase
from crossover_ros.model.registry import RecognitionEncoder
from crossover_ros.pipeline.hysteresis import HysteresisCfg, SceneHysteresis
from crossover_ros.pipeline.object_ranking import ObjectSetRanker
from crossover_ros.pipeline.verification import GeometricVerifier


@dataclass(frozen=True)
class RecognizerCfg:
    window_size: int = setting(6, "Keyframes in the query window.", 1, 100)
    top_k: int = setting(5, "Ranked candidates published.", 1, 100)
    confidence_temperature: float = setting(
        0.05,
        "Softmax temperature that turns the candidates' scores into confidences (smaller:"
        " surer); chosen on the validation benchmark for calibration.",
        1e-4,
        10.0,
    )
    confidence_candidates: int = setting(
        10, "At least this many ranked candidates share the confidence.", 2, 100
    )
    hysteresis: HysteresisCfg = group(HysteresisCfg)

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class SceneMatchResult:
    """The answer after one query window.

    ``scene_id`` is the filtered answer ("" until the filter accepted a scene); ``score`` and
    ``confidence`` are that scene's in this window (NaN and 0 if it is not among the
    candidates). The candidates are this window's raw ranking: ``candidate_ids[0]`` can differ
    from ``scene_id`` while a challenger has not yet won. Their scores are the map's cosines (with
    object ranking: how well the scene's objects explain the window's), or with geometric
    verification ``fitness + score_weight * that score`` (``candidate_fitness``: NaN where not
    fitted). ``changed``: this window switched ``scene_id``. ``timings``: seconds per stage
    (frame_features, query_encoder, map_search, object_ranking, verification); ``errors``: the
    stages that failed on this window (the candidates kept their order before them).
    """

    stamp: float
    scene_id: str
    score: float
    confidence: float
    candidate_ids: list[str]
    candidate_scores: list[float]
    modality: str
    map_modality: str
    num_frames: int
    compute_time_s: float
    changed: bool = False
    candidate_confidences: list[float] = field(default_factory=list)
    candidate_fitness: list[float] = field(default_factory=list)  # NaN: not verified
    timings: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # stage -> why it failed (order kept)


def softmax_confidence(scores: list[float], temperature: float) -> float:
    """Probability mass of the best candidate under a softmax of the ranked scores.

    Near-identical rooms give close scores and so a low confidence, which is what a robot
    needs to know before it trusts the match.
    """
    if not scores:
        return 0.0
    return softmax_confidences(scores, temperature)[0]


def softmax_confidences(scores: list[float], temperature: float) -> list[float]:
    """Softmax of the ranked scores: every candidate's share, same order, summing to 1."""
    if not scores:
        return []
    logits = np.asarray(scores, dtype=np.float64) / temperature
    weights = np.exp(logits - logits.max())
    return [float(w) for w in weights / weights.sum()]


class SceneRecognizer:
    """Feed keyframes to :meth:`recognise`; get a :class:`SceneMatchResult` for each."""

    def __init__(
        self,
        encoder: RecognitionEncoder,
        mapdb: MapBase,
        cfg: RecognizerCfg | None = None,
        verifier: GeometricVerifier | None = None,
        ranker: ObjectSetRanker | None = None,
    ):
        self.cfg = cfg or RecognizerCfg()
        check_map(encoder, mapdb)
        if ranker is not None and not encoder.finds_objects:
            raise CrossoverError("ranking by objects needs a CrossOver model with a region encoder")
        self.encoder = encoder
        self.mapdb = mapdb
        self.verifier = verifier  # re-ranks each window's candidates by depth, when given
        if verifier is not None:
            verifier.prepare(mapdb)
        self.ranker = ranker  # re-scores them by the objects in the window's frames, when given
        self.filter = SceneHysteresis(self.cfg.hysteresis)
        self._window: deque[np.ndarray] = deque(maxlen=self.cfg.window_size)
        self._lock = threading.RLock()

    def reset(self) -> None:
        """Forget the window and the filtered scene, e.g. on a relocalisation request."""
        with self._lock:
            self._window.clear()
            if self.verifier is not None:
                self.verifier.reset()
            if self.ranker is not None:
                self.ranker.reset()
            self.filter.reset()

    def replace_map(self, mapdb: MapBase) -> MapBase:
        """Query ``mapdb`` from now on; returns the old map (the caller closes it).

        The map must come from the same model; the window is kept (same embedding space), the
        filter restarts (the new map may name other scenes).
        """
        check_map(self.encoder, mapdb)
        with self._lock:
            old, self.mapdb = self.mapdb, mapdb
            self.filter.reset()
            if self.verifier is not None:
                self.verifier.prepare(mapdb)
            if self.ranker is not None:
                self.ranker.forget_scenes()
        return old

    def exclusive(self) -> threading.RLock:
        """Hold (``with``) to keep keyframes waiting while another caller uses the encoder
        (``update_map`` embeds the visit with it)."""
        return self._lock

    @property
    def window_length(self) -> int:
        return len(self._window)

    def recognise(
        self, frame: RGBDFrame, pose: np.ndarray | None = None
    ) -> SceneMatchResult | None:
        """Add a keyframe (camera ``pose`` in the odometry frame, if known) to the window and
        query; None if the map has no scenes."""
        with self._lock:
            started = time.perf_counter()
            timer = _StageTimer()
            with timer("frame_features"):
                if self.ranker is not None:
                    features, objects = self.encoder.frame_objects([frame.color])
                else:
                    features = self.encoder.frame_features([frame.color])
            self._window.append(features[0])
            if self.ranker is not None:
                with timer("object_ranking"):
                    self.ranker.add(objects[0])
            if self.verifier is not None:
                with timer("verification"):
                    self.verifier.add(frame, pose)
            with timer("query_encoder"):
                queries = self.encoder.query(np.stack(self._window))
            published = self.cfg.top_k
            # the ranker and the verifier may look at more; the confidence looks at them all
            wanted = max(published, self.cfg.confidence_candidates)
            if self.ranker is not None:
                wanted = max(wanted, self.ranker.cfg.top_k)
            if self.verifier is not None:
                wanted = max(wanted, self.verifier.cfg.top_k)
            with timer("map_search"):
                # one candidate per room, named by its newest scan (older scans are evidence)
                candidates = self.mapdb.query(
                    queries, self.encoder.map_modality, top_k=wanted, by_room=True
                )
            if not candidates:
                return None
            ids = [c.scene_id for c in candidates]
            scores = [c.score for c in candidates]
            fitness = [math.nan] * len(ids)
            errors: dict[str, str] = {}
            if self.ranker is not None:
                failures = self.ranker.failures
                with timer("object_ranking"):
                    ids, scores = self.ranker.rerank(self.mapdb, ids, scores)
                if self.ranker.failures != failures:
                    errors["object_ranking"] = self.ranker.last_error
            if self.verifier is not None:
                failures = self.verifier.failures
                with timer("verification"):
                    ids, scores, fitness = self.verifier.rerank(self.mapdb, ids, scores)
                if self.verifier.failures != failures:
                    errors["verification"] = self.verifier.last_error
            # confidences over every candidate ranked, so the number published changes nothing
            confidences = softmax_confidences(scores, self.cfg.confidence_temperature)
            ids, scores, fitness = ids[:published], scores[:published], fitness[:published]
            confidences = confidences[:published]
            frames = len(self._window)  # a full window always counts, however short
            decision = self.filter.update(
                ids, confidences, frames if frames < self.cfg.window_size else None
            )
            if decision.scene_id in ids:
                rank = ids.index(decision.scene_id)
                score, confidence = scores[rank], confidences[rank]
            else:
                score, confidence = math.nan, 0.0
            return SceneMatchResult(
                stamp=frame.stamp,
                scene_id=decision.scene_id,
                score=score,
                confidence=confidence,
                candidate_ids=ids,
                candidate_scores=scores,
                modality=self.encoder.modality,
                map_modality=self.encoder.map_modality,
                num_frames=len(self._window),
                compute_time_s=time.perf_counter() - started,
                changed=decision.changed,
                candidate_confidences=confidences,
                candidate_fitness=fitness,
                timings=timer.seconds,
                errors=errors,
            )


class _StageTimer:
    """Adds up the seconds spent in each named stage of one keyframe."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.seconds[stage] = self.seconds.get(stage, 0.0) + elapsed


def check_map(encoder: RecognitionEncoder, mapdb: MapBase) -> None:
    """The map must hold this model's vectors of the modality ranked against (if any scene);
    a ``CrossoverError`` that says why not."""
    if mapdb.model_fingerprint != encoder.fingerprint:
        raise CrossoverError(
            f"map {mapdb.path} was built with {mapdb.model_fingerprint}, the encoder is"
            f" {encoder.fingerprint}: rebuild the map with this model"
        )
    if (mapdb.embedding_dim, mapdb.instance_dim) != (encoder.dim, encoder.instance_dim):
        raise CrossoverError(
            f"map {mapdb.path} holds {mapdb.embedding_dim}-d scene and {mapdb.instance_dim}-d"
            f" instance vectors, the encoder makes {encoder.dim}-d and {encoder.instance_dim}-d"
            " (a map made by an older version of this package): rebuild the map"
        )
    modalities = mapdb.modalities()
    if modalities and encoder.map_modality not in modalities:
        raise CrossoverError(
            f"map {mapdb.path} holds no '{encoder.map_modality}' embeddings"
            f" (it holds {', '.join(modalities)})"
        )
