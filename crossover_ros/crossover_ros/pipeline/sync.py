"""Approximate-time pairing of sensor streams (colour, depth, odometry, ...) without ROS.

message_filters is not installable from the PyPI wheels, and the pairing rule is easier to test
as plain Python anyway: the ROS node feeds ``add`` from its callbacks and gets whole tuples back.
"""

from __future__ import annotations

import bisect
import math
import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ApproximateTimeSynchronizer"]


@dataclass(order=True)
class _Entry:
    stamp: float
    seq: int  # arrival order, so equal stamps keep FIFO order and items are never compared
    item: Any = field(compare=False)


class ApproximateTimeSynchronizer:
    """Emits one item per stream whenever all their stamps lie within ``slop_s`` of each other.

    Matching is anchored on the newest arrival: for every other stream the queued item closest
    in time to it is taken, and the tuple is emitted if its spread (latest minus earliest stamp)
    is at most ``slop_s``. A match is emitted as soon as one exists, without waiting for a
    possibly closer item, to keep latency at one message period. Emitted items and every item
    older than them are removed, so each item is used at most once and time only moves
    forward. Items removed unused are counted in ``dropped``: queue overflow, being older than
    an emitted match, or a clear after a time jump.

    A stamp more than ``jump_back_s`` older than its stream's newest stamp means the clock went
    back (a bag started over, simulated time reset): all queues are cleared and ``time_jumps``
    is incremented, so stale items from before the jump are never paired with new ones.

    ``add`` is safe to call from several executor threads.
    """

    def __init__(
        self,
        num_streams: int,
        slop_s: float,
        queue_size: int = 10,
        jump_back_s: float = 1.0,
    ) -> None:
        if num_streams < 1:
            raise ValueError(f"num_streams must be >= 1, got {num_streams}")
        if not (math.isfinite(slop_s) and slop_s >= 0.0):
            raise ValueError(f"slop_s must be a finite number >= 0, got {slop_s}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if not (math.isfinite(jump_back_s) and jump_back_s > 0.0):
            raise ValueError(f"jump_back_s must be a finite number > 0, got {jump_back_s}")
        self.num_streams = num_streams
        self.slop_s = float(slop_s)
        self.queue_size = queue_size
        self.jump_back_s = float(jump_back_s)
        self.dropped = 0
        self.time_jumps = 0
        self.matched = 0
        self._queues: list[list[_Entry]] = [[] for _ in range(num_streams)]
        self._newest: list[float | None] = [None] * num_streams
        self._seq = 0
        self._lock = threading.Lock()

    def add(self, stream_index: int, stamp: float, item: Any) -> tuple[Any, ...] | None:
        """Queue ``item`` (sensor time ``stamp`` in seconds); return a matched tuple if one forms.

        The tuple holds one item per stream, in stream order.
        """
        if not 0 <= stream_index < self.num_streams:
            raise ValueError(f"stream_index must be in [0, {self.num_streams}), got {stream_index}")
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise ValueError(f"stamp must be finite, got {stamp}")
        with self._lock:
            newest = self._newest[stream_index]
            if newest is not None and stamp < newest - self.jump_back_s:
                self._clear()
                self.time_jumps += 1
                newest = None
            if newest is None or stamp > newest:
                self._newest[stream_index] = stamp
            entry = _Entry(stamp, self._seq, item)
            self._seq += 1
            queue = self._queues[stream_index]
            bisect.insort(queue, entry)  # tolerate slightly out-of-order arrivals
            if len(queue) > self.queue_size:
                self.dropped += 1
                if queue.pop(0) is entry:  # older than everything queued: nothing to pair with
                    return None
            return self._match(stream_index, entry)

    def reset(self) -> None:
        """Forget every queued item and stream clock (counters are kept)."""
        with self._lock:
            self._clear()

    def pending(self) -> list[int]:
        """How many items wait in each stream's queue (for diagnostics)."""
        with self._lock:
            return [len(queue) for queue in self._queues]

    def _clear(self) -> None:
        self.dropped += sum(len(queue) for queue in self._queues)
        for queue in self._queues:
            queue.clear()
        self._newest = [None] * self.num_streams

    def _match(self, pivot_stream: int, pivot: _Entry) -> tuple[Any, ...] | None:
        chosen: list[int] = []
        for index, queue in enumerate(self._queues):
            if index == pivot_stream:
                chosen.append(queue.index(pivot))
                continue
            if not queue:
                return None
            chosen.append(_closest(queue, pivot.stamp))
        stamps = [queue[pos].stamp for queue, pos in zip(self._queues, chosen, strict=True)]
        if max(stamps) - min(stamps) > self.slop_s:
            return None
        items = []
        for queue, pos in zip(self._queues, chosen, strict=True):
            items.append(queue[pos].item)
            self.dropped += pos  # older than the match: can no longer be used
            del queue[: pos + 1]
        self.matched += 1
        return tuple(items)


def _closest(queue: list[_Entry], stamp: float) -> int:
    """Index of the entry whose stamp is nearest ``stamp`` (the older one on a tie)."""
    pos = bisect.bisect_left([entry.stamp for entry in queue], stamp)
    if pos == 0:
        return 0
    if pos == len(queue):
        return pos - 1
    before, after = queue[pos - 1].stamp, queue[pos].stamp
    return pos - 1 if stamp - before <= after - stamp else pos
