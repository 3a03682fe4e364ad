"""Reading 3RScan scans in their documented on-disk layout.

Layout (3RScan release)::

    <root>/3RScan.json         [{"reference": scan_id, "scans": [{"reference": rescan_id,
                                 "transform": [16 floats, column-major, rescan-to-reference]}]}]
    <root>/<scan_id>/
        labels.instances.annotated.v2.ply   mesh: x y z red green blue objectId ..., faces
        semseg.v2.json                      {"segGroups": [{"objectId", "label", ...}]}
        sequence/                           (or the same files inside sequence.zip)
            _info.txt                       m_depthWidth, m_depthHeight,
                                            m_calibrationDepthIntrinsic (16 numbers), ...
            frame-NNNNNN.color.jpg          RGB
            frame-NNNNNN.depth.pgm          uint16 millimetres
            frame-NNNNNN.pose.txt           4x4 camera-to-scan

A reference scan and its rescans are one room: room id = the reference scan id, scan index 0 for
the reference and 1.. for the rescans in file order; each rescan lies in its own frame, placed in
the reference's by ``transform`` (column-major, as the dataset's own tools read it). Instance ids
are 3RScan's objectIds, stable across the rescans of a room.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from crossover_ros.datasets.ply import read_ply
from crossover_ros.datasets.scan import read_json
from crossover_ros.datasets.scannet import depth_from_millimetres, intrinsics_from_matrix
from crossover_ros.datasets.sequence import SequenceScan, is_rigid
from crossover_ros.errors import DataError
from crossover_ros.frames import CameraIntrinsics

FRAME_NAME = re.compile(r"frame-(\d{6})\.color\.jpg$")


def rescan_to_reference(transform: list[float]) -> np.ndarray:
    """3RScan.json's 16 numbers (column-major) as a 4x4 matrix."""
    matrix = np.asarray(transform, np.float64).reshape(4, 4, order="F")
    if not is_rigid(matrix):
        raise DataError(f"3RScan transform {transform} is not a rigid transform")
    return matrix


@dataclass
class RScanScan(SequenceScan):
    """One 3RScan scan folder; files are read on demand."""

    path: Path
    room_id: str
    scan_index: int
    rescan_to_reference: tuple[float, ...] | None = None  # 4x4 row-major, None: the reference
    frame_step: int = 5

    @property
    def scan_id(self) -> str:
        return self.path.name

    def _read_mesh(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        columns, faces = read_ply(self.path / "labels.instances.annotated.v2.ply")
        if "objectId" not in columns:
            raise DataError(f"{self.path}: labelled mesh lacks property 'objectId'")
        return columns, columns["objectId"], faces

    def _read_labels(self) -> dict[int, str]:
        data = read_json(self.path / "semseg.v2.json")
        try:
            return {int(g["objectId"]): str(g["label"]) for g in data["segGroups"]}
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{self.path}: malformed semseg.v2.json ({err})") from err

    @cached_property
    def _sequence(self) -> dict[str, bytes] | Path:
        """The sequence folder, or the files of sequence.zip by name (read once)."""
        folder = self.path / "sequence"
        if folder.is_dir():
            return folder
        archive = self.path / "sequence.zip"
        if not archive.is_file():
            raise DataError(f"{self.path} has neither sequence/ nor sequence.zip")
        try:
            with zipfile.ZipFile(archive) as zf:
                return {Path(n).name: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
        except (OSError, zipfile.BadZipFile) as err:
            raise DataError(f"{archive}: unreadable ({err})") from err

    def _bytes(self, name: str) -> bytes:
        sequence = self._sequence
        try:
            if isinstance(sequence, Path):
                return (sequence / name).read_bytes()
            return sequence[name]
        except (OSError, KeyError) as err:
            raise DataError(f"{self.path}: missing sequence file {name}") from err

    def _names(self) -> list[str]:
        sequence = self._sequence
        names = [p.name for p in sequence.iterdir()] if isinstance(sequence, Path) else sequence
        return sorted(n for n in names if FRAME_NAME.match(n))

    @cached_property
    def _poses(self) -> dict[str, np.ndarray]:
        poses = {}
        for name in self._names():
            number = FRAME_NAME.match(name).group(1)
            try:
                text = self._bytes(f"frame-{number}.pose.txt").decode()
                poses[number] = np.loadtxt(io.StringIO(text), dtype=np.float64).reshape(4, 4)
            except (ValueError, UnicodeDecodeError) as err:
                raise DataError(f"{self.path}: corrupt pose of frame {number} ({err})") from err
        return poses

    def _frame_keys(self) -> list[str]:
        return [number for number, pose in self._poses.items() if is_rigid(pose)]

    def _pose(self, key: str) -> np.ndarray:
        return self._poses[key]

    def _image(self, name: str) -> np.ndarray:
        try:
            with Image.open(io.BytesIO(self._bytes(name))) as image:
                return np.array(image)
        except (OSError, ValueError) as err:
            raise DataError(f"{self.path}: corrupt image {name} ({err})") from err

    def _read_color(self, key: str) -> np.ndarray:
        image = self._image(f"frame-{key}.color.jpg")
        return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]

    def _read_depth(self, key: str) -> np.ndarray:
        return depth_from_millimetres(self._image(f"frame-{key}.depth.pgm").astype(np.uint16))

    def _depth_intrinsics(self) -> CameraIntrinsics:
        info: dict[str, str] = {}
        for line in self._bytes("_info.txt").decode("ascii", "replace").splitlines():
            key, _, value = line.partition("=")
            info[key.strip()] = value.strip()
        try:
            k = np.asarray(info["m_calibrationDepthIntrinsic"].split(), np.float64).reshape(4, 4)
            return intrinsics_from_matrix(k, int(info["m_depthWidth"]), int(info["m_depthHeight"]))
        except (KeyError, ValueError) as err:
            raise DataError(f"{self.path}: malformed sequence/_info.txt ({err})") from err


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
                    pose = None
                    if transform is not None:
                        pose = tuple(float(v) for v in rescan_to_reference(transform).reshape(-1))
                    scans.append(RScanScan(root / scan_id, reference, index, pose, frame_step))
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"malformed {root / '3RScan.json'}: {err}") from err
    if not scans:
        raise DataError(f"no scan folders of {root / '3RScan.json'} found under {root}")
    return scans
