"""Scene recognition over a sliding window of keyframes, independent of ROS.

A frame is encoded only if it is a keyframe; the last ``window_size`` keyframe embeddings form
the query against the map database. A time jump backwards (a bag loop) empties the window.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from crossover_ros.errors import CrossoverError
from crossover_ros.frames import RGBDFrame
from crossover_ros.mapdb.base import MapBase
from crossover_ros.pipeline.encoders import SceneEncoder
from crossover_ros.pipeline.keyframes import KeyframeCfg, KeyframeSelector


@dataclass(frozen=True)
class RecognizerCfg:
    keyframes: KeyframeCfg = field(default_factory=KeyframeCfg)
    window_size: int = 6
    top_k: int = 5
    confidence_temperature: float = 0.01


@dataclass(frozen=True)
class SceneMatchResult:
    """The ranked answer for one query window."""

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


def softmax_confidence(scores: list[float], temperature: float) -> float:
    """Probability mass of the best candidate under a softmax of the ranked scores.

    Near-identical rooms give close scores and so a low confidence, which is what a robot
    needs to know before it trusts the match.
    """
    if not scores:
        return 0.0
    logits = np.asarray(scores, dtype=np.float64) / temperature
    weights = np.exp(logits - logits.max())
    return float(weights[0] / weights.sum())


class SceneRecognizer:
    """Feed synchronised frames; get a :class:`SceneMatchResult` whenever a keyframe is added."""

    def __init__(self, encoder: SceneEncoder, mapdb: MapBase, cfg: RecognizerCfg | None = None):
        self.cfg = cfg or RecognizerCfg()
        if mapdb.model_fingerprint != encoder.fingerprint:
            raise CrossoverError(
                f"map {mapdb.path} was built with {mapdb.model_fingerprint}, the encoder is"
                f" {encoder.fingerprint}: rebuild the map with this model"
            )
        if encoder.map_modality not in mapdb.modalities():
            raise CrossoverError(f"map {mapdb.path} holds no '{encoder.map_modality}' embeddings")
        self.encoder = encoder
        self.mapdb = mapdb
        self.keyframes = KeyframeSelector(self.cfg.keyframes)
        self._window: deque[np.ndarray] = deque(maxlen=self.cfg.window_size)
        self._last_stamp: float | None = None

    def reset(self) -> None:
        """Forget the window, e.g. after a relocalisation request or a bag loop."""
        self._window.clear()
        self.keyframes.reset()
        self._last_stamp = None

    @property
    def window_length(self) -> int:
        return len(self._window)

    def add_frame(
        self, frame: RGBDFrame, pose: np.ndarray | None = None
    ) -> SceneMatchResult | None:
        """Process one frame; returns a match if it became a keyframe, else None."""
        if self._last_stamp is not None and frame.stamp < self._last_stamp:
            self.reset()
        self._last_stamp = frame.stamp
        if not self.keyframes.accept(frame.stamp, pose):
            return None
        started = time.perf_counter()
        self._window.append(self.encoder.frame_features([frame.color])[0])
        queries = self.encoder.query(np.stack(self._window))
        candidates = self.mapdb.query(queries, self.encoder.map_modality, top_k=self.cfg.top_k)
        if not candidates:
            return None
        scores = [c.score for c in candidates]
        return SceneMatchResult(
            stamp=frame.stamp,
            scene_id=candidates[0].scene_id,
            score=scores[0],
            confidence=softmax_confidence(scores, self.cfg.confidence_temperature),
            candidate_ids=[c.scene_id for c in candidates],
            candidate_scores=scores,
            modality=self.encoder.modality,
            map_modality=self.encoder.map_modality,
            num_frames=len(self._window),
            compute_time_s=time.perf_counter() - started,
        )
