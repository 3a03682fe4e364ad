"""Recording a new map scene on a live mapping run, without ROS (the ``map_recorder`` node).

The recorder gets keyframes from :class:`~crossover_ros.pipeline.stream.SensorStream` (the same
pairing, checks and keyframe rule as the recogniser), keeps their colour images (bounded: when
full, every second one is dropped and only every second new keyframe is kept, so the images
still cover the whole run), and fuses their depth into one voxel cloud in the odometry frame.
For a model that finds objects in frames (CrossOver's region encoder), each kept keyframe also
keeps where the cells of the encoder's grid lie in the odometry frame (their depth), so the
objects found in them can be placed and merged into the scene's instances: no instance masks.
``save`` embeds the run with the map's model and adds the scene, with its cloud, to the map.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from crossover_ros.config import setting, validate
from crossover_ros.errors import CrossoverError, DataError
from crossover_ros.frames import RGBDFrame
from crossover_ros.mapdb.base import MapBase
from crossover_ros.mapdb.records import SceneRecord, voxel_downsample
from crossover_ros.pipeline.fusion import backproject_depth

__all__ = [
    "KeyframeImages",
    "RecordingCfg",
    "SceneRecording",
    "cell_points",
]


@dataclass(frozen=True)
class RecordingCfg:
    max_keyframes: int = setting(
        200,
        "Colour keyframes kept per scene (640x480: 0.9 MB each; when full, every second one is"
        " dropped, so they still cover the whole run).",
        2,
        10000,
    )
    fuse_cloud: bool = setting(
        True, "Store the fused point cloud (odometry frame) with the scene (needs odometry)."
    )
    voxel_m: float = 0.05  # the stored cloud's voxel size (as `map build` stores)
    max_cloud_points: int = 2_000_000  # the fused cloud is re-voxelised beyond this

    def __post_init__(self) -> None:
        validate(self)


class KeyframeImages:
    """Colour images of keyframes, at most ``capacity``, spread over the whole run, each with
    optional per-image data (``extras``: where its cells lie) thinned along with it."""

    def __init__(self, capacity: int) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2, got {capacity}")
        self.capacity = capacity
        self.stride = 1  # keep every stride-th offered keyframe
        self.offered = 0
        self._images: list[np.ndarray] = []
        self.stamps: list[float] = []
        self.extras: list[Any] = []

    def __len__(self) -> int:
        return len(self._images)

    def due(self) -> bool:
        """Whether the next offered image will be kept (so its extras are worth computing)."""
        index = self.offered
        if index % self.stride:
            return False
        return len(self._images) < self.capacity or not index % (2 * self.stride)

    def add(self, color: np.ndarray, stamp: float, extra: Any = None) -> bool:
        """Keep a copy of ``color`` (and ``extra``) if it is due; True if kept."""
        keep = self.due()
        self.offered += 1
        if not keep:
            return False
        if len(self._images) >= self.capacity:  # thin out: every other image, stride doubled
            self._images, self.stamps = self._images[::2], self.stamps[::2]
            self.extras = self.extras[::2]
            self.stride *= 2
        self._images.append(np.array(color, dtype=np.uint8, copy=True))  # may be a msg view
        self.stamps.append(float(stamp))
        self.extras.append(extra)
        return True

    def images(self) -> list[np.ndarray]:
        return list(self._images)

    def clear(self) -> None:
        self._images, self.stamps, self.extras = [], [], []
        self.stride, self.offered = 1, 0


def cell_points(
    frame: RGBDFrame,
    camera_to_odom: np.ndarray,
    grid: tuple[int, int],
    min_valid: float = 0.25,
    stride: int = 2,
) -> np.ndarray:
    """(rows * columns, 3) float32: where each cell of ``grid`` lies in the odometry frame.

    Cells split the image row by row into equal blocks, about as the region encoder splits its
    feature map (``model.layers.grid_mean``); a cell's place is the median of its pixels'
    back-projected depth, NaN where fewer than ``min_valid`` of its pixels have a reading.
    """

    rows, columns = grid
    height, width = frame.depth.shape
    xyz, flat = backproject_depth(frame.depth, frame.intrinsics, stride)
    row = np.minimum((flat // width) * rows // height, rows - 1)
    column = np.minimum((flat % width) * columns // width, columns - 1)
    cell = row * columns + column
    cells = rows * columns
    pixels_per_cell = len(range(0, height, stride)) * len(range(0, width, stride)) / cells
    rotation, translation = camera_to_odom[:3, :3], camera_to_odom[:3, 3]
    out = np.full((cells, 3), np.nan, np.float32)
    for index in range(len(out)):
        points = xyz[cell == index]
        if len(points) and len(points) >= min_valid * pixels_per_cell:
            out[index] = rotation @ np.median(points, axis=0) + translation
    return out


class SceneRecording:
    """Keyframes and fused cloud of one mapping run, until :meth:`save` stores them as a scene.

    ``fusion``: a ``PointCloudFusion`` (``add``, ``cloud``, ``reset``, ``__len__``, ``cfg``) or
    None to store no cloud. Its window is folded into the run's cloud whenever it is full.
    ``cell_grid``: the map's model finds objects on this grid of cells (``encoder.cell_grid``);
    each kept keyframe with a pose then keeps where its cells lie (:func:`cell_points`).
    """

    def __init__(
        self,
        cfg: RecordingCfg | None = None,
        fusion: Any = None,
        cell_grid: tuple[int, int] | None = None,
    ) -> None:
        self.cfg = cfg or RecordingCfg()
        self.keyframes = KeyframeImages(self.cfg.max_keyframes)
        self.fusion = fusion
        self.cell_grid = cell_grid
        self.odom_frame = ""
        self._chunks: list[tuple[np.ndarray, np.ndarray]] = []
        self._chunk_points = 0

    # the encoders' embed_recording reads these ---------------------------------------------
    def color_images(self) -> list[np.ndarray]:
        return self.keyframes.images()

    def cell_points(self) -> list[np.ndarray | None]:
        """Per kept image, where its cells lie (:func:`cell_points`), None where unknown."""
        return list(self.keyframes.extras)

    # ----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.keyframes)

    def add(self, frame: RGBDFrame, pose: np.ndarray | None, odom_frame: str = "") -> None:
        """One keyframe: its image (if due) and, with a pose, its depth into the cloud."""
        cells = None
        if self.cell_grid is not None and pose is not None and self.keyframes.due():
            cells = cell_points(frame, pose, self.cell_grid)
        self.keyframes.add(frame.color, frame.stamp, cells)
        if self.fusion is None or pose is None:
            return
        self.odom_frame = self.odom_frame or odom_frame
        self.fusion.add(frame, pose)
        if len(self.fusion) >= self.fusion.cfg.max_keyframes:
            self._fold()

    def cloud(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(xyz float32, rgb uint8) of the run in the odometry frame, voxelised; None if none."""
        self._fold()
        if not self._chunks:
            return None
        xyz = np.concatenate([c[0] for c in self._chunks])
        rgb = np.concatenate([c[1] for c in self._chunks])
        return voxel_downsample(xyz, rgb, self.cfg.voxel_m)

    def in_frame(
        self,
        transform: np.ndarray,
        frame: str,
        base_cloud: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> SceneRecording:
        """A copy of the run whose cloud and cell places are moved by ``transform`` (4x4,
        odometry -> ``frame``), sharing the images: to store a visit in the frame of a scan it
        was registered to, while this recording stays as it was should the store fail.
        ``base_cloud`` (xyz, rgb uint8, already in ``frame``): that scan's cloud, joined to the
        run's, so what the visit did not see keeps its old geometry."""
        self._fold()
        transform = np.asarray(transform, np.float64)
        rotation, translation = transform[:3, :3], transform[:3, 3]

        def move(xyz: np.ndarray) -> np.ndarray:
            return (np.asarray(xyz, np.float64) @ rotation.T + translation).astype(np.float32)

        out = SceneRecording(self.cfg, None, self.cell_grid)
        out.keyframes = copy.copy(self.keyframes)
        out.keyframes.stamps = list(self.keyframes.stamps)
        out.keyframes.extras = [None if e is None else move(e) for e in self.keyframes.extras]
        out._chunks = [(move(xyz), rgb) for xyz, rgb in self._chunks]
        out._chunk_points = self._chunk_points
        if base_cloud is not None and len(base_cloud[0]):
            out._chunks.append((np.asarray(base_cloud[0], np.float32), base_cloud[1]))
            out._chunk_points += len(base_cloud[0])
        out.odom_frame = frame
        return out

    def clear(self) -> None:
        self.keyframes.clear()
        self._chunks, self._chunk_points = [], 0
        if self.fusion is not None:
            self.fusion.reset()

    def save(
        self,
        mapdb: MapBase,
        encoder: Any,
        scene_id: str,
        building_id: str,
        room_id: str,
        scan_index: int = 0,
        frame_to_building: np.ndarray | None = None,
        *,
        parent_scene: str | None = None,
        source: str = "",
    ) -> SceneRecord:
        """Embed the run with ``encoder`` (the map's model: ``embed_recording``) and add the
        scene, its instances (if the model finds any) and its cloud to ``mapdb``.
        ``frame_to_building``: the odometry frame's pose in the building, when known (scenes
        with one pool their poses per building, see ``pipeline/relocalize.py``).
        ``parent_scene`` and ``source``: the scan's provenance (``SceneRecord``).

        The recording is cleared only if the scene was stored. Raises CrossoverError (nothing
        stored) without keyframes, for another model's map, or a scene id already present.
        """
        if not len(self):
            raise DataError("no keyframes recorded yet: nothing to save")
        if not scene_id:
            raise DataError("scene_id is empty: set the scene_id parameter")
        if mapdb.model_fingerprint != encoder.fingerprint:
            raise CrossoverError(
                f"map {mapdb.path} holds model {mapdb.model_fingerprint}, the recorder's is"
                f" {encoder.fingerprint}"
            )
        embeddings, instances = encoder.embed_recording(self)
        stamps = self.keyframes.stamps
        record = SceneRecord(
            scene_id,
            building_id,
            room_id,
            scan_index,
            scan_time=stamps[0] if stamps and math.isfinite(stamps[0]) else None,
            frame=self.odom_frame or "odom",
            frame_to_building=None
            if frame_to_building is None
            else tuple(float(v) for v in np.asarray(frame_to_building).reshape(-1)),
            parent_scene=parent_scene,
            source=source,
        )
        mapdb.add_scene(record, embeddings, instances, self.cloud())
        self.clear()
        return record

    def _fold(self) -> None:
        """Move the fusion window's cloud into the run's chunks; re-voxelise when large."""
        if self.fusion is None or not len(self.fusion):
            return
        xyz, rgb = self.fusion.cloud()
        rgb8 = np.clip(np.rint(np.asarray(rgb) * 255.0), 0, 255).astype(np.uint8)
        self._chunks.append((np.array(xyz, np.float32), rgb8))
        self._chunk_points += len(xyz)
        self.fusion.reset()
        if self._chunk_points > self.cfg.max_cloud_points:
            merged = voxel_downsample(
                np.concatenate([c[0] for c in self._chunks]),
                np.concatenate([c[1] for c in self._chunks]),
                self.cfg.voxel_m,
            )
            self._chunks, self._chunk_points = [merged], len(merged[0])
