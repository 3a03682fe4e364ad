"""Relocalisation: objects of the fused cloud matched to a scene's instances, pose in the scene."""

from functools import partial

import numpy as np
import pytest
from test_pose import OBJECTS, _pose, _room, _transform

from crossover_ros.mapdb import SceneRecord, SQLiteMapDatabase
from crossover_ros.pipeline.relocalize import Relocalizer, RelocalizerCfg
from crossover_ros.pose import NoPose, PoseEstimate

DIM = 8
TRUTH = _pose(35.0, (2.0, -1.0, 0.0))  # scene -> odometry


class ObjectEncoder:
    """Embeds an object as the one-hot vector of the stored object it truly is (the test knows
    the transform), or as noise for anything else: a perfect instance encoder."""

    def embed_objects(self, points, centroids):
        scene_from_odom = np.linalg.inv(TRUTH)
        out = np.full((len(centroids), DIM), 0.01, np.float32)
        for row, centroid in enumerate(centroids):
            centre = _transform(centroid[None], scene_from_odom)[0]
            for col, (low, high, _) in enumerate(OBJECTS):
                if np.all(centre >= np.array(low) - 0.1) and np.all(centre <= np.array(high) + 0.1):
                    out[row, col] = 1.0
        return out


@pytest.fixture
def mapdb(tmp_path):
    rng = np.random.default_rng(0)
    xyz, rgb = _room(rng)
    instances = [
        {"id": 10 + i, "label": f"object{i}", "centroid": (np.add(lo, hi) / 2).tolist(),
         "box_min": list(lo), "box_max": list(hi),
         "embeddings": {"point_cloud": np.eye(DIM)[i]}}
        for i, (lo, hi, _) in enumerate(OBJECTS)
    ]  # fmt: skip
    db = SQLiteMapDatabase.create(tmp_path / "map.sqlite", "stub", DIM)
    db.add_scene(
        SceneRecord("room_a", "b", "a"),
        {"point_cloud": np.eye(DIM)[:1]},
        instances,
        (xyz.astype(np.float32), (rgb * 255).astype(np.uint8)),
    )
    db.add_scene(SceneRecord("no_cloud", "b", "n"), {"point_cloud": np.eye(DIM)[:1]})
    yield db
    db.close()


def _query_cloud():
    xyz, rgb = _room(np.random.default_rng(1))
    return _transform(xyz, TRUTH).astype(np.float32), rgb.astype(np.float32)


def test_pose_and_instance_correspondences_in_the_scene(mapdb):
    relocalizer = Relocalizer(mapdb, ObjectEncoder(), RelocalizerCfg(interval_s=0.0))
    camera = _pose(-20.0, (1.0, 0.5, 1.2))
    found = relocalizer.relocalize(5.0, "room_a", _query_cloud(), camera)
    assert isinstance(found.pose, PoseEstimate), found.pose
    np.testing.assert_allclose(found.pose.map_from_query, np.linalg.inv(TRUTH), atol=0.03)
    np.testing.assert_allclose(found.camera_in_scene, np.linalg.inv(TRUTH) @ camera, atol=0.03)
    assert found.num_objects >= len(OBJECTS)
    assert len(found.correspondences) >= 3
    for pair in found.correspondences:
        index = pair.map_instance_id - 10
        lo, hi, _ = OBJECTS[index]
        assert pair.label == f"object{index}"
        assert pair.score > 0.9  # the embedding agrees with the geometry
        np.testing.assert_allclose(pair.map_box_min, lo)
        in_scene = _transform(pair.query_centroid[None], np.linalg.inv(TRUTH))[0]
        assert np.all(in_scene >= np.array(lo) - 0.2) and np.all(in_scene <= np.array(hi) + 0.2)


def test_without_an_object_encoder_the_pose_comes_from_geometry_alone(mapdb):
    found = Relocalizer(mapdb).relocalize(0.0, "room_a", _query_cloud(), np.eye(4))
    assert isinstance(found.pose, PoseEstimate)
    np.testing.assert_allclose(found.pose.map_from_query, np.linalg.inv(TRUTH), atol=0.03)
    assert found.correspondences == [] and found.num_objects == 0


