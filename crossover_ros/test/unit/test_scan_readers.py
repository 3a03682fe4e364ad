"""ScanNet and 3RScan readers on tiny files written in those layouts, and a map built from each."""

import io
import json
import struct
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from crossover_ros.datasets.ply import read_ply
from crossover_ros.datasets.rscan import find_rscan_scans
from crossover_ros.datasets.scannet import find_scannet_scenes
from crossover_ros.errors import DataError
from crossover_ros.mapdb import SQLiteMapDatabase
from crossover_ros.mapdb.build import build_map


class MeanColourEncoder:
    """A tiny stand-in encoder: mean colour of each image, 3-d."""

    fingerprint = "mean-colour"
    dim = instance_dim = 3
    modality = "rgb"
    map_modality = "rgb"

    def frame_features(self, images):
        return np.stack([np.asarray(i, np.float32).reshape(-1, 3).mean(axis=0) + 1 for i in images])

    def query(self, window):
        return window

    def embed_scan(self, scan):
        return {"rgb": self.frame_features(list(scan.color_images()))}, {}


def _ply(path, columns, binary=True):
    names = list(columns)
    n = len(columns[names[0]])
    kinds = {"f4": "float", "u1": "uchar", "u2": "ushort"}
    header = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0"]
    header += [f"element vertex {n}"]
    header += [f"property {kinds[columns[k].dtype.str[1:]]} {k}" for k in names]
    header += ["element face 0", "property list uchar int vertex_indices", "end_header"]
    head = ("\n".join(header) + "\n").encode()
    if binary:
        table = np.empty(n, dtype=[(k, "<" + columns[k].dtype.str[1:]) for k in names])
        for k in names:
            table[k] = columns[k]
        path.write_bytes(head + table.tobytes())
    else:
        rows = "\n".join(" ".join(str(columns[k][i]) for k in names) for i in range(n))
        path.write_bytes(head + rows.encode() + b"\n")


def _cloud(rng, n=200):
    xyz = rng.random((n, 3)).astype(np.float32) * 3
    rgb = rng.integers(0, 255, (n, 3)).astype(np.uint8)
    return xyz, rgb


