"""Reading generated buildings and scans (a ScanNet/3RScan-like layout on disk).

Layout written by :func:`crossover_ros.synthetic.building.generate_building`::

    <out>/building.json        {"building_id", "seed", "split", "config", "rooms": [{"room_id",
                                "room_type", "template_id" (shared by look-alike rooms, else null),
                                "room_to_building" (4x4; rooms side by side along a corridor at
                                y < 0 in the building frame), "size"}], "scans": [{"scan_id",
                                "room_id", "scan_index", "reference_scan_id" (null for index 0)}]}
    <out>/scans/<scan_id>/
        scan.json              ids, room type/template, room size [w, d, h], door and windows
                               (wall, interval, centre), lighting, removed_instance_ids, frame
                               count and rate, image size, floorplan mapping
        mesh.ply               triangle mesh, per-face RGB (albedo at face centres), room frame
        geometry.npz           vertices, faces, face_instance, face_material, instance_poses
                               (object-to-room per instance id), material_* arrays, light_* arrays:
                               all a Renderer needs to render new views exactly
        points.npz             xyz float32 (N, 3) room frame, rgb uint8 (N, 3) albedo,
                               instance uint16 (N,), 0 = walls/floor; no ceiling points
        instances.json         [{"id", "label", "category", "centroid", "box_min", "box_max",
                                 "color_name", "state" (static|moved|new), "support"
                                 ("floor" | "wall" | parent instance id)}]
        referrals.json         [{"instance_id", "text"}]
        floorplan.png          top-down orthographic colour image, no ceiling, north (+y) up
        frames/intrinsic.txt   4x4 K (like ScanNet's intrinsic_depth.txt)
        frames/color/NNNNNN.png   RGB8
        frames/depth/NNNNNN.png   uint16 millimetres, 0 = no reading
        frames/instance/NNNNNN.png uint16 instance ids (exact, from the renderer)
        frames/pose/NNNNNN.txt     4x4 camera-to-room, OpenCV optical convention

Room frame: x along the corridor wall, y into the room, z up, floor at z = 0, door in the y = 0
wall. Scan ids are ``f"{building_id}_room{room:03d}_{scan_index:02d}"``; scan_index 0 is the
reference scan, later indices are rescans in which objects moved, vanished or appeared. An
instance keeps its id across the scans of a room; new objects get ids never used before in it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from crossover_ros.errors import DataError
from crossover_ros.frames import CameraIntrinsics, RGBDFrame


def scan_id_for(building_id: str, room: int, scan_index: int) -> str:
    """The scan id convention of this package."""
    return f"{building_id}_room{room:03d}_{scan_index:02d}"


def room_key(scan_id: str) -> str:
    """Scans of the same room share everything but the trailing scan index."""
    return scan_id.rsplit("_", 1)[0]


def read_json(path: Path) -> Any:
    """JSON content, or DataError naming the file."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise DataError(f"missing file {path}") from err
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"corrupt JSON file {path}: {err}") from err


def read_image(path: Path) -> np.ndarray:
    """Image pixels as an array, or DataError naming the file."""
    try:
        with Image.open(path) as image:
            return np.array(image)
    except FileNotFoundError as err:
        raise DataError(f"missing image {path}") from err
    except (OSError, ValueError, SyntaxError) as err:
        raise DataError(f"corrupt image {path}: {err}") from err


def read_matrix(path: Path, shape: tuple[int, int] = (4, 4)) -> np.ndarray:
    """A whitespace-separated matrix text file."""
    try:
        matrix = np.loadtxt(path, dtype=np.float64)
    except FileNotFoundError as err:
        raise DataError(f"missing file {path}") from err
    except (OSError, ValueError) as err:
        raise DataError(f"corrupt matrix file {path}: {err}") from err
    if matrix.shape != shape or not np.all(np.isfinite(matrix)):
        raise DataError(f"{path} should hold a finite {shape} matrix, got shape {matrix.shape}")
    return matrix


@dataclass(frozen=True)
class InstanceInfo:
    """One object of a scan (from instances.json)."""

    id: int
    label: str
    category: str
    centroid: np.ndarray
    box_min: np.ndarray
    box_max: np.ndarray
    color_name: str
    state: str
    support: str | int

    @classmethod
    def from_json(cls, data: dict) -> InstanceInfo:
        return cls(
            int(data["id"]),
            str(data["label"]),
            str(data.get("category", data["label"])),
            np.asarray(data["centroid"], np.float64),
            np.asarray(data["box_min"], np.float64),
            np.asarray(data["box_max"], np.float64),
            str(data["color_name"]),
            str(data["state"]),
            data["support"],
        )


