"""TensorRT: engines built from the exported ONNX files, run with torch CUDA tensors.

Why torch tensors for the memory copies: torch is always installed, owns the CUDA context and a
caching allocator, and its streams hand TensorRT a raw stream handle; pycuda would be one more
CUDA binding to install and keep in step on a Jetson. TensorRT is imported only when a caller asks
for it, so everything else in the package runs where it is not installed.

Both API generations are handled:

* TensorRT 8.x: networks need the EXPLICIT_BATCH flag; the bindings API
  (``get_binding_index``, ``set_binding_shape``, ``execute_v2(bindings)``) is what 8.4 and older
  have (8.5 and 8.6 have both; ``api="bindings"`` forces it there). ``max_workspace_size`` is the
  workspace knob before 8.4.
* TensorRT 10: no binding calls at all; the tensor-name API (``num_io_tensors``,
  ``get_tensor_name``, ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``) and
  ``set_memory_pool_limit``. ``build_serialized_network`` builds in both.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from crossover_ros.errors import RuntimeBackendError
from crossover_ros.runtime.graph import GraphSpec

log = logging.getLogger(__name__)


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module, or RuntimeBackendError that says how to get it."""
    try:
        import tensorrt
    except ImportError as err:
        raise RuntimeBackendError(
            "TensorRT is not installed (JetPack ships it on a Jetson; on an x86 GPU machine: "
            "pip install tensorrt); the onnxruntime and torch backends need no engines"
        ) from err
    return tensorrt


def tensorrt_status() -> tuple[bool, str]:
    """(usable, why): TensorRT needs the package and a CUDA device torch can see."""
    if importlib.util.find_spec("tensorrt") is None:
        return False, "tensorrt not installed"
    if not torch.cuda.is_available():
        return False, "tensorrt installed but torch sees no CUDA device"
    return True, f"tensorrt on {torch.cuda.get_device_name()}"


def _major(trt: ModuleType) -> int:
    return int(str(trt.__version__).split(".")[0])


