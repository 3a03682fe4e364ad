"""The paper's Instance Baseline on the robot: stage 1 only, scenes as object embeddings' mean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from crossover_ros.errors import ModelError
from crossover_ros.model import modalities as mod
from crossover_ros.model.crossover_encoder import CrossOverEncoder


class InstanceBaselineEncoder:
    """The paper's Instance Baseline on the robot: scenes are means of object embeddings.

    Map side: every object of a reference scan through the instance encoder (no object
    transformer, as trained), the scene vector per modality is their normalised mean. Robot
    side: the robot has no instance masks, so each keyframe is embedded whole, as one object
    crop, by the instance encoder's image head; each keyframe is a query row, and a scene scores
    the mean of their best cosines (as the global descriptor). That is a handicap of the method
    on a robot, not of this implementation: it needs object crops that a camera does not give.
    """

    modality = mod.RGB
    crop_size = 128  # object crops were cached at 128 x 128
    finds_objects = False  # frames are whole crops, not searched for objects
    cell_grid = None

    def __init__(
        self, checkpoint: Path, map_modality: str = mod.POINT_CLOUD, num_threads: int | None = None
    ) -> None:
        if map_modality not in mod.INSTANCE_MODALITIES:
            raise ModelError(
                f"the Instance Baseline stores {', '.join(mod.INSTANCE_MODALITIES)},"
                f" not {map_modality}"
            )
        self._crossover = CrossOverEncoder(Path(checkpoint), mod.POINT_CLOUD, num_threads)
        self.model = self._crossover.model
        self.map_modality = map_modality
        self.fingerprint = "instance_baseline:" + self._crossover.fingerprint.split(":", 1)[-1]
        self.dim = self.instance_dim = self._crossover.instance_dim  # scenes: mean of objects

    def frame_features(self, images: list[np.ndarray]) -> np.ndarray:
        size = (self.crop_size, self.crop_size)
        return self._crossover.backbone.pooled_features(images, size=size)

    def query(self, window: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            inputs = {mod.RGB: torch.from_numpy(np.asarray(window, np.float32))[None]}
            masks = {mod.RGB: torch.ones(1, len(window), dtype=torch.bool)}
            embedded = self.model.instance(inputs, masks, torch.zeros(1, len(window), 3))
        return embedded[mod.RGB][0].numpy()

    def embed_scan(self, scan: Any) -> tuple[dict[str, np.ndarray], dict[int, dict[str, list]]]:
        _, instances = self._crossover.embed_scan(scan)
        scene = {}
        for modality in mod.INSTANCE_MODALITIES:
            rows = [e[modality] for e in instances.values() if modality in e]
            if rows:
                mean = np.mean(np.asarray(rows, np.float32), axis=0)
                scene[modality] = (mean / max(float(np.linalg.norm(mean)), 1e-12))[None]
        if not scene:
            raise ModelError(f"scan {getattr(scan, 'scan_id', '?')} has no embeddable objects")
        return scene, instances
