"""``crossover_ros changes``: what changed in the rooms a bag walks through, as the node reports
it on ``~/scene_changes``; with ``--building``, scored against the generator's ground truth."""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from crossover_ros.argtypes import add_overwrite_argument, add_pipeline_settings_arguments
from crossover_ros.cli.eval_bags import pipeline_cfg
from crossover_ros.datasets.scan import load_building
from crossover_ros.errors import CrossoverError
from crossover_ros.eval.changes_eval import (
    evaluate_changes,
    markdown,
    rate,
    replay_changes,
    write_report,
)
from crossover_ros.mapdb import open_map
from crossover_ros.mapdb.postgres import redact_url
from crossover_ros.model.registry import model_for_fingerprint
from crossover_ros.outputs import check_new_output, staged_output
from crossover_ros.pipeline.config import PipelineCfg


def add_parser(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "changes",
        help="replay a bag through the recogniser and report what moved, is gone or is new",
    )
    parser.add_argument("--bag", type=Path, required=True, help="rosbag2 folder (MCAP or sqlite3)")
    parser.add_argument("--map", required=True, help="map database: SQLite file or postgresql://")
    parser.add_argument(
        "--out", type=Path, help="write the report here: Markdown for .md, else JSON"
    )
    parser.add_argument(
        "--building",
        type=Path,
        help="the generated building the bag walks through: score the report against its"
        " rescans' ground truth",
    )
    add_pipeline_settings_arguments(parser, "changes.moved_threshold_m=0.4")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_overwrite_argument(parser)
    parser.set_defaults(command=changes_command)


def _pipeline(args: argparse.Namespace) -> PipelineCfg:
    cfg = pipeline_cfg(args.params_file, args.set)
    with open_map(args.map, read_only=True) as probe:
        model = model_for_fingerprint(probe.model_fingerprint)
    return replace(
        cfg, map=replace(cfg.map, path=str(args.map)), model=replace(cfg.model, name=model)
    )


def changes_command(args: argparse.Namespace) -> int:
    if not args.bag.exists():
        raise CrossoverError(f"bag {args.bag} does not exist")
    if args.out is not None:
        check_new_output(args.out, args.overwrite)  # before the work, not after it
    building = load_building(args.building) if args.building is not None else None
    cfg = _pipeline(args)
    if not cfg.changes.enabled:
        raise CrossoverError("changes.enabled is false: nothing to report")
    run = replay_changes(args.bag, cfg, progress=not args.quiet)
    counts = rows = None
    if building is not None:
        counts, rows = evaluate_changes(run, building, cfg)
    command = "crossover_ros " + shlex.join(redact_url(a) for a in sys.argv[1:])
    if args.out is not None:
        with staged_output(args.out, args.overwrite) as staging:
            write_report(staging, run, counts, rows, command)
        print(f"report written to {args.out}")
    if counts is not None:
        for kind, c in counts.items():
            print(
                f"{kind}: precision {rate(c.precision)} recall {rate(c.recall)}"
                f" (TP {c.true_positives}, FP {c.false_positives}, missed {c.missed})"
            )
    elif args.out is None:
        print(markdown(run, None))
    return 0
