"""One interface, three backends: PyTorch eager, ONNX Runtime, TensorRT; and the ``auto`` choice.

Why a Protocol with numpy in and out: the recogniser and the map builder hand over numpy arrays
anyway, and each backend keeps its own memory (ONNX Runtime's arenas, TensorRT's CUDA tensors)
behind ``run``. ``auto`` takes the fastest backend this machine has: TensorRT where it is installed
and a CUDA GPU is present; else, on a GPU, ONNX Runtime with its CUDA provider or PyTorch on the
GPU; else ONNX Runtime on the CPU, else PyTorch. A backend that fails to start hands over to the
next with a warning, never silently.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from crossover_ros.errors import RuntimeBackendError
from crossover_ros.runtime.engine_cache import EngineCache
from crossover_ros.runtime.export import OnnxCache, default_cache_dir
from crossover_ros.runtime.graph import Graph
from crossover_ros.runtime.tensorrt_engine import TensorRTBuilder, TensorRTRunner, tensorrt_status

log = logging.getLogger(__name__)

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")
PRECISIONS = ("fp16", "fp32")
_ORT_LEVELS = ("disable", "basic", "extended", "all")


@dataclass(frozen=True)
class RuntimeCfg:
    """How graphs run: backend, CPU threads, cache folder and the TensorRT build settings."""

    backend: str = "torch"
    num_threads: int | None = None  # ONNX Runtime intra-op threads (None: its default)
    cache_dir: Path | None = None  # ONNX files and engines; None: ~/.cache/crossover_ros
    precision: str = "fp16"  # TensorRT engines
    workspace_mb: int = 2048  # TensorRT builder scratch memory
    ort_optimization: str = "all"  # ONNX Runtime graph optimisation level
    # ONNX Runtime worker threads spin between runs by default: a few % faster on an idle CPU,
    # but on a robot the other nodes need those cores (and under load spinning makes every
    # process slower, ORT included), so off unless asked for.
    ort_spinning: bool = False
    torch_device: str = "cpu"  # where the torch backend runs (the node's model lives on CPU)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise RuntimeBackendError(f"backend must be one of {BACKENDS}, not {self.backend!r}")
        if self.precision not in PRECISIONS:
            raise RuntimeBackendError(f"precision must be one of {PRECISIONS}")
        if self.ort_optimization not in _ORT_LEVELS:
            raise RuntimeBackendError(f"ort_optimization must be one of {_ORT_LEVELS}")

    def folder(self, what: str) -> Path:

        return (self.cache_dir or default_cache_dir()) / what


class Backend(Protocol):
    """Runs one graph: named numpy inputs -> named numpy outputs (the graph spec's names)."""

    name: str

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def supports(self, shapes: dict[str, tuple[int, ...]]) -> bool:
        """Whether inputs of these shapes can run (a TensorRT engine has fixed profile ranges)."""
        ...


class TorchBackend:
    """PyTorch eager, the reference: the graph's own module under ``inference_mode``."""

    name = "torch"

    def __init__(self, graph: Graph, device: str = "cpu") -> None:
        self.graph = graph
        self.device = device
        module = graph.module
        if device != "cpu":  # never move the caller's model: it may be in use on the CPU
            module = copy.deepcopy(module).to(device)
        self.module = module

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            out = self.module(*self.graph.torch_inputs(inputs, self.device))
        out = out if isinstance(out, tuple) else (out,)
        return {
            name: t.float().cpu().numpy()
            for name, t in zip(self.graph.spec.outputs, out, strict=True)
        }

    def supports(self, shapes: dict[str, tuple[int, ...]]) -> bool:
        return True


class OnnxRuntimeBackend:
    """ONNX Runtime session: CUDA execution provider where installed (onnxruntime-gpu), else CPU."""

    name = "onnxruntime"

    def __init__(
        self,
        path: Path,
        num_threads: int | None = None,
        optimization: str = "all",
        spinning: bool = False,
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
        options.add_session_config_entry("session.intra_op.allow_spinning", str(int(spinning)))
        options.inter_op_num_threads = 1  # graphs are sequential chains: no parallel branches
        options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[optimization]
        providers = ["CPUExecutionProvider"]
        if "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise RuntimeBackendError(f"ONNX Runtime cannot load {path}: {err}") from err
        self.providers = self.session.get_providers()
        self._dtypes = {
            i.name: np.int32 if "int32" in i.type else np.float32 for i in self.session.get_inputs()
        }
        self._outputs = [o.name for o in self.session.get_outputs()]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {
            name: np.ascontiguousarray(inputs[name], dtype=dtype)
            for name, dtype in self._dtypes.items()
        }
        return dict(zip(self._outputs, self.session.run(self._outputs, feed), strict=True))

    def supports(self, shapes: dict[str, tuple[int, ...]]) -> bool:
        return True


class WithFallback:
    """A backend that hands inputs it cannot take to PyTorch (same graph, same function).

    A TensorRT engine takes only the shapes of its optimisation profile: the node's image size and
    up to 32 frames per window. Map building also embeds square object crops and floorplans, and a
    node may be set to a longer window; those run in PyTorch rather than failing.
    """

    def __init__(self, graph: Graph, backend: Backend) -> None:
        self.graph = graph
        self.backend = backend
        self.name = backend.name
        self._torch: Backend | None = backend if backend.name == "torch" else None

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._for({k: v.shape for k, v in inputs.items()}).run(inputs)

    def supports(self, shapes: dict[str, tuple[int, ...]]) -> bool:
        return True

    def _for(self, shapes: dict[str, tuple[int, ...]]) -> Backend:
        if self.backend.supports(shapes):
            return self.backend
        if self._torch is None:
            log.info("%s cannot take %s %s: those run in PyTorch", self.name, self.graph.spec.name,
                     shapes)  # fmt: skip
            self._torch = TorchBackend(self.graph)
        return self._torch


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def create_backend(graph: Graph, cfg: RuntimeCfg, kind: str | None = None) -> Backend:
    """A backend of ``kind`` (default ``cfg.backend``; not "auto") for ``graph``.

    ONNX files come from the cache folder (exported on demand); TensorRT engines likewise.
    """
    kind = kind or cfg.backend
    if kind == "torch":
        return TorchBackend(graph, cfg.torch_device)
    if kind == "onnxruntime":
        if not onnxruntime_available():
            raise RuntimeBackendError("onnxruntime is not installed: pip install onnxruntime")

        path = OnnxCache(cfg.folder("onnx")).ensure(graph)
        return OnnxRuntimeBackend(path, cfg.num_threads, cfg.ort_optimization, cfg.ort_spinning)
    if kind == "tensorrt":
        path = OnnxCache(cfg.folder("onnx")).ensure(graph)
        cache = EngineCache(cfg.folder("engines"), TensorRTBuilder(cfg.workspace_mb))
        return TensorRTRunner(cache.get(path, graph.spec, cfg.precision), graph.spec)
    raise RuntimeBackendError(f"backend must be one of {BACKENDS[1:]}, not {kind!r}")


def _onnxruntime_has_cuda() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def auto_order() -> tuple[list[str], str]:
    """Backends worth trying here, fastest first (``torch:cuda``: PyTorch on the GPU), and why
    the first is first.

    On a GPU without TensorRT, PyTorch on the GPU comes before ONNX Runtime on the CPU: at the
    node's batch of six keyframes the image backbone ran 3.3x faster so on an H200 machine
    (README), and the CPU stays free for the robot's other nodes.
    """

    order, reasons = [], []
    trt_ok, trt_reason = tensorrt_status()
    if trt_ok:
        order.append("tensorrt")
    reasons.append(trt_reason)
    ort_ok = onnxruntime_available()
    if ort_ok and torch.cuda.is_available() and _onnxruntime_has_cuda():
        order.append("onnxruntime")
    if torch.cuda.is_available():
        order.append("torch:cuda")
    if ort_ok and "onnxruntime" not in order:
        order.append("onnxruntime")
    if not ort_ok:
        reasons.append("onnxruntime not installed")
    return [*order, "torch"], "; ".join(reasons)


def create_backends(graphs: dict[str, Graph], cfg: RuntimeCfg) -> dict[str, Backend]:
    """Backends for several graphs; with ``auto``, one choice logged once, per-graph fallback."""
    if cfg.backend != "auto":
        return {name: create_backend(graph, cfg) for name, graph in graphs.items()}
    order, reason = auto_order()
    log.info("inference backend auto: %s (%s)", order[0], reason)
    backends: dict[str, Backend] = {}
    for name, graph in graphs.items():
        for entry in order:
            kind, _, device = entry.partition(":")
            try:
                backends[name] = create_backend(
                    graph, replace(cfg, torch_device=device) if device else cfg, kind
                )
                break
            except RuntimeBackendError as err:
                log.warning("backend %s failed for %s, trying the next: %s", kind, name, err)
    return backends
