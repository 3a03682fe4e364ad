"""scene_recognizer: RGB-D + odometry in, the matched scene of the map database out.

A lifecycle node (configure loads the encoder and the map, activate subscribes, deactivate
unsubscribes, cleanup frees). With ``autostart`` true it configures and activates itself, so it
runs without a lifecycle manager.
"""

from __future__ import annotations

import rclpy
from nav_msgs.msg import Odometry
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import Node, State, TransitionCallbackReturn
from rclpy.lifecycle import Publisher as LifecyclePublisher
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from crossover_msgs.msg import SceneMatch
from crossover_ros.errors import CrossoverError
from crossover_ros.mapdb import open_map
from crossover_ros.mapdb.base import MapBase
from crossover_ros.pipeline.encoders import load_encoder
from crossover_ros.pipeline.keyframes import KeyframeCfg
from crossover_ros.pipeline.recognizer import RecognizerCfg, SceneMatchResult, SceneRecognizer
from crossover_ros.pipeline.stream import (
    MissingCameraInfoError,
    SensorStream,
    StreamCfg,
    StreamMatch,
)
from crossover_ros.ros.params import ParamSpec, declare

PARAMETERS = [
    ParamSpec("map_path", "", "Map database: SQLite file or postgresql:// URL ('map build')."),
    ParamSpec(
        "model",
        "global_descriptor",
        "global_descriptor, crossover (the shipped CrossOver model) or a CrossOver checkpoint"
        " path; must be the model the map was built with.",
    ),
    ParamSpec(
        "map_modality",
        "point_cloud",
        "Stored modality the frames are ranked against (CrossOver): point_cloud, rgb,"
        " floorplan, referral or scene.",
    ),
    ParamSpec("color_topic", "/camera/color/image_raw", "sensor_msgs/Image, rgb8/bgr8/mono8."),
    ParamSpec(
        "depth_topic", "/camera/aligned_depth_to_color/image_raw", "Depth aligned to colour."
    ),
    ParamSpec("camera_info_topic", "/camera/color/camera_info", "CameraInfo of the colour image."),
    ParamSpec("odom_topic", "/odom", "nav_msgs/Odometry of the camera; '' to run without."),
    ParamSpec("sync_slop_s", 0.02, "Colour/depth stamps further apart are not paired.", 0.0, 1.0),
    ParamSpec("odom_max_age_s", 0.1, "Odometry older than this is not used for a frame.", 0.0, 5.0),
    ParamSpec("window_size", 6, "Keyframes in the query window.", 1, 100),
    ParamSpec("top_k", 5, "Ranked candidates published.", 1, 100),
    ParamSpec("keyframe_min_translation_m", 0.25, "Motion that makes a keyframe.", 0.0, 10.0),
    ParamSpec("keyframe_min_rotation_deg", 15.0, "Turn that makes a keyframe.", 0.0, 180.0),
    ParamSpec("keyframe_max_interval_s", 1.0, "A keyframe at least this often.", 0.01, 60.0),
    ParamSpec("num_threads", 2, "CPU threads for the encoder.", 1, 64),
    ParamSpec("autostart", True, "Configure and activate at start-up."),
]