def test_weak_evidence_gives_a_reasoned_no_pose(mapdb):
    relocalizer = Relocalizer(mapdb, ObjectEncoder())
    xyz, rgb = _query_cloud()
    few = relocalizer.relocalize(0.0, "room_a", (xyz[:100], rgb[:100]), np.eye(4))
    assert isinstance(few.pose, NoPose) and "100 points" in few.pose.reason
    assert few.camera_in_scene is None
    missing = relocalizer.relocalize(0.0, "no_cloud", (xyz, rgb), np.eye(4))
    assert isinstance(missing.pose, NoPose) and "no point cloud" in missing.pose.reason


def test_relocalisation_is_rate_limited_and_needs_a_confident_answer(mapdb):
    relocalizer = Relocalizer(mapdb, cfg=RelocalizerCfg(interval_s=2.0, min_confidence=0.5))
    assert not relocalizer.due(0.0, "room_a", 0.4)
    assert not relocalizer.due(0.0, "", 0.9)
    assert relocalizer.due(0.0, "room_a", 0.9)
    relocalizer.relocalize(0.0, "room_a", _query_cloud(), np.eye(4))
    assert not relocalizer.due(1.0, "room_a", 0.9)
    assert relocalizer.due(2.0, "room_a", 0.9)
    assert relocalizer.due(-5.0, "room_a", 0.9)  # time went back: a bag loop


def _offset(x: float, yaw_deg: float = 0.0) -> np.ndarray:
    return _pose(yaw_deg, (x, 0.0, 0.0))


def test_consensus_confirms_a_pose_the_odometry_agrees_with_not_a_twin():
    """map_from_odom is the same in every room: an estimate in the wrong look-alike room (a
    different map_from_odom) never outvotes the established one."""
    from crossover_ros.pipeline.relocalize import ConsensusCfg, PoseConsensus

    consensus = PoseConsensus(ConsensusCfg(min_support=2, memory_s=100.0))

    def vote(x, stamp, yaw=0.0, frame="building b"):
        (result,) = consensus.vote([(frame, _offset(x, yaw))], stamp)
        return result

    assert vote(0.0, 0.0) == (False, 1)  # one estimate is not enough
    assert vote(0.1, 2.0, 2.0) == (True, 2)  # agrees: confirmed
    assert consensus.leads("building b", _offset(0.05)) and not consensus.leads("b2", _offset(0))
    assert vote(6.0, 4.0) == (False, 1)  # the twin next door
    assert vote(6.05, 6.0) == (False, 2)  # a tie confirms neither
    assert not consensus.leads("building b", _offset(0.0))
    assert vote(0.05, 8.0) == (True, 3)  # the right one leads again
    assert vote(6.0, 10.0) == (False, 3)  # 3 against 3: still a tie
    assert vote(0.0, 12.0, 30.0) == (False, 1)  # turned: another hypothesis
    # the same transform in another building's frame is another hypothesis, and competes
    assert vote(0.0, 13.0, frame="building c") == (False, 1)
    # one relocalisation that fits twins votes for each, but once per hypothesis
    assert consensus.vote([("building b", _offset(0.0)), ("building b", _offset(0.1))], 14.0) == [
        (True, 4),
        (True, 4),
    ]
    # support older than memory_s is forgotten: odometry drift cannot lock a hypothesis forever
    assert vote(9.0, 200.0) == (False, 1)
    consensus.reset()
    assert vote(0.0, 201.0) == (False, 1)


HALL_OBJECTS = [
    ((1.0, 1.0, 0.0), (2.2, 1.6, 0.9), (0.6, 0.4, 0.2)),
    ((3.0, 0.2, 0.0), (4.6, 0.8, 1.6), (0.2, 0.2, 0.7)),
    ((0.2, 2.8, 0.0), (1.0, 3.8, 0.6), (0.1, 0.6, 0.1)),
]


