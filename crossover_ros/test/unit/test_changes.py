"""Scene changes on a constructed room: a moved, a removed (in view), a removed out of view, an
added object; depth is ray-cast, so what the camera covers is exact."""

import numpy as np
import pytest

from crossover_ros.frames import CameraIntrinsics
from crossover_ros.mapdb import SceneRecord, SQLiteMapDatabase
from crossover_ros.pipeline.changes import (
    ADDED,
    MOVED,
    REMOVED,
    STATIC,
    ChangeCfg,
    ChangeDetector,
    box_rays,
)
from crossover_ros.pipeline.fusion import CameraView
from crossover_ros.pipeline.objects import QueryObject
from crossover_ros.pipeline.relocalize import Relocalization
from crossover_ros.pose import NoPose, PoseEstimate

DIM = 10  # [context (5) | token (5)]
# id -> (box_min, box_max) in the scene frame (z up, room 0..5 x 0..5, back wall at y = 5)
STORED = {
    1: ((1.0, 3.0, 0.0), (1.6, 3.6, 0.8)),  # moves to x = 3
    2: ((2.2, 3.0, 0.0), (2.8, 3.6, 0.8)),  # removed, in view
    3: ((0.2, 0.2, 0.0), (0.6, 0.6, 0.8)),  # behind the camera: out of view (also removed)
    4: ((1.8, 4.2, 0.0), (2.2, 4.6, 0.6)),  # stays
}
MOVED_TO = ((3.0, 3.0, 0.0), (3.6, 3.6, 0.8))
ADDED_BOX = ((0.2, 2.6, 0.0), (0.6, 3.0, 0.5))
ODOM_FROM_SCENE = np.array(
    [[0.0, -1.0, 0.0, 4.0], [1.0, 0.0, 0.0, -2.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)  # the odometry frame is not the scene's
INTRINSICS = CameraIntrinsics(80, 60, 60.0, 60.0, 39.5, 29.5)


def _token(index: int) -> np.ndarray:
    vector = np.zeros(DIM)
    vector[5 + index] = 1.0
    vector[index] = 0.5  # context: differs once moved, which must not matter
    return vector


def _surface(low, high, rng, n=400):
    """Points on the faces of a box."""
    low, high = np.asarray(low), np.asarray(high)
    points = rng.uniform(low, high, (n, 3))
    axis = rng.integers(0, 3, n)
    side = rng.integers(0, 2, n)
    points[np.arange(n), axis] = np.where(side == 1, high[axis], low[axis])
    return points


def _room_cloud(boxes, rng):
    floor = np.c_[rng.uniform(0, 5, (6000, 2)), np.zeros(6000)]
    wall = np.c_[rng.uniform(0, 5, 3000), np.full(3000, 5.0), rng.uniform(0, 2.5, 3000)]
    return np.concatenate([floor, wall, *[_surface(lo, hi, rng) for lo, hi in boxes]])


def _raycast(scene_from_camera, boxes):
    """Depth (z) of the floor, the back wall and the boxes, seen from a pinhole camera."""
    v, u = np.mgrid[0 : INTRINSICS.height, 0 : INTRINSICS.width]
    i = INTRINSICS
    d = np.stack([(u - i.cx) / i.fx, (v - i.cy) / i.fy, np.ones(u.shape)], -1).reshape(-1, 3)
    rays, origin = d @ scene_from_camera[:3, :3].T, scene_from_camera[:3, 3]
    best = np.full(len(rays), np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis, level in ((2, 0.0), (1, 5.0)):
            t = (level - origin[axis]) / rays[:, axis]
            best = np.where((t > 0) & (t < best), t, best)
        for low, high in boxes:
            first, second = (np.asarray(low) - origin) / rays, (np.asarray(high) - origin) / rays
            enter = np.minimum(first, second).max(1)
            leave = np.maximum(first, second).min(1)
            hit = (leave >= enter) & (enter > 0) & (enter < best)
            best = np.where(hit, enter, best)
    depth = best.reshape(u.shape).astype(np.float32)
    depth[~np.isfinite(depth) | (depth > 8.0)] = np.nan
    return depth


def _camera(position, target):
    """Optical frame (z forward, y down) at ``position`` looking at ``target``, scene frame."""
    forward = np.subtract(target, position) / np.linalg.norm(np.subtract(target, position))
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, np.cross(forward, right), forward], 1)
    pose[:3, 3] = position
    return pose


def _object(low, high, rng):
    xyz = _surface(low, high, rng)
    xyz = (xyz @ ODOM_FROM_SCENE[:3, :3].T + ODOM_FROM_SCENE[:3, 3]).astype(np.float32)
    return QueryObject(xyz, np.ones_like(xyz), xyz.mean(0), xyz.min(0), xyz.max(0))


@pytest.fixture
def mapdb(tmp_path):
    rng = np.random.default_rng(0)
    cloud = _room_cloud(STORED.values(), rng).astype(np.float32)
    instances = [
        {"id": i, "label": f"thing{i}", "centroid": list(np.add(lo, hi) / 2),
         "box_min": list(lo), "box_max": list(hi), "embeddings": {"point_cloud": _token(i)}}
        for i, (lo, hi) in STORED.items()
    ]  # fmt: skip
    db = SQLiteMapDatabase.create(tmp_path / "map.sqlite", "stub", DIM)
    building = np.eye(4)
    building[:3, 3] = (10.0, 0.0, 0.0)
    db.add_scene(
        SceneRecord("room", "b", "r", frame_to_building=tuple(building.reshape(-1))),
        {"point_cloud": np.eye(DIM)[:1]},
        instances,
        (cloud, np.full_like(cloud, 128, dtype=np.uint8)),
    )
    yield db
    db.close()


def _relocalization(rng, views_at, pose=True):
    now = [MOVED_TO, STORED[4], ADDED_BOX]  # 2 and 3 are gone, 1 moved
    views = []
    for index, (position, target) in enumerate(views_at):
        scene_from_camera = _camera(position, target)
        depth = _raycast(scene_from_camera, now)
        views.append(CameraView(ODOM_FROM_SCENE @ scene_from_camera, INTRINSICS, depth, index))
    objects = [_object(*MOVED_TO, rng), _object(*STORED[4], rng), _object(*ADDED_BOX, rng)]
    vectors = np.stack([_token(1) + np.eye(DIM)[2], _token(4), np.eye(DIM)[0]])
    estimate = PoseEstimate(np.linalg.inv(ODOM_FROM_SCENE), np.eye(6), 1.0, 0.01, 100, "test", 0)
    return Relocalization(
        stamp=1.0,
        scene_id="room",
        scene_frame="room",
        correspondences=[],
        pose=estimate if pose else NoPose("test"),
        camera_to_odom=views[-1].camera_to_odom,
        num_objects=len(objects),
        compute_time_s=0.0,
        objects=tuple(objects),
        object_vectors=vectors.astype(np.float32),
        views=tuple(views),
    )


VIEWS = [((2.0, 0.8, 1.2), (2.0, 3.5, 0.3)), ((1.0, 0.8, 1.2), (2.3, 3.5, 0.3))]


def test_moved_removed_in_view_added_and_unseen_left_out(mapdb):
    detector = ChangeDetector(mapdb, ChangeCfg(), map_frame="map")
    report = detector.observe(_relocalization(np.random.default_rng(1), VIEWS), confirmed=True)
    kinds = {c.instance_id: c.kind for c in report.changes if c.instance_id >= 0}
    assert kinds == {1: MOVED, 2: REMOVED, 4: STATIC}  # 3 was never in view: unknown
    moved = report.of(MOVED)[0]
    assert moved.displacement_m == pytest.approx(2.0, abs=0.1)
    assert moved.before == pytest.approx((11.3, 3.3, 0.4), abs=0.01)  # the building frame
    assert moved.after == pytest.approx((13.3, 3.3, 0.4), abs=0.1)
    added = report.of(ADDED)
    assert len(added) == 1 and added[0].after == pytest.approx((10.4, 2.8, 0.25), abs=0.1)
    assert report.frame_id == "map" and report.stamps == (0, 1)


def test_an_object_behind_another_is_not_covered(mapdb):
    """Seen from behind the stored 4 (which stands in front of nothing) 2 is in view; from a
    camera whose view of 2 is blocked by a wall-sized box, its rays are not counted."""
    cfg = ChangeCfg()
    scene_from_camera = _camera((2.5, 0.8, 0.4), (2.5, 3.3, 0.4))
    blocker = ((1.5, 1.5, 0.0), (3.5, 1.7, 2.0))
    blocked = _raycast(scene_from_camera, [blocker])
    open_view = _raycast(scene_from_camera, [])
    scene_from_odom = np.linalg.inv(ODOM_FROM_SCENE)
    inst = {"box_min": STORED[2][0], "box_max": STORED[2][1]}
    for depth, covered in ((blocked, False), (open_view, True)):
        view = CameraView(ODOM_FROM_SCENE @ scene_from_camera, INTRINSICS, depth, 0.0)
        hit, through = box_rays(inst, scene_from_odom, [view], cfg)
        assert (hit + through >= cfg.min_covered_pixels) is covered
        assert hit == 0  # nothing stands in the box


def test_unconfirmed_evidence_waits_for_a_confirmed_pose(mapdb):
    detector = ChangeDetector(mapdb, ChangeCfg())
    rng = np.random.default_rng(2)
    assert detector.observe(_relocalization(rng, VIEWS[:1]), confirmed=False) is None
    assert detector.observe(_relocalization(rng, VIEWS[:1], pose=False), confirmed=False) is None
    report = detector.observe(_relocalization(rng, VIEWS[1:]), confirmed=True)
    assert report.stamps == (0,)  # both windows' keyframes: stamps 0 (pooled) and 0 again
    assert {c.kind for c in report.changes} == {MOVED, REMOVED, STATIC, ADDED}
    detector.reset()
    assert detector.observe(_relocalization(rng, VIEWS[1:]), confirmed=True).of(ADDED)
