"""``crossover_ros query``: rooms or objects of a map found by a sentence; ``eval-text``: scores."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from crossover_ros.argtypes import int_at_least
from crossover_ros.datasets.scan import load_building
from crossover_ros.eval.text_queries import evaluate_text, load_paraphrases
from crossover_ros.query.text import ObjectHit, RoomHit, open_text_query


def add_parser(verbs: argparse._SubParsersAction) -> None:
    query = verbs.add_parser("query", help="find rooms (or objects) of a map by a sentence")
    query.add_argument("text", help='what to look for: "the room with the whiteboard"')
    query.add_argument("--map", required=True, help="map: SQLite file or postgresql:// URL")
    query.add_argument("--objects", action="store_true", help="find objects instead of rooms")
    query.add_argument("--k", type=int_at_least(1), default=5, help="how many answers")
    query.add_argument("--building", default="", help="only this building of the map")
    _add_model_argument(query)
    query.set_defaults(command=query_command)

    evaluate = verbs.add_parser(
        "eval-text", help="top-1 / top-5 of text queries on a generated building"
    )
    evaluate.add_argument("--building", type=Path, required=True, help="generated building")
    evaluate.add_argument("--map", required=True, help="the building's map (map build)")
    evaluate.add_argument(
        "--paraphrases", type=Path, help="paraphrase set (default: the package's own)"
    )
    evaluate.add_argument("--seed", type=int, default=0, help="which sentences are drawn")
    evaluate.add_argument("--json", type=Path, help="also write the scores here")
    _add_model_argument(evaluate)
    evaluate.set_defaults(command=eval_text_command)


def _add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help="the map's CrossOver checkpoint (default: told by the map; none for a"
        " global_descriptor map)",
    )


def _xyz(values: tuple[float, float, float]) -> str:
    return " ".join(f"{v:7.2f}" for v in values)


def format_rooms(hits: list[RoomHit]) -> str:
    lines = [
        f"{'rank':>4}  {'score':>6}  {'scene':<24} {'building':<10} {'room':<8} centre (x y z)"
    ]
    for rank, h in enumerate(hits, 1):
        frame = "" if h.in_map_frame else f"  (frame {h.scene_id})"
        lines.append(
            f"{rank:>4}  {h.score:6.2f}  {h.scene_id:<24} {h.building_id:<10} {h.room_id:<8}"
            f" {_xyz(h.centre)}{frame}"
        )
    return "\n".join(lines)


def format_objects(hits: list[ObjectHit]) -> str:
    lines = [f"{'rank':>4}  {'score':>6}  {'scene':<24} {'id':>4}  {'label':<16} position (x y z)"]
    for rank, h in enumerate(hits, 1):
        frame = "" if h.in_map_frame else f"  (frame {h.scene_id})"
        lines.append(
            f"{rank:>4}  {h.score:6.2f}  {h.scene_id:<24} {h.instance_id:>4}  {h.label:<16}"
            f" {_xyz(h.position)}{frame}"
        )
    return "\n".join(lines)


def query_command(args: argparse.Namespace) -> int:
    query = open_text_query(args.map, args.model)
    building = args.building or None
    start = time.perf_counter()
    if args.objects:
        table = format_objects(query.find_objects(args.text, args.k, building))
    else:
        table = format_rooms(query.find_rooms(args.text, args.k, building))
    elapsed_ms = 1000 * (time.perf_counter() - start)
    print(table)
    print(f"({elapsed_ms:.0f} ms, {len(query.records)} rooms searched)")
    return 0


def eval_text_command(args: argparse.Namespace) -> int:
    query = open_text_query(args.map, args.model)
    paraphrases = load_paraphrases(args.paraphrases)
    results = evaluate_text(query, load_building(args.building), paraphrases, args.seed)
    print("| sentences | n | top-1 % | top-5 % | exact top-1 % | exact top-5 % |")
    print("|---|---|---|---|---|---|")
    for name, s in results.items():
        print(
            f"| {name} | {s.n} | {s.top1:.1f} | {s.top5:.1f} | {s.exact_top1:.1f}"
            f" | {s.exact_top5:.1f} |"
        )
    if args.json is not None:
        args.json.write_text(json.dumps({k: asdict(v) for k, v in results.items()}, indent=1))
    return 0
