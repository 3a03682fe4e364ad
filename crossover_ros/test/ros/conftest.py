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
