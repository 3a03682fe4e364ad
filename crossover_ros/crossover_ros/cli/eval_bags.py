"""``crossover_ros eval``: replay query bags through the recogniser and report what a robot gets.

Not to be confused with ``crossover_ros evaluate`` (the paper's model metrics on cached scans):
``eval`` scores the whole robot pipeline on rosbags: scene recall per query window, time and
distance to the first correct answer, confident wrong answers, latency, memory, dropped frames.
``--benchmark DIR`` generates held-out buildings, their bags and one map per model, and
evaluates them all: the README's table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from crossover_ros.argtypes import (
    add_overwrite_argument,
    add_pipeline_settings_arguments,
    check_lookalike,
    fraction,
    int_at_least,
    positive_float,
)
from crossover_ros.bags.reader import BagTopics
from crossover_ros.bags.scans_bag import ScansBagCfg, record_scans_bag
from crossover_ros.config import build, load_yaml, parse_assignment
from crossover_ros.errors import CrossoverError
from crossover_ros.eval.bag_eval import (
    TRAIN_INSTANCE_BASELINE,
    BagEvalCfg,
    MapGeometry,
    compute_metrics,
    evaluate_offline,
    map_geometry_of,
    unavailable,
)
from crossover_ros.eval.bag_report import format_report, report_json
from crossover_ros.eval.plots import plot_all
from crossover_ros.mapdb import SQLiteMapDatabase, open_map
from crossover_ros.mapdb.build import build_map
from crossover_ros.mapdb.postgres import redact_url
from crossover_ros.model.instance_baseline import InstanceBaselineEncoder
from crossover_ros.model.registry import (
    checkpoint_is_instance_baseline,
    create_encoder,
    model_for_fingerprint,
    model_label,
)
from crossover_ros.outputs import check_new_output, staged_output
from crossover_ros.pipeline.config import PipelineCfg
from crossover_ros.pipeline.recognizer import check_map
from crossover_ros.pipeline.runner import create_model_encoder
from crossover_ros.synthetic.building import SPLITS, BuildingConfig, generate_building
from crossover_ros.synthetic.layouts import write_rscan_layout, write_scannet_layout
from crossover_ros.synthetic.query_bag import QueryBagCfg, record_query_bag

DESCRIPTION = """\
Replay rosbags (MCAP or sqlite3) through the scene recogniser and score what a robot gets:
scene recall@K per query window, time and distance to the first correct answer per room visit,
confident wrong answers, instance correspondences and pose error (when published), latency per
stage, peak memory, dropped frames. Markdown report, JSON and PNG plots in --out.

  offline: messages straight into the node's per-message logic, fast and deterministic;
  live:    the bag published on ROS 2 topics to a scene_recognizer (in this process, or
           --external-node), its SceneMatch messages scored: the real node and DDS path.

