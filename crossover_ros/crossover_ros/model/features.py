"""Frozen features of a scan: what the CrossOver encoders take as input, and their files.

CrossOver trains only projection heads and small encoders on top of frozen extractors (stage 1:
object crops, object point clouds, object meshes, referrals; stages 2-3: scene point cloud,
frames, floorplan, scene referrals). Everything frozen is computed here per scan, for training
(cached by ``train.features`` as ``<cache_dir>/<scan_id>.safetensors``: numpy arrays + JSON
metadata, no pickles) and for map building alike.

Choices where the paper's data differ from ours (documented because training depends on them):

* Image features are the image backbone's ``pooled_features``: EfficientNet-Lite0's [GeM | mean]
  (2560-d, the default) in the role of DINOv2's [CLS | mean of patches], or DINOv2's own
  (``model/image_backbone.py``; 2 x its width). Frames go in at the encoder's configured size
  (EfficientNet: 320x240, what the robot's encoder sees), object crops at ``crop_size`` squared,
  the floorplan padded to a square with its black background and resized to ``floorplan_size``
  squared (no distortion); a ViT takes all of them at its one input size (224 x 224).
* Object labels get ids in :data:`OBJECT_LABELS`, a fixed sorted vocabulary of every label the
  furniture generator can produce, so ids agree across buildings; an unknown label gets -1.
* ``object_text`` is the mean of the MiniLM embeddings of all referrals about the object, scaled
  back to unit length (so every text vector is on the sphere, like single-sentence ones).
* Object points keep metric size (centred, not scaled): size tells a mug from a table.
* Object crops come from all frames; scene frames are ``max_frames`` picked by farthest point
  sampling over camera poses (translation + quaternion), as the paper does.
"""

from __future__ import annotations

import json
import os
import tempfile
import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file
from scipy.spatial.transform import Rotation

from crossover_ros.datasets.scan import Scan
from crossover_ros.errors import DataError
from crossover_ros.model.crops import crop_square, instance_boxes, square_crop_window

FORMAT = "crossover_ros.scan_features/3"  # 2: per-crop object image features; 3: frame regions
IMAGE_DIM = 2560  # EfficientNet-Lite0's pooled width; other backbones' arrays are "I" wide
TEXT_DIM = 384

#: Every label ``crossover_ros.synthetic.furniture`` gives an object, sorted (ids = positions).
OBJECT_LABELS: tuple[str, ...] = (
    "armchair",
    "backpack",
    "bed",
    "books",
    "bookshelf",
    "box",
    "cabinet",
    "chair",
    "coffee table",
    "desk",
    "kitchen counter",
    "lamp",
    "laptop",
    "monitor",
    "mug",
    "nightstand",
    "office chair",
    "picture",
    "plant",
    "refrigerator",
    "sofa",
    "table",
    "trash can",
    "tv",
    "vase",
    "wardrobe",
    "whiteboard",
)
_LABEL_IDS = {label: i for i, label in enumerate(OBJECT_LABELS)}


@dataclass(frozen=True)
class FeatureCfg:
    """What is extracted per scan; stored in each cache file, and a change invalidates it."""

    max_objects: int = 150
    crops_per_object: int = 3
    crop_size: int = 128
    crop_pad: float = 0.1  # share of the box's longer side added on each side
    min_crop_pixels: int = 200
    min_object_points: int = 10
    object_points: int = 512
    mesh_points: int = 512
    scene_points: int = 4096
    max_frames: int = 20
    region_grid: tuple[int, int] = (4, 5)  # cells (rows, columns) of a frame's region features
    referrals_per_scene: int = 10
    floorplan_size: int = 224
    seed: int = 0  # per-scan generators derive from (seed, scan_id): independent of scan order


