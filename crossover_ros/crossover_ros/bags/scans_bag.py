"""A query (or mapping) bag replayed from recorded scans: generated, ScanNet or 3RScan.

So a team can score the node on the public datasets' sequences or on its own recordings: each
room's newest rescan (or, for a mapping bag, its reference scan) is replayed frame by frame with
the topics and ground truth of ``data record-bag`` (:mod:`crossover_ros.bags.query_writer`). The
truth names the room's reference scan, the scene a map built from the same folder stores. The
camera's true pose is the scan's own, placed in the reference's frame where the layout says how
(generated rescans share their room's frame, 3RScan's ``transform``); a ScanNet rescan lies in a
frame of its own that nothing relates to its reference, so its visit has no ground-truth pose.
Instance ids carry over where the dataset keeps them across rescans (generated, 3RScan).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from crossover_ros.bags.odometry import OdometryNoiseCfg
from crossover_ros.bags.query_writer import START_TIME_NS, BagFrames, QueryBagWriter
from crossover_ros.errors import BagError
from crossover_ros.mapdb.build import MapScan, detect_layout, list_scans


@dataclass(frozen=True)
class ScansBagCfg:
    """Which scans to replay and how; the frames replayed are the layout's kept frames
    (``frame_step``), ``camera_rate_hz`` apart."""

    layout: str = "auto"
    scans: str = "newest"  # each room's newest rescan (a query bag) or its "reference" scan
    frame_step: int | None = None  # None: the layout's default (map build's)
    camera_rate_hz: float = 3.0  # ScanNet's 30 Hz at its default step of 10
    transit_seconds: float = 2.0  # between rooms: odometry only
    seed: int = 0
    frames: BagFrames = field(default_factory=BagFrames)
    odometry: OdometryNoiseCfg = field(default_factory=OdometryNoiseCfg)


def _visit_plan(scans: list[MapScan], which: str) -> list[tuple[MapScan, MapScan]]:
    """(walked scan, reference scan) per room, rooms in the folder's order."""
    if which not in ("newest", "reference"):
        raise BagError(f"scans must be 'newest' or 'reference', not '{which}'")
    rooms: dict[tuple[str, str], list[MapScan]] = defaultdict(list)
    for scan in scans:
        rooms[scan.record.building_id, scan.record.room_id].append(scan)
    plan = []
    for members in rooms.values():
        members.sort(key=lambda s: s.record.scan_index)
        plan.append((members[0] if which == "reference" else members[-1], members[0]))
    return plan


def _to_scene_frame(walked: MapScan, reference: MapScan) -> np.ndarray | None:
    """Walked scan frame -> the frame the map stores the room's reference in; None: unknown."""
    if walked.record.frame_to_building is not None:
        return np.asarray(walked.record.frame_to_building, np.float64).reshape(4, 4)
    return np.eye(4) if walked is reference else None


def record_scans_bag(
    scans_dir: Path,
    out: Path,
    cfg: ScansBagCfg | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Replay the scans under ``scans_dir`` as a rosbag2 folder ``out`` (new or empty unless
    ``overwrite``; it appears only once complete)."""
    cfg = cfg or ScansBagCfg()
    if not cfg.camera_rate_hz > 0 or not cfg.transit_seconds >= 0:
        raise BagError("camera rate must be positive and transit time not negative")
    bag = QueryBagWriter(Path(out), cfg.frames, cfg.odometry, cfg.seed, overwrite)
    layout = detect_layout(scans_dir) if cfg.layout == "auto" else cfg.layout
    plan = _visit_plan(list_scans(scans_dir, layout, True, cfg.frame_step), cfg.scans)
    dt_ns = int(1e9 / cfg.camera_rate_hz)
    visits = []
    with bag:
        stamp_ns, previous = START_TIME_NS, None
        for walked, reference in tqdm(plan, desc="replaying rooms", disable=not progress):
            to_scene = _to_scene_frame(walked, reference)
            same_ids = layout != "scannet"  # ScanNet numbers each scan's objects afresh
            mapped = {inst.id for inst in reference.source.instances}
            start_ns = stamp_ns
            for index, frame in enumerate(walked.source.frames()):
                pose = frame.camera_to_world
                if to_scene is not None:
                    pose = to_scene @ pose
                if index == 0 and previous is not None:  # from the last room to this one
                    steps = int(cfg.transit_seconds * cfg.camera_rate_hz)
                    stamp_ns = start_ns = bag.transit(
                        previous, pose, steps, stamp_ns, dt_ns, known=to_scene is not None
                    )
                bag.odometry(pose, stamp_ns, known=to_scene is not None)
                visible = sorted(int(i) for i in np.unique(frame.instance) if i != 0)
                truth = {
                    "scene_id": reference.record.scene_id,
                    "query_scan_id": walked.record.scene_id,
                    "instances": {
                        str(i): (i if same_ids and i in mapped else None) for i in visible
                    },
                }
                bag.frame(stamp_ns, frame.color, frame.depth, frame.intrinsics, truth)
                previous = pose
                stamp_ns += dt_ns
            visits.append(
                {
                    "scene_id": reference.record.scene_id,
                    "query_scan_id": walked.record.scene_id,
                    "room_id": walked.record.room_id,
                    "start_ns": start_ns,
                    "end_ns": stamp_ns - dt_ns,
                    "ground_truth_pose": to_scene is not None,
                }
            )
        bag.finish({"source": str(scans_dir), "layout": layout, "visits": visits})
    return out
