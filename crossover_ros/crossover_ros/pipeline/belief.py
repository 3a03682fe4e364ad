"""Evidence over the windows of a visit: a discrete filter over the map's scenes.

One window's confidences say which scene its keyframes look like. A robot in a room sees it
for many windows, and a look-alike room wins some of them: its twin's windows should split the
belief, not flip a confident answer. The belief keeps a share ``memory`` of the earlier windows'
log-evidence (a geometric forgetting, so a new room takes over within a few windows) and adds
each window's; a scene a window did not rank gets ``floor``. ``memory`` 0 is one window alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from crossover_ros.config import setting, validate

MAX_TRACKED = 64  # scenes kept in the belief; the rest are at the floor


@dataclass(frozen=True)
class BeliefCfg:
    memory: float = setting(
        0.0,
        "Share of the earlier windows' evidence kept at each window (0: each window alone,"
        " towards 1: the whole visit).",
        0.0,
        0.95,
    )
    floor: float = setting(
        0.01,
        "Probability a window gives a scene it did not rank among its candidates.",
        1e-6,
        0.5,
    )

    def __post_init__(self) -> None:
        validate(self)


class RoomBelief:
    """Feed each window's (ids, confidences); read the scenes ranked by the pooled evidence."""

    def __init__(self, cfg: BeliefCfg | None = None) -> None:
        self.cfg = cfg or BeliefCfg()
        self._log: dict[str, float] = {}

    def reset(self) -> None:
        self._log.clear()

    def update(
        self, ids: Sequence[str], confidences: Sequence[float]
    ) -> tuple[list[str], list[float]]:
        """(scene ids best first, their belief summing to at most 1) after this window."""
        if self.cfg.memory == 0.0:
            return list(ids), list(confidences)
        floor = math.log(self.cfg.floor)
        window = {
            i: math.log(max(c, self.cfg.floor)) for i, c in zip(ids, confidences, strict=True)
        }
        memory = self.cfg.memory
        pooled = {
            scene: memory * self._log.get(scene, floor) + window.get(scene, floor)
            for scene in {*self._log, *window}
        }
        top = max(pooled.values())
        total = math.log(sum(math.exp(v - top) for v in pooled.values())) + top
        ranked = sorted(pooled, key=pooled.get, reverse=True)[:MAX_TRACKED]
        self._log = {scene: pooled[scene] - total for scene in ranked}
        return ranked, [math.exp(self._log[scene]) for scene in ranked]
