"""``crossover_ros demo``: generated building -> map database -> bag replay through the node.

The recogniser runs as its own process, exactly as on a robot; this process plays the bag over
DDS, listens to the matches and prints, per room visited, the true and the matched scene.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from crossover_ros.argtypes import check_lookalike, int_at_least, positive_float
from crossover_ros.bags.reader import read_ground_truth
from crossover_ros.errors import CrossoverError, DataError
from crossover_ros.eval.visits import first_per_window, format_visits, summarize_visits
from crossover_ros.mapdb.build import build_map
from crossover_ros.model.registry import MODELS, create_encoder
from crossover_ros.outputs import check_new_output
from crossover_ros.synthetic.building import BuildingConfig, generate_building
from crossover_ros.synthetic.query_bag import QueryBagCfg, record_query_bag


def add_parser(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser("demo", help="run the whole pipeline on a generated building")
    parser.add_argument("--workdir", type=Path, default=Path("demo_out"), help="kept between runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rooms", type=int_at_least(1), default=8)
    parser.add_argument("--lookalike", type=int_at_least(0), default=4)
    parser.add_argument(
        "--rate", type=positive_float, default=1.0, help="bag playback speed factor"
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=["global_descriptor", "crossover"],
        help="models to compare on the same bag (crossover, global_descriptor or a checkpoint)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="empty a --workdir that holds something else than a demo of these settings",
    )
    parser.set_defaults(command=demo_command)


def _step(message: str) -> None:
    print(f"\n== {message}", flush=True)


def _prepare_workdir(args: argparse.Namespace) -> None:
    """A workdir is kept between runs of the same demo (its steps are skipped once done), but
    one holding another demo's data or anything else is refused unless ``--overwrite``."""
    settings = {"seed": args.seed, "rooms": args.rooms, "lookalike": args.lookalike}
    stamp = args.workdir / "demo.json"
    try:
        if json.loads(stamp.read_text()) == settings:
            return
    except (OSError, ValueError):
        pass
    if args.overwrite:
        shutil.rmtree(args.workdir, ignore_errors=True)
    elif stamp.is_file():
        raise DataError(
            f"{args.workdir} holds a demo made with {stamp.read_text().strip()}; choose a new"
            " --workdir or pass --overwrite"
        )
    else:
        check_new_output(args.workdir)
    args.workdir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(settings))


def demo_command(args: argparse.Namespace) -> int:
    check_lookalike(args.rooms, args.lookalike)
    _prepare_workdir(args)
    building_dir = args.workdir / "building"
    bag_path = args.workdir / "query_bag"
    started = time.monotonic()

    if not (building_dir / "building.json").is_file():
        _step(f"generating a held-out building of {args.rooms} rooms ({args.lookalike} look-alike)")
        cfg = BuildingConfig(
            seed=args.seed,
            num_rooms=args.rooms,
            num_lookalike_rooms=args.lookalike,
            split="heldout",  # layouts the shipped model never saw in training
        )
        generate_building(building_dir, cfg)
    if not bag_path.is_dir():
        _step("recording a query bag through the rescanned rooms")
        record_query_bag(building_dir, bag_path, QueryBagCfg(seed=args.seed + 1))
    visits = read_ground_truth(bag_path)["visits"]

    summary = []
    for model in args.models:
        results = summarize_visits(visits, _replay_with(model, building_dir, bag_path, args))
        _step(f"result per visited room, model {model}")
        print(format_visits(results))
        summary.append((model, sum(r.correct for r in results), len(results)))
    _step("summary")
    for model, correct, total in summary:
        print(f"{model:<18} rooms recognised {correct}/{total}")
    print("full report (recall@K, time to relocalise, latency per stage):")
    print(f"  crossover_ros eval --bag {bag_path} {_eval_maps(args)} --out {args.workdir / 'eval'}")
    print(f"demo finished in {time.monotonic() - started:.0f} s")
    return 0


def _map_path(model: str, workdir: Path) -> Path:
    label = model if model in MODELS else Path(model).stem  # a checkpoint path: its file name
    return workdir / f"map_{label}.sqlite"


def _eval_maps(args: argparse.Namespace) -> str:
    """``--map M --model X`` for every model of the demo, for ``crossover_ros eval``."""
    return " ".join(f"--map {_map_path(m, args.workdir)} --model {m}" for m in args.models)


def node_command(model: str, map_path: Path) -> list[str]:
    """The scene_recognizer of ``model`` on ``map_path``, as its own process."""
    return [
        sys.executable,
        "-m",
        "crossover_ros.cli.main",
        "run",
        "scene_recognizer",
        "-p",
        f"map.path:={map_path.resolve()}",
        "-p",
        f"model.name:={model}",
    ]


def _replay_with(model: str, building_dir: Path, bag_path: Path, args: argparse.Namespace):
    """Map the building with ``model``, run the node on it, replay the bag, return the matches."""
    map_path = _map_path(model, args.workdir)
    # resumed: a map an earlier run left half-built (killed, interrupted) is completed
    _step(f"the map database of the reference scans with {model}")
    build_map(building_dir, map_path, create_encoder(model), resume=True).close()
    _step(f"scene_recognizer ({model}, its own process) <- bag replay over ROS 2")
    node = subprocess.Popen(
        node_command(model, map_path),
        cwd=args.workdir,  # not the repo root, whose crossover_ros/ folder would shadow the package
        env=os.environ.copy(),
    )
    try:
        from crossover_ros.ros.replay import replay_in_this_process

        matches = replay_in_this_process(bag_path, rate=args.rate)
    finally:
        node.send_signal(signal.SIGINT)
        try:
            node.wait(timeout=15)
        except subprocess.TimeoutExpired:
            node.kill()
    if not matches:
        raise CrossoverError(f"the recogniser ({model}) published no match; see its log above")
    return first_per_window(matches)  # a node repeating its answer: each window once
