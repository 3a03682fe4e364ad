"""SensorStream without ROS: bad input is rejected with a reason and counted, never fatal;
time jumps reset the window; the worker processes only the newest pair."""

import threading
import time
from types import SimpleNamespace as Ns

import numpy as np
import pytest
from fake_encoders import ColourEncoder

from crossover_ros.mapdb import SceneRecord, SQLiteMapDatabase
from crossover_ros.pipeline.hysteresis import HysteresisCfg
from crossover_ros.pipeline.keyframes import KeyframeCfg
from crossover_ros.pipeline.recognizer import RecognizerCfg, SceneRecognizer
from crossover_ros.pipeline.stream import (
    FrameRejectedError,
    FrameWorker,
    LatestOnly,
    MissingCameraInfoError,
    SensorStream,
    StreamCfg,
)

H, W = 6, 8
COLOURS = {"red": (250, 10, 10), "green": (10, 250, 10), "blue": (10, 10, 250)}


# -- message doubles: decode.py reads attributes only ----------------------------------------
def _header(t, frame_id="camera"):
    sec = int(t)
    return Ns(stamp=Ns(sec=sec, nanosec=round((t - sec) * 1e9)), frame_id=frame_id)


def image(pixels, t, encoding):
    pixels = np.ascontiguousarray(pixels)
    return Ns(
        header=_header(t),
        height=pixels.shape[0],
        width=pixels.shape[1],
        encoding=encoding,
        is_bigendian=0,
        step=pixels.strides[0],
        data=pixels.tobytes(),
    )


def colour_msg(t, colour=COLOURS["red"], encoding="rgb8", shape=(H, W)):
    return image(np.full((*shape, 3), colour, np.uint8), t, encoding)


def depth_msg(t, depth=None, encoding="16UC1", shape=(H, W)):
    depth = np.ones(shape, np.float32) if depth is None else depth
    if encoding == "16UC1":
        return image(np.nan_to_num(depth * 1000, nan=0).clip(0).astype(np.uint16), t, encoding)
    return image(depth.astype(np.float32), t, encoding)


def camera_info(width=W, height=H, fx=10.0):
    return Ns(
        width=width,
        height=height,
        binning_x=0,
        binning_y=0,
        roi=Ns(x_offset=0, y_offset=0, width=0, height=0),
        k=[fx, 0, width / 2, 0, fx, height / 2, 0, 0, 1],
        p=[fx, 0, width / 2, 0, 0, fx, height / 2, 0, 0, 0, 1, 0],
    )


def odometry(t, x=0.0, quaternion=(0, 0, 0, 1)):
    qx, qy, qz, qw = quaternion
    return Ns(
        header=_header(t, "odom"),
        child_frame_id="camera",
        pose=Ns(pose=Ns(position=Ns(x=x, y=0.0, z=0.0), orientation=Ns(x=qx, y=qy, z=qz, w=qw))),
    )


class FakeFusion:
    cfg = Ns(max_keyframes=10)

    def __init__(self):
        self.added, self.resets = [], 0

    def add(self, frame, pose):
        self.added.append(frame.stamp)

    def reset(self):
        self.added, self.resets = [], self.resets + 1

    def views(self):
        return ()

    def __len__(self):
        return len(self.added)


@pytest.fixture
def mapdb(tmp_path):
    encoder = ColourEncoder()
    db = SQLiteMapDatabase.create(tmp_path / "m.sqlite", encoder.fingerprint, encoder.dim)
    for name, colour in COLOURS.items():
        colour_image = np.full((H, W, 3), colour, np.uint8)
        db.add_scene(SceneRecord(name, "b", name), {"rgb": encoder.frame_features([colour_image])})
    yield db
    db.close()


def make_stream(mapdb, fusion=None, **cfg):
    # one frame may name the room here: these tests are about the stream, not the filter
    answer_at_once = HysteresisCfg(min_window_frames=1)
    recognizer_cfg = RecognizerCfg(window_size=3, hysteresis=answer_at_once)
    recognizer = SceneRecognizer(ColourEncoder(), mapdb, recognizer_cfg)
    keyframes = KeyframeCfg(max_interval_s=0.01)
    stream = SensorStream(recognizer, StreamCfg(**cfg), fusion=fusion, keyframes=keyframes)
    stream.on_camera_info(camera_info())
    return stream


