"""The inference encoders as exportable graphs: named tensors in and out, dynamic axes, fingerprint.

Why wrappers: the model classes take dicts, bool masks and modality names; an ONNX graph or a
TensorRT engine takes a fixed list of named tensors. Each wrapper calls the model's own methods, so
PyTorch, ONNX Runtime and TensorRT compute one function. Conventions that keep every graph
buildable by TensorRT 8.6 as well as 10: masks are float32 (1 = present; 8.6 has no bool engine
inputs) and token ids int32 (8.6 has no int64 engine inputs); the graph casts them.

What is not a graph, and why:

* Image preprocessing (uint8 -> float, antialiased resize) stays in PyTorch outside the graph,
  the same code for every backend (``ImageDescriptorEncoder.preprocess``). EfficientNet-Lite0's
  graph takes any height and width in ONNX; a DINOv2 ViT's takes its one input size (position
  embeddings fit one grid; its preprocessing resizes every image to it).
* MiniLM's tokenizer is string processing, not a tensor op: the ``text`` graph starts from token
  ids and attention mask; tokenisation stays in Python (:func:`tokenize`).
* The instance encoder's object transformer (context over a scene's objects) runs in PyTorch,
  when a map is built and when the relocaliser embeds segmented objects (it exports to ONNX,
  the tests hold it, but is no runtime graph yet); the per-modality projections (with the object
  point encoders, the costly part) are graphs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from crossover_ros.model import modalities as mod
from crossover_ros.runtime.names import (
    FRAME_REGIONS,
    FRAMES,
    GRAPH_NAMES,
    IMAGE,
    INSTANCE,
    REGIONS,
    SCENE_POINTS,
    TEXT,
    TEXT_SET,
)

if TYPE_CHECKING:
    from crossover_ros.model.crossover import CrossOverModel
    from crossover_ros.model.global_descriptor import ImageDescriptorEncoder
    from crossover_ros.model.instance_encoder import InstanceEncoder
    from crossover_ros.model.text_backbone import TextBackbone

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


# -- wrappers -------------------------------------------------------------------------------------
class ImageGraph(nn.Module):
    """(B, 3, H, W) float RGB in [0, 1] -> unit descriptor (B, C) and pooled features (B, 2C).

    One graph for both outputs: the backbone runs once, and the global-descriptor baseline and
    CrossOver share the same engine. The descriptor module's own ``forward_outputs``
    (EfficientNet: GeM and [GeM | mean]; DINOv2: CLS and [CLS | mean of patch tokens]), the
    function ``ImageDescriptorEncoder.encode`` and ``pooled_features`` compute.
    """

    def __init__(self, descriptor: nn.Module) -> None:
        super().__init__()
        self.descriptor = descriptor

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.descriptor.forward_outputs(images)


class FrameRegionsGraph(nn.Module):
    """(B, 3, H, W) frames at their one size -> descriptor, pooled features and region features
    (B, cells, C): ``forward_all`` of the descriptor module, one backbone pass for all three."""

    def __init__(self, descriptor: nn.Module, grid: tuple[int, int]) -> None:
        super().__init__()
        self.descriptor = descriptor
        self.grid = grid

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.descriptor.forward_all(images, self.grid)


class MaskedSetGraph(nn.Module):
    """A set encoder (frames or sentences) with a float mask: ``encoder(x, mask > 0.5)``."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(items, mask > 0.5)


