"""Stand-in encoders shared by the unit and ROS tests (no model weights, answers known)."""

from __future__ import annotations

import time

import numpy as np


class ColourEncoder:
    """Embeds an image by its mean colour, so rooms of distinct colours are told apart;
    ``delay_s`` per call stands in for a heavy encoder."""

    modality = map_modality = "rgb"
    fingerprint = "colour-v1"
    dim = instance_dim = 3
    backend = "stub"
    finds_objects = False
    cell_grid = None

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s

    def frame_features(self, images):
        if self.delay_s:
            time.sleep(self.delay_s)
        means = np.stack([img.reshape(-1, 3).mean(axis=0) for img in images]) + 1.0
        return (means / np.linalg.norm(means, axis=1, keepdims=True)).astype(np.float32)

    def query(self, window):
        return window

    def embed_scan(self, scan):
        return {"rgb": self.frame_features(list(scan.color_images()))}, {}

    def embed_recording(self, recording):
        return self.embed_scan(recording)[0], []
