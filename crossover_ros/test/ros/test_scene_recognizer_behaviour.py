"""scene_recognizer over real DDS with a stub encoder (rooms of one colour each): the temporal
filter and publish rate, services, diagnostics, markers, hardening, and a flood of frames."""

import math
import time
from dataclasses import replace

import numpy as np
import psutil
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from fake_encoders import ColourEncoder
from rclpy.parameter import Parameter
from ros_harness import Rig, colour_frame
from visualization_msgs.msg import Marker

from crossover_ros.mapdb import SQLiteMapDatabase
from crossover_ros.ros.convert import depth_to_image, rgb_to_image, seconds_to_stamp
from crossover_ros.ros.nodes.scene_recognizer import SceneRecognizerNode


def _node(context, map_path, params=None):
    overrides = {
        "map.path": str(map_path),
        "keyframes.max_interval_s": 0.01,  # frames 1 s apart: every one a keyframe
        "recognizer.window_size": 1,  # the window does not smooth: the filter must
        "recognizer.hysteresis.switch_margin": 1.0,  # switch by streak only
        "publish.rate_hz": 0.0,
        **(params or {}),
    }
    return SceneRecognizerNode(
        context=context,
        parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()],
    )


def _values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def _send(rig, colours, start_s, **kwargs):
    """One frame per colour, 1 s apart, each after the previous one was processed."""
    rig.send([colour_frame(c, 0.0) for c in colours], start_s, **kwargs)


def test_one_odd_frame_does_not_flip_the_room_and_a_change_is_sent_at_once(
    ros_context, colour_map, stub_encoder
):
    rig = Rig(ros_context, _node(ros_context, colour_map, {"publish.rate_hz": 2.0}))
    try:
        assert rig.wait_connected()
        _send(rig, ["red"] * 3, 100.0)
        assert rig.wait_for(lambda: any(m.changed for m in rig.matches), 10)
        _send(rig, ["blue"] + ["red"] * 2, 103.0)  # one odd frame
        time.sleep(1.2)  # a repeat or two
        assert {m.scene_id for m in rig.matches} <= {"", "red"}, "blue never published"
        _send(rig, ["blue"] * 3, 106.0)  # the robot really moved
        assert rig.wait_for(lambda: any(m.scene_id == "blue" for m in rig.matches), 10)
        time.sleep(1.2)
    finally:
        rig.close()
    changed = [m for m in rig.matches if m.changed]
    assert [m.scene_id for m in changed] == ["red", "blue"]
    assert changed[1].header.stamp.sec == 108, "switched on the third blue window"
    repeats = [m for m in rig.matches if not m.changed]
    assert repeats and all(m.scene_id in ("", "red", "blue") for m in repeats)
    assert rig.matches[-1].scene_id == "blue" and rig.matches[-1].confidence > 0.9
    assert all(m.scene_id != "blue" for m in rig.matches if m.header.stamp.sec < 108)


def test_every_window_is_published_at_rate_zero_with_markers(ros_context, colour_map, stub_encoder):
    rig = Rig(
        ros_context,
        _node(ros_context, colour_map, {"recognizer.hysteresis.switch_after_windows": 1}),
    )
    try:
        assert rig.wait_connected()
        _send(rig, ["green", "green", "red"], 10.0)
        assert rig.wait_for(lambda: len(rig.matches) >= 3 and len(rig.markers) >= 3, 10)
    finally:
        rig.close()
    assert [m.scene_id for m in rig.matches] == ["green", "green", "red"]
    assert [m.changed for m in rig.matches] == [True, False, True]
    # relocalisation waits for 3 keyframes fused since the answer changed: none here
    assert rig.instances == []
    markers = rig.markers[-1].markers
    assert markers[0].action == Marker.DELETEALL
    text = markers[1]
    assert text.type == Marker.TEXT_VIEW_FACING and text.header.frame_id == "odom"
    assert text.text.startswith("red") and text.header.stamp.sec == 12
    assert text.pose.position.z == pytest.approx(0.4)  # above the camera at the origin


