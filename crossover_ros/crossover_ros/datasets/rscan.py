"""Reading 3RScan scans in their documented on-disk layout, for building maps of real scans.

Layout (3RScan release)::

    <root>/3RScan.json         [{"reference": scan_id, "scans": [{"reference": rescan_id,
                                 "transform": [16 floats, rescan-to-reference]}]}]
    <root>/<scan_id>/
        labels.instances.annotated.v2.ply   vertices: x y z red green blue objectId globalId ...
        semseg.v2.json                      {"segGroups": [{"objectId", "label", ...}]}
        sequence/frame-NNNNNN.color.jpg     RGB frames (or the same inside sequence.zip)

A reference scan and its rescans are one room: room id = the reference scan id, scan index 0 for
the reference and 1.. for the rescans in file order. Instance ids are 3RScan's objectIds, stable
across the rescans of a room.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from crossover_ros.datasets.scan import read_json
from crossover_ros.datasets.scannet import boxes_from_points, read_ply_vertices
from crossover_ros.errors import DataError


@dataclass
class RScanScan:
    """One 3RScan scan folder; files are read on demand."""

    path: Path
    room_id: str
    scan_index: int
    rescan_to_reference: tuple[float, ...] | None = None
    frame_step: int = 5
    _cloud: tuple | None = field(default=None, repr=False)

    @property
    def scan_id(self) -> str:
        return self.path.name

    def point_cloud(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._cloud is None:
            vertices = read_ply_vertices(self.path / "labels.instances.annotated.v2.ply")
            try:
                xyz = np.stack([vertices[k] for k in "xyz"], axis=1).astype(np.float32)
                rgb = np.stack([vertices[k] for k in ("red", "green", "blue")], axis=1)
                inst = vertices["objectId"].astype(np.uint16)
            except KeyError as err:
                raise DataError(f"{self.path}: labelled mesh lacks property {err}") from err
            self._cloud = (xyz, rgb.astype(np.uint8), inst)
        return self._cloud

    @property
    def instances(self) -> list[dict]:
        data = read_json(self.path / "semseg.v2.json")
        try:
            labels = {int(g["objectId"]): str(g["label"]) for g in data["segGroups"]}
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{self.path}: malformed semseg.v2.json ({err})") from err
        xyz, _, inst = self.point_cloud()
        return boxes_from_points(xyz, inst, labels)

    def color_images(self) -> Iterator[np.ndarray]:
        folder = self.path / "sequence"
        if folder.is_dir():
            files = sorted(folder.glob("frame-*.color.jpg"))
            for file in files[:: self.frame_step]:
                with Image.open(file) as image:
                    yield np.array(image.convert("RGB"))
            return
        archive = self.path / "sequence.zip"
        if not archive.is_file():
            raise DataError(f"{self.path} has neither sequence/ nor sequence.zip")
        try:
            with zipfile.ZipFile(archive) as zf:
                names = sorted(n for n in zf.namelist() if n.endswith(".color.jpg"))
                for name in names[:: self.frame_step]:
                    with Image.open(io.BytesIO(zf.read(name))) as image:
                        yield np.array(image.convert("RGB"))
        except (OSError, zipfile.BadZipFile) as err:
            raise DataError(f"{archive}: unreadable ({err})") from err


def find_rscan_scans(root: Path | str, frame_step: int = 5) -> list[RScanScan]:
    """Every scan listed in ``root/3RScan.json`` whose folder exists under ``root``."""
    root = Path(root)
    meta = read_json(root / "3RScan.json")
    scans = []
    try:
        for room in meta:
            reference = str(room["reference"])
            entries = [(reference, None)] + [
                (str(s["reference"]), s.get("transform")) for s in room.get("scans", [])
            ]
            for index, (scan_id, transform) in enumerate(entries):
                if (root / scan_id).is_dir():
                    pose = None if transform is None else tuple(float(v) for v in transform)
                    scans.append(RScanScan(root / scan_id, reference, index, pose, frame_step))
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"malformed {root / '3RScan.json'}: {err}") from err
    if not scans:
        raise DataError(f"no scan folders of {root / '3RScan.json'} found under {root}")
    return scans