def feed(stream, t, colour=None, depth=None):
    """One good (or given) colour/depth pair at time t; the stream's answer."""
    stream.on_color(colour or colour_msg(t))
    return stream.on_depth(depth or depth_msg(t))


def test_a_good_pair_is_a_keyframe_with_pose_and_answer(mapdb):
    fusion = FakeFusion()
    stream = make_stream(mapdb, fusion)
    stream.on_odometry(odometry(10.0, x=1.5))
    keyframe = feed(stream, 10.0)
    assert keyframe.result.scene_id == "red" and keyframe.result.changed
    assert keyframe.pose[0, 3] == 1.5 and keyframe.odom_frame == "odom"
    assert fusion.added == [10.0]
    counts = stream.counts()
    assert counts["frames"] == counts["keyframes"] == counts["results"] == 1
    assert counts["rejected"] == 0


BAD_PAIRS = {
    "bad_color": lambda t: (colour_msg(t, encoding="rgb8"), depth_msg(t)),  # data made short below
    "unsupported colour encoding": lambda t: (
        Ns(**{**vars(colour_msg(t)), "encoding": "yuv422"}),
        depth_msg(t),
    ),
    "depth as colour": lambda t: (colour_msg(t), colour_msg(t)),
    "sizes differ": lambda t: (colour_msg(t, shape=(12, 16)), depth_msg(t)),
    "all NaN depth": lambda t: (colour_msg(t), depth_msg(t, np.full((H, W), np.nan), "32FC1")),
    "all zero depth": lambda t: (colour_msg(t), depth_msg(t, np.zeros((H, W)), "16UC1")),
    "all negative depth": lambda t: (colour_msg(t), depth_msg(t, -np.ones((H, W)), "32FC1")),
}
REASONS = {
    "bad_color": "bad_color",
    "unsupported colour encoding": "bad_color",
    "depth as colour": "bad_depth",
    "sizes differ": "size_mismatch",
    "all NaN depth": "no_valid_depth",
    "all zero depth": "no_valid_depth",
    "all negative depth": "no_valid_depth",
}


@pytest.mark.parametrize("case", sorted(BAD_PAIRS))
def test_bad_frames_are_rejected_with_a_reason_and_the_stream_goes_on(mapdb, case):
    stream = make_stream(mapdb)
    colour, depth = BAD_PAIRS[case](1.0)
    if case == "bad_color":
        colour.data = colour.data[:-3]  # truncated buffer
    with pytest.raises(FrameRejectedError) as err:
        feed(stream, 1.0, colour, depth)
    assert err.value.reason == REASONS[case]
    counts = stream.counts()
    assert counts["rejected"] == 1 and counts[f"rejected_{REASONS[case]}"] == 1
    assert feed(stream, 2.0).result.scene_id == "red", "the next good frame is recognised"


def test_partly_invalid_depth_is_fine(mapdb):
    depth = np.ones((H, W), np.float32)
    depth[:, :4] = np.nan
    depth[0, 5] = -1.0
    depth[1, 5] = 0.0
    keyframe = feed(make_stream(mapdb), 1.0, depth=depth_msg(1.0, depth, "32FC1"))
    assert keyframe.result.scene_id == "red"


def test_missing_then_late_camera_info(mapdb):
    stream = make_stream(mapdb)
    stream._camera_info = None
    with pytest.raises(MissingCameraInfoError):
        feed(stream, 1.0)
    assert stream.counts()["no_camera_info"] == 1
    assert stream.counts()["rejected_no_camera_info"] == 1
    stream.on_camera_info(camera_info())  # late
    assert feed(stream, 2.0).result.scene_id == "red"
    stream.on_camera_info(camera_info(fx=0.0))  # uncalibrated
    with pytest.raises(FrameRejectedError) as err:
        feed(stream, 3.0)
    assert err.value.reason == "bad_camera_info"
    stream.on_camera_info(camera_info(width=2 * W))  # another camera's size
    with pytest.raises(FrameRejectedError, match="sizes differ"):
        feed(stream, 4.0)


