"""PLY files as ScanNet and 3RScan ship them: a vertex element, then (optionally) triangles."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crossover_ros.errors import DataError

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


@dataclass
class _Element:
    name: str
    count: int
    properties: list[tuple[str, str]]  # (name, numpy type); lists: ("list:<count>:<item>")


def _header(raw: bytes, path: Path) -> tuple[str, list[_Element], int]:
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise DataError(f"{path} is not a PLY file")
    fmt, elements = "", []
    for line in raw[:end].decode("ascii", "replace").splitlines():
        words = line.split()
        if words[:1] == ["format"] and len(words) > 1:
            fmt = words[1]
        elif words[:1] == ["element"] and len(words) == 3:
            elements.append(_Element(words[1], int(words[2]), []))
        elif words[:1] == ["property"] and elements:
            if words[1] == "list" and len(words) == 5:
                if words[2] not in _PLY_TYPES or words[3] not in _PLY_TYPES:
                    raise DataError(f"{path}: unsupported property {line!r}")
                kind = f"list:{_PLY_TYPES[words[2]]}:{_PLY_TYPES[words[3]]}"
                elements[-1].properties.append((words[4], kind))
            elif len(words) == 3 and words[1] in _PLY_TYPES:
                elements[-1].properties.append((words[2], _PLY_TYPES[words[1]]))
            else:
                raise DataError(f"{path}: unsupported property {line!r}")
    return fmt, elements, raw.index(b"\n", end) + 1


def read_ply(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(vertex columns by name, (M, 3) int64 triangle vertex indices; (0, 3) without faces).

    Binary little-endian or ascii; the vertex element first, as both datasets write it. Faces
    must be triangles (ScanNet's and 3RScan's meshes are).
    """
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"missing or unreadable PLY file {path}: {err}") from err
    fmt, elements, offset = _header(raw, path)
    if not elements or elements[0].name != "vertex" or not elements[0].count:
        raise DataError(f"{path} has no leading vertex element")
    vertex = elements[0]
    if any(kind.startswith("list") for _, kind in vertex.properties):
        raise DataError(f"{path}: list properties on vertices are not supported")
    faces = np.zeros((0, 3), np.int64)
    try:
        if fmt == "binary_little_endian":
            dtype = np.dtype([(name, "<" + kind) for name, kind in vertex.properties])
            table = np.frombuffer(raw, dtype=dtype, count=vertex.count, offset=offset)
            columns = {name: np.asarray(table[name]) for name, _ in vertex.properties}
            offset += dtype.itemsize * vertex.count
            face = next((e for e in elements[1:2] if e.name == "face"), None)
            if face is not None and face.count:
                faces = _binary_triangles(raw, offset, face, path)
        elif fmt == "ascii":
            lines = raw[offset:].decode("ascii").split("\n")
            table = np.loadtxt(lines[: vertex.count], dtype=np.float64, ndmin=2)
            columns = {
                name: table[:, i].astype(kind) for i, (name, kind) in enumerate(vertex.properties)
            }
            face = next((e for e in elements[1:2] if e.name == "face"), None)
            if face is not None and face.count:
                rows = np.loadtxt(
                    lines[vertex.count : vertex.count + face.count], dtype=np.int64, ndmin=2
                )
                if rows.shape[1] < 4 or not (rows[:, 0] == 3).all():
                    raise DataError(f"{path}: only triangle faces are supported")
                faces = rows[:, 1:4]
        else:
            raise DataError(f"{path}: PLY format {fmt!r} not supported")
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: truncated or malformed PLY body ({err})") from err
    if len(faces) and (faces.min() < 0 or faces.max() >= vertex.count):
        raise DataError(f"{path}: face indices out of range")
    return columns, faces


def _binary_triangles(raw: bytes, offset: int, face: _Element, path: Path) -> np.ndarray:
    if len(face.properties) != 1 or not face.properties[0][1].startswith("list"):
        raise DataError(f"{path}: faces must hold one vertex index list")
    _, count_type, index_type = face.properties[0][1].split(":")
    dtype = np.dtype([("n", "<" + count_type), ("v", "<" + index_type, 3)])
    table = np.frombuffer(raw, dtype=dtype, count=face.count, offset=offset)
    if not (table["n"] == 3).all():
        raise DataError(f"{path}: only triangle faces are supported")
    return table["v"].astype(np.int64)