@dataclass
class Scan:
    """One scan directory; heavy files are read on demand."""

    path: Path
    meta: dict
    instances: list[InstanceInfo]
    intrinsics: CameraIntrinsics

    @property
    def scan_id(self) -> str:
        return str(self.meta["scan_id"])

    @property
    def room_id(self) -> int:
        return int(self.meta["room_id"])

    @property
    def scan_index(self) -> int:
        return int(self.meta["scan_index"])

    @property
    def reference_scan_id(self) -> str | None:
        return self.meta.get("reference_scan_id")

    @property
    def room_size(self) -> tuple[float, float, float]:
        w, d, h = self.meta["room_size"]
        return (float(w), float(d), float(h))

    @property
    def removed_instance_ids(self) -> list[int]:
        return [int(i) for i in self.meta.get("removed_instance_ids", [])]

    @property
    def num_frames(self) -> int:
        return int(self.meta["num_frames"])

    @property
    def frame_rate_hz(self) -> float:
        return float(self.meta.get("frame_rate_hz", 1.0))

    @cached_property
    def referrals(self) -> list[dict]:
        data = read_json(self.path / "referrals.json")
        if not isinstance(data, list):
            raise DataError(f"{self.path / 'referrals.json'} should hold a list")
        return data

    def frame(self, index: int) -> RGBDFrame:
        """Frame ``index``: colour, depth (NaN where the png is 0), pose and instance mask."""
        if not 0 <= index < self.num_frames:
            raise IndexError(f"frame {index} out of range 0..{self.num_frames - 1}")
        name = f"{index:06d}"
        frames = self.path / "frames"
        color = read_image(frames / "color" / f"{name}.png")
        depth_mm = read_image(frames / "depth" / f"{name}.png")
        instance = read_image(frames / "instance" / f"{name}.png")
        pose = read_matrix(frames / "pose" / f"{name}.txt")
        shape = (self.intrinsics.height, self.intrinsics.width)
        if color.shape != (*shape, 3) or depth_mm.shape != shape or instance.shape != shape:
            raise DataError(f"frame {name} of {self.path} has images of the wrong size")
        depth = depth_mm.astype(np.float32) / 1000.0
        depth[depth_mm == 0] = np.nan
        return RGBDFrame(
            color,
            depth,
            self.intrinsics,
            index / self.frame_rate_hz,
            pose,
            instance.astype(np.uint16),
        )

    def frames(self) -> Iterator[RGBDFrame]:
        for index in range(self.num_frames):
            yield self.frame(index)

    def color_images(self) -> Iterator[np.ndarray]:
        """Every frame's colour image: what a frame-matching map stores (every reader has it)."""
        for frame in self.frames():
            yield frame.color

    def point_cloud(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(xyz float32 (N, 3), rgb uint8 (N, 3), instance uint16 (N,)) in the room frame."""
        file = self.path / "points.npz"
        try:
            with np.load(file, allow_pickle=False) as data:
                xyz, rgb, inst = data["xyz"], data["rgb"], data["instance"]
        except FileNotFoundError as err:
            raise DataError(f"missing point cloud {file}") from err
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"corrupt point cloud {file}: {err}") from err
        if xyz.ndim != 2 or xyz.shape[1] != 3 or len(rgb) != len(xyz) or len(inst) != len(xyz):
            raise DataError(f"inconsistent arrays in {file}")
        return xyz.astype(np.float32), rgb.astype(np.uint8), inst.astype(np.uint16)

    def floorplan(self) -> np.ndarray:
        """(H, W, 3) uint8 top-down image."""
        return read_image(self.path / "floorplan.png")

    def mesh_faces(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(vertices float64, (M, 3) faces, instance of each face) of the scan's mesh."""
        file = self.path / "geometry.npz"
        try:
            with np.load(file, allow_pickle=False) as data:
                vertices = np.asarray(data["vertices"], np.float64)
                faces = np.asarray(data["faces"], np.int64)
                owner = np.asarray(data["face_instance"], np.int64)
        except FileNotFoundError as err:
            raise DataError(f"missing scan geometry {file}") from err
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"corrupt scan geometry {file}: {err}") from err
        if faces.ndim != 2 or faces.shape[1] != 3 or len(owner) != len(faces):
            raise DataError(f"inconsistent mesh arrays in {file}")
        if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
            raise DataError(f"face indices out of range in {file}")
        return vertices, faces, owner


def load_scan(path: Path | str) -> Scan:
    """Open a scan directory (scan.json, instances.json, frames/intrinsic.txt are read now)."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"scan directory {path} does not exist")
    meta = read_json(path / "scan.json")
    raw = read_json(path / "instances.json")
    try:
        instances = [InstanceInfo.from_json(item) for item in raw]
        width, height = (int(v) for v in meta["image_size"])
        for key in ("scan_id", "room_id", "scan_index", "room_size", "num_frames"):
            meta[key]
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"malformed scan metadata in {path}: {err}") from err
    k = read_matrix(path / "frames" / "intrinsic.txt")
    intrinsics = CameraIntrinsics(
        width, height, float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2])
    )
    return Scan(path, meta, instances, intrinsics)


@dataclass(frozen=True)
class ScanInfo:
    """A scan as listed in building.json."""

    scan_id: str
    room_id: int
    scan_index: int
    reference_scan_id: str | None
    path: Path


@dataclass
class Building:
    """A generated building: rooms along a corridor and their scans."""

    building_id: str
    path: Path
    meta: dict
    scans: list[ScanInfo] = field(default_factory=list)

    @property
    def rooms(self) -> list[dict]:
        return list(self.meta["rooms"])

    def room_pose(self, room_id: int) -> np.ndarray:
        """4x4 room-to-building transform."""
        for room in self.meta["rooms"]:
            if int(room["room_id"]) == room_id:
                return np.asarray(room["room_to_building"], np.float64)
        raise KeyError(f"no room {room_id} in building {self.building_id}")

    def scan(self, scan_id: str) -> Scan:
        for info in self.scans:
            if info.scan_id == scan_id:
                return load_scan(info.path)
        raise KeyError(f"no scan {scan_id} in building {self.building_id}")


def load_building(path: Path | str) -> Building:
    """Open a building directory written by ``generate_building``."""
    path = Path(path)
    meta = read_json(path / "building.json")
    try:
        scans = [
            ScanInfo(
                str(s["scan_id"]),
                int(s["room_id"]),
                int(s["scan_index"]),
                s.get("reference_scan_id"),
                path / "scans" / str(s["scan_id"]),
            )
            for s in meta["scans"]
        ]
        building = Building(str(meta["building_id"]), path, meta, scans)
        for room in meta["rooms"]:
            building.room_pose(int(room["room_id"]))
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"malformed {path / 'building.json'}: {err}") from err
    return building
