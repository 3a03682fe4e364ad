"""``crossover_ros map build | record | update | scans | info | add-scan | remove-scene | export |
import``.

MAP is a SQLite file or a ``postgresql://host/db[#map_name]`` URL (credentials from PGPASSWORD,
PGPASSFILE or ~/.pgpass; never put them in the URL you type into a shell history).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from crossover_ros.argtypes import add_pipeline_settings_arguments
from crossover_ros.cli.eval_bags import pipeline_cfg
from crossover_ros.errors import DataError, MapDatabaseError, MapNotFoundError
from crossover_ros.mapdb import SQLiteMapDatabase, copy_map, create_map, is_postgres_url, open_map
from crossover_ros.mapdb.build import build_map, embed_scan, list_scans
from crossover_ros.mapdb.records import SceneRecord
from crossover_ros.model.registry import create_encoder, model_for_fingerprint
from crossover_ros.outputs import check_new_output, staged_output
from crossover_ros.pipeline.config import MapCfg, ModelCfg, RecordingPipelineCfg
from crossover_ros.pipeline.mapping_bag import record_map_from_bag, update_map_from_bag
from crossover_ros.pipeline.runner import open_recognition, open_recording


def add_parser(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser("map", help="build and inspect map databases")
    sub = parser.add_subparsers(dest="map_verb", required=True, metavar="VERB")

    build = sub.add_parser("build", help="embed a building's scans into a new map database")
    build.add_argument("--scans", type=Path, required=True, help="building / ScanNet / 3RScan")
    build.add_argument("--out", required=True, help="new map: SQLite file or postgresql:// URL")
    _add_model_argument(build)
    build.add_argument(
        "--layout", default="auto", choices=("auto", "generated", "scannet", "3rscan")
    )
    build.add_argument(
        "--include-rescans", action="store_true", help="also store rescans (default: references)"
    )
    _add_frame_step_argument(build)
    again = build.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted build: add the scans the map lacks (same model only)",
    )
    again.add_argument("--overwrite", action="store_true", help="replace an existing SQLite map")
    build.set_defaults(command=build_command)

    record = sub.add_parser(
        "record",
        help="add the rooms of a mapping bag to a map (the map_recorder's logic, offline)",
    )
    record.add_argument("--bag", type=Path, nargs="+", required=True, help="rosbag2 folder(s)")
    record.add_argument("--out", required=True, help="map to add to (created if it does not exist)")
    _add_model_argument(record)
    record.add_argument(
        "--scene-id",
        default="",
        help="store each bag as one scene of this id (default: one scene per visit of the"
        " bag's ground_truth.json, as 'data record-bag' writes it)",
    )
    record.add_argument("--building-id", default="", help="default: the bag's ground truth")
    record.set_defaults(command=record_command)

    update = sub.add_parser(
        "update",
        help="replay bags through the recogniser and add each recognised visit as a new scan of"
        " its room (what the node's ~/update_map does)",
    )
    update.add_argument("--bag", type=Path, nargs="+", required=True, help="rosbag2 folder(s)")
    update.add_argument("--map", required=True, help="map to update: SQLite file or postgresql://")
    where = update.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="write the updated map here (a new SQLite file)")
    where.add_argument("--in-place", action="store_true", help="add the scans to --map itself")
    add_pipeline_settings_arguments(update, "map_update.require_pose=false")
    update.add_argument("--quiet", action="store_true", help="no progress bar")
    update.set_defaults(command=update_command)

    scans = sub.add_parser("scans", help="list the scans of each room, newest first")
    scans.add_argument("--map", required=True)
    scans.add_argument("--room", default="", help="only this room")
    scans.add_argument("--building", default="", help="only this building")
    scans.set_defaults(command=scans_command)

    info = sub.add_parser("info", help="print what a map database holds")
    info.add_argument("map")
    info.add_argument("--verify", action="store_true", help="also check every page (SQLite)")
    info.set_defaults(command=info_command)

    add = sub.add_parser("add-scan", help="embed one more scan into an existing map")
    add.add_argument("--map", required=True)
    add.add_argument("--scans", type=Path, required=True, help="building / ScanNet / 3RScan")
    add.add_argument("--scan-id", required=True, help="which scan of --scans to add")
    _add_model_argument(add)
    add.add_argument("--layout", default="auto", choices=("auto", "generated", "scannet", "3rscan"))
    _add_frame_step_argument(add)
    add.set_defaults(command=add_scan_command)

    remove = sub.add_parser("remove-scene", help="delete a scene from a map")
    remove.add_argument("--map", required=True)
    remove.add_argument("scene_id")
    remove.set_defaults(command=remove_scene_command)

    export = sub.add_parser("export", help="copy a map into a new map (e.g. SQLite -> PostgreSQL)")
    export.add_argument("map")
    export.add_argument("--to", required=True, help="new map: SQLite file or postgresql:// URL")
    export.set_defaults(command=export_command)

    imp = sub.add_parser("import", help="add another map's missing scenes to a map")
    imp.add_argument("map", help="map to add to (created if it does not exist)")
    imp.add_argument("--from", dest="source", required=True, help="map to read from")
    imp.set_defaults(command=import_command)


def _add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default="global_descriptor",
        help="global_descriptor, crossover (the shipped model) or a CrossOver checkpoint path",
    )


def _add_frame_step_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--frame-step",
        type=int,
        help="ScanNet / 3RScan: read every n-th frame of a sequence (default 10 / 5)",
    )


def build_command(args: argparse.Namespace) -> int:
    encoder = create_encoder(args.model)
    with build_map(
        args.scans,
        args.out,
        encoder,
        args.include_rescans,
        layout=args.layout,
        frame_step=args.frame_step,
        resume=args.resume,
        overwrite=args.overwrite,
    ) as db:
        print(f"map {db.path}: {len(db.scenes())} scenes, modalities {db.modalities()}")
    return 0


def record_command(args: argparse.Namespace) -> int:
    if args.scene_id and len(args.bag) > 1:
        raise DataError("--scene-id names one scene: give one bag")
    cfg = RecordingPipelineCfg(model=ModelCfg(name=args.model), map=MapCfg(path=str(args.out)))
    pipeline = open_recording(cfg, lambda event: print(f"WARNING: {event.message}"))
    try:
        for bag in args.bag:
            saved = record_map_from_bag(bag, pipeline, args.scene_id, args.building_id)
            print(f"{bag}: {len(saved)} scene(s) recorded: {', '.join(s.scene_id for s in saved)}")
        db = pipeline.mapdb
        print(f"map {db.path}: {len(db.scenes())} scenes, modalities {db.modalities()}")
    finally:
        pipeline.close()
    return 0


def update_command(args: argparse.Namespace) -> int:
    for bag in args.bag:
        if not Path(bag).exists():
            raise DataError(f"bag {bag} does not exist")
    if args.in_place:
        return _update(args, args.map)
    if is_postgres_url(args.map):
        raise DataError("--out copies a SQLite map; update a PostgreSQL map with --in-place")
    check_new_output(args.out)  # before the work, not after it
    with open_map(args.map, read_only=True) as source, staged_output(args.out) as staging:
        with create_map(
            staging, source.model_fingerprint, source.embedding_dim, source.instance_dim
        ) as target:
            copy_map(source, target)
        _update(args, str(staging))
    print(f"updated map written to {args.out}")
    return 0


def _update(args: argparse.Namespace, location: str) -> int:
    """Add the bags' visits to the map at ``location``; DataError if none could be added."""
    cfg = pipeline_cfg(args.params_file, args.set)
    with open_map(location, read_only=True) as probe:
        model = model_for_fingerprint(probe.model_fingerprint)
    cfg = replace(
        cfg,
        model=replace(cfg.model, name=model),
        map=replace(cfg.map, path=str(location), allow_updates=True),
    )
    pipeline = open_recognition(cfg, lambda event: None, threaded=False)
    added: list[SceneRecord] = []
    refused: list[str] = []
    try:
        for bag in args.bag:
            pipeline.updater.source = f"bag {Path(bag).name}"
            pipeline.reset()
            for outcome in update_map_from_bag(bag, pipeline, progress=not args.quiet):
                if isinstance(outcome, SceneRecord):
                    added.append(outcome)
                    print(
                        f"{bag}: added {outcome.scene_id} (room {outcome.room_id}, rescan of"
                        f" {outcome.parent_scene})"
                    )
                else:
                    refused.append(str(outcome))
                    print(f"{bag}: visit not added: {outcome}")
        scenes = len(pipeline.mapdb.scenes())
    finally:
        pipeline.close()
    if not added:
        why = refused[0] if refused else "no room was recognised"
        more = f" (and {len(refused) - 1} more, above)" if len(refused) > 1 else ""
        raise DataError(f"no visit was added to the map: {why}{more}")
    print(f"{len(added)} scan(s) added, {len(refused)} visit(s) not; the map holds {scenes} scenes")
    return 0


