"""Sensor messages in, scene matches out: what the node does with each message, without ROS.

The ``scene_recognizer`` node and the offline bag evaluation feed the same messages (rclpy
objects live, rosbags objects from a bag) through one :class:`SensorStream`, so an offline
evaluation measures exactly the logic the robot runs: colour/depth pairing, camera info,
odometry lookup, frame checks and the recogniser.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from crossover_ros.errors import ConversionError, CrossoverError
from crossover_ros.frames import RGBDFrame
from crossover_ros.pipeline.decode import (
    camera_info_to_intrinsics,
    image_to_depth_m,
    image_to_rgb,
    odometry_to_pose,
    stamp_to_seconds,
)
from crossover_ros.pipeline.recognizer import SceneMatchResult, SceneRecognizer
from crossover_ros.pipeline.sync import ApproximateTimeSynchronizer

COLOR, DEPTH = 0, 1


class MissingCameraInfoError(CrossoverError):
    """A frame arrived before any camera_info: it cannot be back-projected, so it is dropped."""


@dataclass(frozen=True)
class StreamCfg:
    sync_slop_s: float = 0.02
    sync_queue_size: int = 10
    odom_max_age_s: float = 0.1
    odom_buffer: int = 200  # ~6 s of 30 Hz odometry: enough to pair any frame still in sync


@dataclass(frozen=True)
class StreamMatch:
    """A recogniser result with the header of the colour image it answers (stamp kept exact)."""

    result: SceneMatchResult
    header: Any


class SensorStream:
    """Feeds a :class:`SceneRecognizer` from raw sensor messages; counts what it rejects.

    ``on_color``/``on_depth`` return a :class:`StreamMatch` when a pair became a keyframe and
    raise a :class:`CrossoverError` (after counting it) for a frame that cannot be used, so
    the caller decides how loudly to say so; the stream itself stays usable.
    """

    def __init__(self, recognizer: SceneRecognizer, cfg: StreamCfg | None = None) -> None:
        self.cfg = cfg or StreamCfg()
        self.recognizer = recognizer
        self.sync = ApproximateTimeSynchronizer(2, self.cfg.sync_slop_s, self.cfg.sync_queue_size)
        self._odometry: deque[tuple[float, np.ndarray]] = deque(maxlen=self.cfg.odom_buffer)
        self._camera_info: Any = None
        self.counters = {"frames": 0, "keyframes": 0, "rejected": 0, "no_camera_info": 0}

    def reset(self) -> None:
        """Forget odometry and the recogniser's window (camera_info stays: it is latched)."""
        self._odometry.clear()
        self.recognizer.reset()

    @property
    def has_camera_info(self) -> bool:
        return self._camera_info is not None

    def on_camera_info(self, msg: Any) -> None:
        self._camera_info = msg

    def on_odometry(self, msg: Any) -> None:
        try:
            self._odometry.append((stamp_to_seconds(msg.header.stamp), odometry_to_pose(msg)))
        except ConversionError:
            self.counters["rejected"] += 1
            raise

    def on_color(self, msg: Any) -> StreamMatch | None:
        return self._offer(COLOR, msg)

    def on_depth(self, msg: Any) -> StreamMatch | None:
        return self._offer(DEPTH, msg)

    def pose_at(self, stamp: float) -> np.ndarray | None:
        """The odometry pose closest in time to ``stamp``, if close enough to trust."""
        if not self._odometry:
            return None
        odom_stamp, pose = min(self._odometry, key=lambda item: abs(item[0] - stamp))
        return pose if abs(odom_stamp - stamp) <= self.cfg.odom_max_age_s else None

    def _offer(self, stream: int, msg: Any) -> StreamMatch | None:
        matched = self.sync.add(stream, stamp_to_seconds(msg.header.stamp), msg)
        return None if matched is None else self.process(*matched)

    def process(self, color_msg: Any, depth_msg: Any) -> StreamMatch | None:
        """Convert, check and recognise one synchronised colour/depth pair."""
        self.counters["frames"] += 1
        if self._camera_info is None:
            self.counters["no_camera_info"] += 1
            raise MissingCameraInfoError("no camera_info received yet: frames are dropped")
        try:
            intrinsics = camera_info_to_intrinsics(self._camera_info)
            color = image_to_rgb(color_msg)
            depth = image_to_depth_m(depth_msg)
            sizes = {"colour": color.shape[:2], "depth": depth.shape}
            sizes["camera_info"] = (intrinsics.height, intrinsics.width)
            if len(set(sizes.values())) > 1:
                raise ConversionError(f"image sizes differ: {sizes}")
            stamp = stamp_to_seconds(color_msg.header.stamp)
            frame = RGBDFrame(color, depth, intrinsics, stamp)
            result = self.recognizer.add_frame(frame, self.pose_at(stamp))
        except CrossoverError:
            self.counters["rejected"] += 1
            raise
        if result is None:
            return None
        self.counters["keyframes"] += 1
        return StreamMatch(result, color_msg.header)
