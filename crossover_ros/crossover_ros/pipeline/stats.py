"""Bookkeeping for diagnostics, without ROS: rates, latency percentiles, health, warn throttle.

The pipeline ticks events (a colour image arrived, a window was recognised) and each stage's
attempts (a frame converted or rejected, a verification that failed) into a
:class:`StreamStats`; once a second the node takes a :func:`StreamStats.snapshot` and
:func:`assess` turns that into a level and a message, which ``ros/diagnostics.py`` writes as a
``diagnostic_msgs/DiagnosticArray``. Everything takes an optional ``now`` (monotonic seconds) so
tests need no sleeping. Thread-safe: callbacks and the worker tick from different threads.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from crossover_ros.config import setting, validate

__all__ = [
    "ERROR",
    "OK",
    "STALE",
    "WARN",
    "HealthCfg",
    "LatencyWindow",
    "RateMeter",
    "StageLog",
    "StreamStats",
    "WarnThrottle",
    "assess",
]

# Levels as diagnostic_msgs/DiagnosticStatus numbers them.
OK, WARN, ERROR, STALE = 0, 1, 2, 3

Clock = Callable[[], float]


class RateMeter:
    """Events per second over the last ``horizon_s`` (memory bounded by ``max_events``)."""

    def __init__(self, horizon_s: float = 5.0, max_events: int = 1000) -> None:
        self.horizon_s = horizon_s
        self.total = 0
        self.last: float | None = None
        self._times: deque[float] = deque(maxlen=max_events)

    def tick(self, now: float) -> None:
        self.total += 1
        self.last = now
        self._times.append(now)

    def count(self, now: float) -> int:
        """Events in the last ``horizon_s``."""
        self._expire(now)
        return len(self._times)

    def rate(self, now: float) -> float:
        """Hz over the horizon; 0 with fewer than two recent events."""
        self._expire(now)
        if len(self._times) < 2:
            return 0.0
        span = max(now - self._times[0], self._times[-1] - self._times[0])
        return (len(self._times) - 1) / span if span > 0 else 0.0

    def _expire(self, now: float) -> None:
        while self._times and self._times[0] < now - self.horizon_s:
            self._times.popleft()


class LatencyWindow:
    """The last ``size`` durations; percentiles in milliseconds."""

    def __init__(self, size: int = 200) -> None:
        self._values: deque[float] = deque(maxlen=size)

    def add(self, seconds: float) -> None:
        self._values.append(float(seconds))

    def __len__(self) -> int:
        return len(self._values)

    def values(self) -> list[float]:
        """The kept durations in seconds, oldest first."""
        return list(self._values)

    def percentiles_ms(self, *qs: float) -> list[float | None]:
        if not self._values:
            return [None for _ in qs]
        values = np.asarray(self._values) * 1e3
        return [float(np.percentile(values, q)) for q in qs]


class WarnThrottle:
    """At most one message per key and ``period_s``; says how many were held back meanwhile.

    rclpy's own throttle is per call site, so one site warning about several reasons would hide
    all but the first; this one is per reason.
    """

    def __init__(self, period_s: float = 5.0, clock: Clock = time.monotonic) -> None:
        self.period_s = period_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str, message: str) -> str | None:
        """The message to log now (with a held-back count), or None to stay quiet."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                self._held[key] = self._held.get(key, 0) + 1
                return None
            self._last[key] = now
            held = self._held.pop(key, 0)
        return f"{message} ({held} more since the last such warning)" if held else message


# Event names the node ticks; each gets a rate in the snapshot.
INPUTS = ("color", "depth", "camera_info", "odometry")
# pairs: synchronised colour/depth pairs; frames: pairs processed (the rest were superseded).
EVENTS = (*INPUTS, "pairs", "frames", "keyframes", "rejected", "results")
# Stages whose recent work is judged: a frame (converted and checked), an odometry message, and
# per keyframe ranking by objects, verification, and relocalisation when due.
STAGES = ("frames", "odometry", "object_ranking", "verification", "relocalization")
STAGE_HORIZON_S = 30.0  # "recent" for a stage's failure share
MIN_ATTEMPTS = 3  # a share of fewer recent attempts says nothing


@dataclass(frozen=True)
class HealthCfg:
    stale_after_s: float = setting(
        5.0, "/diagnostics warns when no synchronised frame came for this long.", 0.1, 3600.0
    )
    reject_share: float = setting(
        0.5,
        "/diagnostics warns when more than this share of a stage's recent work failed (frames"
        " or odometry rejected, ranking by objects, verification or relocalisation failing);"
        " every recent attempt failing is an error.",
        0.0,
        1.0,
    )

    def __post_init__(self) -> None:
        validate(self)


