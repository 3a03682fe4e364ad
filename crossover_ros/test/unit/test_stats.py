"""Diagnostics bookkeeping without ROS: rates, percentiles, health levels, the warn throttle."""

import pytest

from crossover_ros.pipeline.stats import (
    ERROR,
    OK,
    STAGE_HORIZON_S,
    WARN,
    HealthCfg,
    LatencyWindow,
    RateMeter,
    StreamStats,
    WarnThrottle,
    assess,
)


def test_rate_over_the_horizon():
    meter = RateMeter(horizon_s=2.0)
    for i in range(31):
        meter.tick(i / 30)  # 30 Hz for one second
    assert meter.rate(1.0) == pytest.approx(30.0)
    assert meter.count(1.0) == 31 and meter.total == 31
    assert meter.rate(10.0) == 0.0 and meter.count(10.0) == 0, "old events expire"


def test_rate_meter_memory_is_bounded():
    meter = RateMeter(horizon_s=1e9, max_events=100)
    for i in range(10_000):
        meter.tick(float(i))
    assert meter.count(10_000.0) == 100 and meter.total == 10_000


def test_latency_percentiles_in_ms():
    window = LatencyWindow(size=100)
    assert window.percentiles_ms(50) == [None]
    for ms in range(1, 101):
        window.add(ms / 1000)
    p50, p95 = window.percentiles_ms(50, 95)
    assert p50 == pytest.approx(50.5) and p95 == pytest.approx(95.05)


def test_snapshot_counts_each_stage_recently_and_silence():
    clock = [100.0]
    stats = StreamStats(horizon_s=5.0, clock=lambda: clock[0])
    for t in range(10):
        stats.tick("pairs", now=100.0 + t * 0.1)
        stats.tick("frames", now=100.0 + t * 0.1)
        stats.attempt("frames", t == 5, "bad_depth", "depth: all NaN", now=100.0 + t * 0.1)
    stats.attempt("odometry", True, "bad_odometry", now=100.5)
    stats.result(compute_s=0.02, waited_s=0.05, now=100.9)
    clock[0] = 101.0
    snap = stats.snapshot()
    assert snap["frames_hz"] == pytest.approx(9 / 1.0)
    frames = snap["stages"]["frames"]
    assert frames["attempts"] == 10 and frames["failures"] == 1
    assert frames["reasons"] == {"bad_depth": 1} and frames["last_error"] == "depth: all NaN"
    assert snap["stages"]["odometry"]["failures"] == 1
    assert stats.rejected_by_reason == {"bad_depth": 1, "bad_odometry": 1}
    assert stats.stages["frames"].examples == {"bad_depth": "depth: all NaN"}
    assert snap["recognition_p50_ms"] == pytest.approx(20.0)
    assert snap["pair_to_result_p95_ms"] == pytest.approx(50.0)
    assert snap["since_last_frame_s"] == pytest.approx(0.1)
    clock[0] = 100.0 + STAGE_HORIZON_S + 5.0
    later = stats.snapshot()["stages"]["frames"]
    assert later["attempts"] == 0 and later["total_failures"] == 1, "recent, not since the start"


def _stages(**recent: tuple[int, int, str]) -> dict:
    return {
        name: {"attempts": a, "failures": f, "reasons": {why: f} if f else {}}
        for name, (a, f, why) in recent.items()
    }


def test_health_levels():
    healthy = {"since_last_frame_s": 0.1, "stages": _stages(frames=(10, 1, "bad_depth"))}
    assert assess(healthy, True, True, 3) == (OK, "running")
    level, message = assess({}, False, False, None, reason="map x not found")
    assert level == ERROR and "map x not found" in message
    assert assess(healthy, True, False, 3)[0] == WARN
    level, message = assess({**healthy, "since_last_frame_s": 9.0}, True, True, 3, HealthCfg(5.0))
    assert level == WARN and "no synchronised frames for 9 s" in message
    rejecting = {**healthy, "stages": _stages(frames=(10, 8, "bad_color"))}
    level, message = assess(rejecting, True, True, 3)
    assert level == WARN and "frames: 8 of the last 10 failed (mostly bad_color)" in message
    level, message = assess(healthy, True, True, 0)
    assert level == WARN and "no scenes" in message


@pytest.mark.parametrize("stage", ["odometry", "verification", "relocalization"])
def test_a_failing_stage_warns_and_an_always_failing_one_is_an_error(stage):
    some = {"since_last_frame_s": 0.1, "stages": _stages(**{stage: (6, 4, "malformed")})}
    level, message = assess(some, True, True, 3)
    assert level == WARN and f"{stage}: 4 of the last 6 failed (mostly malformed)" in message
    every = {"since_last_frame_s": 0.1, "stages": _stages(**{stage: (6, 6, "malformed")})}
    assert assess(every, True, True, 3)[0] == ERROR
    few = {"since_last_frame_s": 0.1, "stages": _stages(**{stage: (2, 2, "malformed")})}
    assert assess(few, True, True, 3) == (OK, "running"), "two attempts say nothing yet"


def test_warn_throttle_is_per_reason_and_counts_what_it_held_back():
    clock = [0.0]
    throttle = WarnThrottle(5.0, clock=lambda: clock[0])
    assert throttle("bad_depth", "depth!") == "depth!"
    assert throttle("bad_color", "colour!") == "colour!", "another reason is not throttled"
    assert throttle("bad_depth", "depth!") is None
    assert throttle("bad_depth", "depth!") is None
    clock[0] = 6.0
    assert throttle("bad_depth", "depth!") == "depth! (2 more since the last such warning)"
