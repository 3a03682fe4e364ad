"""visualization_msgs/MarkerArray for RViz: the matched room at the camera, matched instances."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from visualization_msgs.msg import Marker, MarkerArray

from crossover_msgs.msg import InstanceCorrespondences

__all__ = ["match_markers"]

TEXT_HEIGHT_M = 0.25  # letter height in RViz
TEXT_ABOVE_CAMERA_M = 0.4  # the label floats above the camera, along the frame's z
SPHERE_DIAMETER_M = 0.15


def _confidence_colour(marker: Marker, confidence: float) -> None:
    """Red (unsure) to green (sure)."""
    c = float(np.clip(confidence, 0.0, 1.0)) if np.isfinite(confidence) else 0.0
    marker.color.r, marker.color.g, marker.color.b, marker.color.a = 1.0 - c, c, 0.2, 1.0


def match_markers(
    stamp: Time,
    frame_id: str,
    camera_to_frame: np.ndarray | None,
    scene_id: str,
    confidence: float,
    instances: InstanceCorrespondences | None = None,
    ns: str = "scene_match",
) -> MarkerArray:
    """The matched room and its confidence as text at the camera, spheres at instances.

    ``camera_to_frame``: 4x4 pose of the camera in ``frame_id`` (the odometry frame); None
    puts the text at the origin of ``frame_id`` (then pass the camera's own frame).
    Spheres are drawn at ``instances``' query positions, in their header's frame. The array
    starts with DELETEALL so spheres of an earlier, larger match do not linger.
    """
    out = MarkerArray()
    clear = Marker()
    clear.header.stamp, clear.header.frame_id = stamp, frame_id
    clear.action = Marker.DELETEALL
    out.markers.append(clear)

    text = Marker()
    text.header.stamp, text.header.frame_id = stamp, frame_id
    text.ns, text.id = ns, 0
    text.type, text.action = Marker.TEXT_VIEW_FACING, Marker.ADD
    position = np.zeros(3) if camera_to_frame is None else np.asarray(camera_to_frame)[:3, 3]
    text.pose.position.x = float(position[0])
    text.pose.position.y = float(position[1])
    text.pose.position.z = float(position[2]) + TEXT_ABOVE_CAMERA_M
    text.pose.orientation.w = 1.0
    text.scale.z = TEXT_HEIGHT_M
    text.text = f"{scene_id or '(no answer yet)'}  {confidence:.0%}"
    _confidence_colour(text, confidence)
    out.markers.append(text)

    if instances is not None:
        for index, pair in enumerate(instances.correspondences):
            sphere = Marker()
            sphere.header = instances.header
            sphere.ns, sphere.id = f"{ns}_instances", index
            sphere.type, sphere.action = Marker.SPHERE, Marker.ADD
            sphere.pose.position = pair.query_position
            sphere.pose.orientation.w = 1.0
            sphere.scale.x = sphere.scale.y = sphere.scale.z = SPHERE_DIAMETER_M
            _confidence_colour(sphere, float(pair.score))
            out.markers.append(sphere)
    return out
