"""The nodes' own settings, beside their pipelines' (``pipeline.config``); no ROS import, so the
package's tests and tools read every parameter of both nodes without rclpy.

Topic names are relative, so a launch file's namespace (``/robot1``) moves them with the node,
and each can be remapped; the defaults are a RealSense driver's in the node's namespace.
"""

from __future__ import annotations

from dataclasses import dataclass

from crossover_ros.config import Setting, group, setting, settings_of
from crossover_ros.pipeline.config import PipelineCfg, RecordingPipelineCfg


@dataclass(frozen=True)
class TopicsCfg:
    color: str = setting("camera/color/image_raw", "sensor_msgs/Image, rgb8/bgr8/mono8.")
    depth: str = setting(
        "camera/aligned_depth_to_color/image_raw", "Depth aligned to colour (16UC1 mm or 32FC1 m)."
    )
    camera_info: str = setting("camera/color/camera_info", "CameraInfo of the colour image.")
    odom: str = setting(
        "odom", "nav_msgs/Odometry of the camera; '' to run without (keyframes by time only)."
    )


@dataclass(frozen=True)
class PublishCfg:
    rate_hz: float = setting(
        1.0,
        "~/scene_match repeats the current answer at this rate (and is sent at once when the"
        " answer changes); 0: publish every query window instead.",
        0.0,
        100.0,
    )
    initialpose: bool = setting(
        False, "Also publish each confirmed pose on initialpose, so Nav2's AMCL takes it."
    )
    tf: bool = setting(
        True,
        "Publish each confirmed map -> odom on /tf too (re-stamped at rate_hz, so TF stays"
        " fresh), as localisers do; off where another node (AMCL, SLAM) owns map -> odom.",
    )


@dataclass(frozen=True)
class SceneRecognizerNodeCfg:
    """The node's own settings, beside the pipeline's."""

    topics: TopicsCfg = group(TopicsCfg)
    publish: PublishCfg = group(PublishCfg)
    autostart: bool = setting(True, "Configure and activate at start-up.")


@dataclass(frozen=True)
class SceneCfg:
    """The scene saved next: set before each room, at run time."""

    id: str = setting("", "Id of the scene saved next ('' = recorded_<UTC time>).", read_only=False)
    building_id: str = setting("building", "Building of the scene saved next.", read_only=False)
    room_id: str = setting("", "Room of the scene saved next ('' = the scene id).", read_only=False)
    scan_index: int = setting(
        0, "Scan index of the saved scenes (0 = a reference scan).", 0, 1_000_000
    )
    odom_is_building_frame: bool = setting(
        False,
        "The odometry frame is the building's map frame (a SLAM map frame, or one mapping run"
        " for every room): saved scenes say so, and poses found in them are published in the"
        " recogniser's map frame. Otherwise each scene keeps its own frame.",
    )


@dataclass(frozen=True)
class MapRecorderNodeCfg:
    topics: TopicsCfg = group(TopicsCfg)
    scene: SceneCfg = group(SceneCfg)
    save_on_shutdown: bool = setting(True, "Save what was recorded when the node shuts down.")
    autostart: bool = setting(True, "Configure and activate at start-up.")


@dataclass(frozen=True)
class BagPlayerCfg:
    bag: str = setting("", "rosbag2 folder (MCAP or sqlite3) to play.")
    rate: float = setting(1.0, "Playback speed factor; 0 plays as fast as possible.", 0.0, 100.0)
    start_delay_s: float = setting(
        1.0, "Wait before the first message, for subscribers.", 0.0, 60.0
    )


# node name -> the configuration trees it declares as parameters
NODE_SETTINGS: dict[str, tuple[type, ...]] = {
    "scene_recognizer": (PipelineCfg, SceneRecognizerNodeCfg),
    "map_recorder": (RecordingPipelineCfg, MapRecorderNodeCfg),
}


def node_settings(node: str) -> list[Setting]:
    """Every parameter ``node`` declares."""
    return [item for tree in NODE_SETTINGS[node] for item in settings_of(tree)]
