"""scene_recognizer: RGB-D + odometry in, the matched scene of the map database out.

A lifecycle node (configure loads the encoder and the map, activate subscribes, deactivate
unsubscribes, cleanup frees). With ``autostart`` true it configures and activates itself, so it
runs without a lifecycle manager.

Threads: the subscription callbacks only pair colour and depth (cheap) and hand the pair to a
:class:`FrameWorker`, whose one thread always processes the newest pair (encoder + map query);
pairs superseded meanwhile are counted as dropped. Relocalisation (objects, pose: up to hundreds
of milliseconds) runs in a second worker on the newest answered keyframe, so it never delays
an answer. Results come back to the executor through a
guard condition, so every publisher is used from the executor thread only.

Topics (``~`` = the node's name): ``~/scene_match`` (SceneMatch: at ``publish_rate_hz`` and at
once when the answer changes), ``~/instance_correspondences`` (InstanceCorrespondences) and
``~/pose`` (PoseWithCovarianceStamped, also on ``/initialpose`` if asked) after each
relocalisation in the answered room, ``~/markers`` (MarkerArray), ``/diagnostics`` (1 Hz).
Services: ``~/reset`` and ``~/reload_map`` (std_srvs/Trigger).
"""

from __future__ import annotations

import threading
import time
from collections import deque

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import Odometry
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import Node, State, TransitionCallbackReturn
from rclpy.lifecycle import Publisher as LifecyclePublisher
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from crossover_msgs.msg import InstanceCorrespondences, SceneMatch
from crossover_ros.errors import CrossoverError
from crossover_ros.mapdb import open_map
from crossover_ros.mapdb.base import MapBase
from crossover_ros.model.registry import create_encoder
from crossover_ros.pipeline.hysteresis import HysteresisCfg
from crossover_ros.pipeline.keyframes import KeyframeCfg
from crossover_ros.pipeline.recognizer import RecognizerCfg, SceneMatchResult, SceneRecognizer
from crossover_ros.pipeline.relocalize import Relocalization, Relocalizer, RelocalizerCfg
from crossover_ros.pipeline.stats import HealthCfg, StreamStats, WarnThrottle, assess
from crossover_ros.pipeline.stream import (
    FrameRejectedError,
    FrameWorker,
    SensorStream,
    StreamCfg,
    StreamKeyframe,
)
from crossover_ros.ros.diagnostics import diagnostic_array, diagnostic_status, mask_map_location
from crossover_ros.ros.markers import match_markers
from crossover_ros.ros.params import SENSOR_PARAMETERS, ParamSpec, declare
from crossover_ros.ros.relocalization import instance_correspondences, pose_in_map

BACKENDS = ("torch", "onnxruntime", "tensorrt", "auto")