class SceneRecognizerNode(Node):
    """Thin adapter: converts messages, feeds :class:`SceneRecognizer`, publishes matches."""

    def __init__(self, **kwargs) -> None:
        super().__init__("scene_recognizer", **kwargs)
        self.params = declare(self, PARAMETERS)
        self.stream: SensorStream | None = None
        self._mapdb: MapBase | None = None
        self._match_pub: LifecyclePublisher | None = None
        self._sensor_subscriptions: list = []
        # Activate only if configuring worked; otherwise stay alive, unconfigured, and say why.
        autostart = self.params["autostart"]
        if autostart and self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    # -- lifecycle -------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Load the encoder and the map; FAILURE (stay unconfigured) if either is unusable."""
        try:
            encoder = load_encoder(
                self.params["model"], self.params["map_modality"], self.params["num_threads"]
            )
            self._mapdb = open_map(self.params["map_path"], encoder.fingerprint)
            cfg = RecognizerCfg(
                keyframes=KeyframeCfg(
                    min_translation_m=self.params["keyframe_min_translation_m"],
                    min_rotation_deg=self.params["keyframe_min_rotation_deg"],
                    max_interval_s=self.params["keyframe_max_interval_s"],
                ),
                window_size=self.params["window_size"],
                top_k=self.params["top_k"],
            )
            self.stream = SensorStream(
                SceneRecognizer(encoder, self._mapdb, cfg),
                StreamCfg(
                    sync_slop_s=self.params["sync_slop_s"],
                    odom_max_age_s=self.params["odom_max_age_s"],
                ),
            )
        except CrossoverError as err:
            self.get_logger().error(f"cannot configure: {err}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        self._match_pub = self.create_lifecycle_publisher(SceneMatch, "~/scene_match", 10)
        scenes = len(self._mapdb.scenes())
        self.get_logger().info(f"map {self._mapdb.path}: {scenes} scenes")  # password masked
        return super().on_configure(state)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Subscribe to the sensors; frames are processed only while active."""
        qos = qos_profile_sensor_data
        self._sensor_subscriptions = [
            self.create_subscription(Image, self.params["color_topic"], self._on_color, qos),
            self.create_subscription(Image, self.params["depth_topic"], self._on_depth, qos),
            self.create_subscription(
                CameraInfo, self.params["camera_info_topic"], self._on_camera_info, qos
            ),
        ]
        if self.params["odom_topic"]:
            self._sensor_subscriptions.append(
                self.create_subscription(Odometry, self.params["odom_topic"], self._on_odom, qos)
            )
        self.get_logger().info("active: waiting for frames")
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Unsubscribe; the map and encoder stay loaded."""
        for subscription in self._sensor_subscriptions:
            self.destroy_subscription(subscription)
        self._sensor_subscriptions = []
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Free the encoder, the map and the publisher."""
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Free everything from any state on the way to Finalized."""
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        if self._match_pub is not None:
            self.destroy_lifecycle_publisher(self._match_pub)
            self._match_pub = None
        if self._mapdb is not None:
            self._mapdb.close()
            self._mapdb = None
        self.stream = None

    # -- callbacks: the stream does the work, the node logs and publishes ------------------
    def _on_camera_info(self, msg: CameraInfo) -> None:
        self.stream.on_camera_info(msg)

    def _on_odom(self, msg: Odometry) -> None:
        self._guarded(self.stream.on_odometry, msg)

    def _on_color(self, msg: Image) -> None:
        self._publish(self._guarded(self.stream.on_color, msg))

    def _on_depth(self, msg: Image) -> None:
        self._publish(self._guarded(self.stream.on_depth, msg))

    def _guarded(self, handler, msg):
        """Run a stream handler; a bad message is a throttled warning, never a dead node."""
        try:
            return handler(msg)
        except MissingCameraInfoError as err:
            self.get_logger().warning(str(err), throttle_duration_sec=5.0)
        except CrossoverError as err:
            self.get_logger().warning(f"message rejected: {err}", throttle_duration_sec=5.0)
        return None

    def _publish(self, match: StreamMatch | None) -> None:
        if match is not None:
            self._match_pub.publish(to_scene_match(match.result, match.header))


def to_scene_match(result: SceneMatchResult, header: Header) -> SceneMatch:
    """The message for a result; ``header`` is the newest colour frame's, stamp kept exact."""
    msg = SceneMatch(header=header)
    msg.scene_id = result.scene_id
    msg.score = result.score
    msg.confidence = result.confidence
    msg.candidate_ids = result.candidate_ids
    msg.candidate_scores = result.candidate_scores
    msg.modality = result.modality
    msg.map_modality = result.map_modality
    msg.num_frames = result.num_frames
    return msg


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = SceneRecognizerNode()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
