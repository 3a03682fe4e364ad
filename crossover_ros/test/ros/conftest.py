"""ROS tests need rclpy and crossover_msgs; the folder is skipped, with the reason, without them."""

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/setup.sh)")
pytest.importorskip("crossover_msgs.msg", reason="crossover_msgs not built (scripts/build_msgs.sh)")


@pytest.fixture
def ros_context():
    """A fresh rclpy context per test, shut down afterwards even on failure."""
    context = rclpy.context.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


@pytest.fixture
def colour_map(tmp_path):
    """A map of three one-colour rooms, made with the test's colour encoder."""
    import numpy as np
    from fake_encoders import ColourEncoder
    from ros_harness import COLOURS

    from crossover_ros.mapdb import SceneRecord, SQLiteMapDatabase

    encoder = ColourEncoder()
    path = tmp_path / "colours.sqlite"
    with SQLiteMapDatabase.create(path, encoder.fingerprint, encoder.dim) as db:
        for name, colour in COLOURS.items():
            image = np.full((4, 4, 3), colour, np.uint8)
            db.add_scene(SceneRecord(name, "b", name), {"rgb": encoder.frame_features([image])})
    return path


@pytest.fixture
def stub_encoder(monkeypatch):
    """The node loads the colour encoder (instant, deterministic) instead of a real model.

    Returns the encoder; set its ``delay_s`` to make recognition slow.
    """
    from fake_encoders import ColourEncoder

    from crossover_ros.pipeline import runner

    encoder = ColourEncoder()

    def create_encoder(model="global_descriptor", map_modality=None, num_threads=None, **kwargs):
        return encoder

    monkeypatch.setattr(runner, "create_encoder", create_encoder)
    return encoder


@pytest.fixture(scope="session")
def gd_map(small_building, tmp_path_factory):
    """The small building's reference scans mapped with the global-descriptor model."""
    from crossover_ros.mapdb.build import build_map
    from crossover_ros.model.global_descriptor import GlobalDescriptorEncoder

    path = tmp_path_factory.mktemp("gd_map") / "map.sqlite"
    build_map(small_building, path, GlobalDescriptorEncoder(), progress=False).close()
    return path