class ImageFeatureEncoder(Protocol):
    """What is needed of the image backbone (``ImageDescriptorEncoder`` and its DINOv2 subclass
    fit)."""

    @property
    def fingerprint(self) -> str: ...

    @property
    def feature_dim(self) -> int:
        """Width of ``pooled_features``."""
        ...

    def pooled_features(
        self, images: list[np.ndarray], batch_size: int = 16, size: tuple[int, int] | None = None
    ) -> np.ndarray: ...

    def pooled_and_region_features(
        self, images: list[np.ndarray], grid: tuple[int, int], batch_size: int = 16
    ) -> tuple[np.ndarray, np.ndarray]: ...


class TextFeatureEncoder(Protocol):
    """What is needed of the text backbone (``TextBackbone`` fits)."""

    @property
    def fingerprint(self) -> str: ...

    def encode(self, sentences: list[str]) -> np.ndarray: ...


# ---------------------------------------------------------------------------------------------
# Pose sampling


def pose_vectors(poses: np.ndarray) -> np.ndarray:
    """(N, 7) translation + unit quaternion (x, y, z, w), sign fixed to w >= 0 (q ~ -q)."""
    poses = np.asarray(poses, np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise ValueError(f"poses should be (N, 4, 4), got {poses.shape}")
    if len(poses) == 0:
        return np.zeros((0, 7))
    quat = Rotation.from_matrix(poses[:, :3, :3]).as_quat()
    quat *= np.where(quat[:, 3:] < 0, -1.0, 1.0)
    return np.concatenate([poses[:, :3, 3], quat], axis=1)


def _pose_distance(vectors: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Euclidean distance in translation + quaternion space, with q and -q taken as one."""
    moved = np.sum((vectors[:, :3] - ref[:3]) ** 2, axis=1)
    turned = np.minimum(
        np.sum((vectors[:, 3:] - ref[3:]) ** 2, axis=1),
        np.sum((vectors[:, 3:] + ref[3:]) ** 2, axis=1),
    )
    return np.sqrt(moved + turned)


def farthest_point_sample_poses(poses: np.ndarray, k: int, start: int = 0) -> np.ndarray:
    """Indices (pick order, int64) of ``k`` poses spread out in translation + quaternion space.

    Greedy farthest point sampling from pose ``start``: each pick is the pose farthest from all
    picked so far (ties: lowest index), so the result is deterministic. All poses if k >= N.
    The quaternion distance is the smaller of |q1 - q2| and |q1 + q2| (a sign flip is no turn).
    """
    vectors = pose_vectors(poses)
    count = len(vectors)
    if k >= count:
        return np.arange(count, dtype=np.int64)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    picks = [int(start)]
    distance = _pose_distance(vectors, vectors[start])
    for _ in range(k - 1):
        pick = int(np.argmax(distance))
        picks.append(pick)
        distance = np.minimum(distance, _pose_distance(vectors, vectors[pick]))
    return np.asarray(picks, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# Per-modality pieces


def _select_objects(scan: Scan, max_objects: int) -> list:
    """Instances with id != 0 sorted by id; over the cap, the largest boxes (by volume) stay."""
    objects = sorted((i for i in scan.instances if i.id != 0), key=lambda i: i.id)
    if len(objects) > max_objects:
        volume = [float(np.prod(np.maximum(i.box_max - i.box_min, 0.0))) for i in objects]
        keep = np.argsort(-np.asarray(volume), kind="stable")[:max_objects]
        objects = [objects[i] for i in sorted(keep)]
    return objects


def _sample_rows(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    """``size`` row indices out of ``count``: without replacement when there are enough."""
    return rng.choice(count, size=size, replace=count < size)


def _object_points(
    xyz: np.ndarray,
    rgb: np.ndarray,
    inst: np.ndarray,
    ids: np.ndarray,
    centroids: np.ndarray,
    cfg: FeatureCfg,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    out = np.zeros((len(ids), cfg.object_points, 6), np.float32)
    mask = np.zeros(len(ids), bool)
    for row, (obj, centre) in enumerate(zip(ids, centroids, strict=True)):
        members = np.flatnonzero(inst == obj)
        if len(members) < max(cfg.min_object_points, 1):
            continue
        pick = members[_sample_rows(rng, len(members), cfg.object_points)]
        out[row, :, :3] = xyz[pick] - centre
        out[row, :, 3:] = rgb[pick].astype(np.float32) / 255.0
        mask[row] = True
    return out, mask


def _mesh_points(
    scan: Scan, ids: np.ndarray, centroids: np.ndarray, cfg: FeatureCfg, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted uniform samples on each object's own faces (the paper's mesh branch)."""
    vertices, faces, owner = scan.mesh_faces()
    out = np.zeros((len(ids), cfg.mesh_points, 3), np.float32)
    mask = np.zeros(len(ids), bool)
    for row, (obj, centre) in enumerate(zip(ids, centroids, strict=True)):
        corners = vertices[faces[owner == obj]]  # (M, 3, 3)
        if len(corners) == 0:
            continue
        edge1, edge2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
        area = 0.5 * np.linalg.norm(np.cross(edge1, edge2), axis=1)
        if not area.sum() > 0:
            continue
        face = rng.choice(len(corners), size=cfg.mesh_points, p=area / area.sum())
        u, v = rng.random(cfg.mesh_points), rng.random(cfg.mesh_points)
        flip = u + v > 1.0  # fold the unit square onto the triangle: uniform over its area
        u[flip], v[flip] = 1.0 - u[flip], 1.0 - v[flip]
        points = corners[face, 0] + u[:, None] * edge1[face] + v[:, None] * edge2[face]
        out[row] = points - centre
        mask[row] = True
    return out, mask


def _object_crops(
    scan: Scan, ids: np.ndarray, cfg: FeatureCfg
) -> tuple[
    list[np.ndarray], np.ndarray, np.ndarray, list[np.ndarray], list[np.ndarray], np.ndarray
]:
    """Crops (flat list), their frame (K, C) and window (K, C, 3) ids; every frame's colours,
    instance ids and pose."""
    row_of = {int(obj): row for row, obj in enumerate(ids)}
    candidates: list[list[tuple[int, int, tuple[int, int, int]]]] = [[] for _ in ids]
    colors, instances, poses = [], [], []
    for index in range(scan.num_frames):
        frame = scan.frame(index)
        colors.append(frame.color)
        instances.append(frame.instance)
        poses.append(frame.camera_to_world)
        height, width = frame.instance.shape
        for box in instance_boxes(frame.instance):
            row = row_of.get(box.instance_id)
            if row is None or box.pixels < cfg.min_crop_pixels:
                continue
            window = square_crop_window(box, height, width, cfg.crop_pad)
            candidates[row].append((box.pixels, index, window))
    crop_frames = np.full((len(ids), cfg.crops_per_object), -1, np.int64)
    crop_windows = np.zeros((len(ids), cfg.crops_per_object, 3), np.int64)
    crops = []
    for row, found in enumerate(candidates):
        best = sorted(found, key=lambda c: (-c[0], c[1]))[: cfg.crops_per_object]
        for slot, (_, index, window) in enumerate(best):
            crop_frames[row, slot] = index
            crop_windows[row, slot] = window
            crops.append(crop_square(colors[index], window))
    pose_array = np.asarray(poses, np.float64).reshape(-1, 4, 4)
    return crops, crop_frames, crop_windows, colors, instances, pose_array


def region_objects(
    instances: list[np.ndarray], ids: np.ndarray, grid: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Per frame and grid cell (row by row): the row in ``ids`` (sorted) of the object that
    covers most of the cell (-1: none of them; ties: the later row) and the share it covers;
    (F, rows * columns) each. The region encoder's training labels."""
    rows, columns = grid
    owners = np.full((len(instances), rows * columns), -1, np.int64)
    shares = np.zeros((len(instances), rows * columns), np.float32)
    if len(ids) == 0:
        return owners, shares
    for f, instance in enumerate(instances):
        height, width = instance.shape
        row_of = np.minimum(np.searchsorted(ids, instance), len(ids) - 1)
        row_of[ids[row_of] != instance] = -1  # background, or an object not kept
        for cell in range(rows * columns):
            r, c = divmod(cell, columns)
            window = row_of[
                r * height // rows : (r + 1) * height // rows,
                c * width // columns : (c + 1) * width // columns,
            ]
            counts = np.bincount(window[window >= 0], minlength=len(ids))
            if counts.any():
                best = len(ids) - 1 - int(np.argmax(counts[::-1]))
                owners[f, cell], shares[f, cell] = best, counts[best] / window.size
    return owners, shares


def _square_pad(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    side = max(height, width)
    return crop_square(image, ((width - side) // 2, (height - side) // 2, side))


# ---------------------------------------------------------------------------------------------
# Extraction


def extract_scan_features(
    scan: Scan,
    image_encoder: ImageFeatureEncoder,
    text_encoder: TextFeatureEncoder,
    cfg: FeatureCfg | None = None,
    rng: np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Every frozen feature of one scan as named arrays (see :class:`ScanFeatures` for each).

    Strings (labels, referral texts) are not arrays: :func:`feature_metadata` derives them from
    the scan and ``object_ids`` / ``referral_indices``. Same scan, cfg and rng state give
    identical arrays; each random draw has its own child generator so that changing one count
    (e.g. ``scene_points``) does not change the samples of another modality.
    """
    cfg = cfg or FeatureCfg()
    rng = rng if rng is not None else scan_rng(scan.scan_id, cfg)
    rng_points, rng_mesh, rng_scene, rng_text = (
        np.random.default_rng(int(s)) for s in rng.integers(0, 2**63 - 1, size=4)
    )
    objects = _select_objects(scan, cfg.max_objects)
    ids = np.asarray([o.id for o in objects], np.int64)
    centroids = np.asarray([o.centroid for o in objects], np.float64).reshape(-1, 3)
    sizes = np.asarray([o.box_max - o.box_min for o in objects], np.float64).reshape(-1, 3)
    label_ids = np.asarray([_LABEL_IDS.get(o.label, -1) for o in objects], np.int64)

    # Images: object crops (one batch through the backbone), frames, floorplan.
    crops, crop_frames, crop_windows, colors, instances, poses = _object_crops(scan, ids, cfg)
    crop_features = image_encoder.pooled_features(
        crops, batch_size=32, size=(cfg.crop_size, cfg.crop_size)
    )
    width = image_encoder.feature_dim
    object_crops = np.zeros((*crop_frames.shape, width), np.float32)
    object_crops[crop_frames >= 0] = crop_features  # crops come row by row, slot by slot
    counts = (crop_frames >= 0).sum(axis=1)
    object_image = object_crops.sum(axis=1) / np.maximum(counts, 1)[:, None].astype(np.float32)

    frame_indices = np.sort(farthest_point_sample_poses(poses, cfg.max_frames))
    frame_features, frame_regions = image_encoder.pooled_and_region_features(
        [colors[i] for i in frame_indices], cfg.region_grid
    )
    owners, shares = region_objects([instances[i] for i in frame_indices], ids, cfg.region_grid)
    size = cfg.floorplan_size
    floorplan = image_encoder.pooled_features([_square_pad(scan.floorplan())], size=(size, size))

    # Points: per object from the scan's point cloud, per object from the mesh, whole scene.
    xyz, rgb, inst = scan.point_cloud()
    object_points, object_points_mask = _object_points(
        xyz, rgb, inst, ids, centroids, cfg, rng_points
    )
    mesh_points, mesh_mask = _mesh_points(scan, ids, centroids, cfg, rng_mesh)
    if len(xyz) == 0:
        raise DataError(f"scan {scan.scan_id} has an empty point cloud")
    pick = _sample_rows(rng_scene, len(xyz), cfg.scene_points)
    scene_points = np.concatenate([xyz[pick], rgb[pick].astype(np.float32) / 255.0], axis=1)

    # Text: every distinct sentence encoded once.
    referrals = [(int(r["instance_id"]), str(r["text"])) for r in scan.referrals]
    sentences = sorted({text for _, text in referrals})
    embedding = dict(
        zip(sentences, text_encoder.encode(sentences) if sentences else [], strict=True)
    )
    object_text = np.zeros((len(ids), TEXT_DIM), np.float32)
    object_text_mask = np.zeros(len(ids), bool)
    row_of = {int(obj): row for row, obj in enumerate(ids)}
    for row in range(len(ids)):
        about = [embedding[text] for obj, text in referrals if row_of.get(obj) == row]
        if about:
            mean = np.mean(about, axis=0)
            object_text[row] = mean / max(float(np.linalg.norm(mean)), 1e-12)
            object_text_mask[row] = True
    if referrals:
        count = min(cfg.referrals_per_scene, len(referrals))
        chosen = np.sort(rng_text.choice(len(referrals), size=count, replace=False))
        referral_features = np.stack([embedding[referrals[i][1]] for i in chosen])
    else:  # one zero row keeps R >= 1; metadata says has_referrals = false
        chosen = np.full(1, -1, np.int64)
        referral_features = np.zeros((1, TEXT_DIM), np.float32)

    return {
        "object_ids": ids,
        "object_label_ids": label_ids,
        "object_centroids": centroids.astype(np.float32),
        "object_sizes": sizes.astype(np.float32),
        "object_image": object_image,
        "object_image_mask": counts > 0,
        "object_crop_features": object_crops,
        "object_crop_frames": crop_frames,
        "object_crop_windows": crop_windows,
        "object_points": object_points,
        "object_points_mask": object_points_mask,
        "object_mesh_points": mesh_points,
        "object_mesh_mask": mesh_mask,
        "object_text": object_text,
        "object_text_mask": object_text_mask,
        "scene_points": scene_points.astype(np.float32),
        "frame_indices": frame_indices.astype(np.int64),
        "frame_features": frame_features.astype(np.float32).reshape(-1, width),
        "frame_poses": poses[frame_indices].astype(np.float32).reshape(-1, 4, 4),
        "frame_regions": frame_regions.astype(np.float16),
        "frame_region_objects": owners,
        "frame_region_shares": shares,
        "floorplan_features": floorplan.astype(np.float32).reshape(width),
        "referral_indices": chosen.astype(np.int64),
        "referral_features": referral_features.astype(np.float32).reshape(-1, TEXT_DIM),
    }


def scan_rng(scan_id: str, cfg: FeatureCfg) -> np.random.Generator:
    """The generator a scan's features are drawn with: from cfg.seed and the scan id only."""
    return np.random.default_rng([cfg.seed, zlib.crc32(scan_id.encode())])


def feature_metadata(
    scan: Scan, arrays: dict[str, np.ndarray], cfg: FeatureCfg, fingerprints: dict[str, str]
) -> dict[str, str]:
    """The safetensors metadata of a cache file: strings, cfg and extractor fingerprints."""
    labels = {o.id: o.label for o in scan.instances}
    object_ids = [int(i) for i in arrays["object_ids"]]
    referrals = scan.referrals
    chosen = [int(i) for i in arrays["referral_indices"] if i >= 0]
    return {
        "format": FORMAT,
        "scan_id": scan.scan_id,
        "room_id": str(scan.room_id),
        "scan_index": str(scan.scan_index),
        "cfg": _cfg_json(cfg),
        "fingerprints": json.dumps(fingerprints, sort_keys=True),
        "label_vocabulary": json.dumps(list(OBJECT_LABELS)),
        "object_labels": json.dumps([labels[i] for i in object_ids]),
        "object_referrals": json.dumps(
            [[str(r["text"]) for r in referrals if int(r["instance_id"]) == i] for i in object_ids]
        ),
        "referral_texts": json.dumps([str(referrals[i]["text"]) for i in chosen]),
        "has_referrals": json.dumps(bool(chosen)),
    }


def _cfg_json(cfg: FeatureCfg) -> str:
    return json.dumps(asdict(cfg), sort_keys=True)


# ---------------------------------------------------------------------------------------------
# Cache files


@dataclass
class ScanFeatures:
    """One scan's cached features. K objects, F frames, R referrals (R >= 1)."""

    scan_id: str
    room_id: str  # a generated room's number, a ScanNet sceneXXXX or a 3RScan reference id
    scan_index: int
    object_ids: np.ndarray  # (K,) int64, sorted
    object_labels: list[str]
    object_label_ids: np.ndarray  # (K,) int64 into label_vocabulary, -1 unknown
    object_centroids: np.ndarray  # (K, 3) float32 room frame
    object_sizes: np.ndarray  # (K, 3) float32 box extents
    object_image: np.ndarray  # (K, I) float32 mean of crop features (I: image feature width)
    object_image_mask: np.ndarray  # (K,) bool
    object_crop_features: np.ndarray  # (K, C, I) float32 each crop's features, 0 where none
    object_crop_frames: np.ndarray  # (K, C) int64 frame of each crop, -1 none
    object_crop_windows: np.ndarray  # (K, C, 3) int64 (x0, y0, side) in that frame
    object_points: np.ndarray  # (K, P, 6) float32 xyz - centroid, rgb in [0, 1]
    object_points_mask: np.ndarray  # (K,) bool
    object_mesh_points: np.ndarray  # (K, M, 3) float32 xyz - centroid
    object_mesh_mask: np.ndarray  # (K,) bool
    object_text: np.ndarray  # (K, 384) float32 unit
    object_text_mask: np.ndarray  # (K,) bool
    scene_points: np.ndarray  # (S, 6) float32 room frame xyz, rgb in [0, 1]
    frame_indices: np.ndarray  # (F,) int64
    frame_features: np.ndarray  # (F, I) float32
    frame_poses: np.ndarray  # (F, 4, 4) float32 camera-to-room
    frame_regions: np.ndarray  # (F, T, J) float16 region features, T grid cells, J = I / 2
    frame_region_objects: np.ndarray  # (F, T) int64 object row covering most of a cell, -1 none
    frame_region_shares: np.ndarray  # (F, T) float32 share of the cell that object covers
    floorplan_features: np.ndarray  # (I,) float32
    referral_indices: np.ndarray  # (R,) int64 into the scan's referrals, [-1] if none
    referral_features: np.ndarray  # (R, 384) float32
    referral_texts: list[str]
    object_referrals: list[list[str]]
    has_referrals: bool
    label_vocabulary: list[str]
    cfg: dict[str, Any] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)

    @property
    def num_objects(self) -> int:
        return len(self.object_ids)


_ARRAY_SPECS: dict[str, tuple[str, tuple[str | int, ...]]] = {
    "object_ids": ("int64", ("K",)),
    "object_label_ids": ("int64", ("K",)),
    "object_centroids": ("float32", ("K", 3)),
    "object_sizes": ("float32", ("K", 3)),
    "object_image": ("float32", ("K", "I")),
    "object_image_mask": ("bool", ("K",)),
    "object_crop_features": ("float32", ("K", "C", "I")),
    "object_crop_frames": ("int64", ("K", "C")),
    "object_crop_windows": ("int64", ("K", "C", 3)),
    "object_points": ("float32", ("K", "P", 6)),
    "object_points_mask": ("bool", ("K",)),
    "object_mesh_points": ("float32", ("K", "M", 3)),
    "object_mesh_mask": ("bool", ("K",)),
    "object_text": ("float32", ("K", TEXT_DIM)),
    "object_text_mask": ("bool", ("K",)),
    "scene_points": ("float32", ("S", 6)),
    "frame_indices": ("int64", ("F",)),
    "frame_features": ("float32", ("F", "I")),
    "frame_poses": ("float32", ("F", 4, 4)),
    "frame_regions": ("float16", ("F", "T", "J")),
    "frame_region_objects": ("int64", ("F", "T")),
    "frame_region_shares": ("float32", ("F", "T")),
    "floorplan_features": ("float32", ("I",)),
    "referral_indices": ("int64", ("R",)),
    "referral_features": ("float32", ("R", TEXT_DIM)),
}


def _check_arrays(arrays: dict[str, np.ndarray], where: str) -> None:
    missing = sorted(set(_ARRAY_SPECS) - set(arrays))
    if missing:
        raise DataError(f"{where}: missing arrays {missing}")
    dims: dict[str, int] = {}
    for name, (dtype, shape) in _ARRAY_SPECS.items():
        array = arrays[name]
        if array.dtype != np.dtype(dtype) or array.ndim != len(shape):
            raise DataError(f"{where}: {name} is {array.dtype} {array.shape}, expected {dtype}")
        for axis, (want, got) in enumerate(zip(shape, array.shape, strict=True)):
            expected = dims.setdefault(want, got) if isinstance(want, str) else want
            if got != expected:
                raise DataError(f"{where}: {name} axis {axis} is {got}, expected {expected}")
    if dims["R"] < 1:
        raise DataError(f"{where}: no referral rows")


def _read_metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="numpy") as handle:
        return dict(handle.metadata() or {})


def load_scan_features(path: Path | str) -> ScanFeatures:
    """Read and check one cache file; DataError if it is missing, corrupt or inconsistent."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"missing feature file {path}")
    try:
        arrays = load_file(str(path))
        meta = _read_metadata(path)
    except Exception as err:  # safetensors raises its own error types (and OSError)
        raise DataError(f"corrupt feature file {path}: {err}") from err
    return scan_features_from_arrays(arrays, meta, str(path))


def scan_features_from_arrays(
    arrays: dict[str, np.ndarray], meta: dict[str, str], where: str = "features"
) -> ScanFeatures:
    """Check and type the arrays and metadata of one scan, from a cache file or just extracted."""
    if meta.get("format") != FORMAT:
        raise DataError(f"{where} is not a {FORMAT} file (format {meta.get('format')!r})")
    _check_arrays(arrays, where)
    try:
        parsed = {
            key: json.loads(meta[key])
            for key in (
                "cfg",
                "fingerprints",
                "label_vocabulary",
                "object_labels",
                "object_referrals",
                "referral_texts",
                "has_referrals",
            )
        }
        room_id, scan_index = str(meta["room_id"]), int(meta["scan_index"])
        scan_id = meta["scan_id"]
    except (KeyError, ValueError, TypeError) as err:
        raise DataError(f"corrupt metadata in {where}: {err}") from err
    count = len(arrays["object_ids"])
    if len(parsed["object_labels"]) != count or len(parsed["object_referrals"]) != count:
        raise DataError(f"{where}: metadata lists do not match {count} objects")
    return ScanFeatures(
        scan_id=scan_id,
        room_id=room_id,
        scan_index=scan_index,
        object_labels=[str(s) for s in parsed["object_labels"]],
        referral_texts=[str(s) for s in parsed["referral_texts"]],
        object_referrals=[[str(s) for s in texts] for texts in parsed["object_referrals"]],
        has_referrals=bool(parsed["has_referrals"]),
        label_vocabulary=[str(s) for s in parsed["label_vocabulary"]],
        cfg=dict(parsed["cfg"]),
        fingerprints=dict(parsed["fingerprints"]),
        **{f.name: arrays[f.name] for f in fields(ScanFeatures) if f.name in _ARRAY_SPECS},
    )


def is_current(path: Path, cfg: FeatureCfg, fingerprints: dict[str, str]) -> bool:
    """True when ``path`` is a readable cache file made with this cfg and these extractors."""
    if not path.is_file():
        return False
    try:
        meta = _read_metadata(path)
    except Exception:  # unreadable: recompute rather than fail
        return False
    return (
        meta.get("format") == FORMAT
        and meta.get("cfg") == _cfg_json(cfg)
        and meta.get("fingerprints") == json.dumps(fingerprints, sort_keys=True)
    )


def save_scan_features(path: Path, arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write atomically (temp file in the same folder, then os.replace): never a half file."""
    _check_arrays(arrays, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, tmp, metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