class TensorRTBuilder:
    """Builds serialised engines from ONNX files (the cache's :class:`EngineBuilder`)."""

    def __init__(self, workspace_mb: int = 2048, trt: ModuleType | None = None) -> None:
        self.workspace_mb = workspace_mb
        self._trt = trt

    @property
    def trt(self) -> ModuleType:
        if self._trt is None:
            self._trt = import_tensorrt()
        return self._trt

    def platform(self) -> dict[str, str]:
        if not torch.cuda.is_available():
            raise RuntimeBackendError("TensorRT engines need a CUDA GPU; torch sees none")
        major, minor = torch.cuda.get_device_capability()
        return {
            "tensorrt_version": str(self.trt.__version__),
            "gpu_name": torch.cuda.get_device_name(),
            "compute_capability": f"{major}.{minor}",
        }

    def build(self, onnx_path: Path, spec: GraphSpec, precision: str) -> bytes:
        """One optimisation profile (the spec's min/opt/max), FP16 or FP32 kernels."""
        trt = self.trt
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        flags = 0
        if _major(trt) < 10:  # explicit batch is the only mode from 10 on (the flag is gone)
            flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeBackendError(f"TensorRT cannot parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        workspace = self.workspace_mb << 20
        if hasattr(config, "set_memory_pool_limit"):  # 8.4+
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
        else:
            config.max_workspace_size = workspace
        if precision == "fp16":
            if not getattr(builder, "platform_has_fast_fp16", True):
                log.warning("this GPU has no fast FP16: the %s engine may be slow", spec.name)
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        for name, (low, opt, high) in spec.profile().items():
            profile.set_shape(name, low, opt, high)
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeBackendError(f"TensorRT failed to build {spec.name} (its log says why)")
        return bytes(serialized)


class TensorRTRunner:
    """Runs one engine: numpy in, numpy out; inputs and outputs live as torch CUDA tensors."""

    name = "tensorrt"

    def __init__(
        self,
        engine_path: Path,
        spec: GraphSpec,
        trt: ModuleType | None = None,
        device: str = "cuda",
        api: str | None = None,
    ) -> None:
        self._trt = trt = trt or import_tensorrt()
        self.spec = spec
        self.device = torch.device(device)
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise RuntimeBackendError(
                f"TensorRT cannot load {engine_path} (built by another TensorRT version or GPU?)"
            )
        self.context = self.engine.create_execution_context()
        has_tensor_api = hasattr(self.engine, "num_io_tensors")
        if api not in (None, "tensors", "bindings"):
            raise RuntimeBackendError(f"api must be 'tensors' or 'bindings', not {api!r}")
        if api == "tensors" and not has_tensor_api:
            raise RuntimeBackendError(f"TensorRT {trt.__version__} has no tensor-name API")
        if api == "bindings" and not hasattr(self.engine, "get_binding_index"):
            raise RuntimeBackendError(f"TensorRT {trt.__version__} has no bindings API")
        self.api = api or ("tensors" if has_tensor_api else "bindings")
        self.dtypes, self.inputs, self.outputs = self._io()
        self._profile = spec.profile()

    def _io(self) -> tuple[dict[str, np.dtype], list[str], list[str]]:
        engine, trt = self.engine, self._trt
        if self.api == "tensors":
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            dtypes = {n: engine.get_tensor_dtype(n) for n in names}
        else:
            names = [engine.get_binding_name(i) for i in range(engine.num_bindings)]
            inputs = [n for n in names if engine.binding_is_input(engine.get_binding_index(n))]
            dtypes = {n: engine.get_binding_dtype(engine.get_binding_index(n)) for n in names}
        numpy_types = {n: np.dtype(trt.nptype(t)) for n, t in dtypes.items()}
        return numpy_types, inputs, [n for n in names if n not in inputs]

    def supports(self, shapes: dict[str, tuple[int, ...]]) -> bool:
        """Every input within the engine's profile range."""
        for name, shape in shapes.items():
            low, _, high = self._profile[name]
            if len(shape) != len(low) or any(
                not lo <= s <= hi for s, lo, hi in zip(shape, low, high, strict=True)
            ):
                return False
        return True

    def _tensor(self, array: np.ndarray, name: str) -> torch.Tensor:
        host = torch.from_numpy(np.ascontiguousarray(array, dtype=self.dtypes[name]))
        return host.to(self.device)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = {name: self._tensor(inputs[name], name) for name in self.inputs}
        outputs: dict[str, torch.Tensor] = {}
        ctx = self.context
        if self.api == "tensors":
            for name, tensor in feeds.items():
                if not ctx.set_input_shape(name, tuple(tensor.shape)):
                    raise RuntimeBackendError(f"{name} {tuple(tensor.shape)} outside the profile")
                ctx.set_tensor_address(name, tensor.data_ptr())
            for name in self.outputs:
                outputs[name] = self._empty(ctx.get_tensor_shape(name), name)
                ctx.set_tensor_address(name, outputs[name].data_ptr())
            stream = torch.cuda.current_stream(self.device) if self.device.type == "cuda" else None
            ok = ctx.execute_async_v3(stream.cuda_stream if stream is not None else 0)
            if stream is not None:
                stream.synchronize()
        else:
            bindings = [0] * self.engine.num_bindings
            for name, tensor in feeds.items():
                index = self.engine.get_binding_index(name)
                if not ctx.set_binding_shape(index, tuple(tensor.shape)):
                    raise RuntimeBackendError(f"{name} {tuple(tensor.shape)} outside the profile")
                bindings[index] = tensor.data_ptr()
            for name in self.outputs:
                index = self.engine.get_binding_index(name)
                outputs[name] = self._empty(ctx.get_binding_shape(index), name)
                bindings[index] = outputs[name].data_ptr()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)  # execute_v2 runs on its own stream
            ok = ctx.execute_v2(bindings)
        if not ok:
            raise RuntimeBackendError(f"TensorRT failed to run {self.spec.name}")
        return {name: t.cpu().numpy() for name, t in outputs.items()}

    def _empty(self, shape, name: str) -> torch.Tensor:
        dtype = torch.from_numpy(np.zeros(0, self.dtypes[name])).dtype
        return torch.empty(tuple(shape), dtype=dtype, device=self.device)
