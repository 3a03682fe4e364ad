"""Argument types and options shared by the command-line verbs: ranges checked by the parser."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

from crossover_ros.errors import ConfigError


def add_overwrite_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output (default: refuse a non-empty folder or existing file)",
    )


def add_pipeline_settings_arguments(
    parser: argparse.ArgumentParser, example: str, params_help: str = ""
) -> None:
    """``--params-file`` and ``--set``: the node's settings for a verb that runs its pipeline."""
    parser.add_argument(
        "--params-file",
        type=Path,
        help=params_help or "the scene_recognizer's parameter YAML (default: its own)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"a pipeline setting by its parameter name, e.g. {example} (repeat)",
    )


def _number(kind: type, low: float | None, high: float | None, low_open: bool) -> Callable:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            name = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {name}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        too_low = low is not None and (value <= low if low_open else value < low)
        if too_low or (high is not None and value > high):
            if high is None:
                bound = f"> {low:g}" if low_open else f">= {low:g}"
            else:
                bound = f"in {'(' if low_open else '['}{low:g}, {high:g}]"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def int_at_least(low: int) -> Callable[[str], int]:
    """An integer >= ``low``."""
    return _number(int, low, None, low_open=False)


def positive_float(text: str) -> float:
    """A finite number > 0."""
    return _number(float, 0.0, None, low_open=True)(text)


def fraction(text: str) -> float:
    """A number in [0, 1]."""
    return _number(float, 0.0, 1.0, low_open=False)(text)


def check_lookalike(rooms: int, lookalike: int) -> None:
    """Look-alike rooms are some of the rooms, and come at least in pairs."""
    if lookalike > rooms:
        raise ConfigError(f"--lookalike {lookalike} exceeds --rooms {rooms}: give 0 or 2..{rooms}")
    if lookalike == 1:
        raise ConfigError("--lookalike 1: look-alike rooms come at least in pairs (0 or >= 2)")
