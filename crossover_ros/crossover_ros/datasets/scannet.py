"""Reading ScanNet scenes in their documented on-disk layout, for building maps of real scans.

Layout (ScanNet v2 release, one folder per scan; ``scans/`` or the folder itself)::

    <root>/scans/sceneXXXX_YY/
        sceneXXXX_YY_vh_clean_2.ply                 mesh vertices: x y z red green blue [alpha]
        sceneXXXX_YY_vh_clean_2.0.010000.segs.json  {"segIndices": [segment per vertex]}
        sceneXXXX_YY.aggregation.json               {"segGroups": [{"objectId", "label",
                                                     "segments": [...]}]}  (or _vh_clean.)
        sceneXXXX_YY.sens                           RGB-D stream (ScanNet's SensorData format)
        color/N.jpg                                 frames exported from the .sens (optional)

``XXXX`` is the room, ``YY`` the rescan of it: room ``sceneXXXX``, scan index ``YY``. Instance ids
are ``objectId + 1`` (ScanNet's instance images use the same numbering, 0 = none).
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from crossover_ros.datasets.scan import read_json
from crossover_ros.errors import DataError

SCENE_NAME = re.compile(r"^scene(\d{4})_(\d{2})$")

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


def read_ply_vertices(path: Path) -> dict[str, np.ndarray]:
    """The vertex element of a PLY file (ascii or binary little-endian) as named columns."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"missing or unreadable PLY file {path}: {err}") from err
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise DataError(f"{path} is not a PLY file")
    body_start = raw.index(b"\n", end) + 1
    lines = raw[:end].decode("ascii", "replace").splitlines()
    fmt, count, fields, element = "", 0, [], None
    before = 0  # elements before "vertex" are not supported (ScanNet/3RScan put it first)
    for line in lines:
        words = line.split()
        if words[:1] == ["format"]:
            fmt = words[1]
        elif words[:1] == ["element"]:
            element = words[1]
            if element == "vertex":
                count = int(words[2])
            elif count == 0:
                before += 1
        elif words[:1] == ["property"] and element == "vertex":
            if words[1] == "list" or words[1] not in _PLY_TYPES:
                raise DataError(f"{path}: unsupported vertex property {line!r}")
            fields.append((words[2], _PLY_TYPES[words[1]]))
    if count == 0 or not fields or before:
        raise DataError(f"{path} has no leading vertex element")
    try:
        if fmt == "binary_little_endian":
            dtype = np.dtype([(name, "<" + t) for name, t in fields])
            data = np.frombuffer(raw, dtype=dtype, count=count, offset=body_start)
        elif fmt == "ascii":
            text = raw[body_start:].decode("ascii").split("\n")[:count]
            table = np.loadtxt(text, dtype=np.float64, ndmin=2)
            data = {name: table[:, i].astype(t) for i, (name, t) in enumerate(fields)}
        else:
            raise DataError(f"{path}: PLY format {fmt!r} not supported")
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: truncated or malformed PLY body ({err})") from err
    return {name: np.asarray(data[name]) for name, _ in fields}


def boxes_from_points(xyz: np.ndarray, instance: np.ndarray, labels: dict[int, str]) -> list[dict]:
    """Instance dicts (id, label, centroid, box_min, box_max) from labelled points."""
    out = []
    for inst_id, label in sorted(labels.items()):
        points = xyz[instance == inst_id]
        if len(points) == 0:
            continue
        out.append(
            {
                "id": int(inst_id),
                "label": label,
                "centroid": points.mean(axis=0).astype(float).tolist(),
                "box_min": points.min(axis=0).astype(float).tolist(),
                "box_max": points.max(axis=0).astype(float).tolist(),
            }
        )
    return out


def read_sens_colors(path: Path, step: int = 10) -> Iterator[np.ndarray]:
    """Every ``step``-th colour image of a ScanNet ``.sens`` file (jpeg or png frames)."""
    try:
        with path.open("rb") as file:
            (version,) = struct.unpack("<I", file.read(4))
            (name_len,) = struct.unpack("<Q", file.read(8))
            file.read(name_len + 4 * 16 * 4)
            color_type, _depth_type = struct.unpack("<ii", file.read(8))
            file.read(4 * 4 + 4)  # sizes, depth shift
            (frames,) = struct.unpack("<Q", file.read(8))
            if version != 4 or color_type not in (1, 2):
                raise DataError(
                    f"{path}: unsupported .sens (version {version}, colour {color_type})"
                )
            for index in range(frames):
                file.read(16 * 4 + 16)  # pose, timestamps
                color_size, depth_size = struct.unpack("<QQ", file.read(16))
                color = file.read(color_size)
                file.seek(depth_size, 1)
                if len(color) != color_size:
                    raise DataError(f"{path} is truncated at frame {index}")
                if index % step == 0:
                    with Image.open(io.BytesIO(color)) as image:
                        yield np.array(image.convert("RGB"))
    except (OSError, struct.error) as err:
        raise DataError(f"{path}: unreadable .sens file ({err})") from err


@dataclass
class ScanNetScene:
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

    def point_cloud(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(xyz float32, rgb uint8, instance uint16) per mesh vertex."""
        vertices = read_ply_vertices(self._file("_vh_clean_2.ply"))
        try:
            xyz = np.stack([vertices[k] for k in "xyz"], axis=1).astype(np.float32)
            rgb = np.stack([vertices[k] for k in ("red", "green", "blue")], axis=1)
        except KeyError as err:
            raise DataError(f"{self.path}: mesh lacks vertex property {err}") from err
        return xyz, rgb.astype(np.uint8), self._instance_per_vertex(len(xyz))

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

    @property
    def instances(self) -> list[dict]:
        xyz, _, instance = self.point_cloud()
        labels = {int(g["objectId"]) + 1: str(g["label"]) for g in self._aggregation()}
        return boxes_from_points(xyz, instance, labels)

    def color_images(self) -> Iterator[np.ndarray]:
        exported = self.path / "color"
        if exported.is_dir():
            files = sorted(exported.glob("*.jpg"), key=lambda p: int(p.stem))
            for file in files[:: self.frame_step]:
                with Image.open(file) as image:
                    yield np.array(image.convert("RGB"))
        else:
            yield from read_sens_colors(self._file(".sens"), self.frame_step)


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
