"""scene_recognizer: RGB-D + odometry in, the matched scene of the map database out.

A lifecycle node, wiring only: configure builds the recognition pipeline from the parameters
(``pipeline.runner.open_recognition``: encoder, map, workers), activate subscribes and starts
it, deactivate stops it, cleanup frees it. With ``autostart`` it configures and activates
itself, so it runs without a lifecycle manager. The pipeline's events come from its worker
threads; they are handed to the executor through a guard condition, so every publisher is used
from the executor thread only.

Topics (relative: a launch namespace moves them): subscribed ``camera/color/image_raw``,
``camera/aligned_depth_to_color/image_raw``, ``camera/color/camera_info``, ``odom``; published
``~/scene_match`` (SceneMatch: at ``publish.rate_hz`` and at once when the answer changes),
``~/instance_correspondences`` and ``~/pose`` (PoseWithCovarianceStamped; also ``initialpose``
if asked) after each relocalisation, ``~/map_to_odom`` (TransformStamped) after each confirmed
pose, and the same on ``/tf`` re-stamped at ``publish.rate_hz`` (``publish.tf``; where tf2_msgs
is installed), ``~/markers`` (MarkerArray), ``/diagnostics`` (1 Hz); ``~/scene_changes``
(SceneChanges: what moved, is gone or is new in the room, pooled over the visit) and
``~/scene_changes/markers`` (MarkerArray) after each confirmed pose with a change report.
Services: ``~/reset`` and ``~/reload_map`` (std_srvs/Trigger); ``~/find_room`` and
``~/find_object`` (crossover_msgs FindRoom / FindObject: rooms and objects of the map found by a
sentence, ``query.text.TextQuery``), while configured; ``~/update_map`` (crossover_msgs
UpdateMap: the current visit added as a new scan of the recognised room, with
``map.allow_updates``; ``pipeline.map_update``).
"""

from __future__ import annotations

import threading
from collections import deque

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseWithCovarianceStamped, TransformStamped
from rclpy.lifecycle import Node, State, TransitionCallbackReturn
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from crossover_msgs.msg import InstanceCorrespondences, SceneChanges, SceneMatch
from crossover_msgs.srv import FindObject, FindRoom, UpdateMap
from crossover_ros.mapdb.open import open_map
from crossover_ros.pipeline.config import PipelineCfg
from crossover_ros.pipeline.events import (
    ChangeEvent,
    Event,
    MatchEvent,
    RelocalizationEvent,
    WarningEvent,
)
from crossover_ros.pipeline.runner import RecognitionPipeline, open_recognition
from crossover_ros.pipeline.stats import assess
from crossover_ros.query.text import TextQuery, text_query_for
from crossover_ros.ros.convert import fill_find_object, fill_find_room, to_scene_match
from crossover_ros.ros.diagnostics import diagnostic_array, diagnostic_status, mask_map_location
from crossover_ros.ros.markers import match_markers
from crossover_ros.ros.nodes import spin
from crossover_ros.ros.params import declare_tree, read_tree, warn_undeclared
from crossover_ros.ros.relocalization import (
    instance_correspondences,
    map_to_odom_message,
    pose_message,
    tf_message_type,
)
from crossover_ros.ros.scene_changes import change_markers, scene_changes_message
from crossover_ros.ros.sensors import describe, subscribe
from crossover_ros.ros.settings import SceneRecognizerNodeCfg


