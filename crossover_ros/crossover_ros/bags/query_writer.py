"""Writing a query (or mapping) bag: what a robot's camera and odometry would have recorded,
and the truth beside it, with the topics the node and the evaluation expect.

Shared by the rendered walks through generated buildings (``synthetic/query_bag.py``) and the
replays of recorded scans (``bags/scans_bag.py``): colour ``sensor_msgs/Image`` rgb8, aligned
depth 16UC1 (mm) and their ``CameraInfo``; ``nav_msgs/Odometry`` in a frame of its own that
drifts (:mod:`crossover_ros.bags.odometry`); the camera's true pose in the map frame as
``geometry_msgs/PoseStamped`` at every odometry stamp; the per-frame truth as JSON in
``std_msgs/String``; and the visits in ``ground_truth.json`` inside the bag folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer

from crossover_ros.bags.odometry import DriftingOdometry, OdometryNoiseCfg
from crossover_ros.bags.reader import GROUND_TRUTH_FILE, TYPESTORE, BagTopics
from crossover_ros.bags.writer import camera_info_msg, image_msg, odometry_msg, pose_stamped_msg
from crossover_ros.errors import BagError, DataError
from crossover_ros.frames import CameraIntrinsics
from crossover_ros.outputs import check_new_output, staged_output

START_TIME_NS = 1_700_000_000 * 10**9  # fixed, so equal seeds give byte-identical bags
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
_TYPES = {
    "color": "sensor_msgs/msg/Image",
    "depth": "sensor_msgs/msg/Image",
    "camera_info": "sensor_msgs/msg/CameraInfo",
    "odometry": "nav_msgs/msg/Odometry",
    "ground_truth": "std_msgs/msg/String",
    "ground_truth_pose": "geometry_msgs/msg/PoseStamped",
}


@dataclass(frozen=True)
class BagFrames:
    """Storage, topics and frame names of a recorded bag."""

    storage: str = "mcap"  # or "sqlite3"
    topics: BagTopics = field(default_factory=BagTopics)
    color_frame: str = "camera_color_optical_frame"
    odom_frame: str = "odom"
    map_frame: str = "map"  # frame of the ground-truth poses: the building's


def depth_millimetres(depth: np.ndarray) -> np.ndarray:
    """float metres (NaN: no reading) as the uint16 millimetres a depth camera publishes."""
    return np.clip(np.round(np.nan_to_num(depth * 1000.0, nan=0.0)), 0, 65535).astype(np.uint16)


class QueryBagWriter:
    """A bag folder being written; ``with`` it, and :meth:`finish` with the visits inside. The
    bag is written to a staging folder and appears at ``out`` only once complete (an error
    removes it); an existing non-empty ``out`` is refused unless ``overwrite``."""

    def __init__(
        self,
        out: Path,
        frames: BagFrames,
        odometry: OdometryNoiseCfg,
        seed: int,
        overwrite: bool = False,
    ) -> None:
        if frames.storage not in STORAGES:
            raise BagError(f"storage must be 'mcap' or 'sqlite3', not '{frames.storage}'")
        try:
            check_new_output(out, overwrite)
        except DataError as err:
            raise BagError(str(err)) from None
        self.out, self.frames, self._overwrite = Path(out), frames, overwrite
        self.odometer = DriftingOdometry(odometry, seed)
        self._noise = odometry
        self._connections: dict[str, object] = {}

    def __enter__(self) -> QueryBagWriter:
        self._staged = staged_output(self.out, self._overwrite)
        self._path = self._staged.__enter__()
        self._writer = Writer(self._path, version=9, storage_plugin=STORAGES[self.frames.storage])
        self._writer.open()
        topics = asdict(self.frames.topics)
        for key, msgtype in _TYPES.items():
            self._connections[key] = self._writer.add_connection(
                topics[key], msgtype, typestore=TYPESTORE
            )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._writer.close()
        self._staged.__exit__(kind, error, trace)  # renamed into place, or removed

    def _write(self, key: str, stamp_ns: int, msg: object) -> None:
        data = TYPESTORE.serialize_cdr(msg, _TYPES[key])
        self._writer.write(self._connections[key], stamp_ns, data)

    def odometry(self, true_pose: np.ndarray, stamp_ns: int, known: bool = True) -> None:
        """The odometry the robot reports at ``stamp_ns`` for the camera at ``true_pose`` (map
        frame), and the true pose beside it (not where ``known`` is false: a scan whose place in
        the map nothing records)."""
        frames = self.frames
        reported = self.odometer(true_pose)
        odometry = odometry_msg(reported, stamp_ns, frames.odom_frame, frames.color_frame)
        self._write("odometry", stamp_ns, odometry)
        if known:
            truth = pose_stamped_msg(true_pose, stamp_ns, frames.map_frame)
            self._write("ground_truth_pose", stamp_ns, truth)

    def transit(
        self,
        start: np.ndarray,
        end: np.ndarray,
        steps: int,
        stamp_ns: int,
        dt_ns: int,
        known: bool = True,
    ) -> int:
        """Odometry only between two places (a corridor walk between rooms): positions
        interpolated, the orientation of ``end``; returns the next stamp."""
        for k in range(1, steps + 1):
            pose = end.copy()
            t = k / (steps + 1)
            pose[:3, 3] = (1 - t) * start[:3, 3] + t * end[:3, 3]
            self.odometry(pose, stamp_ns, known)
            stamp_ns += dt_ns
        return stamp_ns

    def frame(
        self,
        stamp_ns: int,
        color: np.ndarray,
        depth: np.ndarray,
        intrinsics: CameraIntrinsics,
        truth: dict,
    ) -> None:
        """One RGB-D frame (depth in metres, NaN: none) and its truth (camera_info first: a
        consumer can use the images that follow at once)."""
        frame_id = self.frames.color_frame
        self._write("camera_info", stamp_ns, camera_info_msg(intrinsics, stamp_ns, frame_id))
        self._write("color", stamp_ns, image_msg(color, "rgb8", stamp_ns, frame_id))
        self._write(
            "depth", stamp_ns, image_msg(depth_millimetres(depth), "16UC1", stamp_ns, frame_id)
        )
        text = json.dumps({"stamp_ns": stamp_ns, **truth})
        self._write("ground_truth", stamp_ns, TYPESTORE.types["std_msgs/msg/String"](data=text))

    def finish(self, sidecar: dict) -> None:
        """Write ``ground_truth.json``: ``sidecar`` (visits, ...) and where the odometry frame
        started in the map and how it drifted."""
        odometer = self.odometer
        sidecar = {
            **sidecar,
            "topics": asdict(self.frames.topics),
            "odometry": {
                "frame": self.frames.odom_frame,
                "map_frame": self.frames.map_frame,
                "origin_in_map": odometer.origin.tolist(),
                "map_to_odom_at_end": odometer.map_to_odom.tolist(),
                "distance_m": odometer.distance_m,
                "noise": asdict(self._noise),
            },
        }
        (self._path / GROUND_TRUTH_FILE).write_text(json.dumps(sidecar, indent=2))
