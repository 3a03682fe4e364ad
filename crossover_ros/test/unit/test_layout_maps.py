"""CrossOver maps from the ScanNet and 3RScan layouts: a generated building written in each
layout's published file formats, read back, and embedded like the generated scans."""

import json

import numpy as np
import pytest

from crossover_ros.datasets.rscan import find_rscan_scans
from crossover_ros.datasets.scan import load_building
from crossover_ros.datasets.scannet import find_scannet_scenes
from crossover_ros.errors import DataError
from crossover_ros.mapdb import SQLiteMapDatabase
from crossover_ros.mapdb.build import build_map
from crossover_ros.model.registry import create_encoder


@pytest.fixture(scope="module")
def crossover():
    return create_encoder("crossover")


def _readers(layouts):
    return {
        "scannet": find_scannet_scenes(layouts["scannet"], frame_step=1),
        "3rscan": find_rscan_scans(layouts["3rscan"], frame_step=1),
    }


@pytest.mark.parametrize("layout", ["scannet", "3rscan"])
def test_frames_come_back_with_depth_pose_intrinsics_and_projected_masks(
    small_building, layouts, layout
):
    building = load_building(small_building)
    original = building.scan(building.scans[0].scan_id)
    scan = _readers(layouts)[layout][0]
    assert scan.num_frames == original.num_frames and scan.scan_index == 0
    assert scan.intrinsics.width == original.intrinsics.width
    assert [i.id for i in scan.instances] == [i.id for i in original.instances]
    for index in (0, original.num_frames - 1):
        frame, truth = scan.frame(index), original.frame(index)
        np.testing.assert_allclose(frame.camera_to_world, truth.camera_to_world, atol=1e-4)
        np.testing.assert_allclose(frame.depth, truth.depth, atol=1e-3)  # mm, NaN kept
        objects = truth.instance > 0
        assert (frame.instance[objects] == truth.instance[objects]).mean() > 0.8
        assert (frame.instance[~objects] == 0).mean() > 0.95  # walls and floor: no instance
    _, faces, owner = scan.mesh_faces()
    assert len(faces) and set(np.unique(owner)) <= {0, *(i.id for i in scan.instances)}
    assert scan.floorplan().ndim == 3 and scan.referrals == []


def test_rescans_are_placed_by_the_column_major_transform(layouts):
    meta = json.loads((layouts["3rscan"] / "3RScan.json").read_text())
    stored = np.asarray(meta[0]["scans"][0]["transform"]).reshape(4, 4, order="F")
    rescan = find_rscan_scans(layouts["3rscan"])[1]
    matrix = np.asarray(rescan.rescan_to_reference).reshape(4, 4)
    np.testing.assert_allclose(matrix, stored)
    assert np.allclose(matrix[3], [0, 0, 0, 1]) and abs(matrix[:3, 3]).max() > 0  # not transposed
    # the rescan's mesh, moved by it, lies where the reference's does
    reference = find_rscan_scans(layouts["3rscan"])[0]
    moved = rescan.point_cloud()[0] @ matrix[:3, :3].T + matrix[:3, 3]
    np.testing.assert_allclose(
        moved.mean(axis=0), reference.point_cloud()[0].mean(axis=0), atol=0.3
    )


@pytest.mark.parametrize("layout", ["scannet", "3rscan"])
def test_crossover_maps_from_a_layout_match_the_generated_scans(
    small_building, layouts, layout, crossover, tmp_path
):
    generated = build_map(small_building, tmp_path / "g.sqlite", crossover, progress=False)
    built = build_map(
        layouts[layout], tmp_path / "l.sqlite", crossover, progress=False, frame_step=1
    )
    with generated, built:
        ours, theirs = generated.scenes(), built.scenes()
        assert len(theirs) == len(ours) == 3
        assert set(built.modalities()) == {"point_cloud", "rgb", "floorplan", "scene"}  # no text
        for scene in theirs:
            assert len(built.instances(scene.scene_id)) > 0
            assert built.instance_embeddings(scene.scene_id, "point_cloud")[1].shape[0] > 0
        for modality in ("point_cloud", "rgb"):
            a = np.stack([generated.scene_embeddings(s.scene_id)[modality][0] for s in ours])
            b = np.stack([built.scene_embeddings(s.scene_id)[modality][0] for s in theirs])
            a /= np.linalg.norm(a, axis=1, keepdims=True)
            b /= np.linalg.norm(b, axis=1, keepdims=True)
            similarity = a @ b.T
            assert (np.diag(similarity) > 0.75).all(), (modality, similarity.round(2))


def test_a_failed_build_leaves_no_map(layouts, crossover, tmp_path):
    broken = tmp_path / "scannet"
    broken.mkdir()
    for scene in sorted((layouts["scannet"] / "scans").iterdir())[:2]:
        target = broken / "scans" / scene.name
        target.mkdir(parents=True)
        for file in scene.iterdir():
            (target / file.name).symlink_to(file)
    next(broken.glob("scans/*_01")).rename(broken / "scans" / "scene0009_00")  # a 2nd reference
    sens = next(broken.glob("scans/scene0009_00/*.sens"))
    sens.unlink()  # its stream is missing
    out = tmp_path / "m.sqlite"
    with pytest.raises(DataError, match="lacks"):
        build_map(broken, out, crossover, progress=False)
    assert not out.exists() and not list(tmp_path.glob("m.sqlite*"))


def test_bad_frame_steps_are_refused(layouts, tmp_path):
    with pytest.raises(DataError, match="frame step"):
        build_map(layouts["3rscan"], tmp_path / "m.sqlite", None, frame_step=0)
    assert not (tmp_path / "m.sqlite").exists()
    with SQLiteMapDatabase.create(tmp_path / "x.sqlite", "f", 3) as db:
        assert db.scenes() == []
