"""Reading ScanNet scenes in their documented on-disk layout.

Layout (ScanNet v2 release, one folder per scan; ``scans/`` or the folder itself)::

    <root>/scans/sceneXXXX_YY/
        sceneXXXX_YY_vh_clean_2.ply                 mesh: x y z red green blue [alpha], faces
        sceneXXXX_YY_vh_clean_2.0.010000.segs.json  {"segIndices": [segment per vertex]}
        sceneXXXX_YY.aggregation.json               {"segGroups": [{"objectId", "label",
                                                     "segments": [...]}]}  (or _vh_clean.)
        sceneXXXX_YY.sens                           RGB-D stream (ScanNet's SensorData format:
                                                     colour, depth, camera-to-world poses)
        color/N.jpg depth/N.png pose/N.txt          the same, exported by ScanNet's reader
        intrinsic/intrinsic_depth.txt               (these folders are read when present)

``XXXX`` is the room, ``YY`` the rescan of it: room ``sceneXXXX``, scan index ``YY``. Instance ids
are ``objectId + 1`` (ScanNet's instance images use the same numbering, 0 = none). Depth is
uint16 millimetres (shift 1000); frames without tracking have -inf poses and are skipped.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from crossover_ros.datasets.ply import read_ply
from crossover_ros.datasets.scan import read_image, read_json, read_matrix
from crossover_ros.datasets.sequence import SequenceScan, is_rigid
from crossover_ros.errors import DataError
from crossover_ros.frames import CameraIntrinsics

SCENE_NAME = re.compile(r"^scene(\d{4})_(\d{2})$")
SENS_COLOR = {0: "raw", 1: "png", 2: "jpeg"}
SENS_DEPTH = {0: "raw", 1: "zlib_ushort"}  # 2 (occi_ushort) is not in the public release


def intrinsics_from_matrix(k: np.ndarray, width: int, height: int) -> CameraIntrinsics:
    return CameraIntrinsics(
        width, height, float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2])
    )


def depth_from_millimetres(depth_mm: np.ndarray, shift: float = 1000.0) -> np.ndarray:
    """float32 metres, NaN where the sensor gave 0."""
    depth = depth_mm.astype(np.float32) / np.float32(shift)
    depth[depth_mm == 0] = np.nan
    return depth


class SensFile:
    """A ScanNet ``.sens`` file: its header and an index of its frames, read once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with path.open("rb") as file:
                version, name_len = struct.unpack("<IQ", file.read(12))
                if version != 4:
                    raise DataError(f"{path}: .sens version {version} is not supported (4 is)")
                file.read(name_len)
                matrices = np.frombuffer(file.read(4 * 16 * 4), "<f4").reshape(4, 4, 4)
                self.color_type, self.depth_type = struct.unpack("<ii", file.read(8))
                sizes = struct.unpack("<IIIIf", file.read(20))
                (count,) = struct.unpack("<Q", file.read(8))
                if self.color_type not in SENS_COLOR or self.depth_type not in SENS_DEPTH:
                    raise DataError(
                        f"{path}: unsupported .sens compression (colour {self.color_type}, "
                        f"depth {self.depth_type})"
                    )
                self.depth_intrinsics = matrices[2].astype(np.float64)
                self.color_size, self.depth_size = sizes[:2], sizes[2:4]
                self.depth_shift = float(sizes[4])
                self.poses, self._chunks = [], []
                for index in range(count):
                    head = file.read(16 * 4 + 32)
                    if len(head) != 96:
                        raise DataError(f"{path} is truncated at frame {index}")
                    self.poses.append(np.frombuffer(head[:64], "<f4").reshape(4, 4).astype(float))
                    color_bytes, depth_bytes = struct.unpack("<QQ", head[80:96])
                    start = file.tell()
                    self._chunks.append((start, color_bytes, start + color_bytes, depth_bytes))
                    file.seek(color_bytes + depth_bytes, 1)
                if file.tell() > path.stat().st_size:
                    raise DataError(f"{path} is truncated at frame {count - 1}")
        except (OSError, struct.error, ValueError) as err:
            raise DataError(f"{path}: unreadable .sens file ({err})") from err

    def _read(self, offset: int, size: int) -> bytes:
        with self.path.open("rb") as file:
            file.seek(offset)
            return file.read(size)

    def color(self, index: int) -> np.ndarray:
        data = self._read(*self._chunks[index][:2])
        if SENS_COLOR[self.color_type] == "raw":
            width, height = self.color_size
            return np.frombuffer(data, np.uint8).reshape(height, width, 3).copy()
        try:
            with Image.open(io.BytesIO(data)) as image:
                return np.array(image.convert("RGB"))
        except (OSError, ValueError) as err:
            raise DataError(f"{self.path}: corrupt colour frame {index} ({err})") from err

    def depth(self, index: int) -> np.ndarray:
        data = self._read(*self._chunks[index][2:])
        width, height = self.depth_size
        try:
            if SENS_DEPTH[self.depth_type] == "zlib_ushort":
                data = zlib.decompress(data)
            depth_mm = np.frombuffer(data, "<u2").reshape(height, width)
        except (zlib.error, ValueError) as err:
            raise DataError(f"{self.path}: corrupt depth frame {index} ({err})") from err
        return depth_from_millimetres(depth_mm, self.depth_shift)


