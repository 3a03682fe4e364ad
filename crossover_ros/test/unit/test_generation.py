"""Tests of the synthetic building generator and its loaders (no ROS needed)."""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from crossover_ros.datasets.scan import Building, load_building, load_scan
from crossover_ros.errors import DataError
from crossover_ros.synthetic.building import BuildingConfig, generate_building, plan_rooms
from crossover_ros.synthetic.render import Renderer
from crossover_ros.synthetic.trajectory import room_walk

TINY = dict(
    num_rooms=3,
    num_lookalike_rooms=2,
    rescans_per_room=1,
    frames_per_scan=4,
    image_width=96,
    image_height=72,
    points_per_scan=30000,
    floorplan_meters_per_pixel=0.05,
)


@pytest.fixture(scope="module")
def building(tmp_path_factory: pytest.TempPathFactory) -> Building:
    out = tmp_path_factory.mktemp("bldg")
    generate_building(out, BuildingConfig(seed=3, **TINY), progress=False)
    return load_building(out)


def test_layout_and_ids(building: Building) -> None:
    assert len(building.scans) == 6
    for info in building.scans:
        room, index = info.room_id, info.scan_index
        assert info.scan_id == f"bldg0_room{room:03d}_{index:02d}"
        assert (info.reference_scan_id is None) == (index == 0)
    poses = [building.room_pose(r["room_id"]) for r in building.rooms]
    xs = [p[0, 3] for p in poses]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)


def test_objects_inside_room_and_supported(building: Building) -> None:
    for info in building.scans:
        scan = building.scan(info.scan_id)
        w, d, h = scan.room_size
        by_id = {i.id: i for i in scan.instances}
        assert len(scan.instances) >= 4
        for inst in scan.instances:
            assert np.all(inst.box_min >= [-0.02, -0.02, -0.03]), inst
            assert np.all(inst.box_max <= [w + 0.02, d + 0.02, h]), inst
            if inst.support == "floor":
                assert abs(inst.box_min[2]) < 0.03, inst
            elif isinstance(inst.support, int):
                parent = by_id[inst.support]
                assert inst.box_min[2] >= parent.box_min[2] + 0.02
                centre = inst.centroid[:2]
                assert np.all(centre >= parent.box_min[:2] - 0.02)
                assert np.all(centre <= parent.box_max[:2] + 0.02)
        floor = [i for i in scan.instances if i.support == "floor"]
        for a in range(len(floor)):
            for b in range(a + 1, len(floor)):
                lo = np.maximum(floor[a].box_min[:2], floor[b].box_min[:2])
                hi = np.minimum(floor[a].box_max[:2], floor[b].box_max[:2])
                overlap = np.prod(np.clip(hi - lo, 0, None))
                assert overlap < 1e-3, (floor[a].label, floor[b].label)


def test_points_frames_and_masks_agree(building: Building) -> None:
    scan = building.scan(building.scans[1].scan_id)
    xyz, rgb, inst = scan.point_cloud()
    assert xyz.dtype == np.float32 and rgb.dtype == np.uint8 and inst.dtype == np.uint16
    ids = {i.id for i in scan.instances}
    assert set(np.unique(inst)) - {0} == ids
    trees = {i: cKDTree(xyz[inst == i]) for i in ids}
    all_points = cKDTree(xyz)
    checked = 0
    for frame in scan.frames():
        k = frame.intrinsics
        v, u = np.nonzero(np.isfinite(frame.depth) & (frame.instance > 0))
        z = frame.depth[v, u]
        cam = np.stack([(u - k.cx) / k.fx * z, (v - k.cy) / k.fy * z, z], axis=1)
        world = cam @ frame.camera_to_world[:3, :3].T + frame.camera_to_world[:3, 3]
        for i in np.unique(frame.instance[v, u]):
            sel = frame.instance[v, u] == i
            dist, _ = trees[int(i)].query(world[sel])
            assert np.median(dist) < 0.06, (i, np.median(dist))
            _, nearest = all_points.query(world[sel])
            assert np.mean(inst[nearest] == i) > 0.6, i
            checked += 1
    assert checked >= 3


def test_renderer_reproduces_saved_frame(building: Building) -> None:
    scan = building.scan(building.scans[0].scan_id)
    frame = scan.frame(1)
    rendered = Renderer.from_scan(scan).render(frame.camera_to_world, scan.intrinsics)
    assert np.mean(rendered.instance == frame.instance) > 0.999
    both = np.isfinite(rendered.depth) & np.isfinite(frame.depth)
    assert both.mean() > 0.5
    assert np.median(np.abs(rendered.depth[both] - frame.depth[both])) < 0.02
    assert np.isnan(frame.depth).any()  # holes exist in sensor depth


