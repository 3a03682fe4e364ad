"""Sensor messages in, scene matches out: what the node does with each message, without ROS.

The ``scene_recognizer`` node and the offline bag evaluation feed the same messages (rclpy
objects live, rosbags objects from a bag) through one :class:`SensorStream`, so an offline
evaluation measures exactly the logic the robot runs: colour/depth pairing, camera info,
odometry lookup, frame checks, keyframe selection, fusion and the recogniser. The
``map_recorder`` node uses it without a recogniser, for keyframes and the fused cloud.

Live, the heavy part (encoder + map query) must not run in the subscription callbacks: the
node pairs messages there (``sync_color``/``sync_depth``, cheap) and hands each pair to a
:class:`FrameWorker`, whose one thread always processes only the newest pair; pairs superseded
before it got to them are counted as dropped, so a flood of frames costs no memory.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from crossover_ros.config import setting, validate
from crossover_ros.errors import ConversionError, CrossoverError
from crossover_ros.frames import RGBDFrame
from crossover_ros.pipeline.decode import (
    camera_info_to_intrinsics,
    image_to_depth_m,
    image_to_rgb,
    odometry_to_pose,
    stamp_to_seconds,
)
from crossover_ros.pipeline.keyframes import KeyframeCfg, KeyframeSelector
from crossover_ros.pipeline.recognizer import SceneMatchResult, SceneRecognizer
from crossover_ros.pipeline.relocalize import Relocalization, Relocalizer
from crossover_ros.pipeline.stats import StreamStats
from crossover_ros.pipeline.sync import ApproximateTimeSynchronizer

COLOR, DEPTH = 0, 1

# Reasons a frame (or an odometry message) is rejected; the diagnostics count each.
REJECT_REASONS = (
    "no_camera_info",
    "bad_camera_info",
    "bad_color",
    "bad_depth",
    "size_mismatch",
    "no_valid_depth",
    "bad_odometry",
    "out_of_order",
    "fusion",
    "recognizer",
)


class FrameRejectedError(CrossoverError):
    """A message that cannot be used; ``reason`` is one of :data:`REJECT_REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class RelocalizationError(CrossoverError):
    """A relocalisation that failed: the answer stands, the pose is lost."""


class MissingCameraInfoError(FrameRejectedError):
    """A frame arrived before any camera_info: it cannot be back-projected, so it is dropped."""

    def __init__(self, message: str = "no camera_info received yet: frames are dropped") -> None:
        super().__init__("no_camera_info", message)


@dataclass(frozen=True)
class StreamCfg:
    sync_slop_s: float = setting(
        0.02, "Colour/depth stamps further apart are not paired.", 0.0, 1.0
    )
    sync_queue_size: int = 10
    odom_max_age_s: float = setting(
        0.1, "Odometry older than this is not used for a frame.", 0.0, 5.0
    )
    odom_buffer: int = 200  # ~6 s of 30 Hz odometry: enough to pair any frame still in sync
    time_jump_s: float = setting(
        1.0,
        "A frame this much older than the newest: the clock went back (a bag loop, simulated"
        " time reset), so the window, filter and cloud restart; a smaller step back is an"
        " out-of-order frame, rejected.",
        0.0,
        3600.0,
    )
    min_valid_depth_fraction: float = setting(
        0.01, "Frames with a smaller share of valid depth pixels are rejected.", 0.0, 1.0
    )

    def __post_init__(self) -> None:
        validate(self)


@dataclass(frozen=True)
class StreamKeyframe:
    """A frame that became a keyframe, with what the node publishes about it.

    ``result`` is the recogniser's answer (None without a recogniser or with an empty map);
    ``header`` the colour image's (stamp kept exact); ``pose`` the camera in ``odom_frame``
    from odometry (None without). ``frame.color`` may be a view of the message's buffer.
    """

    frame: RGBDFrame
    header: Any
    pose: np.ndarray | None
    odom_frame: str
    result: SceneMatchResult | None


class SensorStream:
    """Feeds a :class:`SceneRecognizer` from raw sensor messages; counts what it rejects.

    ``on_color``/``on_depth`` pair and process at once (offline). Live, ``sync_color`` /
    ``sync_depth`` only pair, and ``process`` runs in a worker. ``process`` returns a
    :class:`StreamKeyframe` when a pair became a keyframe and raises :class:`FrameRejectedError`
    (after counting it) for a frame that cannot be used, so the caller decides how loudly to
    say so; the stream itself stays usable. Keyframes are selected by ``keyframes`` (with or
    without a recogniser: the map recorder has none). With a ``fusion`` (``add(frame,
    camera_to_odom)``, ``reset()``, ``cloud()``, ``views()``), every keyframe with a pose is fused.

    Time: a frame older than the newest by more than ``time_jump_s`` restarts the window, the
    filter, the cloud and the keyframe rule (a bag loop, simulated time reset: counted in
    ``window_resets``); one older by less is out of order and rejected, so stamps that run
    steadily backwards cannot restart the window on every frame.
    """

    def __init__(
        self,
        recognizer: SceneRecognizer | None,
        cfg: StreamCfg | None = None,
        fusion: Any = None,
        keyframes: KeyframeCfg | None = None,
        stats: StreamStats | None = None,
        relocalizer: Relocalizer | None = None,
    ) -> None:
        self.cfg = cfg or StreamCfg()
        self.recognizer = recognizer
        self.fusion = fusion
        self.relocalizer = relocalizer
        self.stats = stats or StreamStats()
        self.keyframes = KeyframeSelector(keyframes)
        self.sync = ApproximateTimeSynchronizer(
            2, self.cfg.sync_slop_s, self.cfg.sync_queue_size, self.cfg.time_jump_s
        )
        self._odometry: deque[tuple[float, np.ndarray, str]] = deque(maxlen=self.cfg.odom_buffer)
        self._odom_lock = threading.Lock()
        self._process_lock = threading.RLock()
        self._camera_info: Any = None
        self._last_stamp: float | None = None
        self.counters = {
            "frames": 0,
            "keyframes": 0,
            "results": 0,
            "rejected": 0,
            "no_camera_info": 0,
            "odom_time_jumps": 0,
            "window_resets": 0,
            "relocalizations": 0,
            "relocalization_errors": 0,
        }

    # -- state -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget odometry, the keyframe rule, the recogniser's window and filter, and the
        fused cloud.

        camera_info stays: it is latched. Waits for a frame being processed to finish.
        """
        with self._process_lock:
            with self._odom_lock:
                self._odometry.clear()
            self._restart()

    def _restart(self) -> None:
        self._last_stamp = None
        self.keyframes.reset()
        if self.recognizer is not None:
            self.recognizer.reset()
        if self.fusion is not None:
            self.fusion.reset()
        if self.relocalizer is not None:
            self.relocalizer.reset()

    @property
    def has_camera_info(self) -> bool:
        return self._camera_info is not None

    @property
    def time_jumps(self) -> int:
        """Colour/depth clock jumps backwards (bag loops, simulated time reset)."""
        return self.sync.time_jumps

    def counts(self) -> dict[str, int]:
        """Every counter, with the synchroniser's and the rejects by reason."""
        out = dict(self.counters)
        out["sync_dropped"] = self.sync.dropped
        out["time_jumps"] = self.time_jumps
        for reason, count in self.stats.rejected_by_reason.items():
            out[f"rejected_{reason}"] = count
        return out

    # -- messages ----------------------------------------------------------------------------
    def on_camera_info(self, msg: Any) -> None:
        self.stats.tick("camera_info")
        self._camera_info = msg

    def on_odometry(self, msg: Any) -> None:
        self.stats.tick("odometry")
        try:
            pose = odometry_to_pose(msg)
        except ConversionError as err:
            self.counters["rejected"] += 1
            rejected = FrameRejectedError("bad_odometry", f"odometry rejected: {err}")
            self.stats.attempt("odometry", True, rejected.reason, str(rejected))
            raise rejected from err
        self.stats.attempt("odometry", False)
        stamp = stamp_to_seconds(msg.header.stamp)
        with self._odom_lock:
            if self._odometry and stamp < self._odometry[-1][0] - self.cfg.time_jump_s:
                self._odometry.clear()  # the clock went back: old poses would pair wrongly
                self.counters["odom_time_jumps"] += 1
            self._odometry.append((stamp, pose, str(msg.header.frame_id)))

    def on_color(self, msg: Any) -> StreamKeyframe | None:
        """Pair and process at once: a keyframe with an answer (or, without a recogniser, any
        keyframe), else None."""
        return self._answer(self.sync_color(msg))

    def on_depth(self, msg: Any) -> StreamKeyframe | None:
        return self._answer(self.sync_depth(msg))

    def _answer(self, pair: tuple[Any, Any] | None) -> StreamKeyframe | None:
        keyframe = None if pair is None else self.process(*pair)
        if keyframe is not None and self.recognizer is not None and keyframe.result is None:
            return None  # a keyframe but no answer (an empty map)
        return keyframe

    def sync_color(self, msg: Any) -> tuple[Any, Any] | None:
        """Queue a colour image; the (colour, depth) pair if one formed. Cheap: no decoding."""
        self.stats.tick("color")
        return self._offer(COLOR, msg)

    def sync_depth(self, msg: Any) -> tuple[Any, Any] | None:
        self.stats.tick("depth")
        return self._offer(DEPTH, msg)

    def pose_at(self, stamp: float) -> np.ndarray | None:
        """The odometry pose closest in time to ``stamp``, if close enough to trust."""
        found = self._odometry_at(stamp)
        return None if found is None else found[0]

    def _odometry_at(self, stamp: float) -> tuple[np.ndarray, str] | None:
        with self._odom_lock:
            if not self._odometry:
                return None
            odom_stamp, pose, frame_id = min(self._odometry, key=lambda item: abs(item[0] - stamp))
        return (pose, frame_id) if abs(odom_stamp - stamp) <= self.cfg.odom_max_age_s else None

    def _offer(self, stream: int, msg: Any) -> tuple[Any, Any] | None:
        matched = self.sync.add(stream, stamp_to_seconds(msg.header.stamp), msg)
        if matched is not None:
            self.stats.tick("pairs")
        return matched

    # -- processing --------------------------------------------------------------------------
    def process(
        self, color_msg: Any, depth_msg: Any, synced_at: float | None = None
    ) -> StreamKeyframe | None:
        """Convert, check, select, fuse and recognise one synchronised colour/depth pair.

        ``synced_at`` (``time.monotonic()`` when the pair formed) measures the latency from
        pairing to result, waiting in the worker's slot included.
        """
        with self._process_lock:
            self.counters["frames"] += 1
            self.stats.tick("frames")
            keyframe = self._process(color_msg, depth_msg, synced_at)
            self.stats.attempt("frames", False)  # a rejected frame raised, counted
            return keyframe

    def _process(
        self, color_msg: Any, depth_msg: Any, synced_at: float | None
    ) -> StreamKeyframe | None:
        """:meth:`process` under its lock; raises (counted) for a frame it rejects."""
        if self._camera_info is None:
            self.counters["no_camera_info"] += 1
            self._reject(MissingCameraInfoError())
        frame = self._frame(color_msg, depth_msg)
        self._check_time(frame.stamp)
        found = self._odometry_at(frame.stamp)
        pose, odom_frame = found if found is not None else (None, "")
        frame.camera_to_world = pose
        if not self.keyframes.accept(frame.stamp, pose):
            return None
        self.counters["keyframes"] += 1
        self.stats.tick("keyframes")
        if self.fusion is not None and pose is not None:
            self._step("fusion", self.fusion.add, frame, pose)
        result = None
        if self.recognizer is not None:
            result = self._step("recognizer", self.recognizer.recognise, frame, pose)
        if result is not None:
            self.counters["results"] += 1
            for stage in ("object_ranking", "verification"):
                if stage in result.timings:
                    error = result.errors.get(stage)
                    self.stats.attempt(stage, error is not None, error or "")
            if result.changed and self.fusion is not None and pose is not None:
                # another room: the cloud of the one before would not fit it
                self.fusion.reset()
                self._step("fusion", self.fusion.add, frame, pose)
            waited = 0.0 if synced_at is None else time.monotonic() - synced_at
            self.stats.result(result.compute_time_s, waited)
        return StreamKeyframe(frame, color_msg.header, pose, odom_frame, result)

    def relocalize(self, keyframe: StreamKeyframe | None) -> Relocalization | None:
        """Correspondences and pose in the keyframe's answered room, when due.

        Called after the answer went out (the node publishes the match first: a pose takes
        tens to hundreds of milliseconds). A failure loses the pose (counted, its message kept
        in ``last_relocalization_error``), never the answer.
        """
        if keyframe is None or keyframe.result is None:
            return None
        result, pose = keyframe.result, keyframe.pose
        if self.relocalizer is None or self.fusion is None or pose is None:
            return None
        if len(self.fusion) < self.relocalizer.cfg.min_keyframes:
            return None
        if not self.relocalizer.due(result.stamp, result.scene_id, result.confidence):
            return None
        try:
            with self._process_lock:  # the cloud changes with every keyframe
                cloud, views = self.fusion.cloud(), self.fusion.views()
            found = self.relocalizer.relocalize(
                result.stamp, result.scene_id, cloud, pose, result.candidate_ids, views
            )
        except (CrossoverError, ValueError) as err:  # ValueError: numpy/open3d on odd input
            self.counters["relocalization_errors"] += 1
            message = f"relocalisation in {result.scene_id} failed: {err}"
            self.stats.attempt("relocalization", True, type(err).__name__, message)
            raise RelocalizationError(message) from err
        self.counters["relocalizations"] += 1
        self.stats.attempt("relocalization", False)
        return found

    def _frame(self, color_msg: Any, depth_msg: Any) -> RGBDFrame:
        intrinsics = self._step("bad_camera_info", camera_info_to_intrinsics, self._camera_info)
        color = self._step("bad_color", image_to_rgb, color_msg)
        depth = self._step("bad_depth", image_to_depth_m, depth_msg)
        sizes = {"colour": color.shape[:2], "depth": depth.shape}
        sizes["camera_info"] = (intrinsics.height, intrinsics.width)
        if len(set(sizes.values())) > 1:
            self._reject(FrameRejectedError("size_mismatch", f"image sizes differ: {sizes}"))
        valid = float(np.count_nonzero(np.isfinite(depth))) / depth.size
        if valid < self.cfg.min_valid_depth_fraction:
            self._reject(
                FrameRejectedError(
                    "no_valid_depth",
                    f"only {valid:.1%} of the depth pixels are valid (NaN, zero or negative"
                    f" elsewhere); at least {self.cfg.min_valid_depth_fraction:.1%} needed",
                )
            )
        return RGBDFrame(color, depth, intrinsics, stamp_to_seconds(color_msg.header.stamp))

    def _check_time(self, stamp: float) -> None:
        """Restart on a jump back in time; reject a frame slightly out of order."""
        last = self._last_stamp
        if last is not None and stamp < last:
            if last - stamp <= self.cfg.time_jump_s:
                self._reject(
                    FrameRejectedError(
                        "out_of_order",
                        f"frame at {stamp:.3f} s is older than the newest ({last:.3f} s):"
                        " dropped (a jump back of more than time_jump_s restarts instead)",
                    )
                )
            self.counters["window_resets"] += 1
            self._restart()
        self._last_stamp = stamp

    def _step(self, reason: str, function: Callable, *args: Any) -> Any:
        """Run one step; its CrossoverError becomes a counted :class:`FrameRejectedError`."""
        try:
            return function(*args)
        except FrameRejectedError as err:
            self._reject(err)
        except (CrossoverError, ValueError) as err:  # ValueError: numpy/open3d on odd input
            self._reject(FrameRejectedError(reason, f"{reason.replace('_', ' ')}: {err}"), err)

    def _reject(self, err: FrameRejectedError, cause: BaseException | None = None) -> None:
        self.counters["rejected"] += 1
        self.stats.attempt("frames", True, err.reason, str(err))
        raise err from cause


class LatestOnly:
    """A one-item mailbox between callbacks and one worker: a new item replaces a waiting one.

    ``dropped`` counts items replaced (or cleared) before they were taken. The taker calls
    ``task_done`` when finished, so ``wait_idle`` knows nothing is waiting or in hand.
    Thread-safe.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._full = False
        self._in_hand = False
        self._closed = False
        self.put_count = 0
        self.dropped = 0

    def put(self, item: Any) -> bool:
        """Offer ``item``; True if it superseded one that was still waiting."""
        with self._cond:
            superseded = self._full
            self.dropped += int(superseded)
            self.put_count += 1
            self._item, self._full = item, True
            self._cond.notify_all()
            return superseded

    def take(self, timeout: float | None = None) -> tuple[bool, Any]:
        """(True, item) when one is there within ``timeout`` seconds, else (False, None)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._full or self._closed, timeout):
                return False, None
            if not self._full:
                return False, None
            item, self._item, self._full = self._item, None, False
            self._in_hand = True
            return True, item

    def task_done(self) -> None:
        with self._cond:
            self._in_hand = False
            self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not (self._full or self._in_hand), timeout)

    def clear(self) -> int:
        """Drop a waiting item (counted); returns 1 if there was one."""
        with self._cond:
            had = int(self._full)
            self.dropped += had
            self._item, self._full = None, False
            self._cond.notify_all()
            return had

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False

    def __len__(self) -> int:
        return int(self._full)


class FrameWorker:
    """One background thread that always handles the newest submitted item, never a backlog.

    ``handle(item)`` runs in the worker thread; an exception escaping it goes to ``on_error``
    (the thread keeps running). ``stop`` joins the thread; a waiting item is dropped (counted).
    """

    def __init__(
        self,
        handle: Callable[[Any], None],
        on_error: Callable[[BaseException], None] | None = None,
        name: str = "frame_worker",
    ) -> None:
        self.slot = LatestOnly()
        self.processed = 0
        self.errors = 0
        self._handle = handle
        self._on_error = on_error
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def dropped(self) -> int:
        return self.slot.dropped

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, item: Any) -> bool:
        """Hand over ``item``; True if it superseded one that was still waiting."""
        return self.slot.put(item)

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self.slot.reopen()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop after the item in hand; True if the thread ended within ``timeout_s``."""
        self._stop.set()
        self.slot.close()
        self.slot.clear()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout_s)
        return not thread.is_alive()

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Wait until nothing waits and nothing is in hand (tests, benchmarks)."""
        return self.slot.wait_idle(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            got, item = self.slot.take(timeout=0.1)
            if not got:
                continue
            try:
                self._handle(item)
            except BaseException as err:  # never let the thread die silently
                self.errors += 1
                if self._on_error is not None:
                    self._on_error(err)
            finally:
                self.processed += 1
                self.slot.task_done()