def _jpeg(colour):
    buffer = io.BytesIO()
    Image.fromarray(np.full((24, 32, 3), colour, np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def _sens(path, frames):
    head = struct.pack("<IQ", 4, 4) + b"test" + b"\0" * (4 * 16 * 4)
    head += struct.pack("<ii", 2, 1) + struct.pack("<IIIIf", 32, 24, 32, 24, 1000.0)
    head += struct.pack("<Q", len(frames))
    body = b""
    depth = zlib.compress(np.full((24, 32), 1500, "<u2").tobytes())
    for jpeg in frames:
        pose = np.eye(4, dtype="<f4").tobytes()
        body += pose + b"\0" * 16 + struct.pack("<QQ", len(jpeg), len(depth)) + jpeg + depth
    path.write_bytes(head + body)


def _scannet(root, rng, name):
    folder = root / "scans" / name
    folder.mkdir(parents=True)
    xyz, rgb = _cloud(rng)
    cols = {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}
    cols |= {"red": rgb[:, 0], "green": rgb[:, 1], "blue": rgb[:, 2]}
    _ply(folder / f"{name}_vh_clean_2.ply", cols)
    segs = (np.arange(len(xyz)) // 50).tolist()  # 4 segments
    (folder / f"{name}_vh_clean_2.0.010000.segs.json").write_text(json.dumps({"segIndices": segs}))
    groups = [
        {"objectId": 0, "label": "chair", "segments": [0]},
        {"objectId": 1, "label": "table", "segments": [1, 2]},
    ]
    (folder / f"{name}.aggregation.json").write_text(json.dumps({"segGroups": groups}))
    _sens(folder / f"{name}.sens", [_jpeg((200, 10, 10)) for _ in range(12)])
    return xyz


def test_scannet_layout_reads_and_builds_a_map(tmp_path):
    rng = np.random.default_rng(0)
    xyz = _scannet(tmp_path, rng, "scene0000_00")
    _scannet(tmp_path, rng, "scene0000_01")
    _scannet(tmp_path, rng, "scene0001_00")
    scenes = find_scannet_scenes(tmp_path)
    assert [s.scan_id for s in scenes] == ["scene0000_00", "scene0000_01", "scene0001_00"]
    first = scenes[0]
    assert (first.room_id, first.scan_index) == ("scene0000", 0)
    instances = first.instances
    assert [(i.id, i.label) for i in instances] == [(1, "chair"), (2, "table")]
    np.testing.assert_allclose(instances[0].centroid, xyz[:50].mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(instances[1].box_max, xyz[50:150].max(axis=0), atol=1e-6)
    images = list(first.color_images())
    assert len(images) == 2 and images[0].shape == (24, 32, 3)  # every 10th of 12 frames
    with build_map(tmp_path, tmp_path / "m.sqlite", MeanColourEncoder(), progress=False) as db:
        assert [s.scene_id for s in db.scenes()] == ["scene0000_00", "scene0001_00"]
        assert db.point_cloud("scene0000_00")[0].shape[1] == 3
        assert len(db.instances("scene0001_00")) == 2
    with SQLiteMapDatabase.open(tmp_path / "m.sqlite", "mean-colour") as db:
        assert db.scene("scene0000_00").building_id == "scannet"


def test_3rscan_layout_reads_and_builds_a_map(tmp_path):
    rng = np.random.default_rng(1)
    transform = list(np.eye(4).reshape(-1).astype(float))
    (tmp_path / "3RScan.json").write_text(
        json.dumps(
            [{"reference": "ref-a", "scans": [{"reference": "re-a1", "transform": transform}]}]
        )
    )
    for scan_id, as_zip in (("ref-a", False), ("re-a1", True)):
        folder = tmp_path / scan_id
        folder.mkdir()
        xyz, rgb = _cloud(rng)
        object_id = (np.arange(len(xyz)) // 100 + 1).astype(np.uint16)  # objects 1, 2
        cols = {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}
        cols |= {"red": rgb[:, 0], "green": rgb[:, 1], "blue": rgb[:, 2], "objectId": object_id}
        _ply(folder / "labels.instances.annotated.v2.ply", cols, binary=False)
        groups = [{"objectId": 1, "label": "sofa"}, {"objectId": 2, "label": "lamp"}]
        (folder / "semseg.v2.json").write_text(json.dumps({"segGroups": groups}))
        frames = {f"frame-{i:06d}.color.jpg": _jpeg((10, 10, 200)) for i in range(6)}
        frames |= {
            f"frame-{i:06d}.pose.txt": b"1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n" for i in range(6)
        }
        if as_zip:
            with zipfile.ZipFile(folder / "sequence.zip", "w") as zf:
                for name, data in frames.items():
                    zf.writestr(name, data)
        else:
            (folder / "sequence").mkdir()
            for name, data in frames.items():
                (folder / "sequence" / name).write_bytes(data)
    scans = find_rscan_scans(tmp_path)
    assert [(s.scan_id, s.room_id, s.scan_index) for s in scans] == [
        ("ref-a", "ref-a", 0),
        ("re-a1", "ref-a", 1),
    ]
    assert [i.label for i in scans[1].instances] == ["sofa", "lamp"]
    assert len(list(scans[1].color_images())) == 2  # every 5th of 6 frames, from the zip
    out = tmp_path / "m.sqlite"
    with build_map(tmp_path, out, MeanColourEncoder(), include_rescans=True, progress=False) as db:
        assert {s.scene_id for s in db.scenes()} == {"ref-a", "re-a1"}
        assert db.scene("re-a1").frame_to_building == tuple(transform)


def test_bad_files_give_data_errors(tmp_path):
    (tmp_path / "bad.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nend_header\n")
    with pytest.raises(DataError, match="vertex"):
        read_ply(tmp_path / "bad.ply")
    with pytest.raises(DataError, match="no ScanNet"):
        find_scannet_scenes(tmp_path)
    (tmp_path / "3RScan.json").write_text("[{}]")
    with pytest.raises(DataError, match="malformed"):
        find_rscan_scans(tmp_path)