def test_reset_and_reload_map(ros_context, colour_map, stub_encoder, tmp_path):
    rig = Rig(
        ros_context,
        _node(ros_context, colour_map, {"recognizer.hysteresis.switch_after_windows": 1}),
    )
    try:
        assert rig.wait_connected()
        _send(rig, ["red"], 1.0)
        assert rig.wait_for(lambda: len(rig.matches) == 1)
        assert len(rig.node.pipeline.stream.fusion) == 1
        response = rig.call("reset")
        assert response.success, response.message
        stream = rig.node.pipeline.stream
        assert stream.recognizer.window_length == 0 and len(stream.fusion) == 0
        assert stream.recognizer.filter.current == ""

        # A broken map: the old one stays in use and the answer says why.
        rig.node.set_parameters([Parameter("map.path", value=str(tmp_path / "missing.sqlite"))])
        response = rig.call("reload_map")
        assert not response.success and "missing.sqlite" in response.message
        assert "kept" in response.message
        _send(rig, ["red"], 2.0)
        assert rig.wait_for(lambda: len(rig.matches) == 2)

        # Another map of the same model: used from the next window on.
        other = tmp_path / "other.sqlite"
        encoder = ColourEncoder()
        with SQLiteMapDatabase.create(other, encoder.fingerprint, encoder.dim) as db:
            from crossover_ros.mapdb import SceneRecord

            image = np.full((4, 4, 3), (250, 10, 10), np.uint8)
            db.add_scene(SceneRecord("red_b", "b2", "r"), {"rgb": encoder.frame_features([image])})
        rig.node.set_parameters([Parameter("map.path", value=str(other))])
        response = rig.call("reload_map")
        assert response.success and "1 scenes" in response.message
        _send(rig, ["red"], 3.0)
        assert rig.wait_for(lambda: len(rig.matches) == 3)
    finally:
        rig.close()
    assert rig.matches[-1].scene_id == "red_b" and rig.matches[-1].changed


def test_diagnostics_report_rates_latency_counters_and_levels(
    ros_context, colour_map, stub_encoder
):
    node = _node(ros_context, "postgresql://robot:secret@db/maps#x", {"autostart": False})
    rig = Rig(ros_context, node)
    try:
        status = node.diagnostic_status()
        assert status.level == DiagnosticStatus.ERROR and "unconfigured" in status.message
        assert "secret" not in _values(status)["map"] and "robot:***@db" in _values(status)["map"]
        node.set_parameters([Parameter("map.path", value=str(colour_map))])
        node.trigger_configure()
        node.trigger_activate()
        assert rig.wait_connected()
        _send(rig, ["red", "red", "green"], 5.0)
        status = node.diagnostic_status()
        values = _values(status)
        assert status.level == DiagnosticStatus.OK, status.message
        assert values["state"] == "active" and values["backend"] == "stub"
        assert values["map"] == str(colour_map) and values["scenes"] == "3"
        assert values["frames"] == "3" and values["keyframes"] == "3" and values["rejected"] == "0"
        assert float(values["color rate (Hz)"]) > 0 and float(values["keyframes rate (Hz)"]) > 0
        assert float(values["recognition p50 (ms)"]) >= 0.0
        assert float(values["recognition p95 (ms)"]) >= float(values["recognition p50 (ms)"])
        for key in ("dropped", "time_jumps", "no_camera_info", "window_resets", "sync_dropped"):
            assert key in values
        assert rig.wait_for(lambda: any(a.status for a in rig.diagnostics), 5), "1 Hz /diagnostics"
        name = rig.diagnostics[-1].status[0].name
        assert name == "scene_recognizer: scene recognition"

        quick = replace(node.pipeline.cfg.health, stale_after_s=0.2)
        node.pipeline.cfg = replace(node.pipeline.cfg, health=quick)
        time.sleep(0.4)
        status = node.diagnostic_status()
        assert status.level == DiagnosticStatus.WARN and "no synchronised frames" in status.message
    finally:
        rig.close()


def test_bad_input_is_rejected_counted_and_survived(ros_context, colour_map, stub_encoder):
    rig = Rig(
        ros_context,
        _node(ros_context, colour_map, {"recognizer.hysteresis.switch_after_windows": 1}),
    )
    node = rig.node
    try:
        assert rig.wait_connected()
        frame = colour_frame("red", 1.0)

        # Missing camera_info: frames are dropped and counted.
        _send(rig, ["red"], 1.0, info=False)
        assert node.pipeline.stream.counters["no_camera_info"] == 1

        def stamped(t):
            return seconds_to_stamp(t), "camera_color_optical_frame"

        bad = {
            "bad_color": dict(color=rgb_to_image(frame.color, *stamped(2.0), encoding="mono8")),
            "size_mismatch": dict(
                depth=depth_to_image(np.ones((24, 32), np.float32), *stamped(3.0))
            ),
            "no_valid_depth": dict(
                depth=depth_to_image(np.full((48, 64), np.nan, np.float32), *stamped(4.0), "32FC1")
            ),
        }
        bad["bad_color"]["color"].encoding = "yuv422"
        neg = np.full((48, 64), -1.0, np.float32)
        neg[0, 0] = 0.0
        bad["negative_depth"] = dict(depth=depth_to_image(neg, *stamped(5.0), "32FC1"))
        for t, images in zip((2.0, 3.0, 4.0, 5.0), bad.values(), strict=True):
            rig.send([colour_frame("red", t)], t, **images)
        counts = node.pipeline.stream.counts()
        assert counts["rejected_no_camera_info"] == 1
        assert counts["rejected_bad_color"] == 1 and counts["rejected_size_mismatch"] == 1
        assert counts["rejected_no_valid_depth"] == 2

        # Every recent frame rejected: an error, named by its commonest reason.
        status = node.diagnostic_status()
        assert status.level == DiagnosticStatus.ERROR, status.message
        assert "frames: 5 of the last 5 failed (mostly no_valid_depth)" in status.message
        assert _values(status)["rejected_no_valid_depth"] == "2"

        # A bag loop: time goes back, the window restarts, both counted.
        _send(rig, ["red", "red"], 100.0)
        _send(rig, ["green"], 6.0)
        assert rig.wait_for(lambda: rig.matches and rig.matches[-1].scene_id == "green", 10)
        counts = node.pipeline.stream.counts()
        assert counts["time_jumps"] >= 1 and counts["window_resets"] == 1
        assert rig.matches[-1].num_frames == 1
        assert node._state_machine.current_state[1] == "active"
    finally:
        rig.close()