def test_rescan_ground_truth(building: Building) -> None:
    for room in building.rooms:
        rid = room["room_id"]
        scans = {i.scan_index: building.scan(i.scan_id) for i in building.scans if i.room_id == rid}
        ref, re = scans[0], scans[1]
        ref_by = {i.id: i for i in ref.instances}
        states = {i.state for i in re.instances}
        assert "moved" in states and "new" in states
        assert re.removed_instance_ids
        for rid_gone in re.removed_instance_ids:
            assert rid_gone in ref_by and rid_gone not in {i.id for i in re.instances}
        for inst in re.instances:
            if inst.state == "new":
                assert inst.id not in ref_by and inst.id > max(ref_by)
            elif inst.state == "static":
                assert np.allclose(inst.box_min, ref_by[inst.id].box_min, atol=1e-4)
                assert inst.label == ref_by[inst.id].label
            else:
                old = ref_by[inst.id]
                shift = np.abs(inst.centroid - old.centroid).max()
                size_change = np.abs((inst.box_max - inst.box_min) - (old.box_max - old.box_min))
                assert shift > 0.05 or size_change.max() > 0.05, inst
        ref.point_cloud()
        _, _, re_inst = re.point_cloud()
        assert not set(re.removed_instance_ids) & set(np.unique(re_inst).tolist())
        assert ref.meta["lighting"] != re.meta["lighting"]


def test_lookalike_rooms_similar_not_identical(building: Building) -> None:
    look = [r for r in building.rooms if r["template_id"]]
    assert len(look) == 2 and look[0]["template_id"] == look[1]["template_id"]
    assert look[0]["size"] == look[1]["size"]
    a, b = (building.scan(f"bldg0_room{r['room_id']:03d}_00") for r in look)
    labels_a = sorted(i.label for i in a.instances)
    labels_b = sorted(i.label for i in b.instances)
    common = set(labels_a) & set(labels_b)
    assert len(common) >= 0.7 * len(set(labels_a))
    layout_a = {(i.label, tuple(np.round(i.centroid, 3))) for i in a.instances}
    layout_b = {(i.label, tuple(np.round(i.centroid, 3))) for i in b.instances}
    assert layout_a != layout_b
    assert len(layout_a & layout_b) >= 0.5 * len(layout_a)
    unique = [r for r in building.rooms if not r["template_id"]]
    assert unique and unique[0]["size"] != look[0]["size"]


def test_referrals_mention_existing_labels(building: Building) -> None:
    for info in building.scans:
        scan = building.scan(info.scan_id)
        by_id = {i.id: i for i in scan.instances}
        assert scan.referrals
        for ref in scan.referrals:
            assert ref["instance_id"] in by_id
            assert by_id[ref["instance_id"]].label in ref["text"]


def test_floorplan_and_trajectory(building: Building) -> None:
    scan = building.scan(building.scans[0].scan_id)
    plan = scan.floorplan()
    assert plan.ndim == 3 and plan.shape[2] == 3 and plan.std() > 5
    poses = room_walk(scan, 50, 10.0, np.random.default_rng(0))
    w, d, _ = scan.room_size
    xyz = poses[:, :3, 3]
    assert np.all((xyz[:, 0] > 0) & (xyz[:, 0] < w) & (xyz[:, 1] > 0) & (xyz[:, 1] < d))
    assert np.all((xyz[:, 2] > 0.95) & (xyz[:, 2] < 1.65))
    speed = np.linalg.norm(np.diff(xyz[:, :2], axis=0), axis=1) * 10.0
    assert 0.15 < speed.mean() < 0.8
    for pose in poses:
        assert np.allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-6)
    for inst in scan.instances:
        if inst.support == "floor":
            inside = np.all(
                (xyz[:, :2] > inst.box_min[:2]) & (xyz[:, :2] < inst.box_max[:2]), axis=1
            )
            assert not inside.any(), inst.label


