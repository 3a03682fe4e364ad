"""Declaring node parameters with descriptions and ranges, from one table per node."""

from __future__ import annotations

from dataclasses import dataclass

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: bool | int | float | str
    description: str
    min_value: float | None = None
    max_value: float | None = None
    read_only: bool = True


def declare(node: Node, specs: list[ParamSpec]) -> dict[str, object]:
    """Declare every parameter with its descriptor and return the current values by name.

    rclpy rejects a value outside the declared range (or of another type) with a clear error
    when the parameter is set, so the node never starts with a nonsensical configuration.
    """
    values = {}
    for spec in specs:
        descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
        if spec.min_value is not None and isinstance(spec.default, float):
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=spec.min_value, to_value=spec.max_value, step=0.0)
            ]
        elif spec.min_value is not None and isinstance(spec.default, int):
            descriptor.integer_range = [
                IntegerRange(from_value=int(spec.min_value), to_value=int(spec.max_value), step=1)
            ]
        values[spec.name] = node.declare_parameter(spec.name, spec.default, descriptor).value
    return values


# The sensor input and keyframe rule both nodes share (scene_recognizer, map_recorder).
SENSOR_PARAMETERS = [
    ParamSpec("color_topic", "/camera/color/image_raw", "sensor_msgs/Image, rgb8/bgr8/mono8."),
    ParamSpec(
        "depth_topic", "/camera/aligned_depth_to_color/image_raw", "Depth aligned to colour."
    ),
    ParamSpec("camera_info_topic", "/camera/color/camera_info", "CameraInfo of the colour image."),
    ParamSpec(
        "odom_topic", "/odom", "nav_msgs/Odometry of the camera; '' to run without (no cloud)."
    ),
    ParamSpec("sync_slop_s", 0.02, "Colour/depth stamps further apart are not paired.", 0.0, 1.0),
    ParamSpec("odom_max_age_s", 0.1, "Odometry older than this is not used for a frame.", 0.0, 5.0),
    ParamSpec(
        "min_valid_depth_fraction",
        0.01,
        "Frames with a smaller share of valid depth pixels are rejected.",
        0.0,
        1.0,
    ),
    ParamSpec("keyframe_min_translation_m", 0.25, "Motion that makes a keyframe.", 0.0, 10.0),
    ParamSpec("keyframe_min_rotation_deg", 15.0, "Turn that makes a keyframe.", 0.0, 180.0),
    ParamSpec("keyframe_max_interval_s", 1.0, "A keyframe at least this often.", 0.01, 60.0),
    ParamSpec(
        "fusion_pixel_stride",
        4,
        "Fuse every n-th pixel row and column: 4 loses nothing at 640x480 and 5 cm voxels and"
        " keeps fusion at a few ms; 1-2 for 320x240 and smaller.",
        1,
        16,
    ),
]