def _building_map(path, scenes):
    """A map of ``{name: (building, objects, pose in the building, embedding)}`` (one room each)
    and the scenes' ``(objects, pose in the building)``."""
    db = SQLiteMapDatabase.create(path, "stub", DIM)
    for index, (name, (building, objects, in_building, vector)) in enumerate(scenes.items()):
        xyz, rgb = _room(np.random.default_rng(index), objects=objects)
        record = SceneRecord(name, building, name, frame_to_building=tuple(in_building.ravel()))
        cloud = (xyz.astype(np.float32), (rgb * 255).astype(np.uint8))
        db.add_scene(record, {"point_cloud": vector[None]}, None, cloud)
    return db, {name: (objects, pose) for name, (_, objects, pose, _) in scenes.items()}


def _visit(relocalizer, scenes, room, answered, stamp, seed, candidates=()):
    """Relocalise in ``answered`` with a cloud of ``room`` (odometry is the building frame)."""
    objects, in_building = scenes[room]
    xyz, rgb = _room(np.random.default_rng(seed), density=600.0, objects=objects)
    odometry_cloud = (_transform(xyz, in_building).astype(np.float32), rgb.astype(np.float32))
    return relocalizer.relocalize(stamp, answered, odometry_cloud, np.eye(4), candidates)


@pytest.fixture
def twin_map(tmp_path):
    """Building b: office_a and its look-alike office_b (same furniture, 6 m apart; near-equal
    embeddings), and a hall with other furniture 10 m away."""
    scenes = {
        "office_a": (OBJECTS, _pose(0.0, (0.0, 0.0, 0.0)), np.eye(DIM)[0]),
        "office_b": (OBJECTS, _pose(0.0, (0.0, 6.0, 0.0)), np.eye(DIM)[0] + 0.05 * np.eye(DIM)[1]),
        "hall": (HALL_OBJECTS, _pose(90.0, (10.0, 0.0, 0.0)), np.eye(DIM)[2]),
    }
    db, rooms = _building_map(tmp_path / "twins.sqlite", {n: ("b", *s) for n, s in scenes.items()})
    yield db, rooms
    db.close()


def test_a_twin_that_fits_as_well_gets_no_pose_until_another_room_breaks_the_tie(twin_map):
    """The recogniser takes office_a for its twin office_b: the pose fits office_b perfectly,
    in the wrong place. office_a fits alike, so both hypotheses get a vote and tie; the hall,
    which has no twin, breaks the tie for the true one. Odometry is the building frame here."""
    mapdb, scenes = twin_map
    visit = partial(_visit, Relocalizer(mapdb, cfg=RelocalizerCfg(interval_s=0.0)), scenes)

    for seed, stamp in enumerate((0.0, 1.0)):
        wrong = visit("office_a", "office_b", stamp, 10 + seed)
        assert isinstance(wrong.pose, PoseEstimate), wrong.pose  # it does fit office_b...
        assert wrong.rivals == ("office_a",)  # ...and office_a as well
        assert not wrong.confirmed  # a tie: neither twin is published
    hall = visit("hall", "hall", 2.0, 20)
    assert hall.rivals == () and hall.confirmed and hall.support == 3
    np.testing.assert_allclose(hall.camera_in_scene, np.linalg.inv(scenes["hall"][1]), atol=0.05)
    assert not visit("office_a", "office_b", 3.0, 30).confirmed  # still the wrong twin
    right = visit("office_a", "office_a", 4.0, 40)
    assert right.confirmed and right.rivals == ()  # agrees with the leader: no rival search
    np.testing.assert_allclose(right.camera_in_scene, np.eye(4), atol=0.05)


