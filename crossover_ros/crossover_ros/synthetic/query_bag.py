"""Query bags: a robot's walk through a generated building, as a rosbag2 (MCAP or sqlite3).

Topics (defaults in :class:`~crossover_ros.bags.reader.BagTopics`, the ones the node and the
evaluation expect): colour ``sensor_msgs/Image`` rgb8, aligned depth ``sensor_msgs/Image`` 16UC1
(mm), their ``CameraInfo``, ``nav_msgs/Odometry`` of the camera optical frame in ``odom`` (a
frame of its own, drifting, as a robot's: :mod:`crossover_ros.bags.odometry`), the
camera's true pose in ``map`` (the building frame) as ``geometry_msgs/PoseStamped`` at every
odometry stamp, and the ground truth as JSON in ``std_msgs/String`` per frame. The visits, the
odometry frame's origin in the map and the odometry noise are written to ``ground_truth.json``
inside the bag folder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from crossover_ros.bags.odometry import OdometryNoiseCfg
from crossover_ros.bags.query_writer import START_TIME_NS, BagFrames, QueryBagWriter
from crossover_ros.bags.reader import BagTopics
from crossover_ros.datasets.scan import Building, load_building
from crossover_ros.errors import BagError
from crossover_ros.synthetic.render import Renderer
from crossover_ros.synthetic.trajectory import room_walk

ROUND_INTERVAL_NS = 86_400 * 10**9  # one day between the walks of successive scan indices


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
    scan_index: int | None = None  # walk through each room's scan of this index instead
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
        if cfg.scan_index is not None:
            chosen = [s for s in scans if s.scan_index == cfg.scan_index]
            if not chosen:
                raise BagError(
                    f"room '{room}' has no scan of index {cfg.scan_index} (it has"
                    f" {', '.join(str(s.scan_index) for s in scans)})"
                )
            walked = chosen[0]
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
    frames = BagFrames(cfg.storage, cfg.topics, cfg.color_frame, cfg.odom_frame, cfg.map_frame)
    bag = QueryBagWriter(Path(out), frames, cfg.odometry, cfg.seed, overwrite)  # checks first
    building = load_building(building_dir)
    plan = _visit_plan(building, cfg)
    rng = np.random.default_rng(cfg.seed)
    odom_dt_ns = int(1e9 / cfg.odometry_rate_hz)
    frame_every = max(1, round(cfg.odometry_rate_hz / cfg.camera_rate_hz))
    visits = []
    with bag:
        # a later round of changes is walked on a later day, so its visits are the newer scans
        stamp_ns = START_TIME_NS + ROUND_INTERVAL_NS * (cfg.scan_index or 0)
        previous_end: np.ndarray | None = None
        for query_scan_id, scene_id in tqdm(plan, desc="recording rooms", disable=not progress):
            scan = building.scan(query_scan_id)
            reference_ids = {inst.id for inst in building.scan(scene_id).instances}
            renderer = Renderer.from_scan(scan)
            room_to_map = building.room_pose(scan.room_id)
            num_poses = int(cfg.seconds_per_room * cfg.odometry_rate_hz)
            poses = room_walk(scan, num_poses, cfg.odometry_rate_hz, rng)
            world_poses = np.einsum("ij,njk->nik", room_to_map, poses)
            if previous_end is not None:  # corridor transit: odometry only, no images
                steps = int(cfg.transit_seconds * cfg.odometry_rate_hz)
                stamp_ns = bag.transit(previous_end, world_poses[0], steps, stamp_ns, odom_dt_ns)
            start_ns = stamp_ns
            for index, (room_pose, world_pose) in enumerate(zip(poses, world_poses, strict=True)):
                bag.odometry(world_pose, stamp_ns)
                if index % frame_every == 0:
                    frame = renderer.render(room_pose, scan.intrinsics, rng)
                    visible = sorted(int(i) for i in np.unique(frame.instance) if i != 0)
                    truth = {
                        "scene_id": scene_id,
                        "query_scan_id": query_scan_id,
                        "instances": {str(i): (i if i in reference_ids else None) for i in visible},
                    }
                    bag.frame(stamp_ns, frame.color, frame.depth, scan.intrinsics, truth)
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
        bag.finish({"building_id": building.building_id, "config": asdict(cfg), "visits": visits})
    return out