def test_bad_odometry_is_rejected_and_counted(mapdb):
    stream = make_stream(mapdb)
    with pytest.raises(FrameRejectedError) as err:
        stream.on_odometry(odometry(1.0, quaternion=(0, 0, 0, 0)))
    assert err.value.reason == "bad_odometry"
    assert stream.counts()["rejected_bad_odometry"] == 1
    stages = stream.stats.snapshot()["stages"]
    assert stages["odometry"]["attempts"] == 1 and stages["odometry"]["failures"] == 1
    assert stages["frames"]["attempts"] == 0, "odometry has a share of its own"


@pytest.mark.parametrize("step_s", [0.3, 2.0])
def test_stamps_running_backwards_never_give_an_answer(mapdb, step_s):
    """Out of order (small steps) is rejected; jumps back (large steps) restart the window, and
    a restarted window of one keyframe names no room: no answer from a single frame."""
    recognizer = SceneRecognizer(ColourEncoder(), mapdb, RecognizerCfg(window_size=3))
    stream = SensorStream(recognizer, keyframes=KeyframeCfg(max_interval_s=0.0))
    stream.on_camera_info(camera_info())
    answers, rejected = [], 0
    for index in range(12):
        t = 100.0 - index * step_s
        try:
            keyframe = feed(stream, t)
        except FrameRejectedError as err:
            assert err.reason == "out_of_order"
            rejected += 1
            continue
        answers.append(keyframe.result)
    assert all(r.scene_id == "" and not r.changed for r in answers)
    if step_s < StreamCfg().time_jump_s:
        assert rejected > 0 and len(answers) < 12
    else:
        assert stream.counts()["window_resets"] == 11 and rejected == 0


def test_a_bag_loop_resets_window_filter_and_cloud_and_is_counted(mapdb):
    fusion = FakeFusion()
    stream = make_stream(mapdb, fusion)
    for t in (100.0, 101.0, 102.0):
        stream.on_odometry(odometry(t))
        feed(stream, t)
    assert stream.recognizer.window_length == 3 and len(fusion) == 3
    stream.on_odometry(odometry(1.0))  # the bag starts over
    keyframe = feed(stream, 1.0, colour_msg(1.0, COLOURS["green"]))
    counts = stream.counts()
    assert counts["time_jumps"] == 1 and counts["window_resets"] == 1
    assert counts["odom_time_jumps"] == 1
    # cloud resets: the first answer (a new room), the loop, the answer after it
    assert stream.recognizer.window_length == 1 and fusion.resets == 3 and len(fusion) == 1
    assert keyframe.result.scene_id == "green" and keyframe.pose is not None
    assert keyframe.result.changed, "the filter restarted too"


def test_an_empty_map_gives_keyframes_but_no_answer(tmp_path):
    encoder = ColourEncoder()
    with SQLiteMapDatabase.create(
        tmp_path / "empty.sqlite", encoder.fingerprint, encoder.dim
    ) as db:
        stream = make_stream(db)
        assert feed(stream, 1.0) is None
        keyframe = stream.process(colour_msg(2.0), depth_msg(2.0))
        assert keyframe is not None and keyframe.result is None
        assert stream.counts()["keyframes"] == 2 and stream.counts()["results"] == 0


def test_reset_clears_window_filter_and_cloud(mapdb):
    fusion = FakeFusion()
    stream = make_stream(mapdb, fusion)
    stream.on_odometry(odometry(1.0))
    feed(stream, 1.0)
    assert fusion.resets == 1, "a new answer starts a new cloud"
    stream.reset()
    assert stream.recognizer.window_length == 0 and fusion.resets == 2 and len(fusion) == 0
    assert stream.recognizer.filter.current == ""


def test_without_recogniser_the_stream_selects_keyframes(mapdb):
    stream = SensorStream(None, keyframes=KeyframeCfg(max_interval_s=1.0))
    stream.on_camera_info(camera_info())
    assert feed(stream, 1.0).result is None
    assert feed(stream, 1.5) is None, "not a keyframe yet"
    assert feed(stream, 2.0) is not None


# -- the latest-frame policy --------------------------------------------------------------
def test_latest_only_keeps_one_item_and_counts_the_superseded():
    slot = LatestOnly()
    assert not slot.put(1) and slot.put(2) and slot.put(3)
    assert len(slot) == 1 and slot.dropped == 2
    assert slot.take(0) == (True, 3)
    assert slot.take(0.01) == (False, None)
    slot.task_done()
    assert slot.wait_idle(0)