Not 'crossover_ros evaluate', which computes the paper's model metrics on cached scans.
--benchmark DIR generates held-out buildings, their bags and one map per model, and evaluates
every model on them (the README's table).
"""
BENCHMARK_SEED = 300  # held-out building seeds 300, 301, ...: a stream the model card never used
INSTANCE_BASELINE = Path("work_dirs/runs/instance_baseline/model.safetensors")


def add_parser(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "eval",
        help="replay rosbags through the scene recogniser: recall, time to relocalise, latency"
        " (not 'evaluate', which scores models on cached scans)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    io = parser.add_argument_group("bags and maps")
    io.add_argument("--bag", type=Path, action="append", default=[], help="rosbag2 folder")
    io.add_argument(
        "--map", type=str, action="append", default=[], help="map database (repeat: one per model)"
    )
    io.add_argument(
        "--model",
        action="append",
        default=[],
        help="model of each --map in order (global_descriptor, crossover, a checkpoint;"
        " an Instance-Baseline checkpoint is ranked as object means); default: from the map",
    )
    io.add_argument(
        "--map-modality",
        nargs="+",
        help="stored modalities CrossOver ranks the frames against, one row each (point_cloud"
        " rgb floorplan referral scene; default: point_cloud, as the node; benchmark: first 4)",
    )
    io.add_argument("--out", type=Path, default=Path("eval_out"), help="report folder (new)")
    add_overwrite_argument(io)
    run = parser.add_argument_group("replay")
    run.add_argument("--mode", choices=["offline", "live"], default="offline")
    run.add_argument("--rate", type=positive_float, default=1.0, help="live: playback speed factor")
    run.add_argument(
        "--external-node",
        action="store_true",
        help="live: score a scene_recognizer already running (default: start one in-process)",
    )
    run.add_argument("--match-topic", default="/scene_recognizer/scene_match")
    run.add_argument(
        "--confident", type=fraction, default=0.5, help="confidence of a 'sure' answer"
    )
    run.add_argument(
        "--ks", type=int_at_least(1), nargs="+", default=[1, 5, 10], help="recall@K to report"
    )
    add_pipeline_settings_arguments(
        run,
        "verification.top_k=0",
        "the scene_recognizer's parameter YAML to evaluate (default: the node's defaults,"
        " as config/scene_recognizer.yaml holds them)",
    )
    run.add_argument(
        "--same-process",
        action="store_true",
        help="evaluate every model in this process (default: a fresh process per row, so the"
        " peak memory is that model's alone)",
    )
    run.add_argument("--no-plots", action="store_true")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    topics = parser.add_argument_group("topics and ground truth (defaults: the project's bags)")
    topics.add_argument("--color-topic", default="/camera/color/image_raw")
    topics.add_argument("--depth-topic", default="/camera/aligned_depth_to_color/image_raw")
    topics.add_argument("--camera-info-topic", default="/camera/color/camera_info")
    topics.add_argument("--odom-topic", default="/odom")
    topics.add_argument("--gt-topic", default="/crossover/ground_truth")
    topics.add_argument(
        "--gt-pose-topic",
        default="/crossover/ground_truth_pose",
        help="the camera's true pose in the map frame (PoseStamped) that poses are scored"
        " against; bags without it are scored against their odometry (older bags), with a note",
    )
    topics.add_argument(
        "--ground-truth", type=Path, help="ground-truth JSON (default: the bag's ground_truth.json)"
    )
    bench = parser.add_argument_group("benchmark set")
    bench.add_argument(
        "--benchmark",
        type=Path,
        metavar="DIR",
        help="generate held-out buildings, bags and maps under DIR (kept), evaluate every model",
    )
    bench.add_argument("--buildings", type=int_at_least(1), default=3)
    bench.add_argument("--rooms", type=int_at_least(1), default=6)
    bench.add_argument("--lookalike", type=int_at_least(0), default=2)
    bench.add_argument("--seconds-per-room", type=positive_float, default=5.0)
    bench.add_argument(
        "--seed",
        type=int,
        default=BENCHMARK_SEED,
        help="seed of the first building (the next ones count up); another seed gives another"
        " set, e.g. to choose settings on before reporting on the default one",
    )
    bench.add_argument(
        "--split",
        choices=sorted(SPLITS),
        default="heldout",
        help="appearance family of the rooms: 'heldout' (validation and the benchmarks) or"
        " 'test' (colours, floors and sizes no setting was chosen on)",
    )
    bench.add_argument(
        "--instance-baseline",
        type=Path,
        default=INSTANCE_BASELINE,
        help="Instance-Baseline checkpoint (a row says 'not available' without it)",
    )
    bench.add_argument(
        "--workers", type=int_at_least(0), default=0, help="processes generating (0: cores)"
    )
    bench.add_argument(
        "--replay-scans",
        action="store_true",
        help="also: the buildings in the ScanNet and 3RScan layouts, maps from each and their"
        " rescans replayed as bags (reports DIR/report_replay_<layout>)",
    )
    parser.set_defaults(command=eval_command)


def pipeline_cfg(params_file: Path | None, assignments: list[str]) -> PipelineCfg:
    """The node's pipeline settings: its defaults, a parameter YAML over them, then --set."""
    cfg = PipelineCfg()
    if params_file is not None:
        cfg = load_yaml(params_file, "scene_recognizer", PipelineCfg)
    try:
        return build(PipelineCfg, dict(parse_assignment(item) for item in assignments), cfg)
    except ValueError as err:
        raise CrossoverError(f"--set: {err}") from err


def _cfg(args: argparse.Namespace) -> BagEvalCfg:
    topics = BagTopics(
        color=args.color_topic,
        depth=args.depth_topic,
        camera_info=args.camera_info_topic,
        odometry=args.odom_topic,
        ground_truth=args.gt_topic,
        ground_truth_pose=args.gt_pose_topic,
    )
    if any(k < 1 for k in args.ks):
        raise CrossoverError(f"--ks must be positive, got {args.ks}")
    return BagEvalCfg(
        topics=topics,
        ground_truth=args.ground_truth,
        ks=tuple(sorted(set(args.ks))),
        confident=args.confident,
        pipeline=pipeline_cfg(args.params_file, args.set),
    )


def eval_command(args: argparse.Namespace) -> int:

    if args.benchmark:
        return benchmark_command(args)
    if not args.bag or not args.map:
        raise CrossoverError("eval needs --bag and --map (or --benchmark DIR)")
    if args.model and len(args.model) != len(args.map):
        raise CrossoverError(f"{len(args.model)} --model for {len(args.map)} --map: give one each")
    for bag in args.bag:
        if not bag.exists():
            raise CrossoverError(f"bag {bag} does not exist")
    check_new_output(args.out, args.overwrite)  # before the work, not after it
    models = args.model or [None] * len(args.map)
    argv = [redact_url(arg) for arg in sys.argv[1:]]  # the report shows no password
    command = "crossover_ros " + shlex.join(argv) if argv[:1] == ["eval"] else ""
    run_evaluation(args, list(zip(args.map, models, strict=True)), [], command)
    return 0


def _rows_for(model: str, encoder_modalities: list[str]) -> list[str | None]:

    if model == "global_descriptor":
        return ["rgb"]
    if model != "crossover" and Path(model).is_file() and checkpoint_is_instance_baseline(model):
        return ["point_cloud"]
    return list(encoder_modalities or ["point_cloud"])


@dataclass(frozen=True)
class RowJob:
    """One row of the report: a model (and the modality its map is ranked in) on every bag."""

    map_path: str
    model: str
    modality: str | None
    bags: tuple[Path, ...]
    cfg: BagEvalCfg
    mode: str = "offline"
    in_process: bool = True
    rate: float = 1.0
    match_topic: str = "/scene_recognizer/scene_match"
    progress: bool = True


def evaluate_row(job: RowJob) -> tuple[str, str, list, MapGeometry | None]:
    """(label, reason it is unavailable or "", run records, the map's geometry) of one row.

    Runs in a fresh process by default, so the peak memory measured is this model's alone.
    """
    live = job.mode == "live"
    pipeline = job.cfg.pipeline_for(job.map_path, job.model, job.modality)
    encoder = create_model_encoder(pipeline.model, pipeline.model.map_modality)
    label = model_label(job.model, encoder)
    if live and isinstance(encoder, InstanceBaselineEncoder):
        return label, "offline only: the node ranks scene embeddings, not object means", [], None
    records = []
    with open_map(job.map_path, encoder.fingerprint, read_only=True) as mapdb:
        for bag in job.bags:
            print(f"== {label} ({job.modality}) <- {bag} [{job.mode}]", flush=True)
            if live:  # the ROS side needs rclpy, which an offline evaluation does not
                from crossover_ros.ros.live_eval import evaluate_live

                record = evaluate_live(
                    bag,
                    job.cfg,
                    pipeline=pipeline,
                    in_process=job.in_process,
                    rate=job.rate,
                    label=label,
                    match_topic=job.match_topic,
                    progress=job.progress,
                )
            else:
                record = evaluate_offline(
                    bag, pipeline, job.cfg, label, job.progress, encoder=encoder, mapdb=mapdb
                )
            records.append(record)
        geometry = map_geometry_of(mapdb)
    return label, "", records, geometry


def _run_row(job: RowJob, isolate: bool):
    if not isolate:
        return evaluate_row(job)

    context = multiprocessing.get_context("spawn")  # a clean process: no memory of other rows
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(evaluate_row, job).result()


def run_evaluation(
    args: argparse.Namespace,
    maps: list[tuple[str, str | None]],
    extra_rows: list,
    command: str,
) -> list:
    """Evaluate every (map, model) x modality on every bag; write and print the report."""

    cfg = _cfg(args)
    live = args.mode == "live"
    rows, bags = [], {}
    for map_path, model in maps:
        with open_map(map_path, read_only=True) as probe:
            model = model or model_for_fingerprint(probe.model_fingerprint)
        for modality in _rows_for(model, args.map_modality):
            job = RowJob(
                map_path=str(map_path),
                model=model,
                modality=modality,
                bags=tuple(args.bag),
                cfg=cfg,
                mode=args.mode,
                in_process=not args.external_node,
                rate=args.rate,
                match_topic=args.match_topic,
                progress=not args.quiet,
            )
            label, reason, records, geometry = _run_row(job, not args.same_process)
            if reason:
                rows.append(unavailable(label, reason, "I->P"))
                continue
            for record in records:
                bags[record.bag] = record.contents
            rows.append(compute_metrics(records, cfg, geometry))
            if live and args.external_node:
                break  # a running node answers the same whatever this side asks
    rows += extra_rows
    _write(args, rows, list(bags.values()), cfg, maps, command)
    return rows


def _write(args, rows, bags, cfg, maps, command: str) -> None:

    out: Path = args.out
    with staged_output(out, args.overwrite) as staging:
        staging.mkdir()
        report = _write_into(staging, args, rows, bags, cfg, maps, command)
    print()
    print(report)
    print(f"report: {out / 'report.md'}, numbers: {out / 'results.json'}, plots in {out}")


def _write_into(staging: Path, args, rows, bags, cfg, maps, command: str) -> str:
    out: Path = args.out
    meta = {
        "mode": args.mode if args.mode == "offline" else f"live x{args.rate:g}",
        "command": command,
        "maps": [redact_url(str(m)) for m, _ in maps],
        "machine": f"{os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d %H:%M')}",
        "out_dir": str(out),
    }
    plots = {}
    if not args.no_plots:
        plots = {name: out / path.name for name, path in plot_all(rows, staging).items()}
    report = format_report(rows, bags, cfg, meta, plots)
    (staging / "report.md").write_text(report)
    (staging / "results.json").write_text(report_json(rows, bags, cfg, meta))
    return report


# -- the benchmark set -------------------------------------------------------------------------


def benchmark_command(args: argparse.Namespace) -> int:
    """Held-out buildings + bags (both formats) + a map per model, then the evaluation."""

    root: Path = args.benchmark
    check_lookalike(args.rooms, args.lookalike)
    if not args.out or args.out == Path("eval_out"):
        args.out = root / "report"
    check_new_output(args.out, args.overwrite)  # before the work, not after it
    root.mkdir(parents=True, exist_ok=True)
    settings = {
        "buildings": args.buildings,
        "rooms": args.rooms,
        "lookalike": args.lookalike,
        "seconds_per_room": args.seconds_per_room,
        "seed": args.seed,
    }
    if args.split != "heldout":  # benchmarks made before the option keep their stamp
        settings["split"] = args.split
    stamp = root / "benchmark.json"
    if stamp.is_file() and json.loads(stamp.read_text()) != settings:
        raise CrossoverError(
            f"{root} holds a benchmark made with {stamp.read_text().strip()}; use a new folder"
        )
    stamp.write_text(json.dumps(settings))
    started = time.monotonic()
    buildings, bags = [], []
    for index in range(args.buildings):
        building = root / f"building{index}"
        if not (building / "building.json").is_file():
            print(f"== generating held-out building {index} ({args.rooms} rooms)", flush=True)
            cfg = BuildingConfig(
                seed=args.seed + index,
                num_rooms=args.rooms,
                num_lookalike_rooms=args.lookalike,
                rescans_per_room=1,  # objects moved, removed, added; other lighting
                frames_per_scan=20,
                split=args.split,
                building_id=f"bench{index}",
                workers=args.workers,
            )
            generate_building(building, cfg, progress=not args.quiet)
        buildings.append(building)
        storage = "mcap" if index % 2 == 0 else "sqlite3"  # both formats in the set
        bag = root / f"bag{index}_{storage}"
        if not bag.is_dir():
            print(f"== recording the query bag of building {index} ({storage})", flush=True)
            bag_cfg = QueryBagCfg(
                seed=args.seed + 700 + index,
                storage=storage,
                seconds_per_room=args.seconds_per_room,
            )
            record_query_bag(building, bag, bag_cfg, progress=not args.quiet)
        bags.append(bag)
    print(f"== data ready after {time.monotonic() - started:.0f} s", flush=True)

    models = ["global_descriptor", "crossover"]
    extra = []
    baseline = _find_instance_baseline(args.instance_baseline)
    if baseline is not None:
        models.append(str(baseline))
    maps = []
    for model in models:
        name = "instance_baseline" if model == str(baseline) else model
        map_path = root / f"map_{name}.sqlite"
        _ensure_multi_map(buildings, map_path, model, name, progress=not args.quiet)
        maps.append((str(map_path), model))
    if baseline is None:
        extra.append(unavailable("Instance Baseline", TRAIN_INSTANCE_BASELINE, "I->P"))
    args.bag = bags
    args.map_modality = args.map_modality or ["point_cloud", "floorplan", "rgb", "referral"]
    command = (
        f"crossover_ros eval --benchmark {root} --buildings {args.buildings} --rooms {args.rooms}"
        f" --lookalike {args.lookalike} --seconds-per-room {args.seconds_per_room:g}"
        + (f" --seed {args.seed}" if args.seed != BENCHMARK_SEED else "")
        + (f" --split {args.split}" if args.split != "heldout" else "")
        + (f" --map-modality {' '.join(args.map_modality)}" if args.map_modality else "")
    )
    run_evaluation(args, maps, extra, command)
    if args.replay_scans:
        _replay_scans_benchmark(args, buildings, models, command)
    print(f"benchmark finished in {time.monotonic() - started:.0f} s")
    return 0


REPLAY_FRAME_STEP = 2  # of the benchmark's 20-frame scans: 10 replayed frames a room


def _replay_scans_benchmark(
    args: argparse.Namespace, buildings: list[Path], models: list[str], command: str
) -> None:
    """The same rooms from recorded scans: each building written in the ScanNet and the 3RScan
    layout, a map per layout and model from the reference scans, and the rescans replayed as
    bags (``data bag-from-scans``); the generated layout too, so the three compare like for
    like. One report per layout under DIR/report_replay_<layout>."""
    root: Path = args.benchmark
    for layout in ("generated", "scannet", "3rscan"):
        folders, bags = [], []
        for index, building in enumerate(buildings):
            folder = building if layout == "generated" else root / f"{building.name}_{layout}"
            if layout == "scannet" and not folder.is_dir():  # room numbers unique in the set
                write_scannet_layout(building, folder, args.seed + index, first_room=100 * index)
            elif layout == "3rscan" and not folder.is_dir():
                write_rscan_layout(building, folder, args.seed + index)
            folders.append(folder)
            bag = root / f"replay{index}_{layout}"
            if not bag.is_dir():
                print(f"== replaying the rescans of {folder.name} ({layout})", flush=True)
                cfg = ScansBagCfg(
                    layout=layout, frame_step=REPLAY_FRAME_STEP, seed=args.seed + 800 + index
                )
                record_scans_bag(folder, bag, cfg, progress=not args.quiet)
            bags.append(bag)
        maps = []
        for model in models[:2]:  # global descriptor and CrossOver
            suffix = "" if layout == "generated" else f"_{layout}"  # generated: the main map
            map_path = root / f"map_{model}{suffix}.sqlite"
            name = f"{model} ({layout})"  # every frame, as the generated scans' maps have them
            _ensure_multi_map(folders, map_path, model, name, not args.quiet, frame_step=1)
            maps.append((str(map_path), model))
        args.bag, args.map_modality = bags, None
        args.out = root / f"report_replay_{layout}"
        run_evaluation(args, maps, [], f"{command} --replay-scans  # {layout} layout")


def _find_instance_baseline(path: Path | None) -> Path | None:
    if path is None:
        return None
    candidates = [path]
    if not path.is_absolute():  # also relative to the repository, for the default
        candidates.append(Path(__file__).resolve().parents[3] / path)
    return next((p for p in candidates if p.is_file()), None)


def _ensure_multi_map(
    buildings: list[Path],
    out: Path,
    model: str,
    name: str,
    progress: bool,
    frame_step: int | None = None,
) -> None:
    """One map of every building's reference scans, made by ``model``: an existing one is kept
    while the recogniser would take it (``check_map``: same model, widths, ranked modality)."""

    encoder = create_encoder(model)
    if out.is_file():
        try:
            with SQLiteMapDatabase.open(out, read_only=True) as db:
                check_map(encoder, db)
            return
        except CrossoverError as err:
            print(f"== {out.name} is out of date ({err}): made again", flush=True)
    print(f"== map of {len(buildings)} buildings with {name}", flush=True)
    tmp = out.with_suffix(".partial")
    for suffix in ("", "-wal", "-shm"):  # a killed build's leftovers
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    build_map(buildings, tmp, encoder, progress=progress, frame_step=frame_step).close()
    for suffix in ("-wal", "-shm"):  # the old map's journal must not replay onto the new one
        Path(f"{out}{suffix}").unlink(missing_ok=True)
    tmp.replace(out)
