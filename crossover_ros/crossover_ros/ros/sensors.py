"""The sensor side both nodes share: the four subscriptions, on ``ros.settings.TopicsCfg``."""

from __future__ import annotations

from typing import Protocol

from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.subscription import Subscription
from sensor_msgs.msg import CameraInfo, Image

from crossover_ros.errors import CrossoverError
from crossover_ros.ros.settings import TopicsCfg


class SensorInput(Protocol):
    def on_color(self, msg: Image) -> None: ...

    def on_depth(self, msg: Image) -> None: ...

    def on_camera_info(self, msg: CameraInfo) -> None: ...

    def on_odometry(self, msg: Odometry) -> None: ...


def subscribe(node: Node, topics: TopicsCfg, target: SensorInput) -> list[Subscription]:
    """Colour, depth, camera info and (unless its topic is '') odometry into ``target``."""
    qos = qos_profile_sensor_data
    out = [
        node.create_subscription(Image, topics.color, target.on_color, qos),
        node.create_subscription(Image, topics.depth, target.on_depth, qos),
        node.create_subscription(CameraInfo, topics.camera_info, target.on_camera_info, qos),
    ]
    if topics.odom:
        out.append(node.create_subscription(Odometry, topics.odom, target.on_odometry, qos))
    return out


def describe(err: BaseException) -> str:
    """Our errors by their message; anything else with its type, so a bug is recognisable."""
    return str(err) if isinstance(err, CrossoverError) else f"{type(err).__name__}: {err}"
