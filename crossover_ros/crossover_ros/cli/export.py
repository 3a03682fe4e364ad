"""``crossover_ros export`` (ONNX files) and ``crossover_ros build-engines`` (TensorRT engines).

Both write into the cache folder the backends read (``~/.cache/crossover_ros/{onnx,engines}``)
unless told otherwise, so exporting or building ahead of time (e.g. while a robot is docked) spares
the node the work on its first start. Files are named by fingerprint: a changed model never picks
up an old file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from crossover_ros.errors import ModelError, RuntimeBackendError
from crossover_ros.model.graphs import GRAPH_NAMES
from crossover_ros.model.registry import load_graphs
from crossover_ros.runtime.backends import OnnxRuntimeBackend, RuntimeCfg
from crossover_ros.runtime.engine_cache import EngineCache
from crossover_ros.runtime.export import OnnxCache, parity, read_metadata
from crossover_ros.runtime.tensorrt_engine import TensorRTBuilder, import_tensorrt

PARITY_MIN = 0.9999  # FP32 ONNX Runtime vs PyTorch, lowest row cosine
DEFAULT_ENGINES = ("image", "frames")  # what the node runs per keyframe / per window


def add_parser(verbs: argparse._SubParsersAction) -> None:
    export = verbs.add_parser(
        "export",
        help="write the inference encoders to ONNX (dynamic batch), checked against PyTorch",
        description="Writes each encoder to <out>/<name>-<fingerprint>.onnx (onnx.checker "
        "passed), then runs it in ONNX Runtime on random inputs at batch 1 and 2 and fails "
        f"if the lowest cosine to PyTorch is below {PARITY_MIN}. "
        f"Encoders: {', '.join(GRAPH_NAMES)}.",
    )
    export.add_argument("--out", type=Path, help="folder (default: ~/.cache/crossover_ros/onnx)")
    _add_model_arguments(export, default=["all"])
    export.add_argument("--no-check", action="store_true", help="skip the parity check")
    export.set_defaults(command=export_command)

    build = verbs.add_parser(
        "build-engines",
        help="build TensorRT engines from the ONNX files (needs TensorRT and a CUDA GPU)",
        description="Builds one engine per encoder with an optimisation profile for the batch "
        "sizes the node uses, cached under a key of ONNX hash, TensorRT version, GPU, precision "
        "and shapes (a stale or foreign engine is rebuilt). ONNX files missing from --onnx-dir "
        "are exported first; --onnx builds from given files instead (e.g. copied to a Jetson).",
    )
    _add_model_arguments(build, default=list(DEFAULT_ENGINES))
    build.add_argument("--onnx", type=Path, nargs="+", help="exported ONNX files to build from")
    build.add_argument("--onnx-dir", type=Path, help="default: ~/.cache/crossover_ros/onnx")
    build.add_argument("--out", type=Path, help="default: ~/.cache/crossover_ros/engines")
    build.add_argument("--precision", choices=("fp16", "fp32"), default="fp16")
    build.add_argument("--workspace-mb", type=int, default=2048, help="builder scratch memory")
    build.set_defaults(command=build_engines_command)


def _add_model_arguments(parser: argparse.ArgumentParser, default: list[str]) -> None:
    parser.add_argument(
        "--model",
        default="crossover",
        help="crossover (the shipped model) or a CrossOver checkpoint path",
    )
    parser.add_argument(
        "--encoders",
        nargs="+",
        default=default,
        choices=(*GRAPH_NAMES, "all"),
        metavar="NAME",
        help=f"which encoders, or all (default: {' '.join(default)})",
    )


def _graphs(args: argparse.Namespace):
    names = GRAPH_NAMES if "all" in args.encoders else tuple(dict.fromkeys(args.encoders))
    checkpoint = None if args.model == "crossover" else args.model
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise ModelError(f"CrossOver checkpoint {checkpoint} not found")
    return load_graphs(names, checkpoint)


def export_command(args: argparse.Namespace) -> int:
    import numpy as np

    out = args.out or RuntimeCfg().folder("onnx")
    cache = OnnxCache(out)
    graphs = _graphs(args)
    print(f"{'encoder':26} {'MB':>6} {'min cos':>10}  file")
    failed = []
    for name, graph in graphs.items():
        path = cache.ensure(graph)
        cos = float("nan")
        if not args.no_check:
            backend = OnnxRuntimeBackend(path)
            rng = np.random.default_rng(0)
            cos = min(
                min(parity(graph, backend, graph.spec.example(rng, batch=b)).values())
                for b in (1, 2)
            )
            if cos < PARITY_MIN:
                failed.append(f"{name} ({cos:.6f})")
        size = path.stat().st_size / 1e6
        print(f"{name:26} {size:6.1f} {cos:10.7f}  {path}", flush=True)
    if failed:
        raise RuntimeBackendError(f"ONNX Runtime differs from PyTorch: {', '.join(failed)}")
    return 0


def build_engines_command(args: argparse.Namespace) -> int:
    trt = import_tensorrt()  # before any export: fail fast where there is no TensorRT
    builder = TensorRTBuilder(args.workspace_mb, trt)
    builder.platform()  # RuntimeBackendError without a CUDA GPU
    runtime = RuntimeCfg(precision=args.precision)
    if args.onnx:
        sources = [(read_metadata(path)[0], path) for path in args.onnx]
    else:
        cache = OnnxCache(args.onnx_dir or runtime.folder("onnx"))
        sources = [(g.spec, cache.ensure(g)) for g in _graphs(args).values()]
    engines = EngineCache(args.out or runtime.folder("engines"), builder)
    for spec, onnx_path in sources:
        engine = engines.get(onnx_path, spec, args.precision)
        print(f"{spec.name:26} {args.precision}  {engine}", flush=True)
    return 0