class SceneRecognizerNode(Node):
    """Parameters -> pipeline; pipeline events -> messages."""

    def __init__(self, **kwargs) -> None:
        super().__init__("scene_recognizer", **kwargs)
        declare_tree(self, PipelineCfg)
        declare_tree(self, SceneRecognizerNodeCfg)
        warn_undeclared(self)
        self.settings = read_tree(self, SceneRecognizerNodeCfg)
        self.pipeline: RecognitionPipeline | None = None
        self._configure_error = "not configured yet"
        self._outputs: dict[str, object] = {}
        self._sensors: list = []
        self._text_services: list = []
        self._text_query: TextQuery | None = None
        self._text_error = "not configured"
        self._republish_timer = None
        self._answer: MatchEvent | None = None
        self._instances: InstanceCorrespondences | None = None
        self._map_to_odom: TransformStamped | None = None  # the newest, re-stamped onto /tf
        self._tf_type = tf_message_type() if self.settings.publish.tf else None
        self._answer_lock = threading.Lock()
        self._pending: deque[Event] = deque(maxlen=64)  # drained by the executor within ms
        self._wake = self.create_guard_condition(self._drain)
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(1.0, self._publish_diagnostics)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_service(Trigger, "~/reload_map", self._on_reload_map)
        self.create_service(UpdateMap, "~/update_map", self._on_update_map)
        if self.settings.autostart and self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    # -- lifecycle -------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Build the pipeline; FAILURE (stay unconfigured, say why) if it cannot be built."""
        try:
            self.pipeline = open_recognition(read_tree(self, PipelineCfg), self._on_event)
        except Exception as err:  # whatever it is, stay alive and unconfigured, and say why
            self._configure_error = describe(err)
            self.get_logger().error(f"cannot configure: {self._configure_error}")
            return TransitionCallbackReturn.FAILURE
        self._configure_error = ""
        for note in self.pipeline.notes:
            self.get_logger().info(note)
        self._log_map("map")
        types = {
            "~/scene_match": SceneMatch,
            "~/markers": MarkerArray,
            "~/instance_correspondences": InstanceCorrespondences,
            "~/pose": PoseWithCovarianceStamped,
            "~/map_to_odom": TransformStamped,
            "~/scene_changes": SceneChanges,
            "~/scene_changes/markers": MarkerArray,
        }
        if self.settings.publish.initialpose:
            types["initialpose"] = PoseWithCovarianceStamped
        for topic, kind in types.items():
            self._outputs[topic] = self.create_lifecycle_publisher(kind, topic, 10)
        if self._tf_type is not None:
            self._outputs["/tf"] = self.create_lifecycle_publisher(self._tf_type, "/tf", 100)
        elif self.settings.publish.tf:
            self.get_logger().info("tf2_msgs is not installed: map -> odom on ~/map_to_odom only")
        self._open_text_query()
        self._text_services = [
            self.create_service(FindRoom, "~/find_room", self._on_find_room),
            self.create_service(FindObject, "~/find_object", self._on_find_object),
        ]
        return super().on_configure(state)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Subscribe and start the pipeline: frames are processed only while active."""
        self._sensors = subscribe(self, self.settings.topics, self.pipeline)
        self.pipeline.start()
        if self.settings.publish.rate_hz > 0.0:
            self._republish_timer = self.create_timer(
                1.0 / self.settings.publish.rate_hz, self._republish
            )
        self.get_logger().info("active: waiting for frames")
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Unsubscribe and stop the pipeline's workers; the map and encoder stay loaded."""
        self._stop()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Free the pipeline (encoder, map) and the publishers."""
        self._release("cleaned up")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Free everything from any state on the way to Finalized."""
        self._release("shut down")
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        self._stop()
        super().destroy_node()

    def _stop(self) -> None:
        for subscription in self._sensors:
            self.destroy_subscription(subscription)
        self._sensors = []
        if self._republish_timer is not None:
            self.destroy_timer(self._republish_timer)
            self._republish_timer = None
        for name in self.pipeline.stop() if self.pipeline is not None else ():
            self.get_logger().error(f"the {name} worker did not stop within 10 s")

    def _release(self, why: str) -> None:
        self._stop()
        for publisher in self._outputs.values():
            self.destroy_lifecycle_publisher(publisher)
        self._outputs = {}
        for service in self._text_services:
            self.destroy_service(service)
        self._text_services = []
        self._text_query, self._text_error = None, why
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None
        self._configure_error = why
        with self._answer_lock:
            self._answer, self._instances, self._map_to_odom = None, None, None
            self._pending.clear()

    def _log_map(self, what: str) -> None:
        scenes = self.pipeline.scene_count()
        self.get_logger().info(f"{what} {self.pipeline.mapdb.path}: {scenes} scenes")  # masked
        if scenes == 0:
            self.get_logger().warning(
                f"map {self.pipeline.mapdb.path} has no scenes: nothing is published until"
                " scenes are added (the map is re-read on every query)"
            )

    # -- events: from the pipeline's threads to the executor's -----------------------------
    def _on_event(self, event: Event) -> None:
        with self._answer_lock:
            self._pending.append(event)
        self._wake.trigger()

    def _drain(self) -> None:
        with self._answer_lock:
            events = list(self._pending)
            self._pending.clear()
        for event in events:
            if isinstance(event, MatchEvent):
                self._on_match(event)
            elif isinstance(event, RelocalizationEvent):
                self._on_relocalization(event)
            elif isinstance(event, ChangeEvent):
                self._on_changes(event)
            elif isinstance(event, WarningEvent):
                self.get_logger().warning(event.message)

    def _on_match(self, event: MatchEvent) -> None:
        with self._answer_lock:
            self._answer = event
        changed = event.keyframe.result.changed
        if changed or self.settings.publish.rate_hz <= 0.0:
            self._publish_match(event, changed)

    def _republish(self) -> None:
        """Timer: the current answer again (changed = false), and map -> odom on /tf stamped
        now, so TF lookups at the odometry's newest stamps do not fall past the estimate."""
        with self._answer_lock:
            answer = self._answer
        if answer is not None:
            self._publish_match(answer, changed=False)
        if self._map_to_odom is not None:
            self._map_to_odom.header.stamp = self.get_clock().now().to_msg()
            self._publish_tf(self._map_to_odom)

    def _publish_match(self, event: MatchEvent, changed: bool) -> None:
        keyframe, result = event.keyframe, event.keyframe.result
        self._outputs["~/scene_match"].publish(to_scene_match(result, keyframe.header, changed))
        instances = self._instances
        if instances is not None and instances.scene_id != result.scene_id:
            instances = None  # objects of another room: not drawn
        if keyframe.pose is not None:
            frame_id, camera = keyframe.odom_frame, keyframe.pose
        else:  # no odometry: the label at the camera itself
            frame_id, camera = keyframe.header.frame_id, None
        markers = match_markers(
            keyframe.header.stamp, frame_id, camera, result.scene_id, result.confidence, instances
        )
        self._outputs["~/markers"].publish(markers)

    def _on_relocalization(self, event: RelocalizationEvent) -> None:
        """Instance correspondences always; the pose only when confirmed."""
        header = Header(stamp=event.keyframe.header.stamp, frame_id=event.keyframe.odom_frame)
        self._instances = instance_correspondences(event.relocalization, header)
        self._outputs["~/instance_correspondences"].publish(self._instances)
        if event.confirmed:
            pose = pose_message(event, header.stamp)
            self._outputs["~/pose"].publish(pose)
            if "initialpose" in self._outputs:
                self._outputs["initialpose"].publish(pose)
            if event.map_to_odom is not None and event.keyframe.odom_frame:
                transform = map_to_odom_message(event, header.stamp)
                self._outputs["~/map_to_odom"].publish(transform)
                self._map_to_odom = transform
                self._publish_tf(transform)

    def _on_changes(self, event: ChangeEvent) -> None:
        """What changed in the room; a report that cannot be converted or serialised is said,
        not raised (the other outputs go on)."""
        stamp = event.keyframe.header.stamp
        try:
            self._outputs["~/scene_changes"].publish(scene_changes_message(event.report, stamp))
            self._outputs["~/scene_changes/markers"].publish(change_markers(event.report, stamp))
        except Exception as err:  # rclpy checks fields when serialising: whatever it raises
            self.get_logger().warning(f"change report not published: {err!r}")

    def _publish_tf(self, transform: TransformStamped) -> None:
        """map -> odom on /tf, when TF is asked for and available: a scene in its own frame is
        kept off TF, as odom can have only one parent there (the map frame)."""
        map_frame = self.get_parameter("relocalization.map_frame").value
        if "/tf" in self._outputs and transform.header.frame_id == map_frame:
            self._outputs["/tf"].publish(self._tf_type(transforms=[transform]))

    # -- services --------------------------------------------------------------------------
    def _on_reset(self, request: Trigger.Request, response: Trigger.Response):
        """Forget the window, the filtered answer, the fused cloud and the pooled poses."""
        if self.pipeline is None:
            response.success, response.message = False, "not configured: nothing to reset"
            return response
        self.pipeline.reset()
        with self._answer_lock:
            self._answer, self._map_to_odom = None, None
            self._pending.clear()
        response.success, response.message = True, "window, answer and fused cloud cleared"
        self.get_logger().info("reset: " + response.message)
        return response

    def _on_reload_map(self, request: Trigger.Request, response: Trigger.Response):
        """Open the map at map.path again; on failure keep the map in use and say why."""
        if self.pipeline is None:
            response.success = False
            response.message = f"not configured ({self._configure_error}): configure first"
            return response
        location = str(self.get_parameter("map.path").value)
        new = None
        try:
            new = open_map(
                location,
                self.pipeline.encoder.fingerprint,
                password_file=self.pipeline.cfg.map.password_file,
                read_only=not self.pipeline.cfg.map.allow_updates,
            )
            self.pipeline.replace_map(new)
        except Exception as err:  # a service callback must not raise: it would end the spin
            if new is not None:
                new.close()
            response.success = False
            response.message = (
                f"kept {self.pipeline.mapdb.path}: cannot use {mask_map_location(location)}:"
                f" {describe(err)}"
            )
            self.get_logger().warning(response.message)
            return response
        self._log_map("reloaded map")
        self._open_text_query()
        response.success = True
        response.message = f"map {new.path}: {self.pipeline.scene_count()} scenes"
        return response

    def _on_update_map(self, request: UpdateMap.Request, response: UpdateMap.Response):
        """The current visit as a new scan of the recognised room; why not, in one line."""
        if self.pipeline is None:
            response.success = False
            response.message = f"not configured ({self._configure_error}): configure first"
            return response
        try:
            record = self.pipeline.update_map(request.hint)
        except Exception as err:  # a service callback must not raise: it would end the spin
            response.success, response.message = False, " ".join(describe(err).split())
            self.get_logger().info(f"update_map: {response.message}")
            return response
        response.success, response.scene_id = True, record.scene_id
        response.message = (
            f"added {record.scene_id} to room {record.room_id} (rescan of {record.parent_scene},"
            f" frame {record.frame})"
        )
        self.get_logger().info(f"update_map: {response.message}")
        return response

    def _open_text_query(self) -> None:
        """Read the map for text queries; if that fails the node still recognises rooms, and
        the text services say why they cannot answer."""
        try:
            self._text_query = text_query_for(self.pipeline.mapdb, self.pipeline.encoder)
        except Exception as err:  # text search is an extra: never fail the configure for it
            self._text_query, self._text_error = None, describe(err)
            self.get_logger().warning(f"text queries unavailable: {self._text_error}")

    def _text_search(self, request, response, search, fill):
        """Run one text search for a service; any failure is success = false and one line."""
        if self._text_query is None:
            response.success = False
            response.message = f"text queries unavailable: {self._text_error}"
            return response
        try:
            hits = search(self._text_query)(request.text, request.k or 5, request.building or None)
        except Exception as err:  # a service callback must not raise: it would end the spin
            response.success, response.message = False, " ".join(describe(err).split())
            return response
        fill(response, hits, str(self.get_parameter("relocalization.map_frame").value))
        response.success = True
        response.message = f"{len(hits)} found for {request.text!r}"
        return response

    def _on_find_room(self, request: FindRoom.Request, response: FindRoom.Response):
        """Rooms of the map that fit the sentence, best first, with where to send Nav2."""
        return self._text_search(request, response, lambda q: q.find_rooms, fill_find_room)

    def _on_find_object(self, request: FindObject.Request, response: FindObject.Response):
        """Instances of the map that fit the sentence, best first, with their boxes."""
        return self._text_search(request, response, lambda q: q.find_objects, fill_find_object)

    # -- diagnostics -----------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        stamp = self.get_clock().now().to_msg()
        self._diagnostics.publish(diagnostic_array(stamp, [self.diagnostic_status()]))

    def diagnostic_status(self):
        """The node's DiagnosticStatus now (also for tests)."""
        if self.pipeline is None:
            level, message = assess({}, False, False, None, reason=self._configure_error)
            location = mask_map_location(str(self.get_parameter("map.path").value))
            values = {"state": "unconfigured", "map": location}
        else:
            publisher = self._outputs.get("~/scene_match")
            active = publisher is not None and publisher.is_activated
            with self._answer_lock:
                answer = self._answer
            level, message, values = self.pipeline.status(active, answer)
        name = f"{self.get_name()}: scene recognition"
        return diagnostic_status(name, self.get_fully_qualified_name(), level, message, values)


def main(args: list[str] | None = None) -> None:
    spin(SceneRecognizerNode, args)


if __name__ == "__main__":
    main()
