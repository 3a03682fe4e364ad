import numpy as np
import pytest

from crossover_ros.pose import (
    NoPose,
    PoseCfg,
    PoseEstimate,
    PoseEstimator,
    SceneCache,
    estimate_pose,
)
from crossover_ros.pose.evaluate import (
    is_wrong,
    rotation_error_deg,
    summarize,
    translation_error_m,
)
from crossover_ros.pose.ransac import centroid_ransac, rigid_fit
from crossover_ros.pose.registration import fit_quality, prepare_cloud, remove_back_faces, to_o3d

ROOM = (5.0, 4.0, 2.6)
# (min corner, max corner, colour): furniture placed without symmetry
OBJECTS = [
    ((0.2, 0.2, 0.0), (1.4, 0.8, 0.75), (0.6, 0.4, 0.2)),  # desk
    ((3.8, 2.6, 0.0), (4.8, 3.8, 1.9), (0.2, 0.2, 0.7)),  # wardrobe
    ((2.0, 3.3, 0.0), (2.6, 3.8, 0.5), (0.1, 0.6, 0.1)),  # crate
    ((0.1, 2.2, 0.0), (0.6, 3.4, 1.2), (0.8, 0.8, 0.1)),  # shelf
]
MOVED = ((2.4, 1.2, 0.0), (2.9, 1.7, 0.45), (0.9, 0.1, 0.1))  # a box the rescan moved


