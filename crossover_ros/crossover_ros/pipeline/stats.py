"""Bookkeeping for diagnostics, without ROS: rates, latency percentiles, health, warn throttle.

The node ticks events (a colour image arrived, a frame was rejected, a window was recognised)
into a :class:`StreamStats`; once a second it takes a :func:`StreamStats.snapshot` and
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

__all__ = [
    "ERROR",
    "OK",
    "STALE",
    "WARN",
    "HealthCfg",
    "LatencyWindow",
    "RateMeter",
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


class StreamStats:
    """Rates of inputs and outputs, recognition latencies, rejects by reason."""

    def __init__(self, horizon_s: float = 5.0, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.started = clock()
        self.meters = {name: RateMeter(horizon_s) for name in EVENTS}
        self.rejected_by_reason: dict[str, int] = {}
        self.recognition = LatencyWindow()  # encoder + map query of one window
        self.pair_to_result = LatencyWindow()  # pair synchronised -> result (waiting included)

    def reset_clock(self) -> None:
        """Restart the "no frames since" clock (on activation)."""
        with self._lock:
            self.started = self._clock()

    def tick(self, event: str, now: float | None = None) -> None:
        with self._lock:
            self.meters[event].tick(self._clock() if now is None else now)

    def reject(self, reason: str, frame: bool = True, now: float | None = None) -> None:
        """Count a reject by reason; ``frame``: a frame (not e.g. odometry), for the share."""
        with self._lock:
            if frame:
                self.meters["rejected"].tick(self._clock() if now is None else now)
            self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1

    def result(self, compute_s: float, waited_s: float, now: float | None = None) -> None:
        with self._lock:
            self.meters["results"].tick(self._clock() if now is None else now)
            self.recognition.add(compute_s)
            self.pair_to_result.add(waited_s)

    def snapshot(self, now: float | None = None) -> dict:
        """Plain values: rates (Hz), recent counts, latencies (ms), seconds since last frame."""
        now = self._clock() if now is None else now
        with self._lock:
            out: dict = {f"{name}_hz": meter.rate(now) for name, meter in self.meters.items()}
            out["recent_frames"] = self.meters["frames"].count(now)
            out["recent_rejected"] = self.meters["rejected"].count(now)
            last_pair = self.meters["pairs"].last
            out["since_last_frame_s"] = now - (self.started if last_pair is None else last_pair)
            out["rejected_by_reason"] = dict(self.rejected_by_reason)
            p50, p95 = self.recognition.percentiles_ms(50, 95)
            out["recognition_p50_ms"], out["recognition_p95_ms"] = p50, p95
            p50, p95 = self.pair_to_result.percentiles_ms(50, 95)
            out["pair_to_result_p50_ms"], out["pair_to_result_p95_ms"] = p50, p95
        return out


@dataclass(frozen=True)
class HealthCfg:
    stale_after_s: float = 5.0  # WARN when no synchronised frame came for this long
    reject_share: float = 0.5  # WARN when more than this share of recent frames was rejected


def assess(
    snapshot: dict,
    configured: bool,
    active: bool,
    scenes: int | None,
    cfg: HealthCfg | None = None,
    reason: str = "",
) -> tuple[int, str]:
    """(level, message) of a node from its stats snapshot; the first problem found wins.

    ERROR: not configured (``reason`` says why). WARN: inactive, no frames for
    ``stale_after_s``, rejects dominate, the map is empty. OK otherwise.
    """
    cfg = cfg or HealthCfg()
    if not configured:
        return ERROR, f"unconfigured: {reason}" if reason else "unconfigured"
    if not active:
        return WARN, "configured but inactive: not subscribed to the sensors"
    problems = []
    if snapshot.get("since_last_frame_s", 0.0) > cfg.stale_after_s:
        problems.append(f"no synchronised frames for {snapshot['since_last_frame_s']:.0f} s")
    recent, rejected = snapshot.get("recent_frames", 0), snapshot.get("recent_rejected", 0)
    if recent and rejected / recent > cfg.reject_share:
        reasons = snapshot.get("rejected_by_reason") or {}
        worst = max(reasons, key=reasons.get) if reasons else "?"
        problems.append(f"{rejected} of the last {recent} frames rejected (mostly {worst})")
    if scenes == 0:
        problems.append("the map has no scenes: nothing is published")
    if problems:
        return WARN, "; ".join(problems)
    return OK, "running"
