"""Recording a new map scene on a live mapping run, without ROS (the ``map_recorder`` node).

The recorder gets keyframes from :class:`~crossover_ros.pipeline.stream.SensorStream` (the same
pairing, checks and keyframe rule as the recogniser), keeps their colour images (bounded: when
full, every second one is dropped and only every second new keyframe is kept, so the images
still cover the whole run), and fuses their depth into one voxel cloud in the odometry frame.
``save`` embeds the images with the map's model and adds the scene, with its cloud, to the map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from crossover_ros.errors import CrossoverError, DataError
from crossover_ros.frames import RGBDFrame
from crossover_ros.mapdb.base import MapBase
from crossover_ros.mapdb.records import SceneRecord, voxel_downsample

__all__ = ["KeyframeImages", "RecordingCfg", "SceneRecording"]


@dataclass(frozen=True)
class RecordingCfg:
    max_keyframes: int = 200  # colour images kept (640x480: 0.9 MB each)
    voxel_m: float = 0.05  # the stored cloud's voxel size (as `map build` stores)
    max_cloud_points: int = 2_000_000  # the fused cloud is re-voxelised beyond this


class KeyframeImages:
    """Colour images of keyframes, at most ``capacity``, spread over the whole run."""

    def __init__(self, capacity: int) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2, got {capacity}")
        self.capacity = capacity
        self.stride = 1  # keep every stride-th offered keyframe
        self.offered = 0
        self._images: list[np.ndarray] = []
        self.stamps: list[float] = []

    def __len__(self) -> int:
        return len(self._images)

    def add(self, color: np.ndarray, stamp: float) -> bool:
        """Keep a copy of ``color`` if it is due; True if kept."""
        index, self.offered = self.offered, self.offered + 1
        if index % self.stride:
            return False
        if len(self._images) >= self.capacity:
            self._images, self.stamps = self._images[::2], self.stamps[::2]
            self.stride *= 2
            if index % self.stride:
                return False
        self._images.append(np.array(color, dtype=np.uint8, copy=True))  # may be a msg view
        self.stamps.append(float(stamp))
        return True

    def images(self) -> list[np.ndarray]:
        return list(self._images)

    def clear(self) -> None:
        self._images, self.stamps = [], []
        self.stride, self.offered = 1, 0


class SceneRecording:
    """Keyframes and fused cloud of one mapping run, until :meth:`save` stores them as a scene.

    ``fusion``: a ``PointCloudFusion`` (``add``, ``cloud``, ``reset``, ``__len__``, ``cfg``) or
    None to store no cloud. Its window is folded into the run's cloud whenever it is full.
    """

    def __init__(self, cfg: RecordingCfg | None = None, fusion: Any = None) -> None:
        self.cfg = cfg or RecordingCfg()
        self.keyframes = KeyframeImages(self.cfg.max_keyframes)
        self.fusion = fusion
        self.odom_frame = ""
        self._chunks: list[tuple[np.ndarray, np.ndarray]] = []
        self._chunk_points = 0

    # embed_scan reads these -------------------------------------------------------------
    scan_id = "recording"

    def color_images(self) -> list[np.ndarray]:
        return self.keyframes.images()

    # ----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.keyframes)

    def add(self, frame: RGBDFrame, pose: np.ndarray | None, odom_frame: str = "") -> None:
        """One keyframe: its image (if due) and, with a pose, its depth into the cloud."""
        self.keyframes.add(frame.color, frame.stamp)
        if self.fusion is None or pose is None:
            return
        self.odom_frame = self.odom_frame or odom_frame
        self.fusion.add(frame, pose)
        if len(self.fusion) >= self.fusion.cfg.max_keyframes:
            self._fold()

    def cloud(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(xyz float32, rgb uint8) of the run in the odometry frame, voxelised; None if none."""
        if self.fusion is None:
            return None
        self._fold()
        if not self._chunks:
            return None
        xyz = np.concatenate([c[0] for c in self._chunks])
        rgb = np.concatenate([c[1] for c in self._chunks])
        return voxel_downsample(xyz, rgb, self.cfg.voxel_m)

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
    ) -> SceneRecord:
        """Embed the keyframes with ``encoder`` (the map's model) and add the scene to ``mapdb``.

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
        embeddings, _ = encoder.embed_scan(self)
        stamps = self.keyframes.stamps
        record = SceneRecord(
            scene_id,
            building_id,
            room_id,
            scan_index,
            scan_time=stamps[0] if stamps and math.isfinite(stamps[0]) else None,
            frame=self.odom_frame or "odom",
        )
        mapdb.add_scene(record, embeddings, [], self.cloud())
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