def _box(lo, hi, colour, density, rng, faces=("x", "y", "z"), bottom=False):
    """Points on the faces of an axis-aligned box (no bottom face unless asked)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    points = []
    for axis in range(3):
        others = [a for a in range(3) if a != axis]
        area = np.prod(hi[others] - lo[others])
        sides = [hi[axis]] + ([lo[axis]] if axis != 2 or bottom else [])
        for side in sides:
            n = rng.poisson(density * area)
            p = rng.uniform(lo, hi, (n, 3))
            p[:, axis] = side
            points.append(p)
    xyz = np.concatenate(points)
    return xyz, np.tile(colour, (len(xyz), 1))


def _room(rng, density=400.0, objects=OBJECTS, outer_walls=False):
    """A room like a generated scan: floor, four walls (inner faces), furniture; no ceiling."""
    w, d, h = ROOM
    parts = [
        _plane(((0, 0, 0), (w, d, 0)), (0.5, 0.5, 0.5), density, rng),
        _plane(((0, 0, 0), (w, 0, h)), (0.9, 0.9, 0.8), density, rng),
        _plane(((0, d, 0), (w, d, h)), (0.9, 0.9, 0.8), density, rng),
        _plane(((0, 0, 0), (0, d, h)), (0.8, 0.9, 0.9), density, rng),
        _plane(((w, 0, 0), (w, d, h)), (0.8, 0.9, 0.9), density, rng),
    ]
    if outer_walls:  # the back faces a mesh-sampled cloud also holds, 10 cm behind
        parts += [
            _plane(((-0.1, 0, 0), (-0.1, d, h)), (0.7, 0.7, 0.7), density, rng),
            _plane(((w + 0.1, 0, 0), (w + 0.1, d, h)), (0.7, 0.7, 0.7), density, rng),
            _plane(((0, -0.1, 0), (w, -0.1, h)), (0.7, 0.7, 0.7), density, rng),
            _plane(((0, d + 0.1, 0), (w, d + 0.1, h)), (0.7, 0.7, 0.7), density, rng),
        ]
    parts += [_box(lo, hi, c, density, rng) for lo, hi, c in objects]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _plane(corners, colour, density, rng):
    lo, hi = np.asarray(corners[0], float), np.asarray(corners[1], float)
    extent = hi - lo
    area = np.prod(np.sort(extent)[1:])
    xyz = rng.uniform(lo, hi, (rng.poisson(density * area), 3))
    return xyz, np.tile(colour, (len(xyz), 1))


def _pose(yaw_deg, t, tilt_deg=0.0):
    c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
    yaw = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    a = np.radians(tilt_deg)
    tilt = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    out = np.eye(4)
    out[:3, :3] = yaw @ tilt
    out[:3, 3] = t
    return out


def _transform(xyz, pose):
    return xyz @ pose[:3, :3].T + pose[:3, 3]


def _query(rng, map_from_query, keep_x=3.6):
    """A fresh sampling of part of the room, with the box moved, in the odometry frame."""
    objects = [*OBJECTS, MOVED]
    xyz, rgb = _room(rng, density=900.0, objects=objects)
    xyz = xyz + rng.normal(0.0, 0.004, xyz.shape)
    keep = (xyz[:, 0] < keep_x) & (xyz[:, 2] < 2.3)
    return _transform(xyz[keep], np.linalg.inv(map_from_query)), rgb[keep]


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(1)
    # the stored cloud misses the moved box: it was elsewhere (nowhere) at mapping time
    return _room(rng, outer_walls=True)


@pytest.fixture(scope="module")
def estimator():
    return PoseEstimator(PoseCfg())


@pytest.fixture(scope="module")
def room(scene, estimator):
    """The scene's cloud, prepared once, as a robot's map scenes are."""
    return estimator.prepare_map(*scene, key="room")


def _check(result, truth, metres=0.03, degrees=1.0):
    assert isinstance(result, PoseEstimate), getattr(result, "reason", result)
    assert translation_error_m(result.map_from_query, truth) < metres
    assert rotation_error_deg(result.map_from_query, truth) < degrees


def test_rigid_fit_recovers_rotation_and_yaw():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(10, 3))
    truth = _pose(70.0, (1.0, -2.0, 0.5), tilt_deg=30.0)
    np.testing.assert_allclose(rigid_fit(source, _transform(source, truth)), truth, atol=1e-9)
    flat = _pose(-120.0, (0.3, 0.1, -1.0))
    got = rigid_fit(source[:2], _transform(source[:2], flat), yaw_only=True)
    np.testing.assert_allclose(got, flat, atol=1e-9)


def test_centroid_ransac_rejects_wrong_matches():
    rng = np.random.default_rng(3)
    truth = _pose(135.0, (4.0, -1.0, 0.2))
    query = rng.uniform([0, 0, 0], [5, 4, 1.5], (9, 3))
    target = _transform(query, truth) + rng.normal(0.0, 0.1, (9, 3))  # partial-view bias
    wrong = [1, 4, 7]
    target[wrong] = rng.uniform([-3, -3, 0], [8, 8, 1.5], (3, 3))
    found = centroid_ransac(query, target, inlier_m=0.4)
    assert found
    inliers = found[0].inliers
    assert not inliers[wrong].any() and inliers.sum() == 6
    assert rotation_error_deg(found[0].transform, truth) < 5.0
    # two pairs fix a yaw-only pose; one pair does not
    assert centroid_ransac(query[:2], _transform(query[:2], truth))
    assert centroid_ransac(query[:1], target[:1]) == []


def test_global_registration_recovers_a_known_pose(room, estimator):
    truth = _pose(37.0, (2.0, -1.0, 0.3))
    xyz, rgb = _query(np.random.default_rng(5), truth)
    result = estimator.estimate(xyz, rgb, room)
    _check(result, truth)
    assert result.method == "correlative+icp"
    assert result.fitness > 0.8 and result.num_inliers > 500
    cov = result.covariance
    assert cov.shape == (6, 6) and np.allclose(cov, cov.T) and np.all(np.diag(cov) > 0)
    assert np.sqrt(cov[0, 0]) < 0.05 and np.sqrt(cov[5, 5]) < np.radians(2.0)


def test_a_small_tilt_is_refined(room, estimator):
    truth = _pose(-100.0, (-3.0, 0.5, -0.2), tilt_deg=1.5)
    xyz, rgb = _query(np.random.default_rng(6), truth)
    _check(estimator.estimate(xyz, rgb, room), truth)


def test_centroid_correspondences_with_outliers(room, estimator):
    truth = _pose(200.0, (1.0, 6.0, 0.0))
    xyz, rgb = _query(np.random.default_rng(7), truth)
    map_centroids = [0.5 * (np.add(lo, hi)) for lo, hi, _ in OBJECTS]
    to_query = np.linalg.inv(truth)
    pairs = [(_transform(c[None], to_query)[0] + 0.15, c) for c in map_centroids]
    pairs.append((_transform(map_centroids[0][None], to_query)[0], map_centroids[2]))  # wrong
    result = estimator.estimate(xyz, rgb, room, correspondences=pairs)
    _check(result, truth)
    assert result.method == "centroids+icp"


def test_a_guessed_pose_is_refined_without_the_global_search(room, estimator):
    """Odometry's prediction, 20 cm and 3 degrees off, is the first guess: it fits clearly, so
    the global search is spared; a far-off guess still falls back to it."""
    truth = _pose(110.0, (-1.0, 2.0, 0.0))
    xyz, rgb = _query(np.random.default_rng(8), truth)
    near = _pose(113.0, (-0.8, 2.1, 0.0))
    result = estimator.estimate(xyz, rgb, room, guesses=[near])
    _check(result, truth)
    assert result.method == "guess+icp"
    far = _pose(20.0, (3.0, -2.0, 0.0))
    result = estimator.estimate(xyz, rgb, room, guesses=[far])
    _check(result, truth)
    assert result.method == "correlative+icp"


def test_a_read_only_query_is_prepared_once_for_several_scenes(scene):
    """One window's cloud fitted to several scenes: prepared once, the same poses as fresh."""
    truth = _pose(30.0, (0.5, 1.0, 0.0))
    xyz, rgb = _query(np.random.default_rng(9), truth)
    estimator = PoseEstimator(PoseCfg())
    room = estimator.prepare_map(*scene, key="room")
    fresh = estimator.estimate(xyz, rgb, room)
    assert estimator._last_query is None  # writable arrays may change: never reused
    xyz.flags.writeable = rgb.flags.writeable = False
    first = estimator.estimate(xyz, rgb, room)
    prepared = estimator._last_query[2]
    again = estimator.estimate(xyz, rgb, room)
    assert estimator._last_query[2] is prepared
    for result in (first, again):
        np.testing.assert_allclose(result.map_from_query, fresh.map_from_query, atol=1e-9)
        assert result.fitness == fresh.fitness


