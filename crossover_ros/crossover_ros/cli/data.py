"""``crossover_ros data generate | record-bag``."""

from __future__ import annotations

import argparse
from pathlib import Path

from crossover_ros.argtypes import (
    add_overwrite_argument,
    check_lookalike,
    int_at_least,
    positive_float,
)
from crossover_ros.synthetic.building import BuildingConfig, generate_building
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
        "--frames", type=int_at_least(1), default=30, help="RGB-D frames per scan"
    )
    generate.add_argument("--width", type=int_at_least(1), default=320)
    generate.add_argument("--height", type=int_at_least(1), default=240)
    generate.add_argument("--split", choices=["train", "heldout"], default="train")
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
    add_overwrite_argument(record)
    record.set_defaults(command=record_command)


def generate_command(args: argparse.Namespace) -> int:
    check_lookalike(args.rooms, args.lookalike)
    cfg = BuildingConfig(
        seed=args.seed,
        num_rooms=args.rooms,
        num_lookalike_rooms=args.lookalike,
        rescans_per_room=args.rescans,
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
    )
    out = record_query_bag(args.building, args.out, cfg, overwrite=args.overwrite)
    print(f"bag written to {out}")
    return 0
