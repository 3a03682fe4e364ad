"""What the recognition pipeline tells its owner: typed events, no ROS.

The node turns each into messages, the evaluations score them; neither reaches into the
pipeline's state. One policy lives here, so both apply it alike: a pose is published only when
``confirmed`` (enough agreeing estimates, no twin that fits as well).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crossover_ros.pipeline.changes import ChangeReport
from crossover_ros.pipeline.relocalize import Relocalization
from crossover_ros.pipeline.stream import StreamKeyframe


def stamp_ns(header: object) -> int:
    """A message header's stamp in integer nanoseconds (exact, unlike float seconds)."""
    stamp = header.stamp  # type: ignore[attr-defined]
    return int(stamp.sec) * 10**9 + int(stamp.nanosec)


@dataclass(frozen=True)
class MatchEvent:
    """A keyframe's answer (``keyframe.result``); ``latency_s``: its pair formed -> answered."""

    keyframe: StreamKeyframe
    latency_s: float

    @property
    def stamp_ns(self) -> int:
        return stamp_ns(self.keyframe.header)


@dataclass(frozen=True)
class RelocalizationEvent:
    """Correspondences and, when found, the pose in the map of the odometry's body.

    ``pose`` (4x4) and ``covariance`` (6x6, x y z roll pitch yaw) are in ``frame_id``: the
    building's map frame for a scene stored with its place in the building, else the scene's own
    frame (named after it). ``map_to_odom`` is the odometry frame in ``frame_id``. None without
    a pose. ``confirmed``: the pose agrees with the best-supported estimate and no look-alike fits
    as well; only a confirmed pose is published.
    """

    keyframe: StreamKeyframe
    relocalization: Relocalization
    frame_id: str
    pose: np.ndarray | None
    covariance: np.ndarray | None
    map_to_odom: np.ndarray | None

    @property
    def confirmed(self) -> bool:
        return self.pose is not None and self.relocalization.confirmed

    @property
    def stamp_ns(self) -> int:
        return stamp_ns(self.keyframe.header)


@dataclass(frozen=True)
class ChangeEvent:
    """What changed in the room since the map was made, pooled over the visit so far; after a
    confirmed relocalisation."""

    keyframe: StreamKeyframe
    report: ChangeReport

    @property
    def stamp_ns(self) -> int:
        return stamp_ns(self.keyframe.header)


@dataclass(frozen=True)
class WarningEvent:
    """Something the owner should say (throttled per ``key`` by the pipeline)."""

    key: str
    message: str


Event = MatchEvent | RelocalizationEvent | ChangeEvent | WarningEvent
