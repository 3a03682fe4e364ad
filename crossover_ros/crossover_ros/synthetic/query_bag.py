"""Query bags: a robot's walk through a generated building, as a rosbag2 (MCAP or sqlite3).

Topics (defaults in :class:`~crossover_ros.bags.reader.BagTopics`, the ones the node and the
evaluation expect): colour ``sensor_msgs/Image`` rgb8, aligned depth ``sensor_msgs/Image`` 16UC1
(mm), their ``CameraInfo``, ``nav_msgs/Odometry`` of the camera optical frame in ``odom`` (the
building frame), and the ground truth as JSON in ``std_msgs/String`` per frame. The same ground
truth is written to ``ground_truth.json`` inside the bag folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from tqdm import tqdm

from crossover_ros.bags.reader import GROUND_TRUTH_FILE, TYPESTORE, BagTopics
from crossover_ros.bags.writer import camera_info_msg, image_msg, odometry_msg
from crossover_ros.datasets.scan import Building, load_building
from crossover_ros.errors import BagError, DataError
from crossover_ros.outputs import check_new_output, staged_output
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
    building_dir: Path,
    out: Path,
    cfg: QueryBagCfg | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Render a walk through the building's rooms and write it as a rosbag2 folder ``out``
    (new or empty unless ``overwrite``; it appears only once complete)."""
    cfg = cfg or QueryBagCfg()
    out = Path(out)
    if cfg.storage not in ("mcap", "sqlite3"):
        raise BagError(f"storage must be 'mcap' or 'sqlite3', not '{cfg.storage}'")
    try:
        check_new_output(out, overwrite)
    except DataError as err:
        raise BagError(str(err)) from None
    building = load_building(building_dir)
    with staged_output(out, overwrite) as staging:
        _record_into(staging, building, cfg, progress)
    return out


def _record_into(out: Path, building: Building, cfg: QueryBagCfg, progress: bool) -> None:
    plan = _visit_plan(building, cfg)
    rng = np.random.default_rng(cfg.seed)
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
        }
        stamp_ns = _START_TIME_NS
        previous_end: np.ndarray | None = None
        for query_scan_id, scene_id in tqdm(plan, desc="recording rooms", disable=not progress):
            scan = building.scan(query_scan_id)
            reference_ids = {inst.id for inst in building.scan(scene_id).instances}
            renderer = Renderer.from_scan(scan)
            room_to_odom = building.room_pose(scan.room_id)
            num_poses = int(cfg.seconds_per_room * cfg.odometry_rate_hz)
            poses = room_walk(scan, num_poses, cfg.odometry_rate_hz, rng)
            world_poses = np.einsum("ij,njk->nik", room_to_odom, poses)
            if previous_end is not None:  # corridor transit: interpolate positions, odom only
                steps = int(cfg.transit_seconds * cfg.odometry_rate_hz)
                for k in range(1, steps + 1):
                    pose = world_poses[0].copy()
                    t = k / (steps + 1)
                    pose[:3, 3] = (1 - t) * previous_end[:3, 3] + t * world_poses[0][:3, 3]
                    writer.write(
                        conn["odom"],
                        stamp_ns,
                        serialize(
                            odometry_msg(pose, stamp_ns, cfg.odom_frame, cfg.color_frame),
                            "nav_msgs/msg/Odometry",
                        ),
                    )
                    stamp_ns += odom_dt_ns
            start_ns = stamp_ns
            for index, (room_pose, world_pose) in enumerate(zip(poses, world_poses, strict=True)):
                writer.write(
                    conn["odom"],
                    stamp_ns,
                    serialize(
                        odometry_msg(world_pose, stamp_ns, cfg.odom_frame, cfg.color_frame),
                        "nav_msgs/msg/Odometry",
                    ),
                )
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
    }
    (out / GROUND_TRUTH_FILE).write_text(json.dumps(sidecar, indent=2))
