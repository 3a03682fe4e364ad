"""Entry point: ``crossover_ros <verb> ...``; bad input ends in one ``ERROR:`` line, exit 1."""

from __future__ import annotations

import argparse
import sys

from crossover_ros import __version__
from crossover_ros.cli import (
    bench,
    changes,
    data,
    demo,
    eval_bags,
    evaluate,
    export,
    mapdb,
    query,
    run,
    train,
)
from crossover_ros.errors import CrossoverError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossover_ros",
        description="CrossOver scene recognition for ROS 2: data, maps, nodes and the demo.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for module in (
        data,
        mapdb,
        train,
        evaluate,
        eval_bags,
        changes,
        query,
        export,
        run,
        demo,
        bench,
    ):
        module.add_parser(verbs)
    return parser


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.command(args)
    except (CrossoverError, ValueError, OSError) as err:
        # bad input or a file system refusing (a read-only or missing folder): one line
        print(f"ERROR: {_one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
