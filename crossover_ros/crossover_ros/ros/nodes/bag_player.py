"""bag_player: publish a rosbag2 on its recorded topics at the recorded rate (or a factor of it).

``ros2 bag play`` is the tool of choice on a robot; this node exists because rosbag2_py cannot be
installed from PyPI, and it lets the demo and the tests replay bags over real DDS anywhere.
Messages are published as the stored CDR bytes, so nothing is deserialised on the way.
"""

from __future__ import annotations

import importlib
import os
import re
import threading
import time
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from crossover_ros.bags.reader import bag_topics, iter_raw_messages
from crossover_ros.errors import BagError
from crossover_ros.ros.params import declare_tree, read_tree, warn_undeclared
from crossover_ros.ros.settings import BagPlayerCfg

_MSGTYPE = re.compile(r"^([a-z][a-z0-9_]*)/msg/([A-Z][A-Za-z0-9]*)$")


def is_interface_package(package: str) -> bool:
    """Whether ``package`` is an installed ROS interface package: listed in the ament index's
    ``rosidl_interfaces`` or with a ``share/<package>/msg`` folder under AMENT_PREFIX_PATH.
    Only then is its ``msg`` module imported: a bag names it, and a bag is not trusted code."""
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        share = Path(prefix) / "share"
        if (share / "ament_index" / "resource_index" / "rosidl_interfaces" / package).is_file():
            return True
        if (share / package / "msg").is_dir():
            return True
    return False


def message_class(msgtype: str) -> type:
    """The rclpy message class for a type name such as ``sensor_msgs/msg/Image``."""
    match = _MSGTYPE.match(msgtype)
    if match is None:
        raise BagError(f"message type {msgtype!r} is not a ROS message type name (pkg/msg/Name)")
    package, name = match.groups()
    if not is_interface_package(package):
        raise BagError(
            f"message type {msgtype}: {package} is not an installed ROS interface package"
            " (not in the ament index): not imported"
        )
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError) as err:
        raise BagError(f"message type {msgtype} is not installed") from err


class BagPlayer(Node):
    """Publishes a bag's messages; :meth:`play` blocks until the bag is done or stopped."""

    def __init__(self, bag: Path | None = None, rate: float | None = None, **kwargs) -> None:
        super().__init__("bag_player", **kwargs)
        declare_tree(self, BagPlayerCfg)
        warn_undeclared(self)
        self.settings = read_tree(self, BagPlayerCfg)
        self.bag = Path(bag or self.settings.bag)
        self.rate = self.settings.rate if rate is None else rate
        self.published_at: dict[tuple[str, int], float] = {}  # (topic, stamp ns) -> wall time
        self.stop_event = threading.Event()
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._topic_publishers = {
            topic: self.create_publisher(message_class(msgtype), topic, qos)
            for topic, msgtype in bag_topics(self.bag).items()
        }

    @property
    def topics(self) -> list[str]:
        return sorted(self._topic_publishers)

    def play(self) -> int:
        """Publish every message at its recorded time offset / rate; returns how many."""
        self.stop_event.wait(self.settings.start_delay_s)
        count = 0
        wall_start = time.monotonic()
        bag_start: int | None = None
        for message in iter_raw_messages(self.bag):
            if self.stop_event.is_set():
                break
            bag_start = message.timestamp_ns if bag_start is None else bag_start
            if self.rate > 0:
                due = wall_start + (message.timestamp_ns - bag_start) / 1e9 / self.rate
                self.stop_event.wait(max(0.0, due - time.monotonic()))
            self._topic_publishers[message.topic].publish(message.data)
            self.published_at[(message.topic, message.timestamp_ns)] = time.monotonic()
            count += 1
        return count


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    try:
        node = BagPlayer()
    except BagError as err:
        print(f"ERROR: {err}")
        rclpy.try_shutdown()
        raise SystemExit(1) from None
    try:
        count = node.play()
        node.get_logger().info(f"played {count} messages from {node.bag}")
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
