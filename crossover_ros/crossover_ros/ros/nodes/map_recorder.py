"""map_recorder: record a room on a live mapping run and add it to the map database.

Synchronised RGB-D + odometry go through the same :class:`SensorStream` as in
``scene_recognizer`` (pairing, checks, keyframes by motion); the recorder keeps the keyframes'
colour images (at most ``max_keyframes``, spread over the run) and fuses their depth into a
point cloud in the odometry frame. ``~/save_scene`` (std_srvs/Trigger), or shutting the node
down, embeds the keyframes with the map's model and adds the scene (``scene_id``,
``building_id``, ``room_id``; settable at run time for the next room) with its cloud to the
map; the recording then starts afresh. A ``scene_recognizer`` reading the same SQLite map sees
the new scene on its next query.

Maps of either model can be recorded. A CrossOver scene holds the frame-set vector of the
keyframes, the scene-cloud vector of the fused cloud and the objects the region encoder finds in
the keyframes, placed by depth (``CrossOverEncoder.embed_recording``): no instance masks, no
referrals, no floorplan, so a recorded CrossOver map answers I->P and I->I queries.

A lifecycle node like ``scene_recognizer`` (``autostart`` configures and activates it).
"""

from __future__ import annotations

import time

import numpy as np
import rclpy
from nav_msgs.msg import Odometry
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import Node, State, TransitionCallbackReturn
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger

from crossover_ros.errors import CrossoverError, MapDatabaseError
from crossover_ros.mapdb.base import MapBase
from crossover_ros.mapdb.open import open_or_create_map
from crossover_ros.model.registry import create_encoder
from crossover_ros.pipeline.keyframes import KeyframeCfg
from crossover_ros.pipeline.recording import RecordingCfg, SceneRecording, recording_fusion
from crossover_ros.pipeline.stats import WarnThrottle
from crossover_ros.pipeline.stream import FrameRejectedError, SensorStream, StreamCfg
from crossover_ros.ros.params import SENSOR_PARAMETERS, ParamSpec, declare

PARAMETERS = [
    ParamSpec(
        "map_path",
        "",
        "Map database the scenes are added to (SQLite file or postgresql:// URL); a missing"
        " SQLite file is created for the model.",
    ),
    ParamSpec(
        "model",
        "global_descriptor",
        "The map's model: global_descriptor, crossover (the shipped model) or a CrossOver"
        " checkpoint path.",
    ),
    ParamSpec(
        "backend",
        "auto",
        "Inference runtime: torch, onnxruntime, tensorrt or auto (the fastest here).",
    ),
    ParamSpec("num_threads", 2, "CPU threads for the encoder.", 1, 64),
    ParamSpec(
        "scene_id",
        "",
        "Id of the scene saved next ('' = recorded_<UTC time>). Set it before each room.",
        read_only=False,
    ),
    ParamSpec("building_id", "building", "Building of the scene saved next.", read_only=False),
    ParamSpec("room_id", "", "Room of the scene saved next ('' = the scene id).", read_only=False),
    ParamSpec(
        "scan_index", 0, "Scan index of the saved scenes (0 = a reference scan).", 0, 1_000_000
    ),
    ParamSpec(
        "odom_is_building_frame",
        False,
        "The odometry frame is the building's map frame (a SLAM map frame, or one mapping run"
        " for every room): saved scenes say so, and poses found in them are published in the"
        " recogniser's map_frame. Otherwise each scene keeps its own frame.",
    ),
    *SENSOR_PARAMETERS,
    ParamSpec(
        "max_keyframes",
        200,
        "Colour keyframes kept per scene (when full, every second one is dropped).",
        2,
        10000,
    ),
    ParamSpec("fuse_cloud", True, "Store the fused point cloud (odometry frame) with the scene."),
    ParamSpec("save_on_shutdown", True, "Save what was recorded when the node shuts down."),
    ParamSpec("autostart", True, "Configure and activate at start-up."),
]


