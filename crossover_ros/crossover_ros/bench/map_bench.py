"""``crossover_ros bench map``: query latency, recall@10 and insert rate of both map backends.

Scenes: clustered random unit vectors (D=512): groups of 20 scenes around a random centre
(look-alike rooms and their rescans), one row per scene; queries are stored scenes perturbed by
noise. Recall@10 is measured against exact search in numpy.

Instances: ``--instances`` objects (D=256, CrossOver's width) spread over scenes of 100 objects;
a query is 15 objects of one scene, perturbed, matched with cosine + Hungarian: latency, and the
fraction matched to the right stored instance. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from crossover_ros.argtypes import int_at_least
from crossover_ros.mapdb import SceneData, SceneRecord, SQLiteMapDatabase
from crossover_ros.mapdb.postgres import PostgresMapDatabase

DIM = 512


def add_parser(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("map", help="map database latency, recall and insert rate")
    bench.add_argument(
        "--sizes", type=int_at_least(1), nargs="+", default=[1000, 10000, 100000, 1_000_000]
    )
    bench.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    bench.add_argument("--queries", type=int_at_least(1), default=100)
    bench.add_argument(
        "--instances",
        type=int_at_least(0),
        default=1_000_000,
        help="instances in the instance test (0: skip)",
    )
    bench.set_defaults(command=bench_map_command)


def _data(n: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.standard_normal((max(1, n // 20), DIM), dtype=np.float32)
    vectors = np.repeat(centres, 20, axis=0)[:n] + 0.7 * rng.standard_normal((n, DIM), np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _fill(db, vectors: np.ndarray) -> float:
    """Insert all scenes in one bulk call (how ``map build`` and ``map import`` load); scenes/s.

    One call, because PostgreSQL then builds each HNSW index once over all rows, several
    times faster than growing it batch by batch.
    """
    start = time.perf_counter()
    db.add_scenes(
        [
            SceneData(SceneRecord(f"s{i:07d}", f"b{i // 200}", f"r{i // 20}"), {"rgb": v[None]}, [])
            for i, v in enumerate(vectors)
        ]
    )
    return len(vectors) / (time.perf_counter() - start)


def _measure(db, vectors: np.ndarray, queries: np.ndarray) -> tuple[float, float, float]:
    """(p50 ms, p95 ms, recall@10) of top-10 queries."""
    db.query(queries[0], "rgb", top_k=10)  # warm: loads the matrix / builds the IVF cells
    times, recalls = [], []
    for query in queries:
        start = time.perf_counter()
        found = db.query(query, "rgb", top_k=10)
        times.append(time.perf_counter() - start)
        exact = np.argpartition(-(vectors @ query), 9)[:10]
        truth = {f"s{i:07d}" for i in exact}
        recalls.append(len(truth & {c.scene_id for c in found}) / 10)
    ms = np.array(times) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95)), float(np.mean(recalls))


def _create(backend: str, tmp: Path, name: str, dim: int, servers: dict):
    """A fresh map on ``backend`` (the PostgreSQL server starts once), or None if unavailable."""
    if backend == "sqlite":
        return SQLiteMapDatabase.create(tmp / f"{name}.sqlite", "bench", dim)
    if "postgres" not in servers:
        servers["postgres"] = _start_postgres(tmp / "pg")
    if servers["postgres"] is None:
        return None

    return PostgresMapDatabase.create(f"{servers['postgres'].get_uri()}#{name}", "bench", dim)


def _bench_instances(db, n: int, rng: np.random.Generator, per_scene: int = 100) -> str:
    """Fill ``n`` instances; time ``match_instances`` on random scenes. One printed row."""
    dim, scenes = db.embedding_dim, max(1, n // per_scene)
    start = time.perf_counter()
    for begin in range(0, scenes, 200):
        batch = []
        for i in range(begin, min(scenes, begin + 200)):
            vectors = rng.standard_normal((per_scene, dim), dtype=np.float32)
            instances = [
                {"id": j, "label": "object", "centroid": [0.0, 0.0, 0.0],
                 "embeddings": {"point_cloud": vectors[j]}}
                for j in range(per_scene)
            ]  # fmt: skip
            record = SceneRecord(f"i{i:07d}", "b", f"r{i}")
            batch.append(SceneData(record, {"point_cloud": vectors[:1]}, instances))
        db.add_scenes(batch)
    rate = scenes * per_scene / (time.perf_counter() - start)
    times, correct = [], []
    for scene in rng.integers(0, scenes, 50):
        ids, stored = db.instance_embeddings(f"i{scene:07d}", "point_cloud")
        picks = rng.choice(len(ids), 15, replace=False)
        query = stored[picks] + 0.5 * rng.standard_normal((15, dim), np.float32) / np.sqrt(dim)
        begin = time.perf_counter()
        matching = db.match_instances(f"i{scene:07d}", query, "point_cloud", threshold=0.5)
        times.append(time.perf_counter() - begin)
        right = {int(ids[p]) for p in picks}
        correct.append(sum(m.instance_id in right for m in matching.matches) / 15)
    ms = np.array(times) * 1000
    return (
        f"{n:9d} {rate:11.0f} {np.percentile(ms, 50):8.2f} {np.percentile(ms, 95):8.2f}"
        f" {np.mean(correct):9.3f}"
    )


def bench_map_command(args: argparse.Namespace) -> int:
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    rng = np.random.default_rng(0)
    print(f"D={DIM}, one row per scene, top-10, {args.queries} queries per size")
    print(f"{'backend':9} {'scenes':>8} {'insert/s':>9} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'exact ms':>9} {'recall@10':>9}")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        tmp, servers = Path(folder), {}
        for backend in backends:
            for n in args.sizes:
                vectors = _data(n, rng)
                picks = rng.integers(0, n, args.queries)
                noise = 0.3 * rng.standard_normal((args.queries, DIM), np.float32)
                queries = vectors[picks] + noise / np.sqrt(DIM)  # noise norm 0.3
                queries /= np.linalg.norm(queries, axis=1, keepdims=True)
                start = time.perf_counter()
                for q in queries:
                    np.argpartition(-(vectors @ q), 9)[:10]
                exact_ms = (time.perf_counter() - start) / len(queries) * 1000
                db = _create(backend, tmp, f"bench{n}", DIM, servers)
                if db is None:
                    break
                with db:
                    rate = _fill(db, vectors)
                    p50, p95, recall = _measure(db, vectors, queries)
                print(f"{backend:9} {n:8d} {rate:9.0f} {p50:8.2f} {p95:8.2f} {exact_ms:9.2f} "
                      f"{recall:9.3f}", flush=True)  # fmt: skip
        print("insert/s: one bulk insert of all scenes (postgres: binary COPY + HNSW build);"
              " exact ms: numpy brute force on the same vectors")  # fmt: skip
        if args.instances:
            print("\ninstances, D=256, 100 per scene, 15 noisy objects matched per query")
            print(f"{'backend':9} {'instances':>9} {'insert/s':>11} {'p50 ms':>8} {'p95 ms':>8}"
                  f" {'correct':>9}")  # fmt: skip
            for backend in backends:
                db = _create(backend, tmp, "instances", 256, servers)
                if db is not None:
                    with db:
                        row = _bench_instances(db, args.instances, rng)
                    print(f"{backend:9} {row}", flush=True)
        if servers.get("postgres") is not None:
            servers["postgres"].cleanup()
    return 0


def _start_postgres(folder: Path):
    try:
        import pgserver
    except ImportError:
        print("postgres: skipped (pip install pgserver 'psycopg[binary]')")
        return None
    return pgserver.get_server(folder, cleanup_mode="stop")
