"""scene_recognizer in its own process (`crossover_ros run`, as on a robot) over real DDS with the
shipped Fast DDS profile: frames from this process in, SceneMatch back."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ros_harness import Rig

from crossover_ros.datasets.scan import load_building

PACKAGE = Path(__file__).resolve().parents[2]
PROFILE = PACKAGE / "config" / "fastdds.xml"


def _command() -> list[str]:
    script = Path(sys.executable).with_name("crossover_ros")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "crossover_ros.cli.main"]


@pytest.fixture
def recognizer_process(gd_map, tmp_path, monkeypatch):
    """`crossover_ros run scene_recognizer` in a tmp dir; always stopped, killed if need be."""
    env = {
        **os.environ,
        "FASTRTPS_DEFAULT_PROFILES_FILE": str(PROFILE),
        "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_LOG_DIR": str(tmp_path / "ros_log"),
    }
    for key in ("FASTRTPS_DEFAULT_PROFILES_FILE", "RMW_IMPLEMENTATION"):
        monkeypatch.setenv(key, env[key])  # this process's participant too, if not yet made
    log = (tmp_path / "node.log").open("w")
    command = [
        *_command(),
        "run",
        "scene_recognizer",
        "--params-file",
        str(PACKAGE / "config" / "scene_recognizer.yaml"),
        "-p",
        f"map.path:={gd_map}",
        "-p",
        "keyframes.max_interval_s:=0.01",
        "-p",
        "publish.rate_hz:=0.0",
    ]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
        log.close()
        print((tmp_path / "node.log").read_text()[-3000:])


def test_scene_match_from_another_process(ros_context, small_building, recognizer_process):
    building = load_building(small_building)
    reference = building.scan("test_room002_00")  # no look-alike: verification agrees
    frames = list(reference.frames())[:3]
    rig = Rig(ros_context, None)
    try:
        connected = rig.wait_connected(timeout_s=120.0)
        assert recognizer_process.poll() is None, "the node process died"
        assert connected, "the node did not subscribe within 120 s"
        for i, frame in enumerate(frames):
            t = 200.0 + i
            # Sensor topics are best effort: a frame sent while discovery settles may be lost,
            # so it is sent again until answered (the same stamp never makes a second keyframe).
            for _ in range(20):
                rig.publish_info(frame, t)
                rig.publish_pose(frame, t)
                time.sleep(0.2)  # camera_info and odometry first (no order across topics)
                rig.publish_images(frame, t)
                if rig.wait_for(lambda n=i + 1: len(rig.matches) >= n, 5.0):
                    break
            assert len(rig.matches) >= i + 1, f"no match {i}"
    finally:
        rig.close()
    match = rig.matches[-1]
    assert match.scene_id == reference.scan_id and match.num_frames == 3
    assert match.header.stamp.sec == 202
    assert next(m for m in rig.matches if m.scene_id).changed  # the first answer announced
    assert recognizer_process.poll() is None, "still running until the fixture stops it"
