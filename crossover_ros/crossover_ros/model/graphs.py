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

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from crossover_ros.model import modalities as mod
from crossover_ros.runtime.graph import Graph, GraphSpec, TensorSpec

if TYPE_CHECKING:
    from crossover_ros.model.crossover import CrossOverModel
    from crossover_ros.model.global_descriptor import ImageDescriptorEncoder
    from crossover_ros.model.instance_encoder import InstanceEncoder
    from crossover_ros.model.text_backbone import TextBackbone

IMAGE = "image"  # EfficientNet-Lite0: GeM descriptor and [GeM | mean] per frame
FRAME_REGIONS = "frame_regions"  # the same at the frame size, plus per-cell region features
REGIONS = "regions"  # the region encoder: region features -> object embedding, objectness
FRAMES = "frames"  # the 2D frame-set encoder (also floorplans: a set of one)
SCENE_POINTS = "scene_points"  # the 3D scene point encoder
TEXT = "text"  # MiniLM from token ids
TEXT_SET = "text_set"  # the 1D referral-set encoder
INSTANCE = {m: f"instance_{m}" for m in mod.INSTANCE_MODALITIES}  # stage-1 projections
GRAPH_NAMES = (
    IMAGE,
    FRAME_REGIONS,
    FRAMES,
    SCENE_POINTS,
    *INSTANCE.values(),
    REGIONS,
    TEXT,
    TEXT_SET,
)


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