PARAMETERS = [
    ParamSpec(
        "map_path",
        "",
        "Map database: SQLite file or postgresql:// URL ('map build'). May be changed at run"
        " time; ~/reload_map then opens the new one.",
        read_only=False,
    ),
    ParamSpec(
        "model",
        "global_descriptor",
        "global_descriptor, crossover (the shipped CrossOver model) or a CrossOver checkpoint"
        " path; must be the model the map was built with.",
    ),
    ParamSpec(
        "map_modality",
        "",
        "Stored modality the frames are ranked against (CrossOver): point_cloud, rgb,"
        " floorplan, referral or scene; '' the model's own (point_cloud; rgb for the global"
        " descriptor).",
    ),
    ParamSpec(
        "backend",
        "auto",
        f"Inference runtime of the encoder: {', '.join(BACKENDS)} (auto: the fastest here).",
    ),
    *SENSOR_PARAMETERS,
    ParamSpec("window_size", 6, "Keyframes in the query window.", 1, 100),
    ParamSpec("top_k", 5, "Ranked candidates published.", 1, 100),
    ParamSpec(
        "switch_after_windows",
        3,
        "The answer switches to a scene that was the best of this many windows in a row"
        " (1: no temporal filter).",
        1,
        100,
    ),
    ParamSpec(
        "switch_margin",
        0.9,
        "... or at once when its confidence exceeds the current scene's by more than this"
        " (1.0: never at once).",
        0.0,
        1.0,
    ),
    ParamSpec(
        "min_confidence",
        0.0,
        "Windows whose best candidate has less confidence do not count towards a switch.",
        0.0,
        1.0,
    ),
    ParamSpec(
        "publish_rate_hz",
        1.0,
        "~/scene_match repeats the current answer at this rate (and is sent at once when the"
        " answer changes); 0: publish every query window instead.",
        0.0,
        100.0,
    ),
    ParamSpec(
        "verify_candidates",
        10,
        "Re-rank this many of each window's best candidates by how well the window's fused"
        " depth fits their stored clouds (needs odometry; 0: rank by the scene vectors alone;"
        " each costs about 30 ms once its scene is prepared).",
        0,
        50,
    ),
    ParamSpec(
        "verify_score_weight",
        0.03,
        "Ranking score of a verified candidate: fitness + this x its score (by objects, else"
        " its scene vector's; the fit decides, the score breaks ties between look-alikes).",
        0.0,
        10.0,
    ),
    ParamSpec(
        "object_candidates",
        20,
        "Re-score this many of each window's best candidates by how well their stored objects"
        " explain the objects the region encoder finds in the window's frames (CrossOver"
        " models with a region encoder; 0: by the scene vectors alone). Verification then"
        " re-ranks the best of them.",
        0,
        200,
    ),
    ParamSpec(
        "fuse_cloud",
        True,
        "Fuse the keyframes' depth into a point cloud in the odometry frame (for pose"
        " estimation; ~/reset clears it).",
    ),
    ParamSpec(
        "relocalize",
        True,
        "After a confident answer, match objects of the fused cloud to the room's instances and"
        " estimate the pose in the map (needs fuse_cloud and odometry).",
    ),
    ParamSpec("relocalize_interval_s", 2.0, "At most one relocalisation this often.", 0.0, 3600.0),
    ParamSpec(
        "relocalize_min_confidence",
        0.5,
        "Answers below this confidence are not relocalised in (look-alike rooms: a pose in the"
        " wrong twin is worse than none).",
        0.0,
        1.0,
    ),
    ParamSpec(
        "relocalize_twin_checks",
        4,
        "A pose that disagrees with the established one is also fitted to this many look-alike"
        " scenes (nearest in the map); if one fits as well, no pose until another room decides.",
        0,
        10,
    ),
    ParamSpec(
        "relocalize_runner_up_checks",
        3,
        "... and to this many of the recogniser's runners-up (other rooms it hesitates over).",
        0,
        10,
    ),
    ParamSpec(
        "relocalize_prediction_checks",
        3,
        "... and to the room where each of this many pooled hypotheses (best supported) puts"
        " the robot, so a stranger that fits nearly as well never gathers support unopposed.",
        0,
        10,
    ),
    ParamSpec(
        "map_frame",
        "map",
        "Frame of ~/pose for scenes stored with their pose in the building (the building frame).",
    ),
    ParamSpec(
        "publish_initialpose",
        False,
        "Also publish each pose on /initialpose, so Nav2's AMCL takes it.",
    ),
    ParamSpec(
        "diagnostics_stale_s",
        5.0,
        "/diagnostics warns when no synchronised frame came for this long.",
        0.1,
        3600.0,
    ),
    ParamSpec(
        "diagnostics_reject_share",
        0.5,
        "/diagnostics warns when more than this share of recent frames was rejected.",
        0.0,
        1.0,
    ),
    ParamSpec("num_threads", 2, "CPU threads for the encoder.", 1, 64),
    ParamSpec("autostart", True, "Configure and activate at start-up."),
]

SCENE_COUNT_REFRESH_S = 10.0  # the map's scene count in /diagnostics (another process may add)


