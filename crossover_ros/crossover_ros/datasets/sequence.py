"""Real RGB-D scans (ScanNet, 3RScan) with the interface of the generated scans.

A layout reader (``scannet.py``, ``rscan.py``) says where a scan's labelled mesh and frames are;
this base gives them what feature extraction, maps and bags read from a generated scan
(``scan.py``): frames with depth, pose, intrinsics and an instance mask, each instance's faces of
the mesh, a floorplan, instances with boxes. The datasets ship no instance images, so a frame's
mask is the labelled mesh as the camera sees it: each valid depth pixel takes the instance of the
nearest mesh vertex within ``MASK_RADIUS_M``. That is also the visibility check: a vertex behind
another surface is never the nearest to a pixel. Referrals are left empty (a missing modality,
which the model supports).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import distance_transform_edt
from scipy.spatial import cKDTree

from crossover_ros.datasets.scan import InstanceInfo
from crossover_ros.errors import DataError
from crossover_ros.frames import CameraIntrinsics, RGBDFrame

MASK_RADIUS_M = 0.05  # a depth pixel this close to a labelled vertex shows its instance
MASK_STRIDE = 2  # masks are labelled on every 2nd row and column, then filled in blocks
FLOORPLAN_M_PER_PIXEL = 0.025  # the generated floorplans' scale, which the model was trained on
FLOORPLAN_MARGIN_M = 0.15
FLOORPLAN_MAX_HEIGHT_M = 2.2  # above the floor: left out of the floorplan, like a ceiling
FLOORPLAN_FILL_PIXELS = 2


def is_rigid(pose: np.ndarray) -> bool:
    """A finite 4x4 rigid transform (ScanNet marks frames without tracking by -inf poses)."""
    if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
        return False
    rotation = pose[:3, :3]
    return bool(
        np.allclose(pose[3], (0, 0, 0, 1), atol=1e-4)
        and np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-3)
        and np.linalg.det(rotation) > 0
    )


def instances_from_labels(
    xyz: np.ndarray, instance: np.ndarray, labels: dict[int, str]
) -> list[InstanceInfo]:
    """One InstanceInfo per labelled instance that has points: id, label and box."""
    out = []
    for inst_id, label in sorted(labels.items()):
        points = xyz[instance == inst_id]
        if inst_id == 0 or len(points) == 0:
            continue
        out.append(
            InstanceInfo(
                int(inst_id),
                label,
                label,
                points.mean(axis=0).astype(np.float64),
                points.min(axis=0).astype(np.float64),
                points.max(axis=0).astype(np.float64),
                color_name="",
                state="static",
                support="floor",
            )
        )
    return out


class SequenceScan(ABC):
    """A scan read from a dataset's layout; subclasses say where its files are.

    Only every ``frame_step``-th frame with a valid pose is kept (``frame(0)`` is the first).
    """

    # What a layout provides: these attributes (fields or properties) and the methods below.
    path: Path
    frame_step: int
    scan_id: str
    room_id: str
    scan_index: int

    @abstractmethod
    def _read_mesh(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """(vertex columns with x y z red green blue, (N,) instance id per vertex, faces)."""

    @abstractmethod
    def _read_labels(self) -> dict[int, str]:
        """Instance id -> label."""

    @abstractmethod
    def _frame_keys(self) -> list[Hashable]:
        """Every frame with a valid pose, in order."""

    @abstractmethod
    def _read_color(self, key: Hashable) -> np.ndarray: ...

    @abstractmethod
    def _read_depth(self, key: Hashable) -> np.ndarray:
        """(H, W) float32 metres, NaN where there is no reading."""

    @abstractmethod
    def _pose(self, key: Hashable) -> np.ndarray:
        """4x4 camera-to-scan pose, OpenCV optical convention."""

    @abstractmethod
    def _depth_intrinsics(self) -> CameraIntrinsics: ...

    # --- what every scan offers -----------------------------------------------------------------

    frame_rate_hz = 30.0  # of the raw sequence; kept frames are frame_step apart

    @property
    def referrals(self) -> list[dict]:
        return []

    @cached_property
    def _mesh(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        columns, instance, faces = self._read_mesh()
        try:
            xyz = np.stack([columns[k] for k in "xyz"], axis=1).astype(np.float32)
            rgb = np.stack([columns[k] for k in ("red", "green", "blue")], axis=1)
        except KeyError as err:
            raise DataError(f"{self.path}: mesh lacks vertex property {err}") from err
        if len(xyz) == 0:
            raise DataError(f"{self.path}: the mesh has no vertices")
        return xyz, rgb.astype(np.uint8), instance.astype(np.uint16), faces

    def point_cloud(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(xyz float32, rgb uint8, instance uint16) per mesh vertex, in the scan's frame."""
        xyz, rgb, instance, _ = self._mesh
        return xyz, rgb, instance

    def mesh_faces(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(vertices float64, (M, 3) faces, instance of each face: of its first vertex)."""
        xyz, _, instance, faces = self._mesh
        owner = instance[faces[:, 0]].astype(np.int64) if len(faces) else np.zeros(0, np.int64)
        return xyz.astype(np.float64), faces, owner

    @cached_property
    def instances(self) -> list[InstanceInfo]:
        xyz, _, instance, _ = self._mesh
        return instances_from_labels(xyz, instance, self._read_labels())

    @cached_property
    def _keys(self) -> list[Hashable]:
        keys = self._frame_keys()[:: self.frame_step]
        if not keys:
            raise DataError(f"{self.path}: no frame with a valid pose")
        return keys

    @property
    def num_frames(self) -> int:
        return len(self._keys)

    @cached_property
    def intrinsics(self) -> CameraIntrinsics:
        return self._depth_intrinsics()

    @cached_property
    def _vertex_tree(self) -> cKDTree:
        return cKDTree(self._mesh[0])

    def frame(self, index: int) -> RGBDFrame:
        """Kept frame ``index``: colour resized to the depth image, depth, pose, instance mask."""
        if not 0 <= index < self.num_frames:
            raise IndexError(f"frame {index} out of range 0..{self.num_frames - 1}")
        key = self._keys[index]
        depth = self._read_depth(key)
        intrinsics = self.intrinsics
        if depth.shape != (intrinsics.height, intrinsics.width):
            raise DataError(f"{self.path}: depth frame {key} is {depth.shape}, not the intrinsics'")
        color = self._read_color(key)
        if color.shape[:2] != depth.shape:
            size = (depth.shape[1], depth.shape[0])
            color = np.array(Image.fromarray(color).resize(size, Image.Resampling.BILINEAR))
        pose = self._pose(key)
        stamp = index * self.frame_step / self.frame_rate_hz
        return RGBDFrame(color, depth, intrinsics, stamp, pose, self._instance_mask(depth, pose))

    def _instance_mask(self, depth: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """(H, W) uint16: the instance of the nearest labelled vertex behind each depth pixel."""
        k, s = self.intrinsics, MASK_STRIDE
        rows, cols = np.mgrid[0 : depth.shape[0] : s, 0 : depth.shape[1] : s]
        z = depth[rows, cols]
        valid = np.isfinite(z) & (z > 0)
        x = (cols[valid] - k.cx) / k.fx * z[valid]
        y = (rows[valid] - k.cy) / k.fy * z[valid]
        points = np.stack([x, y, z[valid]], axis=1) @ pose[:3, :3].T + pose[:3, 3]
        distance, nearest = self._vertex_tree.query(points, distance_upper_bound=MASK_RADIUS_M)
        labels = np.zeros(len(points), np.uint16)
        found = np.isfinite(distance)
        labels[found] = self._mesh[2][nearest[found]]
        coarse = np.zeros(rows.shape, np.uint16)
        coarse[valid] = labels
        full = np.repeat(np.repeat(coarse, s, axis=0), s, axis=1)[
            : depth.shape[0], : depth.shape[1]
        ]
        return np.where(np.isfinite(depth), full, 0).astype(np.uint16)

    def frames(self) -> Iterator[RGBDFrame]:
        for index in range(self.num_frames):
            yield self.frame(index)

    def color_images(self) -> Iterator[np.ndarray]:
        """The kept frames' colour images (no depth read): what a frame-matching map stores."""
        for key in self._keys:
            yield self._read_color(key)

    def floorplan(self) -> np.ndarray:
        """(H, W, 3) uint8 top-down view of the mesh, as the generated scans draw theirs: north
        (+y) up, 2.5 cm a pixel, no ceiling, colours shaded by height, black where nothing is."""
        xyz, rgb, _, _ = self._mesh
        floor = float(np.percentile(xyz[:, 2], 2))
        keep = xyz[:, 2] < floor + FLOORPLAN_MAX_HEIGHT_M
        xyz, rgb = xyz[keep], rgb[keep].astype(np.float32) / 255.0
        low = xyz[:, :2].min(axis=0) - FLOORPLAN_MARGIN_M
        high = xyz[:, :2].max(axis=0) + FLOORPLAN_MARGIN_M
        width, height = np.ceil((high - low) / FLOORPLAN_M_PER_PIXEL).astype(int).tolist()
        column = np.minimum(((xyz[:, 0] - low[0]) / FLOORPLAN_M_PER_PIXEL).astype(int), width - 1)
        row = np.minimum(((high[1] - xyz[:, 1]) / FLOORPLAN_M_PER_PIXEL).astype(int), height - 1)
        shade = 0.7 + 0.3 * np.clip((xyz[:, 2] - floor) / 2.5, 0, 1)
        image = np.zeros((height, width, 3), np.float32)
        seen = np.zeros((height, width), bool)
        order = np.argsort(xyz[:, 2], kind="stable")  # the highest point of a pixel is drawn last
        image[row[order], column[order]] = rgb[order] * shade[order, None]
        seen[row, column] = True
        # vertices are sparser than pixels: fill small holes from the nearest drawn pixel
        distance, (near_row, near_column) = distance_transform_edt(~seen, return_indices=True)
        fill = ~seen & (distance <= FLOORPLAN_FILL_PIXELS)
        image[fill] = image[near_row[fill], near_column[fill]]
        return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