def test_back_faces_are_removed(scene):
    xyz, _ = scene
    cloud = to_o3d(xyz).voxel_down_sample(0.08)
    points = np.asarray(cloud.points)
    keep = np.zeros(len(points), bool)
    keep[remove_back_faces(cloud, 0.3, 0.08)] = True
    w, d, _ = ROOM
    outside = (points[:, 0] < -0.05) | (points[:, 0] > w + 0.05)
    outside |= (points[:, 1] < -0.05) | (points[:, 1] > d + 0.05)
    walls = ~outside & ((points[:, 0] < 0.01) | (points[:, 0] > w - 0.01))
    assert keep[outside].mean() < 0.3
    assert keep[walls].mean() > 0.8


def _wall(rng, n=4000):
    """A bare stretch of the room's north wall (nothing stands in front of it)."""
    return np.column_stack([rng.uniform(0.8, 3.0, n), np.full(n, 4.0), rng.uniform(0.8, 2.2, n)])


def test_flat_wall_gives_no_pose(room, estimator):
    result = estimator.estimate(_wall(np.random.default_rng(8)), None, room)
    assert isinstance(result, NoPose)


def test_degeneracy_measure(scene):
    cfg = PoseCfg()
    target = prepare_cloud(*scene, cfg.map_voxel_m, cfg.coarse_voxel_m, True, back_face_depth_m=0.3)
    truth = _pose(0.0, (0.0, 0.0, 0.0))
    constraints = []
    for xyz in (_wall(np.random.default_rng(12)), _query(np.random.default_rng(13), truth)[0]):
        query = prepare_cloud(xyz, None, cfg.query_voxel_m, cfg.coarse_voxel_m, False)
        quality = fit_quality(query, target, truth, cfg.accept_distance_m)
        assert quality.num_inliers > 300
        constraints.append(quality.constraint)
    assert constraints[0] < 0.2 * cfg.min_constraint < cfg.min_constraint < constraints[1]


