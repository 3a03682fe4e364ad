"""Per-visit results of a bag replay: which room the robot was in, which one it said, how fast.

A *visit* is one stay of the robot in one room, as the query bag's ground truth lists it
(``start_ns``/``end_ns`` of the first and last frame in the room, the true map scene). The demo
prints these per room; ``crossover_ros eval`` adds the time and the distance travelled until
the first correct answer, which is what a robot coming back to a known building waits for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ObservedMatch:
    """One published match, as a subscriber (or the offline replay) saw it.

    The ranked candidates are filled where the source has them (SceneMatch carries them).
    """

    stamp_ns: int  # sensor stamp of the newest frame of the query window
    scene_id: str
    score: float
    confidence: float
    latency_s: float | None  # frame published (or handed to the stream) -> match received
    candidate_ids: tuple[str, ...] = ()
    candidate_scores: tuple[float, ...] = ()
    modality: str = ""
    map_modality: str = ""

    def ranked(self) -> tuple[str, ...]:
        """The candidates best first; the top-1 alone when no candidates were published."""
        return self.candidate_ids or ((self.scene_id,) if self.scene_id else ())


@dataclass(frozen=True)
class VisitResult:
    room_id: str
    true_scene: str
    final_scene: str  # the last answer given inside the visit
    top1_share: float  # share of the visit's answers that were correct
    num_matches: int
    latency_p50_ms: float | None
    first_correct_s: float | None = None  # visit start -> first correct answer (sensor time)
    first_correct_m: float | None = None  # distance travelled meanwhile (odometry), if known
    confident_wrong: int = 0  # wrong answers at or above the confidence threshold

    @property
    def correct(self) -> bool:
        return self.final_scene == self.true_scene


def path_length(path: Sequence[tuple[int, np.ndarray]], start_ns: int, end_ns: int) -> float:
    """Distance travelled between two stamps along (stamp_ns, position or 4x4 pose) samples."""
    points = [
        np.asarray(p)[:3, 3] if np.asarray(p).shape == (4, 4) else np.asarray(p)[:3]
        for stamp, p in path
        if start_ns <= stamp <= end_ns
    ]
    if len(points) < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(np.stack(points), axis=0), axis=1).sum())


def first_per_window(matches: list[ObservedMatch]) -> list[ObservedMatch]:
    """One match per query window (sensor stamp): the first to arrive.

    A node that repeats its answer periodically re-sends the latest window's stamp; scoring the
    repeats would count one window several times.
    """
    seen: set[int] = set()
    out = []
    for match in matches:
        if match.stamp_ns not in seen:
            seen.add(match.stamp_ns)
            out.append(match)
    return out


def summarize_visits(
    visits: list[dict],
    matches: list[ObservedMatch],
    path: Sequence[tuple[int, np.ndarray]] | None = None,
    confident: float = 0.5,
) -> list[VisitResult]:
    """Assign each match to the visit whose time span holds its stamp.

    ``path``: odometry samples (stamp_ns, pose), for the distance to the first correct answer;
    ``confident``: the confidence at or above which a wrong answer counts as a confident one.
    """
    results = []
    for visit in visits:
        inside = [m for m in matches if visit["start_ns"] <= m.stamp_ns <= visit["end_ns"]]
        inside.sort(key=lambda m: m.stamp_ns)
        latencies = [m.latency_s for m in inside if m.latency_s is not None]
        first = next((m for m in inside if m.scene_id == visit["scene_id"]), None)
        first_s = first_m = None
        if first is not None:
            first_s = (first.stamp_ns - visit["start_ns"]) / 1e9
            if path:
                first_m = path_length(path, visit["start_ns"], first.stamp_ns)
        results.append(
            VisitResult(
                room_id=str(visit.get("room_id", "")),
                true_scene=visit["scene_id"],
                final_scene=inside[-1].scene_id if inside else "",
                top1_share=(
                    sum(m.scene_id == visit["scene_id"] for m in inside) / len(inside)
                    if inside
                    else 0.0
                ),
                num_matches=len(inside),
                latency_p50_ms=float(np.median(latencies) * 1e3) if latencies else None,
                first_correct_s=first_s,
                first_correct_m=first_m,
                confident_wrong=sum(
                    m.scene_id not in ("", visit["scene_id"]) and m.confidence >= confident
                    for m in inside
                ),
            )
        )
    return results


def format_visits(results: list[VisitResult]) -> str:
    """A plain-text table, one line per visited room, and a total."""
    lines = [
        f"{'room':<10} {'true scene':<24} {'matched scene':<24} {'ok':<3} "
        f"{'top-1 share':>11} {'answers':>7} {'first ok':>8} {'latency p50':>11}"
    ]
    for r in results:
        latency = f"{r.latency_p50_ms:.0f} ms" if r.latency_p50_ms is not None else "-"
        first = f"{r.first_correct_s:.1f} s" if r.first_correct_s is not None else "never"
        lines.append(
            f"{r.room_id:<10} {r.true_scene:<24} {r.final_scene or '(none)':<24} "
            f"{'yes' if r.correct else 'NO':<3} {r.top1_share:>11.0%} {r.num_matches:>7} "
            f"{first:>8} {latency:>11}"
        )
    correct = sum(r.correct for r in results)
    lines.append(f"rooms recognised: {correct}/{len(results)}")
    return "\n".join(lines)
