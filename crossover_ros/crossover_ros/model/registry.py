"""One registry of the models a robot can run, as timm's ``create_model``: names, checkpoints,
fingerprints, backends.

Every caller (the nodes, the map builder, the evaluations, the benchmarks, the exporter) builds
its encoder with :func:`create_encoder`: ``"global_descriptor"`` (the place-recognition
baseline), ``"crossover"`` (the shipped checkpoint) or a checkpoint path (a CrossOver model, or
an Instance-Baseline one, recognised by its training history). :func:`model_for_fingerprint`
goes the other way, from the fingerprint a map stores to the model that built it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from safetensors import safe_open

from crossover_ros.errors import ModelError
from crossover_ros.model import modalities as mod
from crossover_ros.model.crossover import CrossOverModel
from crossover_ros.model.crossover_encoder import CrossOverEncoder
from crossover_ros.model.global_descriptor import (
    GlobalDescriptorCfg,
    GlobalDescriptorEncoder,
    ImageDescriptorEncoder,
)
from crossover_ros.model.graphs import (
    FRAME_REGIONS,
    GRAPH_NAMES,
    IMAGE,
    REGIONS,
    TEXT,
    crossover_graphs,
    frame_regions_graph,
    image_graph,
    text_graph,
)
from crossover_ros.model.image_backbone import image_encoder_for_model
from crossover_ros.model.instance_baseline import InstanceBaselineEncoder
from crossover_ros.model.text_backbone import TextBackbone
from crossover_ros.runtime.backends import RuntimeCfg
from crossover_ros.runtime.graph import Graph

try:  # a ROS install's package index; a plain pip install has none
    from ament_index_python.packages import get_package_share_directory
except ImportError:
    get_package_share_directory = None

MODELS = ("global_descriptor", "crossover")
SHIPPED_CHECKPOINT = "crossover.safetensors"


class RecognitionEncoder(Protocol):
    """What the recogniser, the relocaliser and the map builder need of a model."""

    modality: str
    map_modality: str
    fingerprint: str
    dim: int  # scene vectors
    instance_dim: int  # instance vectors
    finds_objects: bool  # frame_objects works (a region encoder): the node ranks by objects
    cell_grid: tuple[int, int] | None  # where it finds objects in a frame (None: it does not)

    def frame_features(self, images: list[np.ndarray]) -> np.ndarray: ...

    def query(self, window: np.ndarray) -> np.ndarray: ...

    def embed_scan(self, scan: Any) -> tuple[dict[str, np.ndarray], dict[int, dict[str, list]]]: ...

    def embed_recording(self, recording: Any) -> tuple[dict[str, np.ndarray], list[dict]]: ...


def default_model_path() -> Path:
    """The shipped CrossOver checkpoint: in the installed share folder, else the source tree."""
    if get_package_share_directory is not None:
        try:
            installed = Path(get_package_share_directory("crossover_ros")) / "models"
            if (installed / SHIPPED_CHECKPOINT).is_file():
                return installed / SHIPPED_CHECKPOINT
        except (LookupError, OSError, ValueError):  # not installed through colcon
            pass
    return Path(__file__).resolve().parents[2] / "models" / SHIPPED_CHECKPOINT


def checkpoint_path(model: str) -> Path:
    """The checkpoint ``model`` names ("crossover" or a path); ModelError if it is not there."""
    path = default_model_path() if model == "crossover" else Path(model)
    if not path.is_file():
        raise ModelError(
            f"CrossOver checkpoint {path} not found (train one with 'crossover_ros train')"
        )
    return path


def checkpoint_is_instance_baseline(path: Path | str) -> bool:
    """True for a checkpoint trained at instance level only (``train --instance-baseline``).

    Its scene-level (stage 3) encoders were never trained, so a node must not rank scenes with
    them; the Instance Baseline ranks the mean of object embeddings instead.
    """
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as err:  # safetensors raises its own error types
        raise ModelError(f"cannot read checkpoint {path}: {err}") from err
    try:
        history = json.loads(metadata.get("history", "{}"))
    except json.JSONDecodeError:
        history = {}
    return bool(history) and "stage3" not in history


def create_encoder(
    model: str = "global_descriptor",
    map_modality: str | None = None,
    num_threads: int | None = None,
    backend: str = "torch",
    cache_dir: Path | None = None,
    image_weights: Path | None = None,
) -> RecognitionEncoder:
    """The encoder ``model`` names: "global_descriptor", "crossover" or a checkpoint path.

    ``map_modality``: the stored modality the frames are ranked against (None or "": the
    model's own, point_cloud for CrossOver; the global descriptor ranks rgb only).
    ``backend``: "torch", "onnxruntime", "tensorrt" or "auto" (the fastest this machine has)
    for the graphs run per keyframe; ONNX
    files and TensorRT engines are made on first use in ``cache_dir`` (default
    ~/.cache/crossover_ros). Embeddings agree across backends. ``image_weights``: the DINOv2
    weights of a checkpoint trained on DINOv2 features (default ``$CROSSOVER_IMAGE_WEIGHTS``,
    else the path stored in the checkpoint).
    """
    runtime = RuntimeCfg(backend=backend, num_threads=num_threads, cache_dir=cache_dir)
    if model == "global_descriptor":
        if map_modality not in (None, "", mod.RGB):
            raise ModelError("the global descriptor only ranks frames against mapped frames (rgb)")
        return GlobalDescriptorEncoder(num_threads, runtime)
    path = checkpoint_path(model)
    if model != "crossover" and checkpoint_is_instance_baseline(path):
        return InstanceBaselineEncoder(path, map_modality or mod.POINT_CLOUD, num_threads)
    return CrossOverEncoder(
        path, map_modality or mod.POINT_CLOUD, num_threads, runtime, image_weights
    )


def model_for_fingerprint(fingerprint: str) -> str:
    """The model a map was built with, from its fingerprint: global_descriptor or crossover."""
    if fingerprint.startswith(GlobalDescriptorCfg().name + ":"):
        return "global_descriptor"
    shipped = default_model_path()
    crossover = fingerprint.startswith("crossover:") and shipped.is_file()
    if crossover and CrossOverModel.load(shipped)[0].fingerprint() == fingerprint:
        return "crossover"
    raise ModelError(
        f"the map was built with {fingerprint}, which is neither the global descriptor nor the"
        " shipped CrossOver model: pass the checkpoint with --model"
    )


def model_label(model: str, encoder: Any) -> str:
    """A row name: "global descriptor", "CrossOver", "Instance Baseline" or the file stem."""
    if isinstance(encoder, InstanceBaselineEncoder):
        return "Instance Baseline"
    if model == "global_descriptor":
        return "global descriptor"
    if model == "crossover":
        return "CrossOver"
    return f"CrossOver ({Path(model).stem})"


def load_graphs(
    names: tuple[str, ...] = GRAPH_NAMES,
    checkpoint: str | None = None,
    image: ImageDescriptorEncoder | None = None,
    model: CrossOverModel | None = None,
) -> dict[str, Graph]:
    """The named graphs (export, benchmarks), loading only the models they need.

    ``checkpoint``: a CrossOver path (default the shipped model). The image graph is the
    backbone the checkpoint was trained on when a checkpoint is given (DINOv2 weights:
    ``$CROSSOVER_IMAGE_WEIGHTS`` or the path stored at training), else EfficientNet-Lite0.
    """
    unknown = set(names) - set(GRAPH_NAMES)
    if unknown:
        raise ModelError(f"unknown encoders {sorted(unknown)}; choose from {GRAPH_NAMES}")
    graphs: dict[str, Graph] = {}
    metadata: dict[str, str] = {}
    needs_model = set(names) & (set(GRAPH_NAMES) - {IMAGE, TEXT})  # frame regions: its grid
    if model is None and (needs_model or (IMAGE in names and image is None and checkpoint)):
        model, metadata = CrossOverModel.load(
            Path(checkpoint) if checkpoint else default_model_path()
        )
    if IMAGE in names or FRAME_REGIONS in names:
        if image is None and model is not None:
            where = str(checkpoint or "the shipped model")
            image = image_encoder_for_model(model.cfg, metadata, where=where)
        image = image or ImageDescriptorEncoder()
        graphs[IMAGE] = image_graph(image)
    if needs_model:
        graphs.update({k: v for k, v in crossover_graphs(model).items() if k in names})
    if (FRAME_REGIONS in names or REGIONS in names) and model.regions is None:
        raise ModelError("this checkpoint has no region encoder: no region graphs")
    if FRAME_REGIONS in names:
        graphs[FRAME_REGIONS] = frame_regions_graph(image, model.regions.cfg.grid)
    if TEXT in names:
        graphs[TEXT] = text_graph(TextBackbone())
    return {name: graphs[name] for name in names}
