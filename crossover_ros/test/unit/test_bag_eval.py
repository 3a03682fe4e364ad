"""Bag evaluation: metrics with known answers, both bag formats, damaged bags, the report.

The known-answer bag is written here: uniformly coloured frames (room A red, B green, C blue)
and an encoder that embeds a frame as its mean colour, against a map of one-hot scenes, so
every answer the pipeline gives is known before it runs.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from crossover_ros.bags.odometry import planar_pose
from crossover_ros.bags.reader import (
    GROUND_TRUTH_FILE,
    TYPESTORE,
    BagReadStatus,
    BagTopics,
    iter_raw_messages,
)
from crossover_ros.bags.writer import camera_info_msg, image_msg, odometry_msg
from crossover_ros.errors import BagError
from crossover_ros.eval.bag_eval import (
    BagContents,
    BagEvalCfg,
    GroundTruth,
    MapGeometry,
    ObservedRelocalization,
    RunRecord,
    compute_metrics,
    evaluate_offline,
    unavailable,
)
from crossover_ros.eval.bag_report import format_report, report_json
from crossover_ros.eval.plots import plot_all
from crossover_ros.eval.visits import (
    ObservedMatch,
    first_per_window,
    path_length,
    summarize_visits,
)
from crossover_ros.frames import CameraIntrinsics
from crossover_ros.mapdb.open import create_map
from crossover_ros.mapdb.records import SceneRecord
from crossover_ros.pipeline.config import PipelineCfg
from crossover_ros.pipeline.keyframes import KeyframeCfg
from crossover_ros.pipeline.recognizer import RecognizerCfg
from crossover_ros.synthetic.query_bag import QueryBagCfg

T0 = 1_700_000_000 * 10**9
S = 10**9
TOPICS = BagTopics()
RED, GREEN, BLUE, REDDISH = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 60, 0)
SCENES = {"A": RED, "B": GREEN, "C": BLUE}


class ColourEncoder:
    """A frame is its mean colour; a scene is its colour: answers known in advance."""

    modality = "rgb"
    map_modality = "rgb"
    fingerprint = "colour:test"
    dim = instance_dim = 3
    finds_objects = False

    def frame_features(self, images):
        return np.stack([im.reshape(-1, 3).mean(0) for im in images]).astype(np.float32)

    def query(self, window):
        return window


# (scene, start s, colour per frame) per visit; frames every 0.25 s, keyframes every 0.5 s.
VISITS = [
    ("A", 0.0, [RED] * 8),
    ("B", 3.0, [REDDISH] * 4 + [GREEN] * 4),  # looks like A first: two confident wrong answers
    ("C", 6.0, ["yuv422"] * 2 + [BLUE] * 6),  # two frames in an unknown encoding
]
EVAL_CFG = BagEvalCfg(
    ks=(1, 2, 3),
    pipeline=PipelineCfg(
        recognizer=RecognizerCfg(window_size=1),
        keyframes=KeyframeCfg(min_translation_m=100.0, min_rotation_deg=180.0, max_interval_s=0.5),
    ),
)


def _pose(t: float) -> np.ndarray:
    pose = np.eye(4)
    pose[0, 3] = 0.5 * t  # 0.5 m/s along x
    return pose


def write_colour_bag(
    out: Path,
    storage: str = "mcap",
    skip_topics: tuple[str, ...] = (),
    size: tuple[int, int] = (160, 120),
    compressed_color: bool = False,
) -> Path:
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    width, height = size
    intrinsics = CameraIntrinsics(width, height, 100.0, 100.0, width / 2, height / 2)
    frame_id = "camera_color_optical_frame"
    serialize = TYPESTORE.serialize_cdr
    types = {
        TOPICS.color: "sensor_msgs/msg/Image",
        TOPICS.depth: "sensor_msgs/msg/Image",
        TOPICS.camera_info: "sensor_msgs/msg/CameraInfo",
        TOPICS.odometry: "nav_msgs/msg/Odometry",
        TOPICS.ground_truth: "std_msgs/msg/String",
    }
    if compressed_color:
        types[TOPICS.color] = "sensor_msgs/msg/CompressedImage"
    visits = []
    with Writer(out, version=9, storage_plugin=plugin) as writer:
        conns = {
            topic: writer.add_connection(topic, msgtype, typestore=TYPESTORE)
            for topic, msgtype in types.items()
            if topic not in skip_topics
        }

        def write(topic, stamp, msg):
            if topic in conns:
                writer.write(conns[topic], stamp, serialize(msg, types[topic]))

        for step in range(0, 80):  # odometry at 10 Hz over the whole walk (8 s)
            stamp = T0 + step * S // 10
            write(TOPICS.odometry, stamp, odometry_msg(_pose(step / 10), stamp, "odom", frame_id))
        for scene, start, colours in VISITS:
            begin = T0 + int(start * S)
            for index, colour in enumerate(colours):
                stamp = begin + index * S // 4
                encoding = "rgb8"
                if colour == "yuv422":
                    encoding, colour = "yuv422", (9, 9, 9)
                image = np.zeros((height, width, 3), np.uint8) + np.asarray(colour, np.uint8)
                color = image_msg(image, "rgb8", stamp, frame_id)
                if encoding != "rgb8":
                    color.encoding = encoding
                if compressed_color:
                    color = TYPESTORE.types["sensor_msgs/msg/CompressedImage"](
                        header=color.header, format="jpeg", data=np.zeros(16, np.uint8)
                    )
                depth = np.full((height, width), 1500, np.uint16)
                truth = {"stamp_ns": stamp, "scene_id": scene, "instances": {"1": 1, "2": None}}
                write(TOPICS.camera_info, stamp, camera_info_msg(intrinsics, stamp, frame_id))
                write(TOPICS.color, stamp, color)
                write(TOPICS.depth, stamp, image_msg(depth, "16UC1", stamp, frame_id))
                write(
                    TOPICS.ground_truth,
                    stamp,
                    TYPESTORE.types["std_msgs/msg/String"](data=json.dumps(truth)),
                )
            visits.append(
                {
                    "scene_id": scene,
                    "room_id": scene.lower(),
                    "start_ns": begin,
                    "end_ns": begin + (len(colours) - 1) * S // 4,
                }
            )
    (out / GROUND_TRUTH_FILE).write_text(json.dumps({"building_id": "colours", "visits": visits}))
    return out


@pytest.fixture(scope="module")
def colour_map(tmp_path_factory):
    path = tmp_path_factory.mktemp("map") / "colours.sqlite"
    mapdb = create_map(path, ColourEncoder.fingerprint, 3)
    for index, scene in enumerate(SCENES):
        pose = tuple(float(v) for v in np.eye(4).reshape(-1))
        record = SceneRecord(scene, "colours", scene.lower(), 0, None, "room", pose)
        mapdb.add_scene(record, {"rgb": np.eye(3, dtype=np.float32)[index][None]})
    mapdb.close()
    return path


def _evaluate(bag, colour_map, cfg=EVAL_CFG):
    from crossover_ros.mapdb import open_map

    with open_map(colour_map, ColourEncoder.fingerprint) as mapdb:
        return evaluate_offline(
            bag, cfg.pipeline, cfg, "colour", False, encoder=ColourEncoder(), mapdb=mapdb
        )


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_known_answers_from_both_bag_formats(storage, tmp_path, colour_map):
    bag = write_colour_bag(tmp_path / "bag", storage)
    record = _evaluate(bag, colour_map)
    assert record.contents.storage == storage
    assert record.contents.read_error is None and not record.contents.missing
    metrics = compute_metrics([record], EVAL_CFG)

    # keyframes every 0.5 s: A 4 windows, B 4 (2 look like A), C 3 (2 frames rejected)
    assert metrics.windows == 11
    assert metrics.recall == pytest.approx({1: 9 / 11, 2: 1.0, 3: 1.0})
    assert metrics.recall_curve == pytest.approx([9 / 11, 1.0, 1.0])
    assert metrics.recall_capped_at is None  # every scene of the map is ranked
    assert metrics.rooms_recognised == 3
    assert metrics.first_correct_s == pytest.approx([0.0, 1.0, 0.5])
    assert metrics.first_correct_m == pytest.approx([0.0, 0.5, 0.25], abs=1e-6)
    assert metrics.confident_wrong == 2 and metrics.confident_wrong_rate == pytest.approx(2 / 11)
    assert [v.confident_wrong for v in metrics.visits] == [0, 2, 0]
    assert metrics.frames_in_bag == 24 and metrics.frames_processed == 24
    assert metrics.dropped_frames == 2 and metrics.rejected == 2
    assert metrics.keyframes == 11
    assert metrics.instance_windows == 0 and metrics.pose_windows == 0  # not published
    for stage in ("frame_features", "map_search", "end_to_end"):
        assert metrics.latency_ms[stage]["n"] == 11
    assert metrics.peak_memory_mb and metrics.peak_memory_mb > 10
    problems = " ".join(record.contents.problems())
    assert "2 messages rejected" in problems and "yuv422" in problems

    report = format_report([metrics], [record.contents], EVAL_CFG, {"mode": "offline"})
    assert "| colour | I->I | 11 | 81.8 | 100.0 | 100.0 | 3/3 | 0.5 s / 0.25 m | 0/3 |" in report
    assert "18.2 (2)" in report  # confident wrong: share (count)
    # the colour map stores no point clouds: every relocalisation ends in NoPose, and says so
    assert metrics.relocalizations > 0 and metrics.pose_windows == 0
    assert f"no pose in {metrics.relocalizations} tries" in report and "yuv422" in report


def test_deterministic(tmp_path, colour_map):
    bag = write_colour_bag(tmp_path / "bag")
    first, second = _evaluate(bag, colour_map), _evaluate(bag, colour_map)
    assert [m.stamp_ns for m in first.matches] == [m.stamp_ns for m in second.matches]
    assert [m.candidate_ids for m in first.matches] == [m.candidate_ids for m in second.matches]


def test_truncated_mcap_is_evaluated_as_far_as_readable(tmp_path, colour_map):
    bag = write_colour_bag(tmp_path / "bag", "mcap")
    mcap = next(bag.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: int(mcap.stat().st_size * 0.7)])

    status = BagReadStatus()
    salvaged = list(iter_raw_messages(bag, None, status))
    assert salvaged and status.salvaged and not status.complete
    with pytest.raises(BagError):  # the strict reader (the player's) refuses it
        list(iter_raw_messages(bag))

    record = _evaluate(bag, colour_map)
    problems = " ".join(record.contents.problems())
    assert "damaged" in problems and "evaluated as far as readable" in problems
    metrics = compute_metrics([record], EVAL_CFG)
    assert 0 < metrics.windows < 11
    assert len(metrics.visits) < 3  # visits after the damage are not scored as failures
    assert metrics.first_correct_s[0] == 0.0


def test_corrupt_sqlite3_gives_a_clear_answer(tmp_path, colour_map):
    bag = write_colour_bag(tmp_path / "bag", "sqlite3")
    db3 = next(bag.glob("*.db3"))
    data = bytearray(db3.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8192] = b"\xff" * 8192  # a few pages of garbage
    db3.write_bytes(bytes(data))
    try:
        record = _evaluate(bag, colour_map)
    except BagError as err:  # nothing readable at all: one clear error naming the bag
        assert str(bag) in str(err)
        return
    assert record.contents.read_error or record.contents.undecodable
    assert record.contents.problems()


def test_missing_topics_are_reported_and_the_rest_evaluated(tmp_path, colour_map):
    no_odom = write_colour_bag(tmp_path / "no_odom", skip_topics=(TOPICS.odometry,))
    record = _evaluate(no_odom, colour_map)
    assert record.contents.missing == {"odometry": TOPICS.odometry}
    assert "keyframes by time only" in " ".join(record.contents.problems())
    metrics = compute_metrics([record], EVAL_CFG)
    assert metrics.windows == 11 and metrics.first_correct_m == [None, None, None]

    no_info = write_colour_bag(tmp_path / "no_info", skip_topics=(TOPICS.camera_info,))
    record = _evaluate(no_info, colour_map)
    assert "every frame is dropped" in " ".join(record.contents.problems())
    metrics = compute_metrics([record], EVAL_CFG)
    assert metrics.windows == 0 and metrics.dropped_frames == 24
    assert metrics.never_correct == 3


def test_compressed_images_are_named_not_crashed_on(tmp_path, colour_map):
    bag = write_colour_bag(tmp_path / "bag", compressed_color=True)
    record = _evaluate(bag, colour_map)
    assert record.contents.wrong_type == {TOPICS.color: "sensor_msgs/msg/CompressedImage"}
    assert "republish them raw" in " ".join(record.contents.problems())
    assert compute_metrics([record], EVAL_CFG).windows == 0


def test_ground_truth_from_the_topic_without_sidecar(tmp_path, colour_map):
    bag = write_colour_bag(tmp_path / "bag")
    (bag / GROUND_TRUTH_FILE).unlink()
    metrics = compute_metrics([_evaluate(bag, colour_map)], EVAL_CFG)
    assert [v.true_scene for v in metrics.visits] == ["A", "B", "C"]
    assert metrics.recall[1] == pytest.approx(9 / 11)

    bare = write_colour_bag(tmp_path / "bare", skip_topics=(TOPICS.ground_truth,))
    (bare / GROUND_TRUTH_FILE).unlink()
    with pytest.raises(BagError, match="no ground truth"):
        _evaluate(bare, colour_map)


# -- metrics from synthetic results ----------------------------------------------------------------


def _synthetic_truth() -> GroundTruth:
    visits = [
        {"scene_id": "A", "room_id": "a", "start_ns": 0, "end_ns": 10 * S},
        {"scene_id": "B", "room_id": "b", "start_ns": 20 * S, "end_ns": 30 * S},
    ]
    path = [(t * S // 2, _pose(t / 2)) for t in range(0, 61)]  # 0.5 m/s, samples every 0.5 s
    frames = {
        2 * S: {"scene_id": "A", "instances": {"1": 1, "2": 2, "3": None}},
        4 * S: {"scene_id": "A", "instances": {"1": 1, "2": 2}},
        22 * S: {"scene_id": "B", "instances": {"7": 7}},
    }
    return GroundTruth(visits=visits, frames=frames, path=path)


def test_metrics_of_synthetic_results_with_relocalisations():
    truth = _synthetic_truth()  # odometry at t s: x = t / 2 m (building = map frame)
    b_to_map = np.eye(4)
    b_to_map[0, 3] = 10.0  # scene B's origin sits at x = 10 m in the building
    geometry = MapGeometry(
        scene_to_map={"A": np.eye(4), "B": b_to_map},
        boxes={
            "A": {1: (np.array([0.5, -1, -1]), np.array([1.5, 1, 1])),
                  2: (np.array([4.5, -1, -1]), np.array([5.5, 1, 1]))},
            "B": {7: (np.array([1.5, -1, -1]), np.array([2.5, 1, 1]))},
        },
    )  # fmt: skip
    off_10cm, off_1m = _pose(2.0), _pose(22.0)
    off_10cm[0, 3] += 0.1
    off_1m[1, 3] += 1.0
    relocalizations = [
        # in A: one right pair (object 1 in its box), one wrong (at object 2, paired with 1)
        ObservedRelocalization(2 * S, "A", off_10cm, (((1.0, 0, 0), 1), ((5.0, 0, 0), 1))),
        ObservedRelocalization(4 * S, "B", None, (((1.0, 0, 0), 7),)),  # wrong room, NoPose
        ObservedRelocalization(22 * S, "B", off_1m, (((12.0, 0, 0), 7),)),  # 2 m in B: right
    ]
    matches = [
        ObservedMatch(2 * S, "B", 0.8, 0.7, 0.010, ("B", "A")),
        ObservedMatch(4 * S, "A", 0.9, 0.9, 0.020, ("A", "B")),
        ObservedMatch(22 * S, "B", 0.9, 0.4, 0.030, ("B", "A")),
        ObservedMatch(24 * S, "", float("nan"), 0.0, 0.040, ("A", "B")),  # filter: no answer
    ]
    record = RunRecord(
        "model", "I->P", "offline", "bag", matches, BagContents("bag"), truth,
        relocalizations=relocalizations,
    )  # fmt: skip
    metrics = compute_metrics([record], BagEvalCfg(ks=(1, 2)), geometry)
    assert metrics.windows == 4
    assert metrics.recall == {1: 0.5, 2: 1.0}
    assert metrics.confident_wrong == 1  # "B" at 0.7 in room A; "" is no answer, not wrong
    assert metrics.first_correct_s == [4.0, 2.0]
    assert metrics.first_correct_m == pytest.approx([2.0, 1.0])
    # instances: only relocalisations in the right room; 2 of 3 pairs right, 2 of 3 in view
    assert metrics.instance_windows == 2
    assert metrics.instance_precision == pytest.approx(2 / 3)
    assert metrics.instance_recall == pytest.approx(2 / 3)
    # poses: 10 cm and 1 m off (the latter wrong), one NoPose of three tries
    assert metrics.relocalizations == 3 and metrics.pose_windows == 2
    assert metrics.pose_error_m["p50"] == pytest.approx(0.55)
    assert metrics.wrong_poses == 1 and metrics.wrong_pose_rate == pytest.approx(0.5)
    assert metrics.no_pose_rate == pytest.approx(1 / 3)
    assert metrics.latency_ms["end_to_end"]["p50"] == pytest.approx(25.0)
    assert metrics.rooms_recognised == 1  # the last answer in B is "" (none)

    rows = [metrics, unavailable("Instance Baseline", "not available: train it", "I->P")]
    report = format_report(rows, [record.contents], BagEvalCfg(ks=(1, 2)), {"mode": "offline"})
    assert "66.7 / 66.7" in report and "55.0 cm / 0.0 deg (wrong 50.0, none 33.3)" in report
    assert "| Instance Baseline | I->P | not available: train it |" in report
    payload = json.loads(report_json(rows, [record.contents], BagEvalCfg(), {"mode": "offline"}))
    assert payload["methods"][0]["instance_precision"] == pytest.approx(2 / 3)
    assert payload["methods"][0]["wrong_pose_rate"] == pytest.approx(0.5)
    assert payload["methods"][1]["available"] is False


def test_poses_and_pairs_are_scored_against_the_ground_truth_not_the_drifting_odometry():
    """Odometry in its own frame, drifting: the node's pose (its map -> odom times the
    odometry) is right when it equals the ground-truth pose, whatever the odometry says."""
    origin = planar_pose(0.7, 3.0, -2.0)  # the odom frame in the map at the start

    def map_to_odom(t: float) -> np.ndarray:  # drifts: 1 deg and 5 cm per 10 s
        return origin @ planar_pose(math.radians(0.1 * t), 0.005 * t, 0.0)

    truth = _synthetic_truth()  # true path: x = t / 2 in the map frame
    truth.ground_truth_path = truth.path
    truth.path = [(s, np.linalg.inv(map_to_odom(s / S)) @ pose) for s, pose in truth.path]
    geometry = MapGeometry(
        scene_to_map={"A": np.eye(4)}, boxes={"A": {1: (np.array([0.5, -1, -1]), np.ones(3))}}
    )
    object_in_odom = np.linalg.inv(map_to_odom(2.0)) @ np.array([1.0, 0.0, 0.0, 1.0])
    right_pair = ((tuple(object_in_odom[:3]), 1),)
    relocalizations = [  # poses as the node publishes them: its map -> odom @ odometry
        ObservedRelocalization(2 * S, "A", map_to_odom(2.0) @ truth.pose_at(2 * S), right_pair),
        ObservedRelocalization(4 * S, "A", map_to_odom(4.0) @ truth.pose_at(4 * S)),
        ObservedRelocalization(6 * S, "A", _shifted(6.0, 0.1)),  # 10 cm off the truth
    ]
    matches = [ObservedMatch(2 * S, "A", 0.9, 0.9, 0.01, ("A", "B"))]

    def metrics(truth: GroundTruth):
        record = RunRecord(
            "m", "I->P", "offline", "bag", matches, BagContents("bag"), truth,
            relocalizations=relocalizations,
        )  # fmt: skip
        return compute_metrics([record], BagEvalCfg(ks=(1, 2)), geometry)

    scored = metrics(truth)
    assert scored.pose_windows == 3 and scored.wrong_poses == 0
    assert scored.pose_error_m["p50"] == pytest.approx(0.0, abs=1e-9)
    assert scored.pose_error_m["p95"] == pytest.approx(0.09)  # the 10 cm one
    assert scored.pose_error_deg["p50"] == pytest.approx(0.0, abs=1e-6)
    assert scored.instance_windows == 3 and scored.instance_precision == 1.0  # the one pair
    assert not any("no ground-truth poses" in n for n in scored.notes)
    assert truth.odom_to_map_at(4 * S) == pytest.approx(map_to_odom(4.0))

    older = GroundTruth(visits=truth.visits, frames=truth.frames, path=truth.path)
    wrong = metrics(older)  # what scoring against the odometry would say: metres off
    assert wrong.pose_error_m["p50"] > 2.0 and wrong.wrong_poses == 3
    assert wrong.instance_precision == 0.0
    assert any("no ground-truth poses on /crossover/ground_truth_pose" in n for n in wrong.notes)


def _shifted(t: float, dx: float) -> np.ndarray:
    pose = _pose(t)
    pose[0, 3] += dx
    return pose


def test_plots_are_pngs(tmp_path):
    truth = _synthetic_truth()
    matches = [ObservedMatch(2 * S, "A", 0.9, 0.9, 0.01, ("A", "B"))]
    record = RunRecord("m", "I->I", "offline", "bag", matches, BagContents("bag"), truth)
    plots = plot_all([compute_metrics([record], BagEvalCfg(ks=(1, 2)))], tmp_path)
    assert set(plots) == {"recall_at_k", "latency", "first_correct"}
    for path in plots.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_visit_distance_and_confident_wrong_bookkeeping():
    path = [(t * S, _pose(t)) for t in range(5)]
    assert path_length(path, 0, 4 * S) == pytest.approx(2.0)
    visits = [{"scene_id": "A", "room_id": "a", "start_ns": 0, "end_ns": 4 * S}]
    matches = [
        ObservedMatch(1 * S, "B", 0.5, 0.9, None),
        ObservedMatch(3 * S, "A", 0.5, 0.9, None),
    ]
    (visit,) = summarize_visits(visits, matches, path, confident=0.5)
    assert (visit.first_correct_s, visit.first_correct_m, visit.confident_wrong) == (3.0, 1.5, 1)


def test_repeats_of_a_window_count_once():
    first = ObservedMatch(5, "A", 0.9, 0.9, 0.01)
    repeat = ObservedMatch(5, "A", 0.9, 0.9, 1.01)
    assert first_per_window([first, repeat, ObservedMatch(6, "B", 0.9, 0.9, 0.02)]) == [
        first,
        ObservedMatch(6, "B", 0.9, 0.9, 0.02),
    ]


def test_cli_help_tells_eval_from_evaluate():
    result = subprocess.run(
        [sys.executable, "-m", "crossover_ros.cli.main", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    assert "not 'evaluate'" in result.stdout
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "crossover_ros.cli.main",
            "eval",
            "--bag",
            "/no/bag",
            "--map",
            "m",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["ERROR: bag /no/bag does not exist"]


def test_cli_report_on_a_generated_building(small_building, tmp_path):
    """``crossover_ros eval`` end to end: a real model, two bags (both formats), one map."""
    from crossover_ros.cli.main import main
    from crossover_ros.mapdb.build import build_map
    from crossover_ros.model.global_descriptor import GlobalDescriptorEncoder
    from crossover_ros.synthetic.query_bag import record_query_bag

    map_path = tmp_path / "map.sqlite"
    build_map(small_building, map_path, GlobalDescriptorEncoder(), progress=False).close()
    bags = []
    for storage in ("mcap", "sqlite3"):
        cfg = QueryBagCfg(seed=3, storage=storage, seconds_per_room=0.5, transit_seconds=0.5)
        bags += ["--bag", str(record_query_bag(small_building, tmp_path / storage, cfg, False))]
    out = tmp_path / "report"
    assert main(["eval", *bags, "--map", str(map_path), "--out", str(out), "--quiet"]) == 0

    report = (out / "report.md").read_text()
    assert "| global descriptor | I->I |" in report
    assert "(mcap," in report and "(sqlite3," in report
    assert report.count("read completely, no problems") == 2
    payload = json.loads((out / "results.json").read_text())
    (method,) = payload["methods"]
    assert method["bags"] == 2 and method["windows"] > 0
    assert len(method["visits"]) == 6  # 3 rooms per bag
    assert method["recall"]["10"] == 1.0  # 3 mapped scenes: all ranked
    assert method["peak_memory_mb"] > 100  # measured in the row's own process
    for name in ("recall_at_k", "latency", "first_correct"):
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_a_bag_without_depth_is_an_error_naming_the_topic(tmp_path, colour_map):
    no_depth = write_colour_bag(tmp_path / "no_depth", skip_topics=(TOPICS.depth,))
    with pytest.raises(BagError) as info:
        _evaluate(no_depth, colour_map)
    message = str(info.value)
    assert TOPICS.depth in message and "(depth)" in message and "--depth-topic" in message


def test_an_unreadable_bag_is_named_once(tmp_path, colour_map):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 9\n")
    with pytest.raises(BagError) as info:
        _evaluate(broken, colour_map)
    assert str(info.value).count("cannot read bag") == 1, str(info.value)
