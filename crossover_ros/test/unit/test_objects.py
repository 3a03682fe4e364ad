"""Geometric object segmentation: structure removed, standing objects found where they are."""

import numpy as np

from crossover_ros.pipeline.objects import object_point_sets, segment_objects


def _plane(rng, n, axes, fixed_axis, value, size=4.0):
    points = np.zeros((n, 3))
    points[:, axes] = rng.uniform(0, size, (n, 2))
    points[:, fixed_axis] = value
    return points


def _box(rng, n, low, high):
    """Points on the surface of an axis-aligned box: what a depth camera sees of furniture."""
    low, high = np.asarray(low, float), np.asarray(high, float)
    points = rng.uniform(low, high, (n, 3))
    axis = rng.integers(0, 3, n)
    side = rng.integers(0, 2, n)
    points[np.arange(n), axis] = np.where(side, high[axis], low[axis])
    return points


def _room(rng):
    structure = [
        _plane(rng, 6000, [0, 1], 2, 0.0),  # floor
        _plane(rng, 3000, [1, 2], 0, 0.0),  # wall x = 0
        _plane(rng, 3000, [0, 2], 1, 4.0),  # wall y = 4
    ]
    boxes = [((1.0, 1.0, 0.0), (1.5, 1.6, 0.8)), ((2.5, 0.5, 0.0), (3.2, 0.9, 1.2)),
             ((2.8, 2.8, 0.0), (3.1, 3.1, 0.5))]  # fmt: skip
    objects = [_box(rng, 4000, low, high) for low, high in boxes]
    xyz = np.concatenate(structure + objects).astype(np.float32)
    return xyz, rng.uniform(0, 1, xyz.shape).astype(np.float32), boxes


def test_finds_each_standing_object_and_drops_floor_and_walls():
    rng = np.random.default_rng(0)
    xyz, rgb, boxes = _room(rng)
    objects = segment_objects(xyz, rgb)
    assert len(objects) == 3
    for low, high in boxes:
        centre = (np.array(low) + np.array(high)) / 2
        nearest = min(objects, key=lambda o: np.linalg.norm(o.centroid[:2] - centre[:2]))
        assert np.linalg.norm(nearest.centroid[:2] - centre[:2]) < 0.1
        assert np.all(nearest.box_min >= np.array(low) - 0.05)
        assert np.all(nearest.box_max <= np.array(high) + 0.05)


def test_too_few_points_or_only_structure_gives_no_objects():
    rng = np.random.default_rng(1)
    floor = _plane(rng, 5000, [0, 1], 2, 0.0).astype(np.float32)
    assert segment_objects(floor, np.zeros_like(floor)) == []
    assert segment_objects(floor[:5], np.zeros((5, 3), np.float32)) == []


def test_point_sets_are_centred_and_sized_for_the_encoder():
    rng = np.random.default_rng(2)
    xyz, rgb, _ = _room(rng)
    objects = segment_objects(xyz, rgb)
    sets = object_point_sets(objects, 512, np.random.default_rng(0))
    assert sets.shape == (len(objects), 512, 6)
    np.testing.assert_allclose(sets[:, :, :3].mean(axis=1), 0.0, atol=0.06)
    assert sets[:, :, 3:].min() >= 0.0 and sets[:, :, 3:].max() <= 1.0
