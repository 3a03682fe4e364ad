"""A graph: named tensors in and out, dynamic axes, and the PyTorch module that computes it.

Why a spec of named tensors: the model classes take dicts, bool masks and modality names; an ONNX
graph or a TensorRT engine takes a fixed list of named tensors. Conventions that keep every graph
buildable by TensorRT 8.6 as well as 10: masks are float32 (1 = present; 8.6 has no bool engine
inputs) and token ids int32 (8.6 has no int64 engine inputs); the graph casts them. The model
side (which modules become which graphs) is ``crossover_ros.model.graphs``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

# Bump when a wrapper or a convention changes: cached ONNX files and engines then rebuild.
EXPORT_VERSION = 1

_DTYPES = {"float32": torch.float32, "int32": torch.int32}


@dataclass(frozen=True)
class TensorSpec:
    """One graph input: a str in ``shape`` names a dynamic axis; ``fill`` says how to make
    example data ("uniform" [0, 1), "mask" 1 = present, "ids" token ids)."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"
    fill: str = "uniform"


@dataclass(frozen=True)
class GraphSpec:
    """Inputs, outputs and the sizes of the dynamic axes: (min, opt, max) per axis name.

    The ranges are the TensorRT optimisation profile; ``opt`` is the size the node runs (batch 1
    image per keyframe, a window of 6 frames, 1024 scene points), and examples default to it.
    Every output's axis 0 is the batch axis.
    """

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[str, ...]
    dims: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def shapes(self, **sizes: int) -> dict[str, tuple[int, ...]]:
        """Concrete input shapes: dynamic axes from ``sizes``, else their ``opt`` size."""
        unknown = set(sizes) - set(self.dims)
        if unknown:
            raise ValueError(f"{self.name} has no dynamic axis {sorted(unknown)}")
        return {
            t.name: tuple(
                int(sizes.get(d, self.dims[d][1])) if isinstance(d, str) else d for d in t.shape
            )
            for t in self.inputs
        }

    def profile(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        """(min, opt, max) shape per input: a TensorRT optimisation profile."""
        low, opt, high = (self.shapes(**{d: r[i] for d, r in self.dims.items()}) for i in range(3))
        return {name: (low[name], opt[name], high[name]) for name in low}

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """``torch.onnx.export``'s dynamic_axes: named input axes, the outputs' batch axis."""
        axes = {
            t.name: {i: d for i, d in enumerate(t.shape) if isinstance(d, str)} for t in self.inputs
        }
        return {**axes, **{name: {0: "batch"} for name in self.outputs}}

    def example(self, rng: np.random.Generator, **sizes: int) -> dict[str, np.ndarray]:
        """Random inputs of the given sizes; masks leave the last entry of row 0 out."""
        out = {}
        for spec, (name, shape) in zip(self.inputs, self.shapes(**sizes).items(), strict=True):
            if spec.fill == "mask":
                array = np.ones(shape, dtype=spec.dtype)
                if shape[-1] > 1:
                    array[0, -1] = 0
            elif spec.fill == "ids":
                array = rng.integers(1000, 20000, shape).astype(spec.dtype)
            else:
                array = rng.random(shape, dtype=np.float32).astype(spec.dtype)
            out[name] = array
        return out

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass
class Graph:
    """A spec, the PyTorch module that computes it, and the fingerprint of the weights it uses."""

    spec: GraphSpec
    module: nn.Module
    source_fingerprint: str

    @property
    def fingerprint(self) -> str:
        """Names the exported file: weights, inputs/outputs and export version (not the ranges,
        which only matter to a TensorRT engine and are part of the engine's own key)."""
        inputs = [asdict(t) for t in self.spec.inputs]
        blob = json.dumps(
            [self.source_fingerprint, EXPORT_VERSION, self.spec.name, inputs, self.spec.outputs]
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def torch_inputs(self, inputs: dict[str, np.ndarray], device: str = "cpu") -> list:
        """Positional torch tensors in spec order, cast to the spec's dtypes."""
        return [
            torch.from_numpy(np.ascontiguousarray(inputs[t.name])).to(device, _DTYPES[t.dtype])
            for t in self.spec.inputs
        ]
