"""Messages of a relocalisation: instance correspondences and the pose for a navigation stack.

The pose is that of the odometry's child frame (the body whose pose the odometry topic gives)
in the map frame, as the pipeline computed it (``pipeline.events.RelocalizationEvent``): a scene
stored with its pose in the building is published in the building's frame, so AMCL can take it
on ``initialpose``; a scene without one in its own frame, named after the scene.
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Point, PoseWithCovarianceStamped, Vector3

from crossover_msgs.msg import InstanceCorrespondence, InstanceCorrespondences
from crossover_ros.pipeline.events import RelocalizationEvent
from crossover_ros.pipeline.relocalize import Relocalization
from crossover_ros.ros.convert import pose_with_covariance


def _point(xyz: np.ndarray) -> Point:
    return Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def instance_correspondences(found: Relocalization, header) -> InstanceCorrespondences:
    """The matched objects; ``header`` is the keyframe's, in the odometry frame."""
    msg = InstanceCorrespondences(header=header, scene_id=found.scene_id)
    for pair in found.correspondences:
        item = InstanceCorrespondence(
            query_instance_id=pair.query_id,
            map_instance_id=pair.map_instance_id,
            label=pair.label,
            score=float(pair.score),
            query_position=_point(pair.query_centroid),
            map_position=_point(pair.map_centroid),
        )
        if pair.map_box_min is not None and pair.map_box_max is not None:
            item.map_box_center = _point((pair.map_box_min + pair.map_box_max) / 2.0)
            size = pair.map_box_max - pair.map_box_min
            item.map_box_size = Vector3(x=float(size[0]), y=float(size[1]), z=float(size[2]))
        msg.correspondences.append(item)
    return msg


def pose_message(event: RelocalizationEvent, stamp) -> PoseWithCovarianceStamped:
    """The event's pose (the odometry body in its frame) for a navigation stack."""
    return pose_with_covariance(event.pose, event.covariance, stamp, event.frame_id)
