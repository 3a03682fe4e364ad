"""Temporal filter of the recognised scene: one odd window must not flip the room.

Every query window ranks candidate scenes; its best candidate *votes* for that scene if its
confidence is at least ``min_confidence`` (a less confident window abstains: it neither counts
nor breaks a streak). The published scene switches to a challenger only when

- the challenger won ``switch_after_windows`` voting windows in a row, or
- in one window its confidence exceeds the current scene's by more than ``switch_margin``
  (the current scene counts 0 if it fell out of the window's candidates; 1.0 disables this).

A window of fewer than ``min_window_frames`` keyframes does not vote either: after a restart
(the first keyframes, a bag loop, a reset) one frame alone never names a room, however sure it
looks. A window voting for the current scene ends any challenge. Before the first switch there is no
scene (``""``): the first scene is accepted by the same rule. ``switch_after_windows = 1``
turns the filter off (every voting window's best is the answer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crossover_ros.config import setting, validate

__all__ = ["HysteresisCfg", "HysteresisDecision", "SceneHysteresis"]


@dataclass(frozen=True)
class HysteresisCfg:
    switch_after_windows: int = setting(
        3,
        "The answer switches to a scene that was the best of this many windows in a row"
        " (1: no temporal filter).",
        1,
        100,
    )
    switch_margin: float = setting(
        0.9,
        "... or at once when its confidence exceeds the current scene's by more than this"
        " (1.0: never at once).",
        0.0,
        1.0,
    )
    min_confidence: float = setting(
        0.0,
        "Windows whose best candidate has less confidence do not count towards a switch.",
        0.0,
        1.0,
    )
    min_window_frames: int = setting(
        2,
        "Windows of fewer keyframes do not count either: after a restart one frame alone"
        " never names a room.",
        1,
        100,
    )

    def __post_init__(self) -> None:
        validate(self)


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

    def update(
        self, ranked_ids: Sequence[str], confidences: Sequence[float], frames: int | None = None
    ) -> HysteresisDecision:
        """One window of ``frames`` keyframes (None: enough): ``ranked_ids`` best first,
        ``confidences`` in the same order."""
        if len(ranked_ids) != len(confidences):
            raise ValueError(f"{len(ranked_ids)} candidates but {len(confidences)} confidences")
        too_few = frames is not None and frames < self.cfg.min_window_frames
        if too_few or not ranked_ids or confidences[0] < self.cfg.min_confidence:
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
