"""``crossover_ros bench encoders``: latency, throughput, memory and agreement of every backend.

Per encoder, two input sizes: batch 1 and what the node or the map builder runs (a window of 6
keyframes, a 1024-point scene, a scene's 32 objects ...). Backends run in contiguous blocks, two
rounds (A B A B): a load spike on a shared machine hits all of them alike, and one backend's idle
worker threads do not compete with the next one's. ``cos`` is the lowest row cosine to PyTorch
FP32 on the same inputs (for TensorRT FP16: FP16 vs FP32), ``x torch`` the p50 speed-up over
PyTorch eager. Memory: the process RSS growth over the backend's warm-up (arenas, ONNX Runtime's
own copy of the weights; the torch backend shares the already-loaded model), and on a GPU the
CUDA peak through torch's allocator (TensorRT's own workspace is not in it). Not a test: the
numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crossover_ros.argtypes import int_at_least
from crossover_ros.errors import RuntimeBackendError
from crossover_ros.model.registry import load_graphs
from crossover_ros.runtime.backends import RuntimeCfg, create_backend
from crossover_ros.runtime.export import cosine_rows

# Two input sizes per encoder: batch 1, and the node's / map builder's batch.
CASES: dict[str, tuple[dict[str, int], dict[str, int]]] = {
    "image": ({"batch": 1}, {"batch": 6}),
    "frame_regions": ({"batch": 1}, {"batch": 6}),  # the node's keyframes: backbone + regions
    "regions": ({"batch": 1}, {"batch": 6}),  # the region encoder on a keyframe's cells
    "frames": ({"batch": 1, "frames": 1}, {"batch": 1, "frames": 6}),
    "scene_points": ({"batch": 1, "points": 1024}, {"batch": 4, "points": 1024}),
    "instance_rgb": ({"batch": 1}, {"batch": 32}),
    "instance_point_cloud": ({"batch": 1, "points": 512}, {"batch": 32, "points": 512}),
    "instance_mesh": ({"batch": 1, "points": 512}, {"batch": 32, "points": 512}),
    "instance_referral": ({"batch": 1}, {"batch": 32}),
    "text": ({"batch": 1, "tokens": 16}, {"batch": 8, "tokens": 32}),
    "text_set": ({"batch": 1, "sentences": 1}, {"batch": 1, "sentences": 10}),
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("encoders", help="encoder latency per backend (torch, ORT, TensorRT)")
    bench.add_argument(
        "--backend", choices=("torch", "onnxruntime", "tensorrt", "all"), default="all",
        help="all: every backend this machine has (TensorRT at FP16 and FP32)",
    )  # fmt: skip
    bench.add_argument("--encoders", nargs="+", default=list(CASES), choices=list(CASES))
    bench.add_argument(
        "--repeats", type=int_at_least(1), default=20, help="timed runs per size and backend"
    )
    bench.add_argument("--warmup", type=int_at_least(0), default=3)
    bench.add_argument(
        "--threads", type=int_at_least(1), help="CPU threads, torch and ORT (default: torch's)"
    )
    bench.add_argument("--ort-optimization", choices=("basic", "extended", "all"), default="all")
    bench.add_argument("--model", default="crossover", help="crossover or a checkpoint path")
    bench.add_argument("--cache", type=Path, help="ONNX files and engines (default: ~/.cache)")
    bench.set_defaults(command=bench_encoders_command)


@dataclass
class Row:
    """One backend at one input size: timings and what it returned."""

    backend: str
    times: list[float] = field(default_factory=list)
    rss_mb: float = 0.0
    cuda_mb: float = float("nan")
    outputs: dict[str, np.ndarray] = field(default_factory=dict)


def _rss_mb() -> float:
    try:
        import psutil
    except ImportError:  # not a hard dependency: fall back to the peak RSS
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return psutil.Process().memory_info().rss / 2**20


def _backends(args: argparse.Namespace, device: str, graph, runtime) -> dict[str, object]:
    """name -> started backend; a backend this machine lacks is reported and left out."""
    from dataclasses import replace

    wanted = ["torch", "onnxruntime", "tensorrt"] if args.backend == "all" else [args.backend]
    kinds: list[tuple[str, str, object]] = []
    for kind in wanted:
        if kind == "tensorrt":
            precisions = ("fp16", "fp32") if args.backend == "all" else ("fp16",)
            kinds += [(f"tensorrt-{p}", kind, replace(runtime, precision=p)) for p in precisions]
        else:
            kinds.append((kind, kind, replace(runtime, torch_device=device)))
    started = {}
    for label, kind, cfg in kinds:
        try:
            started[label] = create_backend(graph, cfg, kind)
        except RuntimeBackendError as err:
            print(f"  {graph.spec.name}: {label} left out: {err}", flush=True)
    return started


def _run_case(backends: dict[str, object], inputs, args, device: str) -> dict[str, Row]:
    """Warm-up and memory per backend, then timed blocks: A B C A B C (half the runs each)."""
    import torch

    rows = {name: Row(name) for name in backends}
    for name, backend in backends.items():
        rss = _rss_mb()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for _ in range(args.warmup):
            rows[name].outputs = backend.run(inputs)
        rows[name].rss_mb = _rss_mb() - rss
        if device == "cuda":
            torch.cuda.synchronize()
            rows[name].cuda_mb = torch.cuda.max_memory_allocated() / 2**20
    # Contiguous blocks, not call-by-call alternation: one backend's idle worker threads would
    # otherwise compete with the next one's; two rounds so a load spike hits all alike.
    for block in (args.repeats // 2, args.repeats - args.repeats // 2):
        for name, backend in backends.items():
            backend.run(inputs)  # re-warm caches after the other backends ran
            for _ in range(block):
                start = time.perf_counter()
                backend.run(inputs)
                rows[name].times.append(time.perf_counter() - start)
    return rows


def _machine(device: str, threads: int) -> str:
    import onnxruntime as ort
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as stream:
            names = [line.split(":", 1)[1].strip() for line in stream if "model name" in line]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if device == "cuda" else ""
    return (
        f"{os.cpu_count()} CPU cores ({cpu}){gpu}; torch {torch.__version__}, onnxruntime "
        f"{ort.__version__} ({', '.join(ort.get_available_providers())}); {threads} threads; "
        f"load average {os.getloadavg()[0]:.1f} (other processes skew the numbers)"
    )


def bench_encoders_command(args: argparse.Namespace) -> int:
    import torch

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":  # the reference is FP32: no TF32 convolutions or matmuls
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    runtime = RuntimeCfg(
        num_threads=threads, cache_dir=args.cache, ort_optimization=args.ort_optimization
    )
    checkpoint = None if args.model == "crossover" else args.model
    started = time.perf_counter()
    graphs = load_graphs(tuple(args.encoders), checkpoint)
    print(_machine(device, threads))
    print(f"{args.repeats} timed runs after {args.warmup} warm-up, two blocks per backend")
    header = (
        f"{'encoder':21} {'input':16} {'backend':14} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'items/s':>9} {'rss MB':>7} {'cuda MB':>8} {'cos':>9} {'x torch':>7}"
    )
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    for name, graph in graphs.items():
        backends = _backends(args, device, graph, runtime)
        for sizes in CASES[name]:
            inputs = graph.spec.example(rng, **sizes)
            rows = _run_case(backends, inputs, args, device)
            shape = "x".join(str(s) for s in next(iter(inputs.values())).shape)
            reference = rows.get("torch")
            base = np.percentile(reference.times, 50) * 1000 if reference else float("nan")
            for row in rows.values():
                ms = np.array(row.times) * 1000
                cos = float("nan")
                if reference is not None:
                    cos = min(
                        float(cosine_rows(reference.outputs[k], row.outputs[k]).min())
                        for k in graph.spec.outputs
                    )
                p50 = float(np.percentile(ms, 50))
                cuda = "-" if np.isnan(row.cuda_mb) else f"{row.cuda_mb:.1f}"
                print(
                    f"{name:21} {shape:16} {row.backend:14} {p50:8.2f} "
                    f"{np.percentile(ms, 95):8.2f} {sizes['batch'] * 1000 / ms.mean():9.1f} "
                    f"{row.rss_mb:7.1f} {cuda:>8} {cos:9.6f} {base / p50:7.2f}",
                    flush=True,
                )
    print(f"total {time.perf_counter() - started:.0f} s (exports and engine builds included)")
    return 0