def test_seed_reproducible_and_heldout_differs(building: Building, tmp_path: Path) -> None:
    cfg = dict(TINY, frames_per_scan=2, rescans_per_room=0, num_rooms=2)
    a = generate_building(tmp_path / "a", BuildingConfig(seed=3, **cfg), progress=False)
    b = generate_building(tmp_path / "b", BuildingConfig(seed=3, **cfg), progress=False)
    c = generate_building(
        tmp_path / "c", BuildingConfig(seed=3, split="heldout", **cfg), progress=False
    )
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    _, mismatch, errors = filecmp.cmpfiles(a, b, [str(f) for f in files], shallow=False)
    assert not mismatch and not errors
    meta_a = json.loads((a / "building.json").read_text())
    meta_c = json.loads((c / "building.json").read_text())
    assert meta_c["split"] == "heldout"
    assert [r["size"] for r in meta_a["rooms"]] != [r["size"] for r in meta_c["rooms"]]
    assert not filecmp.cmp(
        a / "scans/bldg0_room000_00/instances.json",
        c / "scans/bldg0_room000_00/instances.json",
        shallow=False,
    )


def test_splits_have_appearances_of_their_own() -> None:
    """The test split is the benchmark nothing was chosen on: no wall paint or floor of training
    or validation, and rooms larger than both."""
    appearance, widths = {}, {}
    for split in ("train", "heldout", "test"):
        rooms = [
            room
            for seed in range(2)
            for room in plan_rooms(BuildingConfig(seed=seed, split=split, num_rooms=8))
        ]
        appearance[split] = {r.structure.wall_material.color_name for r in rooms} | {
            r.structure.floor_material.name for r in rooms
        }
        widths[split] = [r.structure.width for r in rooms if r.room_type == "office"]
    assert not appearance["test"] & (appearance["train"] | appearance["heldout"])
    assert not appearance["heldout"] & appearance["train"]
    assert np.mean(widths["test"]) > np.mean(widths["heldout"]) > np.mean(widths["train"])


def test_missing_or_corrupt_files_raise_data_error(building: Building, tmp_path: Path) -> None:
    src = building.scans[0].path
    broken = tmp_path / "scan"
    shutil.copytree(src, broken)
    (broken / "points.npz").write_bytes(b"not a zip")
    scan = load_scan(broken)
    with pytest.raises(DataError, match=r"points\.npz"):
        scan.point_cloud()
    (broken / "frames/depth/000000.png").unlink()
    with pytest.raises(DataError, match=r"000000\.png"):
        scan.frame(0)
    (broken / "geometry.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"geometry\.npz"):
        Renderer.from_scan(broken)
    (broken / "scan.json").write_text("{not json")
    with pytest.raises(DataError, match=r"scan\.json"):
        load_scan(broken)
    with pytest.raises(DataError, match=r"building\.json"):
        load_building(tmp_path / "nowhere")


def test_cumulative_rescans_are_rounds_of_changes_and_a_bag_walks_any_round(
    tmp_path: Path,
) -> None:
    """Rescan k changes rescan k-1: what round 1 removed stays gone in round 2 (from the
    reference, it would come back), and record-bag's scan_index walks a chosen round."""
    from crossover_ros.errors import BagError
    from crossover_ros.synthetic.query_bag import QueryBagCfg, _visit_plan

    cfg = dict(TINY, num_rooms=2, num_lookalike_rooms=0, rescans_per_room=3, frames_per_scan=1)
    cfg.update(image_width=32, image_height=24, points_per_scan=2000)
    out = generate_building(
        tmp_path / "b", BuildingConfig(seed=5, cumulative_rescans=True, **cfg), progress=False
    )
    building = load_building(out)
    for room in ("0", "1"):
        rounds = sorted(
            (s for s in building.scans if str(s.room_id) == room), key=lambda s: s.scan_index
        )
        ids = [{inst.id for inst in building.scan(s.scan_id).instances} for s in rounds]
        for k in range(1, len(rounds)):
            meta = building.scan(rounds[k].scan_id).meta
            assert meta["changed_from_scan_id"] == rounds[k - 1].scan_id
            gone = set(meta["removed_instance_ids"])
            assert gone and gone <= ids[k - 1] and not gone & ids[k]
            assert not (ids[0] - ids[1]) & ids[k], "removed in round 1: gone in every later one"
    plan = _visit_plan(building, QueryBagCfg(scan_index=2))
    second = [s.scan_id for s in building.scans if s.scan_index == 2]
    assert [walked for walked, _ in plan] == second
    assert all(scene.endswith("_00") for _, scene in plan), "truth names the reference scan"
    with pytest.raises(BagError, match="no scan of index 9"):
        _visit_plan(building, QueryBagCfg(scan_index=9))