class SceneRecognizerNode(Node):
    """Thin adapter: converts messages, feeds :class:`SceneRecognizer`, publishes matches."""

    def __init__(self, **kwargs) -> None:
        super().__init__("scene_recognizer", **kwargs)
        self.params = declare(self, PARAMETERS)
        self.stream: SensorStream | None = None
        self.stats = StreamStats()
        self.worker: FrameWorker | None = None
        self.relocalization_worker: FrameWorker | None = None
        self._encoder = None
        self._mapdb: MapBase | None = None
        self._match_pub: LifecyclePublisher | None = None
        self._markers_pub: LifecyclePublisher | None = None
        self._instances_pub: LifecyclePublisher | None = None
        self._pose_pub: LifecyclePublisher | None = None
        self._initialpose_pub: LifecyclePublisher | None = None
        self._last_instances: InstanceCorrespondences | None = None
        self._relocalization_errors = 0
        self._stage_failures = {"verifier": 0, "ranker": 0}
        self._sensor_subscriptions: list = []
        self._publish_timer = None
        self._active = False
        self._configure_error = "not configured yet"
        self._scenes: int | None = None
        self._scenes_checked = 0.0
        self._warn_throttle = WarnThrottle(5.0)
        # The worker hands results to the executor thread: newest answer + not yet sent ones
        # (bounded: each holds its frame; the executor drains it within milliseconds).
        self._answer_lock = threading.Lock()
        self._answer: StreamKeyframe | None = None
        self._outbox: deque[StreamKeyframe] = deque(maxlen=16)
        self._relocalizations: deque[tuple[StreamKeyframe, Relocalization]] = deque(maxlen=4)
        self._wake = self.create_guard_condition(self._on_results)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._health = HealthCfg(
            stale_after_s=self.params["diagnostics_stale_s"],
            reject_share=self.params["diagnostics_reject_share"],
        )
        self.create_timer(1.0, self._publish_diagnostics)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_service(Trigger, "~/reload_map", self._on_reload_map)
        # Activate only if configuring worked; otherwise stay alive, unconfigured, and say why.
        autostart = self.params["autostart"]
        if autostart and self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    # -- lifecycle -------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Load the encoder and the map; FAILURE (stay unconfigured) if either is unusable."""
        try:
            self._encoder = self._load_encoder()
            self._mapdb = open_map(self._map_path(), self._encoder.fingerprint)
            cfg = RecognizerCfg(
                keyframes=KeyframeCfg(
                    min_translation_m=self.params["keyframe_min_translation_m"],
                    min_rotation_deg=self.params["keyframe_min_rotation_deg"],
                    max_interval_s=self.params["keyframe_max_interval_s"],
                ),
                window_size=self.params["window_size"],
                top_k=self.params["top_k"],
                hysteresis=HysteresisCfg(
                    switch_after_windows=self.params["switch_after_windows"],
                    switch_margin=self.params["switch_margin"],
                    min_confidence=self.params["min_confidence"],
                ),
            )
            fusion = self._make_fusion()
            relocalizer = None
            if fusion is not None and self.params["relocalize"]:
                relocalizer = Relocalizer(
                    self._mapdb,
                    self._encoder,
                    RelocalizerCfg(
                        interval_s=self.params["relocalize_interval_s"],
                        min_confidence=self.params["relocalize_min_confidence"],
                        max_rivals=self.params["relocalize_twin_checks"],
                        max_candidates=self.params["relocalize_runner_up_checks"],
                        max_predictions=self.params["relocalize_prediction_checks"],
                    ),
                )
            self.stream = SensorStream(
                SceneRecognizer(
                    self._encoder,
                    self._mapdb,
                    cfg,
                    self._make_verifier(),
                    self._make_ranker(cfg.window_size),
                ),
                StreamCfg(
                    sync_slop_s=self.params["sync_slop_s"],
                    odom_max_age_s=self.params["odom_max_age_s"],
                    min_valid_depth_fraction=self.params["min_valid_depth_fraction"],
                ),
                fusion=fusion,
                stats=self.stats,
                relocalizer=relocalizer,
            )
            self._log_map("map")
        except Exception as err:  # whatever it is, stay alive and unconfigured, and say why
            self._configure_error = _describe(err)
            self.get_logger().error(f"cannot configure: {self._configure_error}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        self._configure_error = ""
        self._match_pub = self.create_lifecycle_publisher(SceneMatch, "~/scene_match", 10)
        self._markers_pub = self.create_lifecycle_publisher(MarkerArray, "~/markers", 10)
        self._instances_pub = self.create_lifecycle_publisher(
            InstanceCorrespondences, "~/instance_correspondences", 10
        )
        self._pose_pub = self.create_lifecycle_publisher(PoseWithCovarianceStamped, "~/pose", 10)
        if self.params["publish_initialpose"]:
            self._initialpose_pub = self.create_lifecycle_publisher(
                PoseWithCovarianceStamped, "/initialpose", 10
            )
        self.worker = FrameWorker(self._process, self._on_worker_error, "scene_recognizer_worker")
        self.relocalization_worker = FrameWorker(
            self._relocalize, self._on_worker_error, "scene_recognizer_relocalization"
        )
        return super().on_configure(state)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Subscribe to the sensors and start the worker; frames are processed only while active."""
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
        self.worker.start()
        self.relocalization_worker.start()
        rate = self.params["publish_rate_hz"]
        if rate > 0.0:
            self._publish_timer = self.create_timer(1.0 / rate, self._republish)
        self.stats.reset_clock()
        self._active = True
        self.get_logger().info("active: waiting for frames")
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Unsubscribe and stop the worker; the map and encoder stay loaded."""
        self._stop_processing()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Free the encoder, the map and the publishers."""
        self._release()
        self._configure_error = "cleaned up"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Free everything from any state on the way to Finalized."""
        self._release()
        self._configure_error = "shut down"
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        for worker in (self.worker, self.relocalization_worker):
            if worker is not None:
                worker.stop()
        super().destroy_node()

    def _stop_processing(self) -> None:
        self._active = False
        for subscription in self._sensor_subscriptions:
            self.destroy_subscription(subscription)
        self._sensor_subscriptions = []
        if self._publish_timer is not None:
            self.destroy_timer(self._publish_timer)
            self._publish_timer = None
        for worker in (self.worker, self.relocalization_worker):
            if worker is not None and not worker.stop():
                self.get_logger().error(f"the {worker.name} worker did not stop within 10 s")

    def _release(self) -> None:
        self._stop_processing()
        self.worker = self.relocalization_worker = None
        for name in (
            "_match_pub",
            "_markers_pub",
            "_instances_pub",
            "_pose_pub",
            "_initialpose_pub",
        ):
            publisher = getattr(self, name)
            if publisher is not None:
                self.destroy_lifecycle_publisher(publisher)
                setattr(self, name, None)
        if self._mapdb is not None:
            self._mapdb.close()
            self._mapdb = None
        self.stream = None
        self._encoder = None
        self._scenes = None
        self._last_instances = None
        with self._answer_lock:
            self._answer = None
            self._outbox.clear()
            self._relocalizations.clear()

    # -- configuration helpers -------------------------------------------------------------
    def _map_path(self) -> str:
        return str(self.get_parameter("map_path").value)

    def _load_encoder(self):
        backend = self.params["backend"]
        if backend not in BACKENDS:
            raise CrossoverError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        return create_encoder(
            self.params["model"],
            self.params["map_modality"],
            self.params["num_threads"],
            backend=backend,
        )

    def _make_fusion(self):
        if not self.params["fuse_cloud"]:
            return None
        try:
            from crossover_ros.pipeline.fusion import FusionCfg, PointCloudFusion
        except ImportError as err:  # open3d missing: recognition works without the cloud
            self.get_logger().warning(f"no point cloud fusion ({err}); recognising without")
            return None
        return PointCloudFusion(FusionCfg(pixel_stride=self.params["fusion_pixel_stride"]))

    def _make_ranker(self, window_size: int):
        if self.params["object_candidates"] <= 0:
            return None
        if not self._encoder.finds_objects:
            self.get_logger().info(
                "the model finds no objects in frames: candidates ranked by their scene vectors"
            )
            return None
        from crossover_ros.pipeline.object_ranking import ObjectRankingCfg, ObjectSetRanker

        return ObjectSetRanker(
            window_size, ObjectRankingCfg(top_k=self.params["object_candidates"])
        )

    def _make_verifier(self):
        if self.params["verify_candidates"] <= 0:
            return None
        try:
            from crossover_ros.pipeline.fusion import FusionCfg
            from crossover_ros.pipeline.verification import GeometricVerifier, VerificationCfg
        except ImportError as err:  # open3d missing: rank by the scene vectors alone
            self.get_logger().warning(f"no geometric verification ({err})")
            return None
        fusion = FusionCfg(
            pixel_stride=self.params["fusion_pixel_stride"],
            max_keyframes=self.params["window_size"],
        )
        return GeometricVerifier(
            VerificationCfg(
                top_k=self.params["verify_candidates"],
                score_weight=self.params["verify_score_weight"],
                fusion=fusion,
            )
        )

    def _log_map(self, what: str) -> None:
        self._scenes = len(self._mapdb.scenes())
        self._scenes_checked = time.monotonic()
        self.get_logger().info(f"{what} {self._mapdb.path}: {self._scenes} scenes")  # masked
        if self._scenes == 0:
            self.get_logger().warning(
                f"map {self._mapdb.path} has no scenes: nothing is published until scenes are"
                " added (the map is re-read on every query)"
            )

    # -- callbacks: the stream pairs, the worker does the work, the node logs and publishes --
    def _on_camera_info(self, msg: CameraInfo) -> None:
        self.stream.on_camera_info(msg)

    def _on_odom(self, msg: Odometry) -> None:
        try:
            self.stream.on_odometry(msg)
        except FrameRejectedError as err:
            self._warn(err.reason, str(err))

    def _on_color(self, msg: Image) -> None:
        self._submit(self.stream.sync_color(msg))

    def _on_depth(self, msg: Image) -> None:
        self._submit(self.stream.sync_depth(msg))

    def _submit(self, pair) -> None:
        if pair is not None:
            self.worker.submit((*pair, time.monotonic()))

    def _process(self, item) -> None:
        """Worker thread: the newest pair through the stream; hand results to the executor."""
        color, depth, synced_at = item
        stream = self.stream
        if stream is None:
            return
        try:
            keyframe = stream.process(color, depth, synced_at)
        except FrameRejectedError as err:
            self._warn(err.reason, str(err))
            return
        if keyframe is None:
            return
        if keyframe.result is None:
            self._warn("empty_map", "the map has no scenes: no answer to publish")
            return
        recognizer = stream.recognizer
        for stage in ("verifier", "ranker"):  # the answer went out without that stage
            helper = getattr(recognizer, stage)
            if helper is not None and helper.failures != self._stage_failures[stage]:
                self._stage_failures[stage] = helper.failures
                self._warn(stage, helper.last_error)
        with self._answer_lock:
            self._answer = keyframe
            self._outbox.append(keyframe)
        self._wake.trigger()
        if stream.relocalizer is not None:
            self.relocalization_worker.submit(keyframe)

    def _relocalize(self, keyframe: StreamKeyframe) -> None:
        """Second worker: objects and pose in the keyframe's room, handed to the executor."""
        stream = self.stream
        if stream is None:
            return
        found = stream.relocalize(keyframe)
        errors = stream.counters["relocalization_errors"]
        if errors != self._relocalization_errors:
            self._relocalization_errors = errors
            self._warn("relocalization", stream.last_relocalization_error)
        if found is not None:
            with self._answer_lock:
                self._relocalizations.append((keyframe, found))
            self._wake.trigger()

    def _on_worker_error(self, err: BaseException) -> None:
        self.get_logger().error(f"recognition failed unexpectedly: {err!r}")

    def _warn(self, key: str, message: str) -> None:
        text = self._warn_throttle(key, message)
        if text is not None:
            self.get_logger().warning(text)

    # -- publishing (executor thread) ------------------------------------------------------
    def _on_results(self) -> None:
        """New results from the worker: publish changes at once (every window at rate 0)."""
        with self._answer_lock:
            results, relocalizations = list(self._outbox), list(self._relocalizations)
            self._outbox.clear()
            self._relocalizations.clear()
        every_window = self.params["publish_rate_hz"] <= 0.0
        for keyframe in results:
            if every_window or keyframe.result.changed:
                self._publish(keyframe, keyframe.result.changed)
        for keyframe, found in relocalizations:
            self._publish_relocalization(keyframe, found)

    def _republish(self) -> None:
        """Timer: the current answer again (changed = false)."""
        with self._answer_lock:
            keyframe = self._answer
        if keyframe is not None:
            self._publish(keyframe, changed=False)

    def _publish(self, keyframe: StreamKeyframe, changed: bool) -> None:
        if self._match_pub is None or not self._active:
            return
        result = keyframe.result
        self._match_pub.publish(to_scene_match(result, keyframe.header, changed))
        instances = self._last_instances
        if instances is not None and instances.scene_id != result.scene_id:
            instances = None  # objects of another room: not drawn
        if keyframe.pose is not None:
            frame_id, camera = keyframe.odom_frame, keyframe.pose
        else:  # no odometry: the label at the camera itself
            frame_id, camera = keyframe.header.frame_id, None
        self._markers_pub.publish(
            match_markers(
                keyframe.header.stamp,
                frame_id,
                camera,
                result.scene_id,
                result.confidence,
                instances,
            )
        )

    def _publish_relocalization(self, keyframe: StreamKeyframe, found: Relocalization) -> None:
        """Instance correspondences and, when the evidence held, the pose in the map."""
        if self._instances_pub is None or not self._active:
            return
        header = Header(stamp=keyframe.header.stamp, frame_id=keyframe.odom_frame)
        self._last_instances = instance_correspondences(found, header)
        self._instances_pub.publish(self._last_instances)
        pose = pose_in_map(
            found, self._mapdb.scene(found.scene_id), self.params["map_frame"], header.stamp
        )
        if pose is None:
            self._warn("no_pose", f"no pose in {found.scene_id}: {found.pose.reason}")
            return
        if not found.confirmed:  # a single estimate, one odometry disagrees with, or a twin
            twins = f"; fits {', '.join(found.rivals)} as well" if found.rivals else ""
            self._warn(
                "unconfirmed_pose",
                f"pose in {found.scene_id} not confirmed yet ({found.support} agreeing"
                f" estimate(s){twins}); not published",
            )
            return
        self._pose_pub.publish(pose)
        if self._initialpose_pub is not None:
            self._initialpose_pub.publish(pose)

    # -- services --------------------------------------------------------------------------
    def _on_reset(self, request: Trigger.Request, response: Trigger.Response):
        """Forget the window, the filtered answer and the fused cloud."""
        if self.stream is None:
            response.success, response.message = False, "not configured: nothing to reset"
            return response
        self.stream.reset()
        with self._answer_lock:
            self._answer = None
            self._outbox.clear()
            self._relocalizations.clear()
        response.success, response.message = True, "window, answer and fused cloud cleared"
        self.get_logger().info("reset: " + response.message)
        return response

    def _on_reload_map(self, request: Trigger.Request, response: Trigger.Response):
        """Open the map at map_path again; on failure keep the map in use and say why."""
        if self.stream is None or self._encoder is None:
            response.success = False
            response.message = f"not configured ({self._configure_error}): configure first"
            return response
        location = self._map_path()
        new = None
        try:
            new = open_map(location, self._encoder.fingerprint)
            old = self.stream.recognizer.replace_map(new)
        except Exception as err:  # a service callback must not raise: it would end the spin
            if new is not None:
                new.close()
            response.success = False
            response.message = f"kept {self._mapdb.path}: cannot use {mask_map_location(location)}"
            response.message += f": {_describe(err)}"
            self.get_logger().warning(response.message)
            return response
        self._mapdb = new
        old.close()
        self._log_map("reloaded map")
        response.success = True
        response.message = f"map {new.path}: {self._scenes} scenes"
        return response

    # -- diagnostics -----------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        self._diagnostics_pub.publish(
            diagnostic_array(self.get_clock().now().to_msg(), [self.diagnostic_status()])
        )

    def diagnostic_status(self):
        """The node's DiagnosticStatus now (also for tests)."""
        stream = self.stream
        configured = stream is not None
        if configured and time.monotonic() - self._scenes_checked > SCENE_COUNT_REFRESH_S:
            self._scenes_checked = time.monotonic()
            try:
                self._scenes = len(self._mapdb.scenes())
            except CrossoverError as err:
                self._warn("map_read", f"cannot count the map's scenes: {err}")
        snapshot = self.stats.snapshot()
        level, message = assess(
            snapshot, configured, self._active, self._scenes, self._health, self._configure_error
        )
        values: dict[str, object] = {
            "state": "active" if self._active else "inactive" if configured else "unconfigured",
            "model": self.params["model"],
            "backend": getattr(self._encoder, "backend", self.params["backend"]),
            "map": self._mapdb.path
            if self._mapdb is not None
            else mask_map_location(self._map_path()),
            "scenes": self._scenes,
        }
        with self._answer_lock:
            answer = self._answer
        values["scene_id"] = answer.result.scene_id if answer is not None else ""
        values["confidence"] = answer.result.confidence if answer is not None else None
        for name in ("color", "depth", "odometry", "camera_info", "pairs", "frames"):
            values[f"{name} rate (Hz)"] = snapshot[f"{name}_hz"]
        values["keyframe rate (Hz)"] = snapshot["keyframes_hz"]
        values["recognition p50 (ms)"] = snapshot["recognition_p50_ms"]
        values["recognition p95 (ms)"] = snapshot["recognition_p95_ms"]
        values["pair to result p50 (ms)"] = snapshot["pair_to_result_p50_ms"]
        values["pair to result p95 (ms)"] = snapshot["pair_to_result_p95_ms"]
        values["seconds since last frame"] = snapshot["since_last_frame_s"]
        if configured:
            values.update(stream.counts())
            values["dropped"] = self.worker.dropped if self.worker is not None else 0
            values["worker errors"] = self.worker.errors if self.worker is not None else 0
            values["switches"] = stream.recognizer.filter.switches
            if stream.fusion is not None:
                values["fused keyframes"] = len(stream.fusion)
        return diagnostic_status(
            f"{self.get_name()}: scene recognition",
            self.get_fully_qualified_name(),
            level,
            message,
            values,
        )


def _describe(err: BaseException) -> str:
    """Our errors by their message; anything else with its type, so a bug is recognisable."""
    return str(err) if isinstance(err, CrossoverError) else f"{type(err).__name__}: {err}"


def to_scene_match(result: SceneMatchResult, header: Header, changed: bool = False) -> SceneMatch:
    """The message for a result; ``header`` is the newest colour frame's, stamp kept exact."""
    msg = SceneMatch(header=header)
    msg.scene_id = result.scene_id
    msg.score = result.score
    msg.confidence = result.confidence
    msg.changed = changed
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
