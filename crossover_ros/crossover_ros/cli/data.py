"""``crossover_ros data generate | record-bag | bag-from-scans``."""

from __future__ import annotations

import argparse
from pathlib import Path

from crossover_ros.argtypes import (
    add_overwrite_argument,
    check_lookalike,
    int_at_least,
    positive_float,
)
from crossover_ros.bags.odometry import OdometryNoiseCfg
from crossover_ros.bags.query_writer import BagFrames
from crossover_ros.bags.scans_bag import ScansBagCfg, record_scans_bag
from crossover_ros.synthetic.building import SPLITS, BuildingConfig, generate_building
from crossover_ros.synthetic.query_bag import QueryBagCfg, record_query_bag


def add_parser(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser("data", help="generate buildings and record query bags")
    sub = parser.add_subparsers(dest="data_verb", required=True, metavar="VERB")

    generate = sub.add_parser("generate", help="generate a building of scanned rooms")
    generate.add_argument("--out", type=Path, required=True, help="output folder (new)")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--building-id", default="bldg0")
    generate.add_argument(
        "--rooms", type=int_at_least(1), default=8, help="rooms (scenes) in total"
    )
    generate.add_argument(
        "--lookalike", type=int_at_least(0), default=4, help="of which near-identical"
    )
    generate.add_argument("--rescans", type=int_at_least(0), default=1, help="rescans per room")
    generate.add_argument(
        "--cumulative",
        action="store_true",
        help="rounds of changes that accumulate: rescan k changes rescan k-1, not the reference"
        " (for 'map update'; a rescan's object states are then relative to the one before)",
    )
    generate.add_argument(
        "--frames", type=int_at_least(1), default=30, help="RGB-D frames per scan"
    )
    generate.add_argument("--width", type=int_at_least(1), default=320)
    generate.add_argument("--height", type=int_at_least(1), default=240)
    generate.add_argument("--split", choices=sorted(SPLITS), default="train")
    add_overwrite_argument(generate)
    generate.set_defaults(command=generate_command)

    record = sub.add_parser("record-bag", help="record a rosbag2 of a walk through a building")
    record.add_argument("--building", type=Path, required=True, help="generated building folder")
    record.add_argument("--out", type=Path, required=True, help="bag folder to create")
    record.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    record.add_argument("--seed", type=int, default=0)
    record.add_argument("--seconds-per-room", type=positive_float, default=6.0)
    record.add_argument("--rooms", nargs="*", default=[], help="room ids in order (default all)")
    record.add_argument(
        "--scans",
        choices=["newest", "reference"],
        default="newest",
        help="walk through each room's newest rescan (a query bag) or its reference scan (a"
        " mapping bag for 'map record')",
    )
    record.add_argument(
        "--scan-index",
        type=int_at_least(0),
        help="walk through each room's scan of this index instead (0: the reference; k: the"
        " k-th rescan, e.g. a round of 'generate --cumulative' changes)",
    )
    _add_odometry_arguments(record)
    add_overwrite_argument(record)
    record.set_defaults(command=record_command)

    replay = sub.add_parser(
        "bag-from-scans",
        help="replay recorded scans (generated, ScanNet, 3RScan) as a query or mapping bag",
    )
    replay.add_argument("scans", type=Path, help="scan folder: building / ScanNet / 3RScan")
    replay.add_argument("--out", type=Path, required=True, help="bag folder to create")
    replay.add_argument(
        "--layout", default="auto", choices=("auto", "generated", "scannet", "3rscan")
    )
    replay.add_argument(
        "--scans",
        dest="which",
        choices=["newest", "reference"],
        default="newest",
        help="replay each room's newest rescan (a query bag) or its reference scan (a mapping bag)",
    )
    replay.add_argument(
        "--frame-step",
        type=int_at_least(1),
        help="every n-th frame of a sequence (default: map build's)",
    )
    replay.add_argument(
        "--camera-rate", type=positive_float, default=3.0, help="replayed frames per s"
    )
    replay.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    replay.add_argument("--seed", type=int, default=0)
    _add_odometry_arguments(replay)
    add_overwrite_argument(replay)
    replay.set_defaults(command=bag_from_scans_command)


def _add_odometry_arguments(parser: argparse.ArgumentParser) -> None:
    odometry = parser.add_argument_group(
        "odometry (defaults: a wheeled base with visual-inertial odometry, in its own frame)"
    )
    defaults = OdometryNoiseCfg()
    odometry.add_argument(
        "--odom-drift",
        type=float,
        default=defaults.drift,
        help="horizontal drift, at most this share of the distance travelled",
    )
    odometry.add_argument(
        "--odom-yaw-drift-deg-per-10m",
        type=float,
        default=defaults.yaw_drift_deg_per_10m,
        help="heading drift, at most this many degrees per 10 m travelled",
    )
    odometry.add_argument(
        "--odom-origin-range",
        type=float,
        default=defaults.origin_range_m,
        help="the odom frame starts at a random yaw and up to this far (m, in x and y) from the"
        " map's origin, as a robot's starts wherever it was switched on",
    )
    odometry.add_argument(
        "--odom-jumps-per-m",
        type=float,
        default=defaults.jump_per_m,
        help="probability per metre of a sudden slip (wheel slip, lost visual track)",
    )
    odometry.add_argument(
        "--odom-jump-m", type=float, default=defaults.jump_m, help="size of a slip (m)"
    )
    odometry.add_argument(
        "--odom-jump-deg", type=float, default=defaults.jump_deg, help="a slip's yaw, up to (deg)"
    )
    odometry.add_argument(
        "--perfect-odometry",
        action="store_true",
        help="odometry = the true pose in the map frame, as older bags had it",
    )


def generate_command(args: argparse.Namespace) -> int:
    check_lookalike(args.rooms, args.lookalike)
    cfg = BuildingConfig(
        seed=args.seed,
        num_rooms=args.rooms,
        num_lookalike_rooms=args.lookalike,
        rescans_per_room=args.rescans,
        cumulative_rescans=args.cumulative,
        frames_per_scan=args.frames,
        image_width=args.width,
        image_height=args.height,
        split=args.split,
        building_id=args.building_id,
    )
    out = generate_building(args.out, cfg, overwrite=args.overwrite)
    print(f"building written to {out}")
    return 0


def record_command(args: argparse.Namespace) -> int:
    cfg = QueryBagCfg(
        seed=args.seed,
        storage=args.storage,
        seconds_per_room=args.seconds_per_room,
        rooms=tuple(args.rooms),
        scans=args.scans,
        scan_index=args.scan_index,
        odometry=_odometry_noise(args),
    )
    out = record_query_bag(args.building, args.out, cfg, overwrite=args.overwrite)
    print(f"bag written to {out}")
    return 0


def bag_from_scans_command(args: argparse.Namespace) -> int:
    cfg = ScansBagCfg(
        layout=args.layout,
        scans=args.which,
        frame_step=args.frame_step,
        camera_rate_hz=args.camera_rate,
        seed=args.seed,
        frames=BagFrames(storage=args.storage),
        odometry=_odometry_noise(args),
    )
    out = record_scans_bag(args.scans, args.out, cfg, overwrite=args.overwrite)
    print(f"bag written to {out}")
    return 0


def _odometry_noise(args: argparse.Namespace) -> OdometryNoiseCfg:
    if args.perfect_odometry:
        return OdometryNoiseCfg.perfect()
    return OdometryNoiseCfg(
        origin_range_m=args.odom_origin_range,
        drift=args.odom_drift,
        yaw_drift_deg_per_10m=args.odom_yaw_drift_deg_per_10m,
        jump_per_m=args.odom_jumps_per_m,
        jump_m=args.odom_jump_m,
        jump_deg=args.odom_jump_deg,
    )
