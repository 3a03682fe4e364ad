"""Plain records shared by both map backends, and the checks every write goes through."""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field

import numpy as np

from crossover_ros.errors import MapDatabaseError

SCHEMA_VERSION = 3
# Schema 2 lacks only the scans' provenance (parent_scene, source): it is read as is and
# migrated when opened for writing. Older schemas lack clouds, boxes and masks: rebuild.
MIGRATABLE_SCHEMA_VERSION = 2

# The modalities CrossOver embeds into one space; any other name is accepted too (lowercase).
KNOWN_MODALITIES = ("rgb", "point_cloud", "mesh", "floorplan", "referral")
_MODALITY_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass(frozen=True)
class SceneRecord:
    """Identity of one stored scan.

    ``frame`` names the coordinate frame of the scene's point cloud and instance centroids
    (generated scans: the room frame); ``frame_to_building`` is its 4x4 pose in the building,
    row-major, when known. ``scan_time`` is seconds since the epoch, when known.
    ``parent_scene``: the scan this one was added as a rescan of (None for an original scan);
    ``source``: where it came from ("map build", "bag <name>", "node update"; free text).
    """

    scene_id: str
    building_id: str
    room_id: str
    scan_index: int = 0
    scan_time: float | None = None
    frame: str = "room"
    frame_to_building: tuple[float, ...] | None = None
    parent_scene: str | None = None
    source: str = ""


def newest_first_key(record: SceneRecord) -> tuple[float, int, str]:
    """Sort key (use with ``reverse=True``) putting a room's newest scan first: by scan time
    (unknown: oldest), then scan index, then id so the order never depends on the backend."""
    time_ = -math.inf if record.scan_time is None else float(record.scan_time)
    return (time_, int(record.scan_index), record.scene_id)


@dataclass(frozen=True)
class SceneCandidate:
    """One ranked answer of :meth:`query`: higher score is better (cosine, -1..1)."""

    scene_id: str
    score: float
    building_id: str = ""
    room_id: str = ""


@dataclass(frozen=True)
class InstanceMatch:
    """Query object ``query_index`` is stored instance ``instance_id`` with cosine ``score``."""

    query_index: int
    instance_id: int
    score: float


@dataclass(frozen=True)
class InstanceMatching:
    """Result of instance matching inside one scene; unmatched objects are listed, not forced."""

    matches: list[InstanceMatch] = field(default_factory=list)
    unmatched_queries: list[int] = field(default_factory=list)
    unmatched_instances: list[int] = field(default_factory=list)


@dataclass
class SceneData:
    """Everything stored for one scene: what export/import moves between backends."""

    record: SceneRecord
    embeddings: dict[str, np.ndarray]
    instances: list[dict]
    cloud: tuple[np.ndarray, np.ndarray] | None = None


def check_modality(name: str) -> str:
    """Modality names become SQL identifiers' suffixes and index names: keep them tame."""
    if not isinstance(name, str) or not _MODALITY_NAME.match(name):
        raise MapDatabaseError(
            f"modality name {name!r} must be lowercase letters, digits and '_' (at most 32)"
        )
    return name


def check_vectors(vectors: object, dim: int, what: str) -> np.ndarray:
    """(K>0, dim) finite float32, or MapDatabaseError naming ``what``."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or array.shape[1] != dim or len(array) == 0:
        raise MapDatabaseError(f"{what} vectors must be (K>0, {dim}), got {array.shape}")
    if not np.isfinite(array).all():
        raise MapDatabaseError(f"{what}: non-finite vectors")
    return np.ascontiguousarray(array)


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """Unit rows, so a dot product is a cosine; zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def check_embeddings(
    record: SceneRecord, embeddings: dict[str, np.ndarray], dim: int
) -> dict[str, np.ndarray]:
    """Validated, unit-normalised per-modality vectors of one scene."""
    if not embeddings:
        raise MapDatabaseError(f"scene {record.scene_id}: no embeddings given")
    out = {}
    for modality, vectors in embeddings.items():
        check_modality(modality)
        array = check_vectors(vectors, dim, f"scene {record.scene_id}: '{modality}'")
        out[modality] = normalise_rows(array)
    return out


def check_instances(record: SceneRecord, instances: list[dict] | None, dim: int) -> list[dict]:
    """Instances as plain dicts: id, label, centroid, optional box_min/box_max, embeddings."""
    out = []
    seen: set[int] = set()
    for inst in instances or []:
        try:
            item: dict = {
                "id": int(inst["id"]),
                "label": str(inst["label"]),
                "centroid": [float(v) for v in inst["centroid"]],
            }
            for key in ("box_min", "box_max"):
                if inst.get(key) is not None:
                    item[key] = [float(v) for v in inst[key]]
        except (KeyError, TypeError, ValueError) as err:
            raise MapDatabaseError(
                f"scene {record.scene_id}: instance {inst!r} needs id, label, centroid ({err})"
            ) from err
        if item["id"] in seen:
            raise MapDatabaseError(f"scene {record.scene_id}: instance id {item['id']} twice")
        seen.add(item["id"])
        vectors = {}
        for modality, vector in (inst.get("embeddings") or {}).items():
            check_modality(modality)
            what = f"scene {record.scene_id} instance {item['id']} '{modality}'"
            vectors[modality] = normalise_rows(check_vectors(np.atleast_2d(vector), dim, what))[0]
        if vectors:
            item["embeddings"] = vectors
        out.append(item)
    return out


def modality_mask(modalities: list[str], bits: dict[str, int]) -> int:
    """Bit set of the modalities a scene has, bits from the map's modality table."""
    mask = 0
    for name in modalities:
        mask |= 1 << bits[name]
    return mask


# -- scene point clouds ---------------------------------------------------------------------
def voxel_downsample(
    xyz: np.ndarray, rgb: np.ndarray, voxel: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """One point per occupied voxel (mean position and colour): enough for pose refinement."""
    xyz = np.asarray(xyz, np.float32).reshape(-1, 3)
    rgb = np.asarray(rgb, np.uint8).reshape(-1, 3)
    if len(xyz) != len(rgb):
        raise MapDatabaseError(f"point cloud has {len(xyz)} points but {len(rgb)} colours")
    keep = np.isfinite(xyz).all(axis=1)
    xyz, rgb = xyz[keep], rgb[keep]
    if len(xyz) == 0:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)
    keys = np.floor(xyz / voxel).astype(np.int64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    out_xyz = np.stack(
        [np.bincount(inverse, xyz[:, i].astype(np.float64)) / counts for i in range(3)], axis=1
    )
    out_rgb = np.stack(
        [np.bincount(inverse, rgb[:, i].astype(np.float64)) / counts for i in range(3)], axis=1
    )
    return out_xyz.astype(np.float32), np.round(out_rgb).astype(np.uint8)


def encode_cloud(xyz: np.ndarray, rgb: np.ndarray) -> bytes:
    """Compressed npz bytes (no pickles) of xyz float32 (N, 3) and rgb uint8 (N, 3)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, xyz=np.asarray(xyz, np.float32), rgb=np.asarray(rgb, np.uint8))
    return buffer.getvalue()


def decode_cloud(blob: bytes, scene_id: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            xyz, rgb = data["xyz"], data["rgb"]
    except (OSError, ValueError, KeyError) as err:
        raise MapDatabaseError(f"corrupt point cloud of scene {scene_id}: {err}") from err
    return xyz.astype(np.float32), rgb.astype(np.uint8)
