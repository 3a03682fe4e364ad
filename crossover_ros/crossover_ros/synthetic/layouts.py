"""A generated building written in the ScanNet or the 3RScan on-disk layout.

So the readers of those layouts (``datasets/scannet.py``, ``datasets/rscan.py``), the maps built
from them and the bags replayed from them are tested on files in the datasets' published formats:
binary PLY meshes with per-vertex colour and labels, ScanNet's segments + aggregation JSON and
``.sens`` stream (JPEG colour, zlib depth, poses), 3RScan's semseg.v2.json, sequence folder and
column-major rescan transforms. Rescans are moved into frames of their own, as the datasets
record them. What the layouts cannot hold is left out: referrals, the exact instance images.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

from crossover_ros.bags.query_writer import depth_millimetres
from crossover_ros.datasets.scan import Scan, ScanInfo, load_building
from crossover_ros.errors import DataError
from crossover_ros.synthetic.render import SceneGeometry

MESH_SPACING_M = 0.03  # vertices about this far apart, like ScanNet's cleaned meshes


def _dense_mesh(scan: Scan, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Surface samples (coloured, labelled) plus the generator's triangles (no ceiling).

    The generator's meshes are a few large triangles per wall; real scan meshes are dense, and
    their vertices are what the readers use as the point cloud.
    """
    geometry = SceneGeometry.load(scan.path / "geometry.npz")
    keep = ~geometry.is_ceiling_face()
    faces = geometry.faces[keep]
    corners = geometry.vertices[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    area = 0.5 * np.linalg.norm(normals, axis=1)
    normals /= np.maximum(2 * area, 1e-12)[:, None]
    count = int(area.sum() / MESH_SPACING_M**2)
    face = rng.choice(len(faces), size=count, p=area / area.sum())
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    edge1, edge2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    points = corners[face, 0] + u[:, None] * edge1[face] + v[:, None] * edge2[face]
    original = np.flatnonzero(keep)
    colour = geometry.face_albedo(points, normals[face], original[face])
    # the triangles' own corners come last, each labelled by a face that uses it
    used, inverse = np.unique(faces, return_inverse=True)
    corner_instance = np.zeros(len(used), np.int64)
    corner_instance[inverse.reshape(-1, 3)] = geometry.face_instance[keep][:, None]
    corner_colour = np.full((len(used), 3), 0.5)
    return {
        "xyz": np.concatenate([points, geometry.vertices[used]]).astype(np.float32),
        "rgb": (np.concatenate([colour, corner_colour]) * 255).clip(0, 255).astype(np.uint8),
        "instance": np.concatenate([geometry.face_instance[keep][face], corner_instance]),
        "faces": inverse.reshape(-1, 3) + count,
    }


def _own_frame(rng: np.random.Generator) -> np.ndarray:
    """A random rigid transform in the floor plane: where a rescan's own frame puts the room."""
    transform = np.eye(4)
    transform[:3, :3] = Rotation.from_euler("z", rng.uniform(-np.pi, np.pi)).as_matrix()
    transform[:2, 3] = rng.uniform(-3, 3, 2)
    return transform


def _moved(mesh: dict[str, np.ndarray], transform: np.ndarray) -> dict[str, np.ndarray]:
    xyz = mesh["xyz"].astype(np.float64) @ transform[:3, :3].T + transform[:3, 3]
    return {**mesh, "xyz": xyz.astype(np.float32)}


def _write_ply(path: Path, columns: dict[str, np.ndarray], faces: np.ndarray) -> None:
    """Binary little-endian PLY: the vertex columns given, then triangles."""
    types = {"f4": "float", "u1": "uchar", "u2": "ushort", "i4": "int", "u4": "uint"}
    count = len(next(iter(columns.values())))
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {count}"]
    header += [f"property {types[v.dtype.str[1:]]} {k}" for k, v in columns.items()]
    header += [f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
    table = np.empty(count, [(k, v.dtype.str) for k, v in columns.items()])
    for key, values in columns.items():
        table[key] = values
    triangles = np.empty(len(faces), [("n", "u1"), ("v", "<i4", 3)])
    triangles["n"], triangles["v"] = 3, faces
    path.write_bytes(("\n".join(header) + "\n").encode() + table.tobytes() + triangles.tobytes())


def _jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _intrinsic_matrix(scan: Scan) -> np.ndarray:
    k = np.eye(4)
    k[:3, :3] = scan.intrinsics.matrix
    return k


def _write_sens(path: Path, scan: Scan, transform: np.ndarray) -> None:
    """ScanNet's SensorData format, version 4: JPEG colour, zlib uint16 depth (mm), poses."""
    k = _intrinsic_matrix(scan).astype("<f4")
    eye = np.eye(4, dtype="<f4")
    width, height = scan.intrinsics.width, scan.intrinsics.height
    with path.open("wb") as file:
        file.write(struct.pack("<IQ", 4, 6) + b"synthe")
        file.write(k.tobytes() + eye.tobytes() + k.tobytes() + eye.tobytes())
        file.write(
            struct.pack("<ii", 2, 1) + struct.pack("<IIIIf", width, height, width, height, 1000.0)
        )
        file.write(struct.pack("<Q", scan.num_frames))
        for index, frame in enumerate(scan.frames()):
            color = _jpeg(frame.color)
            depth = zlib.compress(depth_millimetres(frame.depth).astype("<u2").tobytes())
            stamp = int(index / scan.frame_rate_hz * 1e6)
            file.write((transform @ frame.camera_to_world).astype("<f4").tobytes())
            file.write(struct.pack("<QQQQ", stamp, stamp, len(color), len(depth)) + color + depth)


def write_scannet_layout(
    building_dir: Path, out: Path, seed: int = 0, first_room: int = 0
) -> list[Path]:
    """Every scan of a generated building as ``out/scans/sceneRRRR_II`` (room number from
    ``first_room`` on, scan index), as ScanNet numbers its rooms across one release."""
    building = load_building(building_dir)
    rng = np.random.default_rng(seed)
    with _new_folder(out) as partial:
        for info in building.scans:
            _write_scannet_scan(building.scan(info.scan_id), info, partial, rng, first_room)
    return sorted((out / "scans").iterdir())


def _write_scannet_scan(
    scan: Scan, info: ScanInfo, out: Path, rng: np.random.Generator, first_room: int
) -> None:
    name = f"scene{first_room + info.room_id:04d}_{info.scan_index:02d}"
    folder = out / "scans" / name
    folder.mkdir(parents=True)
    transform = np.eye(4) if info.scan_index == 0 else _own_frame(rng)
    mesh = _moved(_dense_mesh(scan, rng), transform)
    alpha = np.full(len(mesh["xyz"]), 255, np.uint8)
    columns = {"x": mesh["xyz"][:, 0], "y": mesh["xyz"][:, 1], "z": mesh["xyz"][:, 2]}
    columns |= {c: mesh["rgb"][:, i] for i, c in enumerate(("red", "green", "blue"))}
    _write_ply(folder / f"{name}_vh_clean_2.ply", columns | {"alpha": alpha}, mesh["faces"])
    # one segment per instance (0: walls and floor); ScanNet's are finer, the format the same
    segments = mesh["instance"].astype(int).tolist()
    (folder / f"{name}_vh_clean_2.0.010000.segs.json").write_text(
        json.dumps({"sceneId": name, "segIndices": segments})
    )
    groups = [
        {"id": n, "objectId": inst.id - 1, "label": inst.label, "segments": [inst.id]}
        for n, inst in enumerate(scan.instances)
    ]
    (folder / f"{name}.aggregation.json").write_text(
        json.dumps({"sceneId": f"scannet.{name}", "segGroups": groups})
    )
    _write_sens(folder / f"{name}.sens", scan, transform)


def write_rscan_layout(building_dir: Path, out: Path, seed: int = 0) -> list[Path]:
    """Every scan of a generated building as a 3RScan scan folder, rooms in ``3RScan.json``."""
    building = load_building(building_dir)
    rng = np.random.default_rng(seed)
    rooms: dict[int, dict] = {}
    with _new_folder(out) as partial:
        for info in building.scans:
            scan_id = f"{building.building_id}-{info.room_id:04d}-{info.scan_index:02d}"
            transform = np.eye(4) if info.scan_index == 0 else _own_frame(rng)
            _write_rscan_scan(building.scan(info.scan_id), partial / scan_id, transform, rng)
            room = rooms.setdefault(info.room_id, {"reference": None, "scans": []})
            if info.scan_index == 0:
                room["reference"] = scan_id
            else:  # rescan -> reference, column-major as the dataset stores it
                to_reference = np.linalg.inv(transform).reshape(-1, order="F").tolist()
                room["scans"].append({"reference": scan_id, "transform": to_reference})
        (partial / "3RScan.json").write_text(json.dumps(list(rooms.values()), indent=1))
    return sorted(p for p in out.iterdir() if p.is_dir())


def _write_rscan_scan(
    scan: Scan, folder: Path, transform: np.ndarray, rng: np.random.Generator
) -> None:
    (folder / "sequence").mkdir(parents=True)
    mesh = _moved(_dense_mesh(scan, rng), transform)
    columns = {"x": mesh["xyz"][:, 0], "y": mesh["xyz"][:, 1], "z": mesh["xyz"][:, 2]}
    columns |= {c: mesh["rgb"][:, i] for i, c in enumerate(("red", "green", "blue"))}
    columns |= {"objectId": mesh["instance"].astype(np.uint16)}
    columns |= {"globalId": mesh["instance"].astype(np.uint16)}
    _write_ply(folder / "labels.instances.annotated.v2.ply", columns, mesh["faces"])
    groups = [{"id": inst.id, "objectId": inst.id, "label": inst.label} for inst in scan.instances]
    (folder / "semseg.v2.json").write_text(
        json.dumps({"scan_id": folder.name, "segGroups": groups})
    )
    k = " ".join(f"{v:g}" for v in _intrinsic_matrix(scan).reshape(-1))
    width, height = scan.intrinsics.width, scan.intrinsics.height
    (folder / "sequence" / "_info.txt").write_text(
        f"m_versionNumber = 4\nm_sensorName = synthetic\nm_colorWidth = {width}\n"
        f"m_colorHeight = {height}\nm_depthWidth = {width}\nm_depthHeight = {height}\n"
        f"m_depthShift = 1000\nm_calibrationColorIntrinsic = {k}\n"
        f"m_calibrationDepthIntrinsic = {k}\nm_frames.size = {scan.num_frames}\n"
    )
    for index, frame in enumerate(scan.frames()):
        stem = folder / "sequence" / f"frame-{index:06d}"
        Path(f"{stem}.color.jpg").write_bytes(_jpeg(frame.color))
        depth = depth_millimetres(frame.depth)
        pgm = f"P5\n{width} {height}\n65535\n".encode() + depth.astype(">u2").tobytes()
        Path(f"{stem}.depth.pgm").write_bytes(pgm)
        np.savetxt(f"{stem}.pose.txt", transform @ frame.camera_to_world)


@contextmanager
def _new_folder(out: Path) -> Iterator[Path]:
    """A sibling folder to write into, renamed to ``out`` when complete: an interrupted
    export leaves nothing that could be taken for a dataset."""
    if out.exists():
        raise DataError(f"{out} already exists")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    partial.rename(out)
