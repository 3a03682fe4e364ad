"""``crossover_ros bench map``: query latency, recall@10 and insert rate of both map backends.

Data: clustered random unit vectors (D=512, the size of a CrossOver-like scene embedding):
groups of 20 scenes around a random centre (look-alike rooms and their rescans), one row per
scene; queries are stored scenes perturbed by noise. Recall@10 is measured against exact search
in numpy. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 512


def add_parser(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("map", help="map database latency, recall and insert rate")
    bench.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    bench.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    bench.add_argument("--queries", type=int, default=100)
    bench.set_defaults(command=bench_map_command)


def _data(n: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.standard_normal((max(1, n // 20), DIM), dtype=np.float32)
    vectors = np.repeat(centres, 20, axis=0)[:n] + 0.7 * rng.standard_normal((n, DIM), np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _fill(db, vectors: np.ndarray, batch: int = 2000) -> float:
    """Insert all scenes; returns scenes per second."""
    from crossover_ros.mapdb import SceneData, SceneRecord

    start = time.perf_counter()
    for begin in range(0, len(vectors), batch):
        db.add_scenes(
            [
                SceneData(
                    SceneRecord(f"s{i:07d}", f"b{i // 200}", f"r{i // 20}"), {"rgb": v[None]}, []
                )
                for i, v in enumerate(vectors[begin : begin + batch], start=begin)
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


def bench_map_command(args: argparse.Namespace) -> int:
    from crossover_ros.mapdb import MapDatabase

    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    rng = np.random.default_rng(0)
    print(f"D={DIM}, one row per scene, top-10, {args.queries} queries per size")
    print(f"{'backend':9} {'scenes':>8} {'insert/s':>9} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'exact ms':>9} {'recall@10':>9}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        server = None
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
                if backend == "sqlite":
                    db = MapDatabase.create(Path(tmp) / f"bench{n}.sqlite", "bench", DIM)
                else:
                    if server is None:
                        server = _start_postgres(Path(tmp) / "pg")
                        if server is None:
                            break
                    from crossover_ros.mapdb.postgres import PostgresMapDatabase

                    db = PostgresMapDatabase.create(f"{server.get_uri()}#bench{n}", "bench", DIM)
                with db:
                    rate = _fill(db, vectors)
                    p50, p95, recall = _measure(db, vectors, queries)
                print(f"{backend:9} {n:8d} {rate:9.0f} {p50:8.2f} {p95:8.2f} {exact_ms:9.2f} "
                      f"{recall:9.3f}", flush=True)  # fmt: skip
        if server is not None:
            server.cleanup()
    print("insert/s: bulk batches of 2000 scenes (postgres: binary COPY + HNSW build);"
          " exact ms: numpy brute force on the same vectors")  # fmt: skip
    return 0


def _start_postgres(folder: Path):
    try:
        import pgserver
    except ImportError:
        print("postgres: skipped (pip install pgserver 'psycopg[binary]')")
        return None
    return pgserver.get_server(folder, cleanup_mode="stop")
