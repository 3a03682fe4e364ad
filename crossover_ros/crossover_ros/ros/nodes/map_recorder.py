"""map_recorder: record a room on a live mapping run and add it to the map database.

Synchronised RGB-D + odometry go through the recorder's pipeline
(``pipeline.runner.open_recording``: the recogniser's pairing, checks and keyframe rule); it keeps
the keyframes' colour images (at most ``recording.max_keyframes``, spread over the run) and
fuses their depth into a point cloud in the odometry frame. ``~/save_scene`` (std_srvs/Trigger),
or shutting the node down, embeds the keyframes with the map's model and adds the scene
(``scene.id``, ``scene.building_id``, ``scene.room_id``; settable at run time for the next room)
with its cloud to the map; the recording then starts afresh. A ``scene_recognizer`` reading the
same SQLite map sees the new scene on its next query.

Maps of either model can be recorded. A CrossOver scene holds the frame-set vector of the
keyframes, the scene-cloud vector of the fused cloud and the objects the region encoder finds in
the keyframes, placed by depth (``CrossOverEncoder.embed_recording``): no instance masks, no
referrals, no floorplan, so a recorded CrossOver map answers I->P and I->I queries.

A lifecycle node like ``scene_recognizer`` (``autostart`` configures and activates it).
"""

from __future__ import annotations

import time

import numpy as np
from rclpy.lifecycle import Node, State, TransitionCallbackReturn
from std_srvs.srv import Trigger

from crossover_ros.errors import CrossoverError
from crossover_ros.pipeline.config import RecordingPipelineCfg
from crossover_ros.pipeline.events import Event
from crossover_ros.pipeline.runner import RecordingPipeline, open_recording
from crossover_ros.ros.nodes import spin
from crossover_ros.ros.params import declare_tree, read_tree, warn_undeclared
from crossover_ros.ros.sensors import describe, subscribe
from crossover_ros.ros.settings import MapRecorderNodeCfg


class MapRecorderNode(Node):
    """Parameters -> recording pipeline; ``~/save_scene`` -> a scene in the map."""

    def __init__(self, **kwargs) -> None:
        super().__init__("map_recorder", **kwargs)
        declare_tree(self, RecordingPipelineCfg)
        declare_tree(self, MapRecorderNodeCfg)
        warn_undeclared(self)
        self.settings = read_tree(self, MapRecorderNodeCfg)
        self.pipeline: RecordingPipeline | None = None
        self._sensors: list = []
        self.saved: list[str] = []
        self.create_service(Trigger, "~/save_scene", self._on_save_scene)
        if self.settings.autostart and self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()

    # -- lifecycle -------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Load the model and open (or create) the map; FAILURE leaves the node unconfigured."""
        try:
            cfg = read_tree(self, RecordingPipelineCfg)
            self.pipeline = open_recording(cfg, self._on_event)
        except Exception as err:  # whatever it is, stay alive and unconfigured, and say why
            self.get_logger().error(f"cannot configure: {describe(err)}")
            return TransitionCallbackReturn.FAILURE
        scenes = len(self.pipeline.mapdb.scenes())
        self.get_logger().info(f"recording into {self.pipeline.mapdb.path} ({scenes} scenes)")
        return super().on_configure(state)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._sensors = subscribe(self, self.settings.topics, self.pipeline)
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
        for subscription in self._sensors:
            self.destroy_subscription(subscription)
        self._sensors = []

    def _release(self) -> None:
        self._unsubscribe()
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None

    def _on_event(self, event: Event) -> None:
        """The recorder's events are warnings (frames it could not use), in this thread."""
        self.get_logger().warning(event.message)

    # -- saving ----------------------------------------------------------------------------
    def save(self) -> str:
        """Store the recording as a scene; returns its id (CrossoverError if nothing stored)."""
        if self.pipeline is None:
            raise CrossoverError("not configured: nothing recorded")
        scene = read_tree(self, MapRecorderNodeCfg).scene  # ids may have changed at run time
        scene_id = scene.id or time.strftime("recorded_%Y%m%dT%H%M%SZ", time.gmtime())
        room_id = scene.room_id or scene_id
        keyframes = len(self.pipeline)
        record = self.pipeline.save(
            scene_id,
            scene.building_id,
            room_id,
            scene.scan_index,
            np.eye(4) if scene.odom_is_building_frame else None,
            source="map_recorder node",
        )
        self.saved.append(record.scene_id)
        self.get_logger().info(
            f"saved scene {record.scene_id} (building {scene.building_id}, room {room_id},"
            f" {keyframes} keyframes) to {self.pipeline.mapdb.path}"
        )
        return record.scene_id

    def save_pending(self) -> None:
        """On shutdown: save what was recorded, if anything and if asked to."""
        if not self.settings.save_on_shutdown or self.pipeline is None or not len(self.pipeline):
            return
        try:
            self.save()
        except Exception as err:  # shutting down: log it, do not raise
            self.get_logger().error(f"recording not saved on shutdown: {describe(err)}")

    def _on_save_scene(self, request: Trigger.Request, response: Trigger.Response):
        try:
            scene_id = self.save()
        except Exception as err:  # a service callback must not raise: it would end the spin
            response.success, response.message = False, describe(err)
            self.get_logger().error(f"scene not saved: {response.message}")
            return response
        response.success, response.message = True, f"saved scene {scene_id}"
        return response


def main(args: list[str] | None = None) -> None:
    spin(MapRecorderNode, args, last="save_pending")


if __name__ == "__main__":
    main()
