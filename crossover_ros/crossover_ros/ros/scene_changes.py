"""A change report (``pipeline/changes.py``) as ``crossover_msgs/SceneChanges`` and as RViz
markers: an arrow from where a moved object stood to where it is, a red box where one is gone,
a green sphere at a new one."""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import Point
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from crossover_msgs.msg import SceneChange, SceneChanges
from crossover_ros.pipeline.changes import ADDED, MOVED, REMOVED, STATIC, ChangeReport

__all__ = ["change_markers", "scene_changes_message"]

TYPES = {STATIC: SceneChange.STATIC, MOVED: SceneChange.MOVED, REMOVED: SceneChange.REMOVED}
TYPES[ADDED] = SceneChange.ADDED
COLOURS = {MOVED: (1.0, 0.7, 0.0), REMOVED: (1.0, 0.1, 0.1), ADDED: (0.1, 0.9, 0.2)}
MARKER_SIZE_M = 0.25
TEXT_HEIGHT_M = 0.15


def _point(xyz: np.ndarray | None) -> Point:
    if xyz is None:
        return Point()
    return Point(x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2]))


def scene_changes_message(report: ChangeReport, stamp) -> SceneChanges:
    """``report`` as a message; ``stamp``: the keyframe's."""
    msg = SceneChanges(header=Header(stamp=stamp, frame_id=report.frame_id))
    msg.scene_id = report.scene_id
    for change in report.changes:
        msg.changes.append(
            SceneChange(
                type=TYPES[change.kind],
                map_instance_id=int(change.instance_id),
                label=change.label,
                position_before=_point(change.before),
                position_after=_point(change.after),
                displacement=float(change.displacement_m),
            )
        )
    return msg


def change_markers(report: ChangeReport, stamp, ns: str = "scene_changes") -> MarkerArray:
    """The changes (not the static objects) for RViz, after a DELETEALL of the last ones."""
    out = MarkerArray()
    header = Header(stamp=stamp, frame_id=report.frame_id)
    out.markers.append(Marker(header=header, action=Marker.DELETEALL))
    for index, change in enumerate(c for c in report.changes if c.kind != STATIC):
        shape = Marker(header=header, ns=ns, id=2 * index, action=Marker.ADD)
        shape.pose.orientation.w = 1.0
        r, g, b = COLOURS[change.kind]
        shape.color.r, shape.color.g, shape.color.b, shape.color.a = r, g, b, 0.8
        where = change.after if change.kind != REMOVED else change.before
        if change.kind == MOVED:
            shape.type = Marker.ARROW
            shape.points = [_point(change.before), _point(change.after)]
            shape.scale.x, shape.scale.y, shape.scale.z = 0.05, 0.1, 0.15
        else:
            shape.type = Marker.CUBE if change.kind == REMOVED else Marker.SPHERE
            shape.pose.position = _point(where)
            shape.scale.x = shape.scale.y = shape.scale.z = MARKER_SIZE_M
        text = Marker(header=header, ns=f"{ns}_labels", id=2 * index + 1, action=Marker.ADD)
        text.type = Marker.TEXT_VIEW_FACING
        text.pose.position = _point(np.asarray(where) + np.array([0.0, 0.0, MARKER_SIZE_M]))
        text.pose.orientation.w = 1.0
        text.scale.z = TEXT_HEIGHT_M
        text.color.r = text.color.g = text.color.b = text.color.a = 1.0
        text.text = f"{change.kind} {change.label}"
        out.markers.extend([shape, text])
    return out