@dataclass
class ScanNetScene(SequenceScan):
    """One ScanNet scan folder; files are read on demand."""

    path: Path
    frame_step: int = 10

    @property
    def scan_id(self) -> str:
        return self.path.name

    @property
    def room_id(self) -> str:
        return self.scan_id[:9]

    @property
    def scan_index(self) -> int:
        return int(self.scan_id[10:12])

    def _file(self, *suffixes: str) -> Path:
        for suffix in suffixes:
            file = self.path / f"{self.scan_id}{suffix}"
            if file.exists():
                return file
        raise DataError(f"{self.path} lacks {self.scan_id}{suffixes[0]}")

    def _read_mesh(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        columns, faces = read_ply(self._file("_vh_clean_2.ply"))
        return columns, self._instance_per_vertex(len(columns["x"])), faces

    def _aggregation(self) -> list[dict]:
        data = read_json(self._file(".aggregation.json", "_vh_clean.aggregation.json"))
        try:
            return [g for g in data["segGroups"] if "objectId" in g and "label" in g]
        except (KeyError, TypeError) as err:
            raise DataError(f"{self.path}: malformed aggregation ({err})") from err

    def _instance_per_vertex(self, count: int) -> np.ndarray:
        segs = read_json(self._file("_vh_clean_2.0.010000.segs.json"))
        try:
            seg_of_vertex = np.asarray(segs["segIndices"], np.int64)
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{self.path}: malformed segments ({err})") from err
        if len(seg_of_vertex) != count:
            raise DataError(f"{self.path}: {len(seg_of_vertex)} segment ids for {count} vertices")
        instance = np.zeros(count, np.uint16)
        for group in self._aggregation():
            instance[np.isin(seg_of_vertex, group["segments"])] = int(group["objectId"]) + 1
        return instance

    def _read_labels(self) -> dict[int, str]:
        return {int(g["objectId"]) + 1: str(g["label"]) for g in self._aggregation()}

    # Frames: the exported folders when present, else the .sens stream.

    @cached_property
    def _sens(self) -> SensFile | None:
        exported = all((self.path / name).is_dir() for name in ("color", "depth", "pose"))
        return None if exported else SensFile(self._file(".sens"))

    @cached_property
    def _exported_poses(self) -> dict[int, np.ndarray]:
        poses = {}
        for file in (self.path / "pose").glob("*.txt"):
            try:
                poses[int(file.stem)] = np.loadtxt(file, dtype=np.float64).reshape(4, 4)
            except (OSError, ValueError) as err:
                raise DataError(f"corrupt pose file {file}: {err}") from err
        return poses

    def _frame_keys(self) -> list[int]:
        if self._sens is not None:
            return [i for i, pose in enumerate(self._sens.poses) if is_rigid(pose)]
        return sorted(i for i, pose in self._exported_poses.items() if is_rigid(pose))

    def _pose(self, key: int) -> np.ndarray:
        return self._sens.poses[key] if self._sens is not None else self._exported_poses[key]

    def _read_color(self, key: int) -> np.ndarray:
        if self._sens is not None:
            return self._sens.color(key)
        return np.asarray(read_image(self.path / "color" / f"{key}.jpg"))[..., :3]

    def _read_depth(self, key: int) -> np.ndarray:
        if self._sens is not None:
            return self._sens.depth(key)
        return depth_from_millimetres(read_image(self.path / "depth" / f"{key}.png"))

    def _depth_intrinsics(self) -> CameraIntrinsics:
        if self._sens is not None:
            width, height = self._sens.depth_size
            return intrinsics_from_matrix(self._sens.depth_intrinsics, width, height)
        k = read_matrix(self.path / "intrinsic" / "intrinsic_depth.txt")
        height, width = self._read_depth(self._keys[0]).shape
        return intrinsics_from_matrix(k, width, height)


def find_scannet_scenes(root: Path | str, frame_step: int = 10) -> list[ScanNetScene]:
    """The scan folders under ``root`` (itself, ``root/scans`` or ``root``'s children)."""
    root = Path(root)
    base = root / "scans" if (root / "scans").is_dir() else root
    if SCENE_NAME.match(base.name):
        return [ScanNetScene(base, frame_step)]
    scenes = [
        ScanNetScene(p, frame_step) for p in sorted(base.iterdir()) if SCENE_NAME.match(p.name)
    ]
    if not scenes:
        raise DataError(f"no ScanNet scan folders (sceneXXXX_YY) under {root}")
    return scenes