def test_an_empty_map_keeps_the_node_alive_warning_and_silent(ros_context, stub_encoder, tmp_path):
    empty = tmp_path / "empty.sqlite"
    SQLiteMapDatabase.create(empty, ColourEncoder.fingerprint, ColourEncoder.dim).close()
    rig = Rig(ros_context, _node(ros_context, empty))
    try:
        assert rig.wait_connected()
        _send(rig, ["red", "red"], 1.0)
        time.sleep(0.3)
        status = rig.node.diagnostic_status()
    finally:
        rig.close()
    assert rig.matches == []
    assert status.level == DiagnosticStatus.WARN and "no scenes" in status.message
    assert _values(status)["keyframes"] == "2"


def test_a_map_of_another_model_fails_configure_clearly(ros_context, stub_encoder, tmp_path):
    other = tmp_path / "other.sqlite"
    SQLiteMapDatabase.create(other, "efficientnet_lite0_gem-0123", 1280).close()
    node = _node(ros_context, other)
    try:
        assert node._state_machine.current_state[1] == "unconfigured"
        status = node.diagnostic_status()
        assert status.level == DiagnosticStatus.ERROR
        assert "efficientnet_lite0_gem-0123" in status.message and "rebuild" in status.message
    finally:
        node.destroy_node()


def test_a_flood_of_frames_is_dropped_not_queued(ros_context, colour_map, stub_encoder):
    """200 VGA frames as fast as DDS takes them; recognition takes 50 ms a frame."""
    stub_encoder.delay_s = 0.05
    rig = Rig(
        ros_context,
        _node(ros_context, colour_map, {"recognizer.hysteresis.switch_after_windows": 1}),
    )
    node = rig.node
    process = psutil.Process()
    try:
        assert rig.wait_connected()
        frames = [colour_frame(c, 0.0, 640, 480) for c in ("red", "green", "blue")]
        _send(rig, ["red"], 0.0)  # warm up, then measure
        rss_before = process.memory_info().rss
        peak, worst_slot, worst_sync = rss_before, 0, 0
        started = time.monotonic()
        for i in range(200):
            t = 1.0 + i / 30
            rig.publish(frames[i % 3], t, info=(i % 30 == 0))
            worst_slot = max(worst_slot, len(node.pipeline.workers[0].slot))
            worst_sync = max(worst_sync, max(node.pipeline.stream.sync.pending()))
            if i % 20 == 0:
                peak = max(peak, process.memory_info().rss)
        publish_s = time.monotonic() - started
        assert rig.wait_for(lambda: node.pipeline.workers[0].wait_idle(0.0), 30)
        time.sleep(0.3)
        peak = max(peak, process.memory_info().rss)
        counts = node.pipeline.stream.counts()
        dropped, pairs = (
            node.pipeline.workers[0].dropped,
            node.pipeline.stream.stats.meters["pairs"].total - 1,
        )
        status = node.diagnostic_status()
        alive = node._state_machine.current_state[1]
    finally:
        rig.close()
    processed = counts["frames"] - 1
    print(
        f"\nflood: 200 VGA frames published in {publish_s:.2f} s; {pairs} pairs synchronised,"
        f" {processed} processed, {dropped} dropped (superseded), worst slot {worst_slot},"
        f" worst sync queue {worst_sync}, RSS +{(peak - rss_before) / 2**20:.0f} MiB"
    )
    assert alive == "active"
    assert dropped > 0 and processed + dropped == pairs
    assert processed < pairs / 2, "most pairs were superseded, not queued"
    assert worst_slot <= 1 and worst_sync <= node.pipeline.stream.sync.queue_size
    assert peak - rss_before < 200 * 2**20, "200 VGA pairs would be ~300 MiB if queued"
    assert _values(status)["dropped"] == str(dropped)
    assert not math.isnan(float(_values(status)["recognition p95 (ms)"]))
    assert rig.matches, "the node kept answering"
