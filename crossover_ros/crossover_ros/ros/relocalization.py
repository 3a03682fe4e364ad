"""Messages of a relocalisation: instance correspondences, the pose for a navigation stack and
the ``map -> odom`` transform.

The pose is that of the odometry's child frame (the body whose pose the odometry topic gives)
in the map frame, as the pipeline computed it (``pipeline.events.RelocalizationEvent``): a scene
stored with its pose in the building is published in the building's frame, so AMCL can take it
on ``initialpose``; a scene without one in its own frame, named after the scene. ``map -> odom``
is where the odometry frame sits in that frame: a robot's odometry starts wherever it was
switched on and drifts, so, as rtabmap and Isaac ROS localisers do, the node publishes it (on TF
too) and the rest of the TF tree (odom -> base_link from the odometry) places the robot.
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Point, PoseWithCovarianceStamped, TransformStamped, Vector3

from crossover_msgs.msg import InstanceCorrespondence, InstanceCorrespondences
from crossover_ros.pipeline.events import RelocalizationEvent
from crossover_ros.pipeline.relocalize import Relocalization
from crossover_ros.ros.convert import pose_with_covariance, transform_stamped


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


def map_to_odom_message(event: RelocalizationEvent, stamp) -> TransformStamped:
    """The odometry frame (the odometry messages' frame_id) in the event's map frame."""
    return transform_stamped(event.map_to_odom, stamp, event.frame_id, event.keyframe.odom_frame)


def tf_message_type() -> type | None:
    """``tf2_msgs/TFMessage`` where it is installed (every ROS install has it; it is not on
    PyPI, so a pip-only environment may lack it), else None: /tf is then not published."""
    try:
        from tf2_msgs.msg import TFMessage
    except ImportError:
        return None
    return TFMessage
