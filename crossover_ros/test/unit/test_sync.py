"""The approximate-time synchroniser: matching, dropping, bounded queues and time jumps."""

from __future__ import annotations

import threading

import pytest

from crossover_ros.pipeline.sync import ApproximateTimeSynchronizer


def test_pairs_items_within_slop() -> None:
    sync = ApproximateTimeSynchronizer(2, slop_s=0.01)
    assert sync.add(0, 1.000, "rgb1") is None
    assert sync.add(1, 1.004, "depth1") == ("rgb1", "depth1")
    assert sync.pending() == [0, 0]
    assert (sync.matched, sync.dropped) == (1, 0)


def test_tuple_is_in_stream_order_whoever_arrives_last() -> None:
    sync = ApproximateTimeSynchronizer(3, slop_s=0.01)
    assert sync.add(2, 5.0, "c") is None
    assert sync.add(0, 5.001, "a") is None
    assert sync.add(1, 4.999, "b") == ("a", "b", "c")


def test_items_further_apart_than_slop_are_not_paired() -> None:
    sync = ApproximateTimeSynchronizer(2, slop_s=0.01)
    assert sync.add(0, 1.0, "rgb") is None
    assert sync.add(1, 1.02, "depth") is None
    assert sync.pending() == [1, 1]


def test_slop_is_inclusive() -> None:
    sync = ApproximateTimeSynchronizer(2, slop_s=0.25)
    sync.add(0, 1.0, "a")
    assert sync.add(1, 1.25, "b") == ("a", "b")


def test_picks_the_closest_candidate_and_drops_older_ones() -> None:
    sync = ApproximateTimeSynchronizer(2, slop_s=0.05)
    for i, stamp in enumerate([1.00, 1.03, 1.06, 1.09]):
        assert sync.add(0, stamp, f"rgb{i}") is None
    # 1.05 is closest to rgb2 (1.06): rgb0 and rgb1 are older than the match and dropped.
    assert sync.add(1, 1.057, "depth") == ("rgb2", "depth")
    assert sync.dropped == 2
    assert sync.pending() == [1, 0]


def test_tie_prefers_the_older_candidate() -> None:
    sync = ApproximateTimeSynchronizer(2, slop_s=0.5)
    sync.add(0, 1.0, "old")
    sync.add(0, 1.5, "new")
    assert sync.add(1, 1.25, "pivot") == ("old", "pivot")


def test_steady_streams_with_offset_all_match() -> None:
    """30 Hz colour and depth, depth 8 ms late, interleaved like real callbacks."""
    sync = ApproximateTimeSynchronizer(2, slop_s=0.015)
    out = []
    for k in range(100):
        t = k / 30.0
        for stream, stamp in ((0, t), (1, t + 0.008)):
            match = sync.add(stream, stamp, (stream, k))
            if match is not None:
                out.append(match)
    assert out == [((0, k), (1, k)) for k in range(100)]
    assert sync.dropped == 0


def test_faster_stream_is_thinned_to_the_slower_one() -> None:
    """Odometry at 100 Hz against colour at 10 Hz: one match per colour frame."""
    sync = ApproximateTimeSynchronizer(2, slop_s=0.006, queue_size=20)
    matches = []
    for ms in range(0, 1000, 10):
        assert sync.add(1, ms / 1000.0, f"odom{ms}") is None
        if ms % 100 == 0:
            matches.append(sync.add(0, (ms + 3) / 1000.0, f"rgb{ms + 3}"))
    assert [m[0] for m in matches] == [f"rgb{ms + 3}" for ms in range(0, 1000, 100)]
    assert [m[1] for m in matches] == [f"odom{ms}" for ms in range(0, 1000, 100)]
    # The odometry between colour frames is dropped; the 9 after the last frame still wait.
    assert (sync.dropped, sync.pending()) == (81, [0, 9])


def test_queues_are_bounded_and_overflow_is_counted() -> None:
    sync = ApproximateTimeSynchronizer(2, slop_s=0.01, queue_size=3)
    for k in range(10):
        assert sync.add(0, k * 0.1, k) is None
    assert sync.pending() == [3, 0]
    assert sync.dropped == 7
    assert sync.add(1, 0.9, "late") == (9, "late")


