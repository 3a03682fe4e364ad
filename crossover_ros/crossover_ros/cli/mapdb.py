"""``crossover_ros map build | info``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser("map", help="build and inspect map databases")
    sub = parser.add_subparsers(dest="map_verb", required=True, metavar="VERB")

    build = sub.add_parser("build", help="embed a building's scans into a new map database")
    build.add_argument("--scans", type=Path, required=True, help="generated building folder")
    build.add_argument("--out", type=Path, required=True, help="map database file (new)")
    build.add_argument(
        "--include-rescans", action="store_true", help="also store rescans (default: references)"
    )
    build.set_defaults(command=build_command)

    info = sub.add_parser("info", help="print what a map database holds")
    info.add_argument("map", type=Path)
    info.set_defaults(command=info_command)


def build_command(args: argparse.Namespace) -> int:
    from crossover_ros.mapdb.build import build_map
    from crossover_ros.model.global_descriptor import ImageDescriptorEncoder

    with build_map(args.scans, args.out, ImageDescriptorEncoder(), args.include_rescans) as db:
        print(f"map {args.out}: {len(db.scenes())} scenes, modalities {db.modalities()}")
    return 0


def info_command(args: argparse.Namespace) -> int:
    from crossover_ros.mapdb import MapDatabase

    with MapDatabase.open(args.map) as db:
        scenes = db.scenes()
        print(f"map: {args.map}")
        print(f"model: {db.model_fingerprint} ({db.embedding_dim}-d)")
        print(f"modalities: {', '.join(db.modalities())}")
        print(f"scenes: {len(scenes)}")
        for scene in scenes:
            print(f"  {scene.scene_id}  building={scene.building_id} room={scene.room_id}")
    return 0