def test_worker_under_a_flood_processes_the_newest_and_drops_the_rest():
    handled = []

    def slow(item):
        time.sleep(0.005)
        handled.append(item)

    worker = FrameWorker(slow)
    worker.start()
    try:
        for item in range(200):
            worker.submit(item)
            assert len(worker.slot) <= 1
        assert worker.wait_idle(10.0)
    finally:
        assert worker.stop()
    assert handled[-1] == 199, "the newest item is always processed"
    assert handled == sorted(handled)
    assert worker.processed + worker.dropped == 200
    assert worker.dropped > 100


def test_worker_survives_a_failing_handler():
    errors = []
    done = threading.Event()

    def handle(item):
        if item == "boom":
            raise RuntimeError("boom")
        done.set()

    worker = FrameWorker(handle, errors.append)
    worker.start()
    try:
        worker.submit("boom")
        assert worker.wait_idle(5.0)
        worker.submit("fine")
        assert done.wait(5.0)
    finally:
        worker.stop()
    assert worker.errors == 1 and isinstance(errors[0], RuntimeError)


def test_rejected_odometry_and_failing_stages_reach_the_health_status(mapdb):
    """What /diagnostics shows (stats.assess on the stream's snapshot): rejected odometry,
    failing verification and relocalisation each warn, or are an error when every try fails."""
    from crossover_ros.errors import MapDatabaseError
    from crossover_ros.pipeline.stats import ERROR, WARN, assess
    from crossover_ros.pipeline.stream import RelocalizationError

    stream = make_stream(mapdb, FakeFusion())
    for index in range(5):
        with pytest.raises(FrameRejectedError):
            stream.on_odometry(odometry(9.0 + index * 0.1, quaternion=(0, 0, 0, 0)))
    stream.on_odometry(odometry(9.9))
    level, message = assess(stream.stats.snapshot(), True, True, 3)
    assert level == WARN and "odometry: 5 of the last 6 failed (mostly bad_odometry)" in message

    recognise = stream.recognizer.recognise

    def corrupt_map_page(frame, pose):  # every keyframe's verification reads a malformed page
        result = recognise(frame, pose)
        result.timings["verification"] = 0.0
        result.errors["verification"] = "malformed"
        return result

    stream.recognizer.recognise = corrupt_map_page

    def relocalize(*args):
        raise MapDatabaseError("database disk image is malformed")

    stream.relocalizer = Ns(cfg=Ns(min_keyframes=1), due=lambda *a: True, relocalize=relocalize)
    stream.fusion.cloud = lambda: (np.zeros((1, 3), np.float32), np.zeros((1, 3), np.uint8))
    for index in range(4):
        stream.on_odometry(odometry(10.0 + index))
        keyframe = feed(stream, 10.0 + index)
        with pytest.raises(RelocalizationError):
            stream.relocalize(keyframe)
    level, message = assess(stream.stats.snapshot(), True, True, 3)
    assert level == ERROR
    assert "verification: 4 of the last 4 failed (mostly malformed)" in message
    assert "relocalization: 4 of the last 4 failed (mostly MapDatabaseError)" in message


def test_steadily_backward_stamps_never_give_a_confident_single_frame_answer(mapdb):
    """Each frame a jump back (> time_jump_s) in another room: every window is one frame, and
    none of them may go out as a confident answer (the issue saw a wrong room at 1.0)."""
    recognizer = SceneRecognizer(ColourEncoder(), mapdb, RecognizerCfg(window_size=6))
    stream = SensorStream(recognizer, keyframes=KeyframeCfg(max_interval_s=0.0))
    stream.on_camera_info(camera_info())
    names = list(COLOURS)
    results = []
    for index in range(15):
        t = 500.0 - index * 1.5 * StreamCfg().time_jump_s
        colour = colour_msg(t, COLOURS[names[index % 3]])
        results.append(feed(stream, t, colour=colour).result)
    assert stream.counts()["window_resets"] == 14
    assert all(not r.changed and r.scene_id == "" for r in results), [
        (r.scene_id, r.confidence, r.changed) for r in results
    ]