def scans_command(args: argparse.Namespace) -> int:
    with open_map(args.map, read_only=True) as db:
        rows = [
            scan
            for (building, room), scans in sorted(db.rooms().scans.items())
            if (not args.room or room == args.room)
            and (not args.building or building == args.building)
            for scan in scans
        ]
    if not rows:
        where = f" of room {args.room}" if args.room else ""
        raise DataError(f"no scans{where} in {db.path}")
    header = ("scene", "building", "room", "scan", "scan time (UTC)", "parent", "source")
    table = [header] + [
        (
            r.scene_id,
            r.building_id,
            r.room_id,
            str(r.scan_index),
            _utc(r.scan_time),
            r.parent_scene or "-",
            r.source or "-",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    return 0


def _utc(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp))


def info_command(args: argparse.Namespace) -> int:
    if args.verify and not is_postgres_url(args.map):
        db = SQLiteMapDatabase.open(args.map, verify=True, read_only=True)
    else:
        db = open_map(args.map, read_only=True)
    with db:
        scenes = db.scenes()
        print(f"map: {db.path}")
        print(
            f"model: {db.model_fingerprint} (scene vectors {db.embedding_dim}-d,"
            f" instance vectors {db.instance_dim}-d)"
        )
        print(f"modalities: {', '.join(db.modalities())}")
        print(f"buildings: {', '.join(sorted({s.building_id for s in scenes}))}")
        print(f"scenes: {len(scenes)}")
        for scene in scenes:
            print(f"  {scene.scene_id}  building={scene.building_id} room={scene.room_id}")
    return 0


def add_scan_command(args: argparse.Namespace) -> int:
    scans = [
        s
        for s in list_scans(args.scans, args.layout, True, args.frame_step)
        if s.record.scene_id == args.scan_id
    ]
    if not scans:
        raise DataError(f"no scan {args.scan_id} under {args.scans}")
    encoder = create_encoder(args.model)
    with open_map(args.map, encoder.fingerprint) as db:
        db.add_scenes([embed_scan(scans[0], encoder)])
        print(f"added {args.scan_id} to {db.path}: {len(db.scenes())} scenes")
    return 0


def remove_scene_command(args: argparse.Namespace) -> int:
    with open_map(args.map) as db:
        db.remove_scene(args.scene_id)
        print(f"removed {args.scene_id} from {db.path}")
    return 0


def _copy(source_location: str, target_location: str, must_be_new: bool) -> int:
    from tqdm import tqdm

    with open_map(source_location, read_only=True) as source:
        try:
            target = open_map(target_location, source.model_fingerprint)
            if must_be_new:
                target.close()
                raise MapDatabaseError(f"{target.path} already exists; choose a new map")
        except MapNotFoundError:
            target = create_map(
                target_location,
                source.model_fingerprint,
                source.embedding_dim,
                source.instance_dim,
            )
        with target, tqdm(desc="copying scenes", unit="scene") as bar:
            copied = copy_map(source, target, progress=bar.update)
        print(f"copied {copied} scenes from {source.path} to {target.path}")
    return 0


def export_command(args: argparse.Namespace) -> int:
    return _copy(args.map, args.to, must_be_new=True)


def import_command(args: argparse.Namespace) -> int:
    return _copy(args.source, args.map, must_be_new=False)