class StageLog:
    """A stage's recent attempts: (time, failed, reason) over ``horizon_s``; totals kept."""

    def __init__(self, horizon_s: float = STAGE_HORIZON_S, size: int = 2000) -> None:
        self.horizon_s = horizon_s
        self.attempts = 0
        self.failures_by_reason: dict[str, int] = {}
        self.examples: dict[str, str] = {}  # reason -> its first failure's message
        self.last_error = ""
        self._recent: deque[tuple[float, bool, str]] = deque(maxlen=size)

    @property
    def failures(self) -> int:
        return sum(self.failures_by_reason.values())

    def add(self, now: float, failed: bool, reason: str = "", detail: str = "") -> None:
        self.attempts += 1
        if failed:
            self.failures_by_reason[reason] = self.failures_by_reason.get(reason, 0) + 1
            self.examples.setdefault(reason, detail or reason)
            self.last_error = detail or reason
        self._recent.append((now, failed, reason))

    def recent(self, now: float) -> tuple[int, int, dict[str, int]]:
        """(attempts, failures, failures by reason) within the horizon."""
        while self._recent and self._recent[0][0] < now - self.horizon_s:
            self._recent.popleft()
        reasons: dict[str, int] = {}
        for _, failed, reason in self._recent:
            if failed:
                reasons[reason] = reasons.get(reason, 0) + 1
        return len(self._recent), sum(reasons.values()), reasons


class StreamStats:
    """Rates of inputs and outputs, recognition latencies, each stage's recent failures."""

    def __init__(self, horizon_s: float = 5.0, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.started = clock()
        self.meters = {name: RateMeter(horizon_s) for name in EVENTS}
        self.stages = {name: StageLog() for name in STAGES}
        self.recognition = LatencyWindow()  # encoder + map query of one window
        self.pair_to_result = LatencyWindow()  # pair synchronised -> result (waiting included)

    def reset_clock(self) -> None:
        """Restart the "no frames since" clock (on activation)."""
        with self._lock:
            self.started = self._clock()

    def tick(self, event: str, now: float | None = None) -> None:
        with self._lock:
            self.meters[event].tick(self._clock() if now is None else now)

    def attempt(
        self,
        stage: str,
        failed: bool,
        reason: str = "",
        detail: str = "",
        now: float | None = None,
    ) -> None:
        """One piece of a stage's work done; a failure with its ``reason`` (a short key) and
        ``detail`` (the message)."""
        now = self._clock() if now is None else now
        with self._lock:
            self.stages[stage].add(now, failed, reason, detail)
            if failed and stage == "frames":
                self.meters["rejected"].tick(now)

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        """Frames and odometry messages rejected since the start, by reason."""
        with self._lock:
            out: dict[str, int] = {}
            for stage in ("frames", "odometry"):
                for reason, count in self.stages[stage].failures_by_reason.items():
                    out[reason] = out.get(reason, 0) + count
            return out

    def result(self, compute_s: float, waited_s: float, now: float | None = None) -> None:
        with self._lock:
            self.meters["results"].tick(self._clock() if now is None else now)
            self.recognition.add(compute_s)
            self.pair_to_result.add(waited_s)

    def snapshot(self, now: float | None = None) -> dict:
        """Plain values: rates (Hz), each stage's recent attempts and failures, latencies (ms),
        seconds since the last frame."""
        now = self._clock() if now is None else now
        with self._lock:
            out: dict = {f"{name}_hz": meter.rate(now) for name, meter in self.meters.items()}
            last_pair = self.meters["pairs"].last
            out["since_last_frame_s"] = now - (self.started if last_pair is None else last_pair)
            out["stages"] = {}
            for name, log in self.stages.items():
                attempts, failures, reasons = log.recent(now)
                out["stages"][name] = {
                    "attempts": attempts,
                    "failures": failures,
                    "reasons": reasons,
                    "total_failures": log.failures,
                    "last_error": log.last_error,
                }
            p50, p95 = self.recognition.percentiles_ms(50, 95)
            out["recognition_p50_ms"], out["recognition_p95_ms"] = p50, p95
            p50, p95 = self.pair_to_result.percentiles_ms(50, 95)
            out["pair_to_result_p50_ms"], out["pair_to_result_p95_ms"] = p50, p95
        return out


def assess(
    snapshot: dict,
    configured: bool,
    active: bool,
    scenes: int | None,
    cfg: HealthCfg | None = None,
    reason: str = "",
) -> tuple[int, str]:
    """(level, message) of a node from its stats snapshot; the worst problem sets the level.

    ERROR: not configured (``reason`` says why), or every recent attempt of a stage failed.
    WARN: inactive, no frames for ``stale_after_s``, more than ``reject_share`` of a stage's
    recent attempts failed (named by its commonest recent reason), the map is empty. OK
    otherwise. "Recent" is the last :data:`STAGE_HORIZON_S` seconds.
    """
    cfg = cfg or HealthCfg()
    if not configured:
        return ERROR, f"unconfigured: {reason}" if reason else "unconfigured"
    if not active:
        return WARN, "configured but inactive: not subscribed to the sensors"
    level, problems = OK, []
    if snapshot.get("since_last_frame_s", 0.0) > cfg.stale_after_s:
        level = WARN
        problems.append(f"no synchronised frames for {snapshot['since_last_frame_s']:.0f} s")
    for stage, recent in snapshot.get("stages", {}).items():
        attempts, failures = recent["attempts"], recent["failures"]
        if attempts < MIN_ATTEMPTS or failures / attempts <= cfg.reject_share:
            continue
        reasons = recent["reasons"]
        worst = max(reasons, key=reasons.get)
        level = ERROR if failures == attempts else max(level, WARN)
        what = stage.replace("_", " ")
        problems.append(f"{what}: {failures} of the last {attempts} failed (mostly {worst})")
    if scenes == 0:
        level = max(level, WARN)
        problems.append("the map has no scenes: nothing is published")
    return level, "; ".join(problems) if problems else "running"