def test_relocalisation_is_confirmed_by_a_second_agreeing_estimate(mapdb):
    relocalizer = Relocalizer(mapdb, cfg=RelocalizerCfg(interval_s=0.0))
    first = relocalizer.relocalize(0.0, "room_a", _query_cloud(), np.eye(4))
    second = relocalizer.relocalize(1.0, "room_a", _query_cloud(), np.eye(4))
    assert isinstance(first.pose, PoseEstimate) and not first.confirmed and first.support == 1
    assert second.confirmed and second.support == 2
    relocalizer.reset()
    assert not relocalizer.relocalize(2.0, "room_a", _query_cloud(), np.eye(4)).confirmed


@pytest.fixture
def stranger_map(tmp_path):
    """Building b: an office and a hall; building c: a stranger, a room like the office but
    without its wardrobe (the office's cloud fits it by about 87 %, the office by 95 %). The
    embeddings are far apart: no scene is another's look-alike in the map."""
    stranger = [obj for obj in OBJECTS if obj is not OBJECTS[1]]
    scenes = {
        "office": ("b", OBJECTS, _pose(0.0, (0.0, 0.0, 0.0)), np.eye(DIM)[0]),
        "hall": ("b", HALL_OBJECTS, _pose(90.0, (10.0, 0.0, 0.0)), np.eye(DIM)[2]),
        "stranger": ("c", stranger, _pose(0.0, (0.0, 0.0, 0.0)), np.eye(DIM)[4]),
    }
    db, rooms = _building_map(tmp_path / "stranger.sqlite", scenes)
    yield db, rooms
    db.close()


def test_a_stranger_the_recogniser_hesitates_over_gets_no_pose(stranger_map):
    """The recogniser answers the stranger with the office as its runner-up: the cloud fits the
    stranger well enough for a pose, but the office better, so the stranger never gathers the
    support to be published. Without the runner-up it would be, on the second estimate."""
    mapdb, scenes = stranger_map
    cfg = RelocalizerCfg(interval_s=0.0, max_rivals=0)
    visit = partial(_visit, Relocalizer(mapdb, cfg=cfg), scenes)
    for seed, stamp in enumerate((0.0, 1.0)):
        found = visit("office", "stranger", stamp, 10 + seed, candidates=["stranger", "office"])
        assert isinstance(found.pose, PoseEstimate) and found.pose.fitness > 0.8, found.pose
        assert not found.confirmed and found.rivals == ("office",)
    unguarded = partial(_visit, Relocalizer(mapdb, cfg=cfg), scenes)
    assert not unguarded("office", "stranger", 0.0, 10).confirmed
    assert unguarded("office", "stranger", 1.0, 11).confirmed  # the failure guarded against


def test_a_stranger_in_another_building_is_checked_against_where_odometry_puts_the_robot(
    stranger_map,
):
    """The robot saw the hall (one estimate in building b), walks into the office, and the
    recogniser answers the stranger with no runner-up. Building b's hypothesis puts the cloud
    in the office: it fits better there, so building b gains the support, not the stranger."""
    mapdb, scenes = stranger_map
    cfg = RelocalizerCfg(interval_s=0.0, max_rivals=0)
    visit = partial(_visit, Relocalizer(mapdb, cfg=cfg), scenes)
    hall = visit("hall", "hall", 0.0, 20)
    assert isinstance(hall.pose, PoseEstimate) and hall.support == 1
    for seed, stamp in enumerate((1.0, 2.0)):
        found = visit("office", "stranger", stamp, 10 + seed)
        assert not found.confirmed and found.rivals == ("office",)
    right = visit("office", "office", 3.0, 40)
    assert right.confirmed and right.support == 4
    np.testing.assert_allclose(right.camera_in_scene, np.eye(4), atol=0.05)
    blind = RelocalizerCfg(interval_s=0.0, max_rivals=0, max_predictions=0)
    unguarded = partial(_visit, Relocalizer(mapdb, cfg=blind), scenes)
    unguarded("hall", "hall", 0.0, 20)
    assert not unguarded("office", "stranger", 1.0, 10).confirmed
    assert unguarded("office", "stranger", 2.0, 11).confirmed  # the failure guarded against