def test_too_few_points_give_no_pose(scene):
    few = np.random.default_rng(9).uniform(0, 1, (40, 3))
    result = estimate_pose(few, None, *scene)
    assert isinstance(result, NoPose) and "too few query points" in result.reason
    assert isinstance(estimate_pose(np.zeros((0, 3)), None, *scene), NoPose)


def test_another_room_gives_no_pose(estimator):
    rng = np.random.default_rng(10)
    other = [((1.0, 1.0, 0.0), (2.0, 3.0, 1.0), (0.5, 0.5, 0.5))]
    other_room = _room(rng, objects=other)
    truth = _pose(10.0, (0.5, 0.5, 0.0))
    xyz, rgb = _query(np.random.default_rng(11), truth)
    result = estimator.estimate(xyz, rgb, estimator.prepare_map(*other_room, key="other"))
    assert isinstance(result, NoPose), result


def test_a_stored_cloud_is_read_only_until_prepared(scene):
    """The map decodes a scene's cloud once; later fits use the prepared one."""
    estimator, reads = PoseEstimator(PoseCfg()), []

    def load():
        reads.append(1)
        return scene

    first = estimator.scene("room", load)
    assert estimator.scene("room", load) is first and len(reads) == 1
    assert estimator.scene("empty", lambda: None) is None


def test_estimators_of_one_map_share_its_prepared_scenes(scene):
    """The verifier's and the relocaliser's estimators prepare each scene once between them;
    another map drops what was kept (the same ids may name other clouds), and a cache that
    prepares otherwise than an estimator would is refused."""
    cache, reads = SceneCache(PoseCfg()), []

    def load():
        reads.append(1)
        return scene

    verifying, relocalising = PoseEstimator(PoseCfg(), cache), PoseEstimator(PoseCfg(), cache)
    first_map, second_map = object(), object()
    first = verifying.scene("room", load, first_map)
    assert relocalising.scene("room", load, first_map) is first and len(reads) == 1
    assert relocalising.scene("room", load, second_map) is not first and len(reads) == 2
    with pytest.raises(ValueError, match="prepare scenes as"):
        PoseEstimator(PoseCfg(map_voxel_m=0.05), cache)


def test_bad_correspondences_raise(scene, room, estimator):
    with pytest.raises(ValueError):
        estimator.estimate(scene[0], None, room, correspondences=np.zeros((3, 3)))
    with pytest.raises(ValueError):
        PoseEstimator(PoseCfg(global_method="magic"))


def test_covariance_at_adds_the_lever_arm():
    covariance = np.diag([1e-4, 1e-4, 1e-4, 1e-6, 1e-6, 1e-3])
    estimate = PoseEstimate(_pose(90.0, (1.0, 2.0, 0.0)), covariance, 0.9, 0.01, 500, "x", 0.01)
    np.testing.assert_allclose(estimate.covariance_at(np.zeros(3)), covariance)
    # 2 m along odometry x is 2 m along scene y after the 90 degree yaw: yaw error moves it in x
    moved = estimate.covariance_at(np.array([2.0, 0.0, 0.0]))
    assert moved[0, 0] == pytest.approx(1e-4 + 4.0 * 1e-3)
    assert moved[1, 1] == pytest.approx(1e-4)
    assert moved[5, 5] == pytest.approx(1e-3)


def test_errors_and_summary():
    a = _pose(0.0, (0.0, 0.0, 0.0))
    b = _pose(30.0, (3.0, 4.0, 0.0))
    assert translation_error_m(a, b) == pytest.approx(5.0)
    assert rotation_error_deg(a, b) == pytest.approx(30.0)
    assert is_wrong(0.6, 1.0) and is_wrong(0.1, 11.0) and not is_wrong(0.4, 9.0)
    summary = summarize([(0.01, 0.5), (0.03, 1.5), (1.0, 2.0), None])
    assert summary.queries == 4 and summary.answered == 3
    assert summary.median_translation_m == pytest.approx(0.03)
    assert summary.wrong_rate == pytest.approx(0.25)
    assert summary.no_pose_rate == pytest.approx(0.25)
