"""Temporal filter of the recognised scene: one odd window must not flip the room.

Every query window ranks candidate scenes; its best candidate *votes* for that scene if its
confidence is at least ``min_confidence`` (a less confident window abstains: it neither counts
nor breaks a streak). The published scene switches to a challenger only when

- the challenger won ``switch_after_windows`` voting windows in a row, or
- in one window its confidence exceeds the current scene's by more than ``switch_margin``
  (the current scene counts 0 if it fell out of the window's candidates; 1.0 disables this).

A window voting for the current scene ends any challenge. Before the first switch there is no
scene (``""``): the first scene is accepted by the same rule. ``switch_after_windows = 1``
turns the filter off (every voting window's best is the answer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["HysteresisCfg", "HysteresisDecision", "SceneHysteresis"]


@dataclass(frozen=True)
class HysteresisCfg:
    switch_after_windows: int = 3
    switch_margin: float = 0.9
    min_confidence: float = 0.0

    def __post_init__(self) -> None:
        if self.switch_after_windows < 1:
            raise ValueError(f"switch_after_windows must be >= 1, got {self.switch_after_windows}")
        for name in ("switch_margin", "min_confidence"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be in [0, 1], got {value}")


@dataclass(frozen=True)
class HysteresisDecision:
    """What the filter answers after one window."""

    scene_id: str  # the published scene; "" until one is accepted
    changed: bool  # this window switched scene_id
    voted: bool  # the window was confident enough to vote
    challenger: str  # scene challenging scene_id, "" if none
    streak: int  # consecutive voting windows the challenger has won


class SceneHysteresis:
    """Feed each window's ranked candidates with their confidences; read the stable scene."""

    def __init__(self, cfg: HysteresisCfg | None = None) -> None:
        self.cfg = cfg or HysteresisCfg()
        self.current = ""
        self.switches = 0  # how often scene_id changed (the first acceptance included)
        self._challenger = ""
        self._streak = 0

    def reset(self) -> None:
        """Forget the scene and any challenge (the switch count is kept)."""
        self.current = ""
        self._challenger = ""
        self._streak = 0

    def update(self, ranked_ids: Sequence[str], confidences: Sequence[float]) -> HysteresisDecision:
        """One window: ``ranked_ids`` best first, ``confidences`` in the same order."""
        if len(ranked_ids) != len(confidences):
            raise ValueError(f"{len(ranked_ids)} candidates but {len(confidences)} confidences")
        if not ranked_ids or confidences[0] < self.cfg.min_confidence:
            return self._decision(changed=False, voted=False)
        best, best_confidence = ranked_ids[0], float(confidences[0])
        if best == self.current:
            self._challenger, self._streak = "", 0
            return self._decision(changed=False, voted=True)
        if best == self._challenger:
            self._streak += 1
        else:
            self._challenger, self._streak = best, 1
        current_confidence = 0.0
        if self.current in ranked_ids:
            current_confidence = float(confidences[list(ranked_ids).index(self.current)])
        margin = best_confidence - current_confidence
        if self._streak >= self.cfg.switch_after_windows or margin > self.cfg.switch_margin:
            self.current = best
            self.switches += 1
            self._challenger, self._streak = "", 0
            return self._decision(changed=True, voted=True)
        return self._decision(changed=False, voted=True)

    def _decision(self, changed: bool, voted: bool) -> HysteresisDecision:
        return HysteresisDecision(self.current, changed, voted, self._challenger, self._streak)
