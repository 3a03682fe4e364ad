"""Per-visit results of a bag replay: which room the robot was in, which one it said, how fast."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ObservedMatch:
    """One published match, as a subscriber saw it."""

    stamp_ns: int
    scene_id: str
    score: float
    confidence: float
    latency_s: float | None  # frame published -> match received, over DDS


@dataclass(frozen=True)
class VisitResult:
    room_id: str
    true_scene: str
    final_scene: str  # the last answer given inside the visit
    top1_share: float  # share of the visit's answers that were correct
    num_matches: int
    latency_p50_ms: float | None

    @property
    def correct(self) -> bool:
        return self.final_scene == self.true_scene


def summarize_visits(visits: list[dict], matches: list[ObservedMatch]) -> list[VisitResult]:
    """Assign each match to the visit whose time span holds its stamp."""
    results = []
    for visit in visits:
        inside = [m for m in matches if visit["start_ns"] <= m.stamp_ns <= visit["end_ns"]]
        inside.sort(key=lambda m: m.stamp_ns)
        latencies = [m.latency_s for m in inside if m.latency_s is not None]
        results.append(
            VisitResult(
                room_id=visit["room_id"],
                true_scene=visit["scene_id"],
                final_scene=inside[-1].scene_id if inside else "",
                top1_share=(
                    sum(m.scene_id == visit["scene_id"] for m in inside) / len(inside)
                    if inside
                    else 0.0
                ),
                num_matches=len(inside),
                latency_p50_ms=float(np.median(latencies) * 1e3) if latencies else None,
            )
        )
    return results


def format_visits(results: list[VisitResult]) -> str:
    """A plain-text table, one line per visited room, and a total."""
    lines = [
        f"{'room':<10} {'true scene':<24} {'matched scene':<24} {'ok':<3} "
        f"{'top-1 share':>11} {'answers':>7} {'latency p50':>11}"
    ]
    for r in results:
        latency = f"{r.latency_p50_ms:.0f} ms" if r.latency_p50_ms is not None else "-"
        lines.append(
            f"{r.room_id:<10} {r.true_scene:<24} {r.final_scene or '(none)':<24} "
            f"{'yes' if r.correct else 'NO':<3} {r.top1_share:>11.0%} {r.num_matches:>7} "
            f"{latency:>11}"
        )
    correct = sum(r.correct for r in results)
    lines.append(f"rooms recognised: {correct}/{len(results)}")
    return "\n".join(lines)
