"""Batches of scenes for training and evaluation, built from cached frozen features.

A batch pads every scene's objects to the largest object count and carries, per modality, the
inputs and a mask of which objects have that modality. Augmentations (rotation about the
vertical axis, random subsets of frames) make the encoders robust to what a robot sees.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from crossover_ros.model import modalities as mod
from crossover_ros.model.features import ScanFeatures

# cache field -> (modality, its mask field)
OBJECT_FIELDS = {
    mod.RGB: ("object_image", "object_image_mask"),
    mod.POINT_CLOUD: ("object_points", "object_points_mask"),
    mod.MESH: ("object_mesh_points", "object_mesh_mask"),
    mod.REFERRAL: ("object_text", "object_text_mask"),
}


@dataclass
class SceneBatch:
    scan_ids: list[str]
    centroids: torch.Tensor  # (B, K, 3)
    object_valid: torch.Tensor  # (B, K)
    object_inputs: dict[str, torch.Tensor]  # modality -> (B, K, ...)
    object_masks: dict[str, torch.Tensor]  # modality -> (B, K)
    label_ids: torch.Tensor  # (B, K), -1 for padding
    frames: torch.Tensor  # (B, F, 2560)
    frame_mask: torch.Tensor  # (B, F)
    floorplan: torch.Tensor  # (B, 2560)
    scene_points: torch.Tensor  # (B, N, 6)
    referrals: torch.Tensor  # (B, R, 384)
    referral_mask: torch.Tensor  # (B, R)
    # with ``regions=True`` only (the region stage): every frame's region features and labels
    regions: torch.Tensor | None = None  # (B, F, T, J) float32
    region_objects: torch.Tensor | None = None  # (B, F, T) object row covering a cell, -1 none
    region_shares: torch.Tensor | None = None  # (B, F, T) share of the cell it covers

    def __len__(self) -> int:
        return len(self.scan_ids)

    def to(self, device: torch.device | str) -> SceneBatch:
        """The batch with every tensor on ``device`` (the model's, for training on a GPU)."""

        def move(value):
            if isinstance(value, torch.Tensor):
                return value.to(device, non_blocking=True)
            if isinstance(value, dict):
                return {key: move(item) for key, item in value.items()}
            return value

        return SceneBatch(**{f.name: move(getattr(self, f.name)) for f in fields(self)})


def _rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)