class InstanceProjectionGraph(nn.Module):
    """Objects (N, ...) of one modality -> (N, D) projections, ``InstanceEncoder.project``."""

    def __init__(self, encoder: InstanceEncoder, modality: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.modality = modality

    def forward(self, objects: torch.Tensor) -> torch.Tensor:
        # [:, 0], not squeeze(1): squeeze exports as an If node TensorRT may not take
        return self.encoder.project(self.modality, objects.unsqueeze(1))[:, 0]


class TextGraph(nn.Module):
    """MiniLM from token ids: masked mean of the last hidden states, L2-normalised (384-d).

    The pooling is ``TextBackbone.encode``'s; the tests hold the two to cosine 0.9999.
    """

    def __init__(self, transformer: nn.Module) -> None:
        super().__init__()
        self.transformer = transformer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.long()
        tokens = self.transformer(input_ids=input_ids.long(), attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(tokens.dtype)
        mean = (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return F.normalize(mean, dim=1)


# -- graph builders -------------------------------------------------------------------------------
def image_graph(encoder: ImageDescriptorEncoder, max_batch: int = 16) -> Graph:
    """The frozen image backbone. EfficientNet-Lite0: height and width dynamic in ONNX, fixed in
    TensorRT; a DINOv2 ViT: its input size, fixed everywhere."""
    cfg = encoder.cfg
    if encoder.backbone == "efficientnet_lite0":
        shape: tuple[int | str, ...] = ("batch", 3, "height", "width")
        dims = {
            "batch": (1, 1, max_batch),
            "height": (cfg.input_height,) * 3,
            "width": (cfg.input_width,) * 3,
        }
    else:
        shape, dims = ("batch", 3, cfg.input_height, cfg.input_width), {"batch": (1, 1, max_batch)}
    spec = GraphSpec(IMAGE, (TensorSpec("images", shape),), ("descriptor", "pooled"), dims)
    return Graph(spec, ImageGraph(encoder.model).eval(), encoder.fingerprint)


def frame_regions_graph(
    encoder: ImageDescriptorEncoder, grid: tuple[int, int], max_batch: int = 16
) -> Graph:
    """The image backbone at the frame size the encoder resizes frames to (fixed), with the
    region features of a ``grid`` (a region encoder's) as a third output."""
    cfg = encoder.cfg
    spec = GraphSpec(
        FRAME_REGIONS,
        (TensorSpec("images", ("batch", 3, cfg.input_height, cfg.input_width)),),
        ("descriptor", "pooled", "regions"),
        {"batch": (1, 1, max_batch)},
    )
    module = FrameRegionsGraph(encoder.model, grid).eval()
    return Graph(spec, module, f"{encoder.fingerprint}:regions{grid[0]}x{grid[1]}")


def crossover_graphs(model: CrossOverModel) -> dict[str, Graph]:
    """Stage-3 frame-set, scene-point and text-set encoders; stage-1 projections per modality;
    the region encoder, if the model has one."""
    cfg = model.cfg
    fingerprint = model.fingerprint()
    specs = {
        FRAMES: (
            GraphSpec(
                FRAMES,
                (
                    TensorSpec("frames", ("batch", "frames", cfg.frames.in_dim)),
                    TensorSpec("mask", ("batch", "frames"), fill="mask"),
                ),
                ("embedding",),
                {"batch": (1, 1, 8), "frames": (1, 6, 32)},
            ),
            MaskedSetGraph(model.frames),
        ),
        SCENE_POINTS: (
            GraphSpec(
                SCENE_POINTS,
                (TensorSpec("points", ("batch", "points", cfg.scene_points.point.in_channels)),),
                ("embedding",),
                {"batch": (1, 1, 8), "points": (256, 1024, 4096)},
            ),
            model.scene_points,
        ),
        TEXT_SET: (
            GraphSpec(
                TEXT_SET,
                (
                    TensorSpec("sentences", ("batch", "sentences", cfg.text.in_dim)),
                    TensorSpec("mask", ("batch", "sentences"), fill="mask"),
                ),
                ("embedding",),
                {"batch": (1, 1, 8), "sentences": (1, 10, 32)},
            ),
            MaskedSetGraph(model.text),
        ),
    }
    instance = cfg.instance
    object_shapes: dict[str, tuple[int | str, ...]] = {
        mod.RGB: ("batch", instance.image_dim),
        mod.POINT_CLOUD: ("batch", "points", instance.point.in_channels),
        mod.MESH: ("batch", "points", instance.mesh.in_channels),
        mod.REFERRAL: ("batch", instance.text_dim),
    }
    for modality, shape in object_shapes.items():
        dims = {"batch": (1, 32, 256)}
        if "points" in shape:
            dims["points"] = (32, 512, 1024)
        name = INSTANCE[modality]
        spec = GraphSpec(name, (TensorSpec("objects", shape),), ("embedding",), dims)
        specs[name] = (spec, InstanceProjectionGraph(model.instance, modality))
    if model.regions is not None:
        cells = (model.regions.cfg.cells, model.regions.cfg.in_dim)
        spec = GraphSpec(
            REGIONS,
            (TensorSpec("regions", ("batch", *cells)),),
            ("embedding", "objectness"),
            {"batch": (1, 1, 32)},  # frames: one keyframe; a window of them
        )
        specs[REGIONS] = (spec, model.regions)
    return {name: Graph(spec, module.eval(), fingerprint) for name, (spec, module) in specs.items()}


def text_graph(backbone: TextBackbone) -> Graph:
    """MiniLM from token ids (tokenisation stays in Python: see :func:`tokenize`)."""
    backbone._load()  # the loaded transformers model is the module to export
    spec = GraphSpec(
        TEXT,
        (
            TensorSpec("input_ids", ("batch", "tokens"), "int32", "ids"),
            TensorSpec("attention_mask", ("batch", "tokens"), "int32", "mask"),
        ),
        ("embedding",),
        {"batch": (1, 8, 64), "tokens": (1, 32, backbone.cfg.max_length)},
    )
    return Graph(spec, TextGraph(backbone._model).eval(), backbone.fingerprint)


def tokenize(backbone: TextBackbone, sentences: list[str]) -> dict[str, np.ndarray]:
    """The ``text`` graph's inputs for ``sentences``: TextBackbone's own tokenizer settings."""
    backbone._load()
    batch = backbone._tokenizer(
        [str(s) for s in sentences],
        padding=True,
        truncation=True,
        max_length=backbone.cfg.max_length,
        return_tensors="np",
    )
    return {
        "input_ids": batch["input_ids"].astype(np.int32),
        "attention_mask": batch["attention_mask"].astype(np.int32),
    }


def load_graphs(
    names: tuple[str, ...] = GRAPH_NAMES,
    checkpoint: str | None = None,
    image: ImageDescriptorEncoder | None = None,
    model: CrossOverModel | None = None,
) -> dict[str, Graph]:
    """The named graphs, loading only the models they need (``checkpoint``: CrossOver path).

    The image graph is the backbone the checkpoint was trained on when a checkpoint is given
    (DINOv2 weights: ``$CROSSOVER_IMAGE_WEIGHTS`` or the path stored at training), else
    EfficientNet-Lite0 (the shipped model's).
    """
    unknown = set(names) - set(GRAPH_NAMES)
    if unknown:
        from crossover_ros.errors import ModelError

        raise ModelError(f"unknown encoders {sorted(unknown)}; choose from {GRAPH_NAMES}")
    graphs: dict[str, Graph] = {}
    metadata: dict[str, str] = {}
    needs_model = set(names) & (set(GRAPH_NAMES) - {IMAGE, TEXT})  # frame regions: its grid
    if model is None and (needs_model or (IMAGE in names and image is None and checkpoint)):
        from pathlib import Path

        from crossover_ros.model.crossover import CrossOverModel
        from crossover_ros.pipeline.encoders import default_model_path

        path = Path(checkpoint) if checkpoint else default_model_path()
        model, metadata = CrossOverModel.load(path)
    if IMAGE in names or FRAME_REGIONS in names:
        if image is None:
            from crossover_ros.model.image_backbone import image_encoder_for_model

            if model is not None:
                where = str(checkpoint or "the shipped model")
                image = image_encoder_for_model(model.cfg, metadata, where=where)
            else:
                from crossover_ros.model.global_descriptor import ImageDescriptorEncoder

                image = ImageDescriptorEncoder()
        graphs[IMAGE] = image_graph(image)
    if needs_model:
        graphs.update({k: v for k, v in crossover_graphs(model).items() if k in names})
    if (FRAME_REGIONS in names or REGIONS in names) and model.regions is None:
        from crossover_ros.errors import ModelError

        raise ModelError("this checkpoint has no region encoder: no region graphs")
    if FRAME_REGIONS in names:
        graphs[FRAME_REGIONS] = frame_regions_graph(image, model.regions.cfg.grid)
    if TEXT in names:
        from crossover_ros.model.text_backbone import TextBackbone

        graphs[TEXT] = text_graph(TextBackbone())
    return {name: graphs[name] for name in names}
