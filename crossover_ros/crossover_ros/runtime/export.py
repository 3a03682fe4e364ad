"""ONNX export of the graphs: atomic files checked by ``onnx.checker``, parity with PyTorch, and a
cache folder that exports on demand.

Why the TorchScript exporter (``dynamo=False``): the dynamo exporter needs onnxscript, which the
robot image does not ship, and the traced graphs are plain ops that TensorRT 8.6 parses too.
Every file carries its graph spec and fingerprint in the ONNX metadata, so ``build-engines`` needs
only the ONNX files, and a cached file made from other weights is never taken for current.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from crossover_ros.errors import RuntimeBackendError
from crossover_ros.runtime.graph import Graph, GraphSpec, TensorSpec

if TYPE_CHECKING:
    from crossover_ros.runtime.backends import Backend

log = logging.getLogger(__name__)

OPSET = 17  # LayerNormalization is a single op from 17 on (TensorRT maps it to one layer)
# What the exported graph is, beyond the weights the fingerprint names: bump EXPORT_REVISION when
# the same weights export to another graph (the exporter settings here, or the code a model runs
# only under export, such as point_encoder's unrolled FPS). A cached file of another revision or
# opset is exported again, and TensorRT engines, keyed by the ONNX file's hash, are rebuilt.
# 2: the point encoders' FPS, kNN and grouping rewritten (scene_points: 632 ops, was 1768).
# 3: the instance heads' graph indexes [:, 0] instead of squeeze(1) (no If node).
EXPORT_REVISION = 3
SPEC_KEY = "crossover_ros.graph_spec"
FINGERPRINT_KEY = "crossover_ros.fingerprint"
REVISION_KEY = "crossover_ros.export_revision"


def export_revision(opset: int = OPSET) -> str:
    return f"{EXPORT_REVISION}/opset{opset}"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/crossover_ros`` (``~/.cache/crossover_ros``): ONNX files and engines."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "crossover_ros"


def onnx_file_name(graph: Graph) -> str:
    return f"{graph.spec.name}-{graph.fingerprint}.onnx"


def export_onnx(graph: Graph, path: Path, opset: int = OPSET) -> Path:
    """Write ``graph`` to ``path`` (dynamic axes as in its spec), checked, atomically.

    The file is written under a temporary name in the same folder and renamed with
    ``os.replace``: an interrupted export leaves no half file where a reader would look.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    spec = graph.spec
    # Batch 2 and the spec's opt sizes: a size-1 axis could be traced as a constant.
    example = graph.torch_inputs(spec.example(np.random.default_rng(0), batch=2))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python ints in shapes
            torch.onnx.export(
                graph.module,
                tuple(example),
                str(tmp),
                input_names=[t.name for t in spec.inputs],
                output_names=list(spec.outputs),
                dynamic_axes=spec.dynamic_axes(),
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        model = onnx.load(str(tmp))
        for key, value in (
            (SPEC_KEY, spec.to_json()),
            (FINGERPRINT_KEY, graph.fingerprint),
            (REVISION_KEY, export_revision(opset)),
        ):
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, str(tmp))
        onnx.checker.check_model(str(tmp))
        os.replace(tmp, path)
    except (RuntimeError, ValueError, TypeError, onnx.checker.ValidationError) as err:
        raise RuntimeBackendError(f"cannot export {spec.name} to ONNX: {err}") from err
    finally:
        tmp.unlink(missing_ok=True)
    log.info("exported %s to %s", spec.name, path)
    return path


def _metadata(path: Path) -> dict[str, str]:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # truncated or not ONNX at all
        raise RuntimeBackendError(f"cannot read ONNX file {path}: {err}") from err
    meta = {p.key: p.value for p in model.metadata_props}
    if SPEC_KEY not in meta or FINGERPRINT_KEY not in meta:
        raise RuntimeBackendError(f"{path} was not exported by crossover_ros export")
    return meta


def read_metadata(path: Path) -> tuple[GraphSpec, str]:
    """The graph spec and fingerprint stored in an exported file; RuntimeBackendError if none."""
    meta = _metadata(path)
    return spec_from_json(meta[SPEC_KEY]), meta[FINGERPRINT_KEY]


def spec_from_json(text: str) -> GraphSpec:
    import json

    raw = json.loads(text)
    return GraphSpec(
        raw["name"],
        tuple(
            TensorSpec(t["name"], tuple(t["shape"]), t["dtype"], t["fill"]) for t in raw["inputs"]
        ),
        tuple(raw["outputs"]),
        {k: tuple(v) for k, v in raw["dims"].items()},
    )


class OnnxCache:
    """ONNX files named by graph fingerprint in one folder; missing or foreign ones re-exported."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, graph: Graph) -> Path:
        return self.folder / onnx_file_name(graph)

    def ensure(self, graph: Graph) -> Path:
        """The graph's ONNX file, exported now if it is missing, holds another fingerprint or
        was made by another export revision."""
        path = self.path(graph)
        if path.is_file():
            try:
                meta = _metadata(path)
                if meta[FINGERPRINT_KEY] != graph.fingerprint:
                    log.warning("%s holds another model: exporting again", path)
                elif meta.get(REVISION_KEY) != export_revision():
                    log.info("%s is of an older export revision: exporting again", path)
                else:
                    return path
            except RuntimeBackendError as err:
                log.warning("%s: exporting again", err)
        return export_onnx(graph, path)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b`` (flattened rows)."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, 1e-12)


def parity(
    graph: Graph, backend: Backend, inputs: dict[str, np.ndarray], device: str = "cpu"
) -> dict[str, float]:
    """Lowest row cosine between PyTorch (FP32, ``device``) and ``backend`` per output."""
    with torch.inference_mode():
        expected = graph.module(*graph.torch_inputs(inputs, device))
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = backend.run(inputs)
    return {
        name: float(cosine_rows(ref.float().cpu().numpy(), got[name]).min())
        for name, ref in zip(graph.spec.outputs, expected, strict=True)
    }
