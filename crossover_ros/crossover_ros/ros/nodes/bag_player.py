"""bag_player: publish a rosbag2 on its recorded topics at the recorded rate (or a factor of it).

``ros2 bag play`` is the tool of choice on a robot; this node exists because rosbag2_py cannot be
installed from PyPI, and it lets the demo and the tests replay bags over real DDS anywhere.
Messages are published as the stored CDR bytes, so nothing is deserialised on the way.
"""

from __future__ import annotations

import importlib
import threading
import time
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from crossover_ros.bags.reader import bag_topics, iter_raw_messages
from crossover_ros.errors import BagError
from crossover_ros.ros.params import declare_tree, read_tree
from crossover_ros.ros.settings import BagPlayerCfg


def message_class(msgtype: str) -> type:
    """The rclpy message class for a type name such as ``sensor_msgs/msg/Image``."""
    package, _, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError) as err:
        raise BagError(f"message type {msgtype} is not installed") from err


class BagPlayer(Node):
    """Publishes a bag's messages; :meth:`play` blocks until the bag is done or stopped."""

    def __init__(self, bag: Path | None = None, rate: float | None = None, **kwargs) -> None:
        super().__init__("bag_player", **kwargs)
        declare_tree(self, BagPlayerCfg)
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
