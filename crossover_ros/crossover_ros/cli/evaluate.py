"""``crossover_ros evaluate``: the paper's metric tables for a model and its baselines."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from crossover_ros.argtypes import add_overwrite_argument
from crossover_ros.datasets.scan import load_building
from crossover_ros.errors import ModelError
from crossover_ros.eval.crossover_eval import evaluate_models, format_report
from crossover_ros.eval.report import results_to_dict
from crossover_ros.model.crossover import CrossOverModel
from crossover_ros.model.image_backbone import image_encoder_for_model
from crossover_ros.outputs import check_new_output, staged_output
from crossover_ros.train.pipeline import load_features


def add_parser(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "evaluate",
        help="the paper's model metrics on generated scans (not 'eval', which replays rosbags)",
    )
    parser.add_argument("--model", type=Path, required=True, help="CrossOver checkpoint")
    parser.add_argument("--baseline", type=Path, help="Instance Baseline checkpoint")
    parser.add_argument("--buildings", type=Path, nargs="+", required=True, help="held-out")
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--report", type=Path, help="write the Markdown report here")
    parser.add_argument("--json", type=Path, help="write all numbers as JSON here")
    add_overwrite_argument(parser)
    parser.set_defaults(command=evaluate_command)


def evaluate_command(args: argparse.Namespace) -> int:
    for path in (args.report, args.json):
        if path is not None:
            check_new_output(path, args.overwrite)
    model, metadata = CrossOverModel.load(args.model)
    baseline = CrossOverModel.load(args.baseline)[0] if args.baseline else None
    if baseline is not None and baseline.cfg.image_backbone != model.cfg.image_backbone:
        raise ModelError("the model and the baseline were trained on different image backbones")
    image = image_encoder_for_model(model.cfg, metadata, where=str(args.model))
    scenes = load_features(args.buildings, args.cache, image_encoder=image)
    room_types, states = {}, {}
    for building_dir in args.buildings:
        building = load_building(building_dir)
        types = {int(r["room_id"]): r["room_type"] for r in building.rooms}
        for info in building.scans:
            room_types[info.scan_id] = types[int(info.room_id)]
            states[info.scan_id] = {i.id: i.state for i in building.scan(info.scan_id).instances}
    categories = [room_types[s.scan_id] for s in scenes]
    tables = evaluate_models(model, baseline, scenes, categories, states)
    report = format_report(tables)
    print(f"{len(scenes)} scans of {len(args.buildings)} held-out buildings\n")
    print(report)
    if args.report:
        with staged_output(args.report, args.overwrite) as path:
            path.write_text(report)
    if args.json:
        payload = {title: results_to_dict(rows) for title, rows in tables.items()}
        with staged_output(args.json, args.overwrite) as path:
            path.write_text(json.dumps(payload, indent=2))
    return 0