def test_item_older_than_a_full_queue_is_dropped_at_once() -> None:
    sync = ApproximateTimeSynchronizer(2, slop_s=0.01, queue_size=2)
    sync.add(0, 1.0, "a")
    sync.add(0, 1.1, "b")
    assert sync.add(0, 0.95, "stale") is None
    assert sync.dropped == 1
    assert sync.add(1, 0.95, "x") is None  # "stale" is gone, nothing within slop of 0.95


def test_slightly_out_of_order_arrivals_are_sorted() -> None:
    sync = ApproximateTimeSynchronizer(2, slop_s=0.01)
    sync.add(0, 1.10, "late-stamped")
    sync.add(0, 1.00, "early-stamped")
    assert sync.add(1, 1.001, "d") == ("early-stamped", "d")
    assert sync.pending() == [1, 0]


def test_backward_time_jump_clears_queues() -> None:
    sync = ApproximateTimeSynchronizer(2, slop_s=0.01)
    sync.add(0, 100.0, "end-of-bag")
    sync.add(0, 100.1, "end-of-bag-2")
    # The bag loops: stream 0 restarts at 0 s. Old items must not pair with new ones.
    assert sync.add(0, 0.0, "start") is None
    assert sync.time_jumps == 1
    assert sync.dropped == 2
    assert sync.pending() == [1, 0]
    # Stream 1 jumps back too, but its clock was reset with the queues: no second clear.
    assert sync.add(1, 0.001, "depth") == ("start", "depth")
    assert sync.time_jumps == 1
    # The clock after the jump is the new one: a second loop is detected again.
    sync.add(0, 50.0, "middle")
    assert sync.add(0, 0.0, "start-again") is None
    assert sync.time_jumps == 2


def test_small_backward_steps_are_not_jumps() -> None:
    sync = ApproximateTimeSynchronizer(2, slop_s=0.01, jump_back_s=1.0)
    sync.add(0, 10.0, "a")
    sync.add(0, 9.5, "b")
    assert sync.time_jumps == 0
    assert sync.pending() == [2, 0]


def test_single_stream_passes_items_through() -> None:
    sync = ApproximateTimeSynchronizer(1, slop_s=0.0)
    assert sync.add(0, 1.0, "x") == ("x",)


def test_reset_keeps_counters() -> None:
    sync = ApproximateTimeSynchronizer(2, slop_s=0.01)
    sync.add(0, 1.0, "a")
    sync.reset()
    assert sync.pending() == [0, 0]
    assert sync.dropped == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_streams": 0, "slop_s": 0.1}, "num_streams"),
        ({"num_streams": 2, "slop_s": -0.1}, "slop_s"),
        ({"num_streams": 2, "slop_s": float("nan")}, "slop_s"),
        ({"num_streams": 2, "slop_s": 0.1, "queue_size": 0}, "queue_size"),
        ({"num_streams": 2, "slop_s": 0.1, "jump_back_s": 0.0}, "jump_back_s"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ApproximateTimeSynchronizer(**kwargs)


def test_bad_add_arguments_are_rejected() -> None:
    sync = ApproximateTimeSynchronizer(2, slop_s=0.1)
    with pytest.raises(ValueError, match="stream_index"):
        sync.add(2, 1.0, "x")
    with pytest.raises(ValueError, match="stamp must be finite"):
        sync.add(0, float("inf"), "x")


def test_concurrent_adds_lose_nothing() -> None:
    sync = ApproximateTimeSynchronizer(2, slop_s=0.001, queue_size=10_000)
    results: list[tuple] = []
    lock = threading.Lock()

    def feed(stream: int) -> None:
        for k in range(2000):
            match = sync.add(stream, k * 0.01, (stream, k))
            if match is not None:
                with lock:
                    results.append(match)

    threads = [threading.Thread(target=feed, args=(s,)) for s in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results and all(a[1] == b[1] for a, b in results)
    # Every item is accounted for exactly once: matched, dropped or still queued.
    assert 2 * len(results) + sync.dropped + sum(sync.pending()) == 2 * 2000