def _rotate_xyz(array: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    out = array.copy()
    out[..., :3] = array[..., :3] @ rotation.T
    return out


def _subsample(
    points: np.ndarray, count: int | None, rng: np.random.Generator | None, axis: int
) -> np.ndarray:
    """``count`` points along ``axis``: a random subset with ``rng``, else evenly spaced."""
    size = points.shape[axis]
    if count is None or count >= size:
        return points
    if rng is not None:
        keep = rng.choice(size, count, replace=False)
    else:
        keep = np.linspace(0, size - 1, count).astype(int)
    return np.take(points, keep, axis=axis)


def _jitter_scene(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Room size and colour augmentation: buildings differ in both from the training set."""
    out = points.copy()
    out[:, :3] *= rng.uniform(0.85, 1.2)
    gain, offset = rng.uniform(0.8, 1.2, 3), rng.uniform(-0.08, 0.08, 3)
    out[:, 3:6] = np.clip(out[:, 3:6] * gain + offset, 0.0, 1.0)
    return out


def _crop_subset_means(
    crops: np.ndarray, has_crop: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(K, I): each object's mean over a random non-empty subset of its crops (K, C, I), zero
    without crops. A rescan sees an object from other viewpoints than the map did; training on
    crop subsets makes its image embedding depend less on which views were averaged."""
    counts = has_crop.sum(axis=1)
    sizes = rng.integers(1, np.maximum(counts, 1) + 1)
    scores = np.where(has_crop, rng.random(has_crop.shape), np.inf)
    keep = has_crop & (scores.argsort(axis=1).argsort(axis=1) < sizes[:, None])
    return (crops * keep[..., None]).sum(axis=1) / np.maximum(keep.sum(axis=1), 1)[:, None]


def make_batch(
    scenes: list[ScanFeatures],
    rng: np.random.Generator | None = None,
    frame_count: tuple[int, int] | None = None,
    num_scene_points: int | None = None,
    num_object_points: int | None = None,
    crop_subsets: bool = False,
    regions: bool = False,
) -> SceneBatch:
    """Stack scenes; with ``rng``, augment (rotation, frame subsets of ``frame_count`` sizes,
    and with ``crop_subsets`` each object's image as the mean of a random subset of its crops).

    ``num_scene_points`` / ``num_object_points`` subsample the scene and object clouds (random
    with ``rng``, else evenly spaced): fewer points train faster and still describe the shape.
    ``regions`` adds every frame's region features and their objects (padding: no object).
    """
    b = len(scenes)
    k = max(len(s.object_ids) for s in scenes)
    f = max(len(s.frame_features) for s in scenes)
    r = max(len(s.referral_features) for s in scenes)
    centroids = np.zeros((b, k, 3), np.float32)
    valid = np.zeros((b, k), bool)
    labels = np.full((b, k), -1, np.int64)
    inputs = {m: None for m in OBJECT_FIELDS}
    masks = {m: np.zeros((b, k), bool) for m in OBJECT_FIELDS}
    frames = np.zeros((b, f, scenes[0].frame_features.shape[1]), np.float32)
    frame_mask = np.zeros((b, f), bool)
    referrals = np.zeros((b, r, scenes[0].referral_features.shape[1]), np.float32)
    referral_mask = np.zeros((b, r), bool)
    scene_points = []
    for i, scene in enumerate(scenes):
        n = len(scene.object_ids)
        rotation = (
            _rotation_z(rng.uniform(0, 2 * np.pi))
            if rng is not None
            else np.eye(3, dtype=np.float32)
        )
        centroids[i, :n] = scene.object_centroids @ rotation.T
        valid[i, :n] = True
        labels[i, :n] = scene.object_label_ids
        for modality, (field, mask_field) in OBJECT_FIELDS.items():
            values = getattr(scene, field)
            if modality == mod.RGB and crop_subsets and rng is not None:
                values = _crop_subset_means(
                    scene.object_crop_features, scene.object_crop_frames >= 0, rng
                )
            if modality in (mod.POINT_CLOUD, mod.MESH):
                values = _rotate_xyz(_subsample(values, num_object_points, rng, axis=1), rotation)
            if inputs[modality] is None:
                inputs[modality] = np.zeros((b, k, *values.shape[1:]), np.float32)
            inputs[modality][i, :n] = values
            masks[modality][i, :n] = getattr(scene, mask_field)
        frame_index = np.arange(len(scene.frame_features))
        if rng is not None and frame_count is not None:
            count = int(rng.integers(frame_count[0], frame_count[1] + 1))
            frame_index = rng.permutation(frame_index)[: min(count, len(frame_index))]
        frames[i, : len(frame_index)] = scene.frame_features[frame_index]
        frame_mask[i, : len(frame_index)] = True
        referrals[i, : len(scene.referral_features)] = scene.referral_features
        referral_mask[i, : len(scene.referral_features)] = (
            np.abs(scene.referral_features).sum(1) > 0
        )
        points = _rotate_xyz(
            _subsample(scene.scene_points, num_scene_points, rng, axis=0), rotation
        )
        if rng is not None:
            points = _jitter_scene(points, rng)
        scene_points.append(points)
    batch = SceneBatch(
        scan_ids=[s.scan_id for s in scenes],
        centroids=torch.from_numpy(centroids),
        object_valid=torch.from_numpy(valid),
        object_inputs={m: torch.from_numpy(v) for m, v in inputs.items()},
        object_masks={m: torch.from_numpy(v) for m, v in masks.items()},
        label_ids=torch.from_numpy(labels),
        frames=torch.from_numpy(frames),
        frame_mask=torch.from_numpy(frame_mask),
        floorplan=torch.from_numpy(np.stack([s.floorplan_features for s in scenes])),
        scene_points=torch.from_numpy(np.stack(scene_points).astype(np.float32)),
        referrals=torch.from_numpy(referrals),
        referral_mask=torch.from_numpy(referral_mask),
    )
    if regions:
        t, j = scenes[0].frame_regions.shape[1:]
        batch.regions = torch.zeros(b, f, t, j)
        batch.region_objects = torch.full((b, f, t), -1, dtype=torch.int64)
        batch.region_shares = torch.zeros(b, f, t)
        for i, scene in enumerate(scenes):
            n = len(scene.frame_regions)
            batch.regions[i, :n] = torch.from_numpy(scene.frame_regions.astype(np.float32))
            batch.region_objects[i, :n] = torch.from_numpy(scene.frame_region_objects)
            batch.region_shares[i, :n] = torch.from_numpy(scene.frame_region_shares)
    return batch
