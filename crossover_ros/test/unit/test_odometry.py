"""Odometry as a robot has it: its own frame, drift bounded by the configuration, the truth beside.

Checked on a known path (the drift model alone) and on recorded bags (what ``eval`` and the node
see): the odometry is not the ground-truth pose, its frame starts elsewhere in the map, and
``ground_truth @ inv(odometry)`` (the true ``map -> odom``) moves no more than the drift allows.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest

from crossover_ros.bags.odometry import DriftingOdometry, OdometryNoiseCfg, planar_pose
from crossover_ros.bags.reader import BagTopics, deserialize, iter_raw_messages, read_ground_truth
from crossover_ros.errors import BagError
from crossover_ros.pipeline.decode import odometry_to_pose, pose_stamped_to_matrix
from crossover_ros.synthetic.query_bag import QueryBagCfg, record_query_bag

TOPICS = BagTopics()


def _yaw(pose: np.ndarray) -> float:
    return math.atan2(pose[1, 0], pose[0, 0])


def _loop(steps: int = 3000, speed: float = 0.015) -> list[np.ndarray]:
    """A camera walking a 6 m x 3 m rectangle again and again (1.5 cm a step), looking ahead."""
    corners = np.array([(0, 0), (6, 0), (6, 3), (0, 3)], np.float64)
    perimeter, out, travelled = 18.0, [], 0.0
    for _ in range(steps):
        s = travelled % perimeter
        edge = 0 if s < 6 else 1 if s < 9 else 2 if s < 15 else 3
        start = (0, 6, 9, 15)[edge]
        a, b = corners[edge], corners[(edge + 1) % 4]
        xy = a + (b - a) * (s - start) / np.linalg.norm(b - a)
        heading = math.atan2(*(b - a)[::-1])
        pose = planar_pose(heading, *xy)
        pose[2, 3] = 1.3
        out.append(pose)
        travelled += speed
    return out


def _drift_along(odometer: DriftingOdometry, path: list[np.ndarray]) -> list[tuple]:
    """(distance, heading error, position error in the starting odom frame) per step."""
    out = []
    first = None
    for true in path:
        odom = odometer(true)
        if first is None:
            first = odometer.map_to_odom  # the odom frame's place before it drifted
        start_frame = np.linalg.inv(first) @ true
        error = float(np.linalg.norm(odom[:3, 3] - start_frame[:3, 3]))
        heading = _yaw(odom @ np.linalg.inv(start_frame))
        out.append((odometer.distance_m, heading, error))
    return out


def test_drift_grows_with_distance_within_the_configured_bounds():
    cfg = OdometryNoiseCfg(drift=0.01, yaw_drift_deg_per_10m=1.0)
    rate = math.radians(1.0) / 10.0
    for seed in range(5):
        odometer = DriftingOdometry(cfg, seed)
        trace = _drift_along(odometer, _loop())
        distance, heading, error = trace[-1]
        assert distance == pytest.approx(45.0, rel=1e-3)
        for d, h, e in trace:  # never beyond the configured rates (with the heading's lever)
            assert abs(h) <= rate * d + 1e-9
            assert e <= cfg.drift * d + rate * d * d / 2 + 1e-9
        # and about as large: half the rate at least, as a run's bias is at least that
        assert abs(heading) >= 0.4 * rate * distance
        assert error >= 0.4 * cfg.drift * trace[len(trace) // 3][0]
        halfway = trace[len(trace) // 2]
        assert abs(heading) > abs(halfway[1]), "the heading error keeps growing"


def test_origin_is_a_floor_plane_offset_and_deterministic():
    path = _loop(200)
    first = DriftingOdometry(OdometryNoiseCfg(), seed=4)
    again = DriftingOdometry(OdometryNoiseCfg(), seed=4)
    other = DriftingOdometry(OdometryNoiseCfg(), seed=5)
    a = [first(p) for p in path]
    assert all(np.array_equal(x, again(p)) for x, p in zip(a, path, strict=True))
    assert not np.allclose(a[-1], other(path[-1]))
    origin = first.origin
    assert origin[2, 3] == 0.0 and np.allclose(origin[:3, 2], (0, 0, 1)), "yaw and xy only"
    assert np.linalg.norm(origin[:2, 3]) > 0.1
    assert a[0][2, 3] == pytest.approx(1.3), "height is exact"
    assert np.allclose(path[0], origin @ a[0]), "no drift before the first step"


def test_switches_give_old_and_partial_odometry():
    path = _loop(500)
    perfect = DriftingOdometry(OdometryNoiseCfg.perfect(), 0)
    assert all(np.array_equal(perfect(p), p) for p in path)
    assert np.array_equal(perfect.map_to_odom, np.eye(4))
    offset_only = DriftingOdometry(OdometryNoiseCfg(drift=0.0, yaw_drift_deg_per_10m=0.0), 0)
    map_to_odom = offset_only.origin
    assert all(np.allclose(map_to_odom @ offset_only(p), p) for p in path)
    drift_only = DriftingOdometry(OdometryNoiseCfg(origin=False), 0)
    assert np.allclose(drift_only(path[0]), path[0])
    assert not np.allclose(drift_only(path[-1]), path[-1])


def test_jumps_are_sudden_and_as_large_as_configured():
    def moves(cfg: OdometryNoiseCfg) -> list[tuple[float, float]]:
        """(shift, turn) of the true map -> odom per step: only jumps move it here."""
        odometer, out, previous = DriftingOdometry(cfg, 1), [], None
        for pose in _loop(1000):  # 15 m
            odometer(pose)
            now = odometer.map_to_odom
            if previous is not None:
                turn = abs(_yaw(now @ np.linalg.inv(previous)))
                out.append((float(np.linalg.norm(now[:2, 3] - previous[:2, 3])), turn))
            previous = now
        return out

    quiet = OdometryNoiseCfg(drift=0.0, yaw_drift_deg_per_10m=0.0, jump_per_m=0.5, jump_deg=0.0)
    slips = [shift for shift, _ in moves(replace(quiet, jump_m=0.2)) if shift > 1e-9]
    assert 2 <= len(slips) <= 20  # 15 m at 0.5 per metre: about 7
    assert slips == pytest.approx([0.2] * len(slips))
    turns = [turn for _, turn in moves(replace(quiet, jump_m=0.0, jump_deg=2.0)) if turn > 1e-9]
    assert 2 <= len(turns) <= 20 and max(turns) <= math.radians(2.0) + 1e-9
    assert not any(shift for shift, _ in moves(replace(quiet, jump_per_m=0.0)))


def test_bad_noise_settings_are_refused_in_one_line(small_building, tmp_path):
    for cfg in (OdometryNoiseCfg(drift=-0.1), OdometryNoiseCfg(yaw_drift_deg_per_10m=math.nan)):
        with pytest.raises(BagError, match="odometry noise"):
            record_query_bag(small_building, tmp_path / "bag", QueryBagCfg(odometry=cfg), False)
    with pytest.raises(BagError, match="share of distance"):
        DriftingOdometry(OdometryNoiseCfg(drift=1.5), 0)
    assert not (tmp_path / "bag").exists()


def _poses(bag) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    odometry, truth = {}, {}
    for raw in iter_raw_messages(bag, [TOPICS.odometry, TOPICS.ground_truth_pose]):
        msg = deserialize(raw)
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        if raw.topic == TOPICS.odometry:
            assert msg.header.frame_id == "odom"
            odometry[stamp] = odometry_to_pose(msg)
        else:
            assert msg.header.frame_id == "map"
            assert raw.msgtype == "geometry_msgs/msg/PoseStamped"
            truth[stamp] = pose_stamped_to_matrix(msg)
    return odometry, truth


@pytest.fixture(scope="module")
def drifting_bag(small_building, tmp_path_factory):
    cfg = QueryBagCfg(
        seed=3,
        seconds_per_room=2.0,
        transit_seconds=1.0,
        odometry=OdometryNoiseCfg(drift=0.02, yaw_drift_deg_per_10m=3.0),
    )
    return record_query_bag(small_building, tmp_path_factory.mktemp("odom") / "bag", cfg, False)


def test_a_bag_carries_drifting_odometry_in_its_own_frame_and_the_truth(drifting_bag):
    odometry, truth = _poses(drifting_bag)
    assert odometry and set(odometry) == set(truth), "the truth at every odometry stamp"
    stamps = sorted(odometry)
    sidecar = read_ground_truth(drifting_bag)["odometry"]
    origin = np.asarray(sidecar["origin_in_map"])
    assert sidecar["frame"] == "odom" and sidecar["noise"]["drift"] == 0.02
    first = truth[stamps[0]] @ np.linalg.inv(odometry[stamps[0]])
    assert np.allclose(first, origin, atol=1e-6), "the sidecar names the odom frame's origin"
    assert np.linalg.norm(origin[:2, 3]) > 0.1 or abs(_yaw(origin)) > 0.1
    errors = [np.linalg.norm(odometry[s][:3, 3] - truth[s][:3, 3]) for s in stamps]
    assert min(errors) > 0.05, "the odometry is never the ground-truth pose"

    travelled = np.cumsum(
        [0.0]
        + [np.linalg.norm(truth[b][:2, 3] - truth[a][:2, 3]) for a, b in itertools.pairwise(stamps)]
    )
    rate = math.radians(3.0) / 10.0
    drifts = []
    for stamp, distance in zip(stamps, travelled, strict=True):
        map_to_odom = truth[stamp] @ np.linalg.inv(odometry[stamp])
        moved = np.linalg.inv(origin) @ map_to_odom  # how far the odom frame drifted
        assert abs(_yaw(moved)) <= rate * distance + 1e-6
        assert moved[2, 3] == pytest.approx(0.0, abs=1e-6), "no vertical drift"
        drifts.append(abs(_yaw(moved)))
    assert travelled[-1] == pytest.approx(sidecar["distance_m"], rel=1e-6)
    assert drifts[-1] >= 0.4 * rate * travelled[-1] > 0.0, "drift grows with the distance"
    end = np.asarray(sidecar["map_to_odom_at_end"])
    assert np.allclose(end, truth[stamps[-1]] @ np.linalg.inv(odometry[stamps[-1]]), atol=1e-6)


def test_perfect_odometry_is_the_ground_truth(small_building, tmp_path):
    cfg = QueryBagCfg(
        seed=3, seconds_per_room=0.5, transit_seconds=0.5, odometry=OdometryNoiseCfg.perfect()
    )
    bag = record_query_bag(small_building, tmp_path / "bag", cfg, False)
    odometry, truth = _poses(bag)
    assert set(odometry) == set(truth)
    assert all(np.allclose(odometry[s], truth[s], atol=1e-9) for s in odometry)
    assert read_ground_truth(bag)["odometry"]["origin_in_map"] == np.eye(4).tolist()


def test_record_bag_cli_takes_the_odometry_options(small_building, tmp_path):
    from crossover_ros.cli.main import main

    common = ["data", "record-bag", "--building", str(small_building), "--seconds-per-room", "0.5"]
    args = ["--odom-drift", "0.03", "--odom-yaw-drift-deg-per-10m", "2", "--odom-jumps-per-m", "1"]
    assert main([*common, "--out", str(tmp_path / "drift"), *args]) == 0
    noise = read_ground_truth(tmp_path / "drift")["odometry"]["noise"]
    assert (noise["drift"], noise["yaw_drift_deg_per_10m"], noise["jump_per_m"]) == (0.03, 2, 1)
    assert main([*common, "--out", str(tmp_path / "perfect"), "--perfect-odometry"]) == 0
    assert read_ground_truth(tmp_path / "perfect")["odometry"]["noise"]["enabled"] is False
    assert main([*common, "--out", str(tmp_path / "bad"), "--odom-drift", "-1"]) == 1


def test_eval_reads_the_ground_truth_poses_and_the_true_map_to_odom(drifting_bag):
    from crossover_ros.eval.bag_eval import BagEvalCfg, read_bag

    contents, truth = read_bag(drifting_bag, BagEvalCfg(), progress=False)
    assert not contents.missing and not contents.problems()
    assert len(truth.ground_truth_path) == len(truth.path) > 0
    first, last = truth.path[0][0], truth.path[-1][0]
    sidecar = read_ground_truth(drifting_bag)["odometry"]
    assert truth.odom_to_map_at(first) == pytest.approx(np.asarray(sidecar["origin_in_map"]))
    end = np.asarray(sidecar["map_to_odom_at_end"])
    assert truth.odom_to_map_at(last) == pytest.approx(end, abs=1e-6)
    assert not np.allclose(truth.pose_at(last), truth.true_pose_at(last), atol=0.05)
