"""Synthetic cached-feature scenes: learnable by construction, for tests and smoke runs.

Each scene has a latent code; its frame features and floorplan are a fixed projection of the
code plus noise, and its point cloud is a shape drawn from the scene index, so a model that
learns can match frames to point clouds far above chance without any rendering. Each frame's
regions are its objects' image features plus noise, one cell of a 4 x 5 grid per object.
"""

from __future__ import annotations

import numpy as np

from crossover_ros.model.features import ScanFeatures


def synthetic_scene(index: int, rng: np.random.Generator, codes: np.ndarray) -> ScanFeatures:
    """A scene whose frames and point cloud both derive from its own latent code."""
    code = codes[index]
    k, frames, cells = 4, 6, 20
    projection = np.random.default_rng(99).normal(size=(codes.shape[1], 2560)).astype(np.float32)
    shape = np.random.default_rng(index).uniform(-2, 2, size=(8, 3))
    points = shape[rng.integers(0, 8, 512)] + rng.normal(0, 0.05, (512, 3))
    colours = np.tile((code[:3] > 0).astype(np.float32), (512, 1))
    zeros = np.zeros
    return ScanFeatures(
        scan_id=f"syn_room{index:03d}_00",
        room_id=str(index),
        scan_index=0,
        object_ids=np.arange(1, k + 1),
        object_labels=["chair"] * k,
        object_label_ids=zeros(k, np.int64),
        object_centroids=rng.normal(size=(k, 3)).astype(np.float32),
        object_sizes=np.ones((k, 3), np.float32),
        object_image=(image := rng.normal(size=(k, 2560)).astype(np.float32)),
        object_image_mask=np.ones(k, bool),
        object_crop_features=image[:, None],
        object_crop_frames=zeros((k, 1), np.int64),
        object_crop_windows=zeros((k, 1, 3), np.int64),
        object_points=rng.normal(size=(k, 64, 6)).astype(np.float32),
        object_points_mask=np.ones(k, bool),
        object_mesh_points=rng.normal(size=(k, 64, 3)).astype(np.float32),
        object_mesh_mask=np.ones(k, bool),
        object_text=rng.normal(size=(k, 384)).astype(np.float32),
        object_text_mask=np.ones(k, bool),
        scene_points=np.hstack([points, colours]).astype(np.float32),
        frame_indices=np.arange(frames),
        frame_features=(code @ projection + rng.normal(0, 0.3, (frames, 2560))).astype(np.float32),
        frame_poses=np.tile(np.eye(4, dtype=np.float32), (frames, 1, 1)),
        # regions: each object covers one cell of every frame, the other cells show none
        frame_regions=(
            np.concatenate([image[:, :1280], zeros((cells - k, 1280), np.float32)])[None]
            + rng.normal(0, 0.3, (frames, cells, 1280))
        ).astype(np.float16),
        frame_region_objects=np.tile(np.append(np.arange(k), [-1] * (cells - k)), (frames, 1)),
        frame_region_shares=np.tile(np.append(np.ones(k), zeros(cells - k)), (frames, 1)).astype(
            np.float32
        ),
        floorplan_features=(code @ projection).astype(np.float32),
        referral_indices=np.array([-1]),
        referral_features=zeros((1, 384), np.float32),
        referral_texts=[],
        object_referrals=[[] for _ in range(k)],
        has_referrals=False,
        label_vocabulary=["chair"],
        cfg={"region_grid": [4, 5]},
    )


def synthetic_scenes(count: int, rng: np.random.Generator, code_dim: int = 8) -> list[ScanFeatures]:
    codes = rng.normal(size=(count, code_dim)).astype(np.float32)
    return [synthetic_scene(i, rng, codes) for i in range(count)]
