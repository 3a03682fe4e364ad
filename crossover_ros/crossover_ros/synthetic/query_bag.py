"""Query bags: a robot's walk through a generated building, as a rosbag2 (MCAP or sqlite3).

Topics (defaults in :class:`~crossover_ros.bags.reader.BagTopics`, the ones the node and the
evaluation expect): colour ``sensor_msgs/Image`` rgb8, aligned depth ``sensor_msgs/Image`` 16UC1
(mm), their ``CameraInfo``, ``nav_msgs/Odometry`` of the camera optical frame in ``odom`` (a
frame of its own, drifting, as a robot's: :mod:`crossover_ros.synthetic.odometry`), the
camera's true pose in ``map`` (the building frame) as ``geometry_msgs/PoseStamped`` at every
odometry stamp, and the ground truth as JSON in ``std_msgs/String`` per frame. The visits, the
odometry frame's origin in the map and the odometry noise are written to ``ground_truth.json``
inside the bag folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from tqdm import tqdm

from crossover_ros.bags.reader import GROUND_TRUTH_FILE, TYPESTORE, BagTopics
from crossover_ros.bags.writer import camera_info_msg, image_msg, odometry_msg, pose_stamped_msg
from crossover_ros.datasets.scan import Building, load_building
from crossover_ros.errors import BagError
from crossover_ros.synthetic.odometry import DriftingOdometry, OdometryNoiseCfg
from crossover_ros.synthetic.render import Renderer
from crossover_ros.synthetic.trajectory import room_walk

_START_TIME_NS = 1_700_000_000 * 10**9  # fixed, so equal seeds give byte-identical bags


@dataclass(frozen=True)
class QueryBagCfg:
    """What the recorded walk looks like; rates as a RealSense D435 at 15 fps would give."""

    seed: int = 0
    storage: str = "mcap"  # or "sqlite3"
    seconds_per_room: float = 6.0
    transit_seconds: float = 2.0  # corridor walk between rooms: odometry only, no images
    camera_rate_hz: float = 15.0
    odometry_rate_hz: float = 30.0
    rooms: tuple[str, ...] = ()  # room ids in visiting order; empty = every room once
    scans: str = "newest"  # walk through each room's newest rescan, or its "reference" scan
    topics: BagTopics = field(default_factory=BagTopics)
    color_frame: str = "camera_color_optical_frame"
    odom_frame: str = "odom"
    map_frame: str = "map"  # frame of the ground-truth poses: the building's
    odometry: OdometryNoiseCfg = field(default_factory=OdometryNoiseCfg)


def _visit_plan(building: Building, cfg: QueryBagCfg) -> list[tuple[str, str]]:
    """(walked scan, map scene) per visit: each room's newest rescan (or, for a mapping bag, its
    reference scan) and the reference scan a map stores for it."""
    if cfg.scans not in ("newest", "reference"):
        raise BagError(f"scans must be 'newest' or 'reference', not '{cfg.scans}'")
    by_room: dict[str, list] = {}
    for info in building.scans:
        by_room.setdefault(info.room_id, []).append(info)
    rooms = list(cfg.rooms) or sorted(by_room)
    plan = []
    for room in rooms:
        if room not in by_room:
            raise BagError(f"room '{room}' is not in building {building.building_id}")
        scans = sorted(by_room[room], key=lambda s: s.scan_index)
        walked = scans[0] if cfg.scans == "reference" else scans[-1]
        plan.append((walked.scan_id, scans[0].scan_id))
    return plan


def record_query_bag(
    building_dir: Path, out: Path, cfg: QueryBagCfg | None = None, progress: bool = True
) -> Path:
    """Render a walk through the building's rooms and write it as a rosbag2 folder ``out``."""
    cfg = cfg or QueryBagCfg()
    if cfg.storage not in ("mcap", "sqlite3"):
        raise BagError(f"storage must be 'mcap' or 'sqlite3', not '{cfg.storage}'")
    if out.exists():
        raise BagError(f"{out} already exists; rosbag2 writes a new folder")
    building = load_building(building_dir)
    plan = _visit_plan(building, cfg)
    rng = np.random.default_rng(cfg.seed)
    odometer = DriftingOdometry(cfg.odometry, cfg.seed)
    plugin = StoragePlugin.MCAP if cfg.storage == "mcap" else StoragePlugin.SQLITE3
    topics = cfg.topics
    odom_dt_ns = int(1e9 / cfg.odometry_rate_hz)
    frame_every = max(1, round(cfg.odometry_rate_hz / cfg.camera_rate_hz))
    visits = []
    serialize = TYPESTORE.serialize_cdr
    with Writer(out, version=9, storage_plugin=plugin) as writer:
        conn = {
            "color": writer.add_connection(
                topics.color, "sensor_msgs/msg/Image", typestore=TYPESTORE
            ),
            "depth": writer.add_connection(
                topics.depth, "sensor_msgs/msg/Image", typestore=TYPESTORE
            ),
            "info": writer.add_connection(
                topics.camera_info, "sensor_msgs/msg/CameraInfo", typestore=TYPESTORE
            ),
            "odom": writer.add_connection(
                topics.odometry, "nav_msgs/msg/Odometry", typestore=TYPESTORE
            ),
            "truth": writer.add_connection(
                topics.ground_truth, "std_msgs/msg/String", typestore=TYPESTORE
            ),
            "pose": writer.add_connection(
                topics.ground_truth_pose, "geometry_msgs/msg/PoseStamped", typestore=TYPESTORE
            ),
        }

        def write_odometry(true_pose: np.ndarray, stamp_ns: int) -> None:
            """The odometry the robot reports at ``stamp_ns``, and the truth beside it."""
            odometry = odometer(true_pose)
            msg = odometry_msg(odometry, stamp_ns, cfg.odom_frame, cfg.color_frame)
            writer.write(conn["odom"], stamp_ns, serialize(msg, "nav_msgs/msg/Odometry"))
            msg = pose_stamped_msg(true_pose, stamp_ns, cfg.map_frame)
            writer.write(conn["pose"], stamp_ns, serialize(msg, "geometry_msgs/msg/PoseStamped"))

        stamp_ns = _START_TIME_NS
        previous_end: np.ndarray | None = None
        for query_scan_id, scene_id in tqdm(plan, desc="recording rooms", disable=not progress):
            scan = building.scan(query_scan_id)
            reference_ids = {inst.id for inst in building.scan(scene_id).instances}
            renderer = Renderer.from_scan(scan)
            room_to_map = building.room_pose(scan.room_id)
            num_poses = int(cfg.seconds_per_room * cfg.odometry_rate_hz)
            poses = room_walk(scan, num_poses, cfg.odometry_rate_hz, rng)
            world_poses = np.einsum("ij,njk->nik", room_to_map, poses)
            if previous_end is not None:  # corridor transit: interpolate positions, odom only
                steps = int(cfg.transit_seconds * cfg.odometry_rate_hz)
                for k in range(1, steps + 1):
                    pose = world_poses[0].copy()
                    t = k / (steps + 1)
                    pose[:3, 3] = (1 - t) * previous_end[:3, 3] + t * world_poses[0][:3, 3]
                    write_odometry(pose, stamp_ns)
                    stamp_ns += odom_dt_ns
            start_ns = stamp_ns
            for index, (room_pose, world_pose) in enumerate(zip(poses, world_poses, strict=True)):
                write_odometry(world_pose, stamp_ns)
                if index % frame_every == 0:
                    frame = renderer.render(room_pose, scan.intrinsics, rng)
                    depth_mm = np.nan_to_num(frame.depth * 1000.0, nan=0.0)
                    depth_mm = np.clip(np.round(depth_mm), 0, 65535).astype(np.uint16)
                    visible = sorted(int(i) for i in np.unique(frame.instance) if i != 0)
                    truth = {
                        "stamp_ns": stamp_ns,
                        "scene_id": scene_id,
                        "query_scan_id": query_scan_id,
                        "instances": {str(i): (i if i in reference_ids else None) for i in visible},
                    }
                    # camera_info first: a consumer can use the images that follow at once
                    for key, msg, msgtype in (
                        (
                            "info",
                            camera_info_msg(scan.intrinsics, stamp_ns, cfg.color_frame),
                            "sensor_msgs/msg/CameraInfo",
                        ),
                        (
                            "color",
                            image_msg(frame.color, "rgb8", stamp_ns, cfg.color_frame),
                            "sensor_msgs/msg/Image",
                        ),
                        (
                            "depth",
                            image_msg(depth_mm, "16UC1", stamp_ns, cfg.color_frame),
                            "sensor_msgs/msg/Image",
                        ),
                        (
                            "truth",
                            TYPESTORE.types["std_msgs/msg/String"](data=json.dumps(truth)),
                            "std_msgs/msg/String",
                        ),
                    ):
                        writer.write(conn[key], stamp_ns, serialize(msg, msgtype))
                stamp_ns += odom_dt_ns
            visits.append(
                {
                    "scene_id": scene_id,
                    "query_scan_id": query_scan_id,
                    "room_id": scan.room_id,
                    "start_ns": start_ns,
                    "end_ns": stamp_ns - odom_dt_ns,
                }
            )
            previous_end = world_poses[-1]
    sidecar = {
        "building_id": building.building_id,
        "config": asdict(cfg),
        "topics": asdict(topics),
        "visits": visits,
        "odometry": {  # where the odometry frame started in the map, and how it drifted
            "frame": cfg.odom_frame,
            "map_frame": cfg.map_frame,
            "origin_in_map": odometer.origin.tolist(),
            "map_to_odom_at_end": odometer.map_to_odom.tolist(),
            "distance_m": odometer.distance_m,
            "noise": asdict(cfg.odometry),
        },
    }
    (out / GROUND_TRUTH_FILE).write_text(json.dumps(sidecar, indent=2))
    return out
