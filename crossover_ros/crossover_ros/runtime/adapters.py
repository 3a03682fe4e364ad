"""Drop-in encoders for ``pipeline/encoders.py`` whose graphs run in a chosen backend.

Why adapters rather than backend switches inside the model code: the recogniser, the map builder
and the feature extraction already talk to ``ImageDescriptorEncoder`` (``encode``,
``pooled_features``, ``fingerprint``); :class:`BackendImageEncoder` has that surface, with the
preprocessing (resize, scale to [0, 1]) kept in PyTorch and identical for every backend.
:class:`WithFallback` keeps a fixed-shape backend (TensorRT) from failing on other shapes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from crossover_ros.runtime.backends import Backend, TorchBackend
from crossover_ros.runtime.graphs import Graph

if TYPE_CHECKING:
    from crossover_ros.model.global_descriptor import ImageDescriptorEncoder

log = logging.getLogger(__name__)


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


class BackendImageEncoder:
    """``ImageDescriptorEncoder``'s interface; the image backbone's graph (EfficientNet-Lite0 or
    a DINOv2 ViT) runs in ``backend`` (inputs it cannot take in PyTorch: :class:`WithFallback`)."""

    def __init__(self, encoder: ImageDescriptorEncoder, graph: Graph, backend: Backend) -> None:
        self.encoder = encoder
        self.cfg = encoder.cfg
        self.backbone = encoder.backbone
        self.backend = WithFallback(graph, backend)

    @property
    def fingerprint(self) -> str:
        """The backbone's: embeddings agree across backends (tested), so maps are shared."""
        return self.encoder.fingerprint

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @property
    def feature_dim(self) -> int:
        return self.encoder.feature_dim

    def encode(self, images: list[np.ndarray], batch_size: int = 16) -> np.ndarray:
        """(N, D) float32 unit descriptors, as ``ImageDescriptorEncoder.encode``."""
        return self._run(images, "descriptor", self.dim, batch_size, None)

    def pooled_features(
        self,
        images: list[np.ndarray],
        batch_size: int = 16,
        size: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """(N, 2 * C) float32 pooled features, as ``ImageDescriptorEncoder.pooled_features``."""
        return self._run(images, "pooled", self.feature_dim, batch_size, size)

    def pooled_and_region_features(
        self, images: list[np.ndarray], grid: tuple[int, int], batch_size: int = 16
    ) -> tuple[np.ndarray, np.ndarray]:
        """As ``ImageDescriptorEncoder.pooled_and_region_features``, in PyTorch: map building
        (offline) asks for it; the node's frames go through the ``frame_regions`` graph."""
        return self.encoder.pooled_and_region_features(images, grid, batch_size)

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
            batch = self.encoder.preprocess(images[start : start + batch_size], size).numpy()
            out.append(self.backend.run({"images": batch})[output])
        if not out:
            return np.zeros((0, dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)
