"""``crossover_ros bench <what>``: one sub-verb per benchmark module in ``crossover_ros/bench/``."""

from __future__ import annotations

import argparse

from crossover_ros.bench import encoders_bench, map_bench, node_bench, pose_bench, text_bench

BENCHMARKS = (map_bench, encoders_bench, pose_bench, node_bench, text_bench)


def add_parser(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser("bench", help="benchmarks (not tests): latency, memory, ratios")
    sub = parser.add_subparsers(dest="bench_verb", required=True, metavar="WHAT")
    for module in BENCHMARKS:
        module.add_parser(sub)