class MapRecorderNode(Node):
    """Thin adapter: messages into :class:`SensorStream`, keyframes into a recording."""

    def __init__(self, **kwargs) -> None:
        super().__init__("map_recorder", **kwargs)
        self.params = declare(self, PARAMETERS)
        self.stream: SensorStream | None = None
        self.recording: SceneRecording | None = None
        self._encoder = None
        self._mapdb: MapBase | None = None
        self._sensor_subscriptions: list = []
        self._warn_throttle = WarnThrottle(5.0)
        self.saved: list[str] = []
        self.create_service(Trigger, "~/save_scene", self._on_save_scene)
        autostart = self.params["autostart"]
        if autostart and self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    # -- lifecycle -------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Load the model and open (or create) the map; FAILURE leaves the node unconfigured."""
        try:
            self._encoder = self._load_encoder()
            self._mapdb = self._open_map()
            fusion = None
            if self.params["fuse_cloud"]:
                fusion = recording_fusion(self.params["fusion_pixel_stride"])
            self.recording = SceneRecording(
                RecordingCfg(max_keyframes=self.params["max_keyframes"]),
                fusion,
                self._encoder.cell_grid,
            )
            self.stream = SensorStream(
                None,
                StreamCfg(
                    sync_slop_s=self.params["sync_slop_s"],
                    odom_max_age_s=self.params["odom_max_age_s"],
                    min_valid_depth_fraction=self.params["min_valid_depth_fraction"],
                ),
                keyframes=KeyframeCfg(
                    min_translation_m=self.params["keyframe_min_translation_m"],
                    min_rotation_deg=self.params["keyframe_min_rotation_deg"],
                    max_interval_s=self.params["keyframe_max_interval_s"],
                ),
            )
            scenes = len(self._mapdb.scenes())
        except Exception as err:  # whatever it is, stay alive and unconfigured, and say why
            reason = str(err) if isinstance(err, CrossoverError) else f"{type(err).__name__}: {err}"
            self.get_logger().error(f"cannot configure: {reason}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f"recording into {self._mapdb.path} ({scenes} scenes)")  # masked
        return super().on_configure(state)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        qos = qos_profile_sensor_data
        self._sensor_subscriptions = [
            self.create_subscription(Image, self.params["color_topic"], self._on_color, qos),
            self.create_subscription(Image, self.params["depth_topic"], self._on_depth, qos),
            self.create_subscription(
                CameraInfo, self.params["camera_info_topic"], self.stream.on_camera_info, qos
            ),
        ]
        if self.params["odom_topic"]:
            self._sensor_subscriptions.append(
                self.create_subscription(Odometry, self.params["odom_topic"], self._on_odom, qos)
            )
        self.get_logger().info("recording: call ~/save_scene at the end of each room")
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._unsubscribe()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self.save_pending()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _unsubscribe(self) -> None:
        for subscription in self._sensor_subscriptions:
            self.destroy_subscription(subscription)
        self._sensor_subscriptions = []

    def _release(self) -> None:
        self._unsubscribe()
        if self._mapdb is not None:
            self._mapdb.close()
            self._mapdb = None
        self.stream = None
        self.recording = None
        self._encoder = None

    def _load_encoder(self):
        return create_encoder(
            self.params["model"], None, self.params["num_threads"], backend=self.params["backend"]
        )

    def _open_map(self) -> MapBase:
        location = str(self.params["map_path"])
        if not location:
            raise MapDatabaseError("map_path is empty: name the map to record into")
        return open_or_create_map(location, self._encoder)

    # -- sensors ---------------------------------------------------------------------------
    def _on_odom(self, msg: Odometry) -> None:
        try:
            self.stream.on_odometry(msg)
        except FrameRejectedError as err:
            self._warn(err.reason, str(err))

    def _on_color(self, msg: Image) -> None:
        self._record(self.stream.sync_color(msg))

    def _on_depth(self, msg: Image) -> None:
        self._record(self.stream.sync_depth(msg))

    def _record(self, pair) -> None:
        if pair is None:
            return
        try:
            keyframe = self.stream.process(*pair)
        except FrameRejectedError as err:
            self._warn(err.reason, str(err))
            return
        if keyframe is None:
            return
        try:
            self.recording.add(keyframe.frame, keyframe.pose, keyframe.odom_frame)
        except ValueError as err:  # a frame fusion cannot use: keep recording
            self._warn("fusion", f"keyframe not fused: {err}")

    def _warn(self, key: str, message: str) -> None:
        text = self._warn_throttle(key, message)
        if text is not None:
            self.get_logger().warning(text)

    # -- saving ----------------------------------------------------------------------------
    def save(self) -> str:
        """Store the recording as a scene; returns its id (CrossoverError if nothing stored)."""
        if self.recording is None or self._mapdb is None:
            raise CrossoverError("not configured: nothing recorded")
        scene_id = str(self.get_parameter("scene_id").value)
        scene_id = scene_id or time.strftime("recorded_%Y%m%dT%H%M%SZ", time.gmtime())
        room_id = str(self.get_parameter("room_id").value) or scene_id
        building_id = str(self.get_parameter("building_id").value)
        keyframes = len(self.recording)
        record = self.recording.save(
            self._mapdb,
            self._encoder,
            scene_id,
            building_id,
            room_id,
            self.params["scan_index"],
            np.eye(4) if self.params["odom_is_building_frame"] else None,
        )
        self.saved.append(record.scene_id)
        self.get_logger().info(
            f"saved scene {record.scene_id} (building {building_id}, room {room_id},"
            f" {keyframes} keyframes) to {self._mapdb.path}"
        )
        return record.scene_id

    def save_pending(self) -> None:
        """On shutdown: save what was recorded, if anything and if asked to."""
        if not self.params["save_on_shutdown"] or self.recording is None or not len(self.recording):
            return
        try:
            self.save()
        except Exception as err:  # shutting down: log it, do not raise
            self.get_logger().error(f"recording not saved on shutdown: {err}")

    def _on_save_scene(self, request: Trigger.Request, response: Trigger.Response):
        try:
            scene_id = self.save()
        except Exception as err:  # a service callback must not raise: it would end the spin
            reason = str(err) if isinstance(err, CrossoverError) else f"{type(err).__name__}: {err}"
            response.success, response.message = False, reason
            self.get_logger().error(f"scene not saved: {reason}")
            return response
        response.success, response.message = True, f"saved scene {scene_id}"
        return response


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = MapRecorderNode()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.save_pending()
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
