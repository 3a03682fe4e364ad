"""A node under test wired to a fake camera and to subscribers of everything it publishes.

The executor spins in a background thread (as on a robot: callbacks run while the test
publishes), so tests wait for conditions instead of spinning by hand.
"""

from __future__ import annotations

import contextlib
import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from crossover_msgs.msg import InstanceCorrespondences, SceneMatch
from crossover_ros.frames import CameraIntrinsics, RGBDFrame
from crossover_ros.ros.convert import (
    depth_to_image,
    intrinsics_to_camera_info,
    pose_to_odometry,
    rgb_to_image,
    seconds_to_stamp,
)

CAMERA_FRAME = "camera_color_optical_frame"
COLOURS = {"red": (250, 10, 10), "green": (10, 250, 10), "blue": (10, 10, 250)}


def colour_frame(colour, stamp: float, width: int = 64, height: int = 48) -> RGBDFrame:
    """A room of one colour, everything 2 m away, the camera at the origin."""
    color = np.full((height, width, 3), COLOURS.get(colour, colour), np.uint8)
    depth = np.full((height, width), 2.0, np.float32)
    intrinsics = CameraIntrinsics.from_fov(width, height, 60.0)
    return RGBDFrame(color, depth, intrinsics, stamp, np.eye(4))


class Rig:
    """Publishers of a camera + odometry, subscribers of the node's outputs, a spinning executor."""

    def __init__(self, context, node, node_name: str = "scene_recognizer") -> None:
        self.context = context
        self.node = node
        self.source = rclpy.create_node("test_rig", context=context)
        src = self.source
        self.color_pub = src.create_publisher(Image, "/camera/color/image_raw", 10)
        self.depth_pub = src.create_publisher(Image, "/camera/aligned_depth_to_color/image_raw", 10)
        self.info_pub = src.create_publisher(CameraInfo, "/camera/color/camera_info", 10)
        self.odom_pub = src.create_publisher(Odometry, "/odom", 10)
        self.matches: list[SceneMatch] = []
        self.match_times: list[float] = []
        self.markers: list[MarkerArray] = []
        self.instances: list[InstanceCorrespondences] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.match_topic = f"/{node_name}/scene_match"
        src.create_subscription(SceneMatch, self.match_topic, self._on_match, 50)
        src.create_subscription(MarkerArray, f"/{node_name}/markers", self.markers.append, 50)
        src.create_subscription(
            InstanceCorrespondences,
            f"/{node_name}/instance_correspondences",
            self.instances.append,
            50,
        )
        src.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.node_name = node_name
        self.executor = SingleThreadedExecutor(context=context)
        if node is not None:  # None: the node runs in another process
            self.executor.add_node(node)
        self.executor.add_node(src)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        with contextlib.suppress(Exception):  # the context may be shut down under us at the end
            self.executor.spin()

    def _on_match(self, msg: SceneMatch) -> None:
        self.matches.append(msg)
        self.match_times.append(time.monotonic())

    # -- waiting ---------------------------------------------------------------------------
    @staticmethod
    def wait_for(condition, timeout_s: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.02)
        return bool(condition())

    def wait_connected(self, timeout_s: float = 30.0, matches: bool = True) -> bool:
        """The node subscribes to the camera (it is active) and we hear its matches."""
        return self.wait_for(
            lambda: (
                self.color_pub.get_subscription_count() > 0
                and self.depth_pub.get_subscription_count() > 0
                and (not matches or self.source.count_publishers(self.match_topic) > 0)
            ),
            timeout_s,
        )

    # -- publishing ------------------------------------------------------------------------
    def publish(
        self,
        frame: RGBDFrame,
        stamp_s: float,
        color: Image | None = None,
        depth: Image | None = None,
        info: bool = True,
        odom: bool = True,
    ) -> None:
        """camera_info, odometry, colour and depth of ``frame`` at ``stamp_s``."""
        if info:
            self.publish_info(frame, stamp_s)
        if odom:
            self.publish_pose(frame, stamp_s)
        self.publish_images(frame, stamp_s, color, depth)

    def publish_info(self, frame: RGBDFrame, stamp_s: float = 0.0) -> None:
        stamp = seconds_to_stamp(stamp_s)
        self.info_pub.publish(intrinsics_to_camera_info(frame.intrinsics, stamp, CAMERA_FRAME))

    def publish_pose(self, frame: RGBDFrame, stamp_s: float) -> None:
        stamp = seconds_to_stamp(stamp_s)
        pose = frame.camera_to_world if frame.camera_to_world is not None else np.eye(4)
        self.odom_pub.publish(pose_to_odometry(pose, stamp, "odom", CAMERA_FRAME))

    def publish_images(
        self,
        frame: RGBDFrame,
        stamp_s: float,
        color: Image | None = None,
        depth: Image | None = None,
    ) -> None:
        stamp = seconds_to_stamp(stamp_s)
        self.color_pub.publish(color or rgb_to_image(frame.color, stamp, CAMERA_FRAME))
        self.depth_pub.publish(depth or depth_to_image(frame.depth, stamp, CAMERA_FRAME))

    def send(self, frames: list[RGBDFrame], start_s: float, info: bool = True, **images) -> None:
        """Frames 1 s apart, each once the previous one was processed; camera_info and
        odometry first, so the node has them when the images arrive (topics are not ordered).
        """
        pipeline = self.node.pipeline
        stream = pipeline.stream
        for i, frame in enumerate(frames):
            t = start_s + i
            if info:
                self.publish_info(frame, t)
                assert self.wait_for(lambda: stream.has_camera_info, 10)
            odometry = stream.stats.meters["odometry"].total + 1
            self.publish_pose(frame, t)
            assert self.wait_for(lambda o=odometry: stream.stats.meters["odometry"].total >= o, 10)
            done = stream.counters["frames"] + 1
            self.publish_images(frame, t, **images)
            assert self.wait_for(lambda d=done: stream.counters["frames"] >= d, 30)
            wait_idle = getattr(pipeline, "wait_idle", None)  # the recorder has no workers
            assert wait_idle is None or wait_idle(30.0)

    def call(self, service: str, timeout_s: float = 30.0) -> Trigger.Response:
        client = self.source.create_client(Trigger, f"/{self.node_name}/{service}")
        try:
            assert client.wait_for_service(timeout_sec=timeout_s), f"no service {service}"
            future = client.call_async(Trigger.Request())
            assert self.wait_for(future.done, timeout_s), f"{service} did not answer"
            return future.result()
        finally:
            self.source.destroy_client(client)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5.0)
        self._thread.join(timeout=10.0)
        if self.node is not None:
            self.node.destroy_node()
        self.source.destroy_node()
