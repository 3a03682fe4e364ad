"""``crossover_ros bench text``: latency of text queries on a map grown to ``--rooms`` rooms.

The map's scenes are copied, under new ids, into a temporary map until it holds ``--rooms``
rooms (so labels, boxes, clouds and embeddings are real ones), then rooms and objects are
searched with sentences made from the map's labels, each sentence new to the query (its text
vector is not cached; the label words are, as on a robot after the first query). Not a test:
numbers depend on the machine. One CPU thread by default (torch and numpy's BLAS), as on a
robot beside other work.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from crossover_ros.argtypes import int_at_least
from crossover_ros.mapdb.open import create_map, open_map
from crossover_ros.query.text import open_text_query

_TEMPLATES = (
    "the {a} next to the {b}",
    "the {a} on the {b}",
    "the room with the {a} and two {b}s",
    "a {c} {a} in the corner",
    "the {a} by the window near the {b}",
    "the bigger {a} beside the {c} {b}",
)
_COLOURS = ("red", "blue", "white", "black", "grey", "green", "brown", "yellow")


def add_parser(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("text", help="text query latency on a map of many rooms")
    bench.add_argument("--map", required=True, help="map whose scenes are copied")
    bench.add_argument("--rooms", type=int_at_least(1), default=500)
    bench.add_argument("--queries", type=int_at_least(1), default=100, help="of each kind")
    bench.add_argument("--threads", type=int_at_least(1), default=1, help="torch CPU threads")
    bench.add_argument("--model", default=None, help="the map's CrossOver checkpoint")
    bench.set_defaults(command=bench_text_command)


def grow_map(source: str, target: Path, rooms: int) -> int:
    """Copy ``source``'s scenes into a new map at ``target`` until it has ``rooms``."""
    with open_map(source, read_only=True) as db:
        scenes = [db.scene_data(r.scene_id) for r in db.scenes()]
        dims = db.model_fingerprint, db.embedding_dim, db.instance_dim
    if not scenes:
        raise ValueError(f"map {source} has no scenes to copy")
    with create_map(target, *dims) as out:
        batch = []
        for i in range(rooms):
            data = scenes[i % len(scenes)]
            record = replace(data.record, scene_id=f"{data.record.scene_id}_copy{i:04d}")
            batch.append(replace(data, record=record))
        out.add_scenes(batch)
    return rooms


def _sentences(labels: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """``n`` different sentences over the labels."""
    out: list[str] = []
    seen = set()
    while len(out) < n:
        a, b = rng.choice(labels, 2)
        text = str(rng.choice(_TEMPLATES)).format(a=a, b=b, c=rng.choice(_COLOURS))
        text = f"{text} {len(out)}" if text in seen else text  # new to the cache
        seen.add(text)
        out.append(text)
    return out


def _report(name: str, times: list[float]) -> None:
    ms = 1000 * np.asarray(times)
    print(
        f"{name:<14} median {np.median(ms):6.1f} ms  p95 {np.percentile(ms, 95):6.1f} ms"
        f"  max {ms.max():6.1f} ms  ({len(ms)} queries)"
    )


def bench_text_command(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads):  # numpy's BLAS too
        return _bench(args)


def _bench(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grown.sqlite"
        grow_map(args.map, path, args.rooms)
        start = time.perf_counter()
        query = open_text_query(path, args.model)
        built = time.perf_counter() - start
    instances = len(query.scene_of)
    print(
        f"{len(query.records)} rooms, {instances} instances, {len(query.vocab)} labels;"
        f" read and precomputed in {built:.1f} s; {args.threads} thread(s)"
    )
    rng = np.random.default_rng(0)
    for name, search in (("find_rooms", query.find_rooms), ("find_objects", query.find_objects)):
        sentences = _sentences(query.vocab, args.queries + 3, rng)
        for text in sentences[:3]:  # warm up: first calls load and compile
            search(text, 5)
        times = []
        for text in sentences[3:]:
            start = time.perf_counter()
            search(text, 5)
            times.append(time.perf_counter() - start)
        _report(name, times)
    return 0
