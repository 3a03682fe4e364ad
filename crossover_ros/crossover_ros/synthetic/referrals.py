"""Referral sentences from a scan's scene graph ("the red chair near the door").

Relations: on (support), next to (closest object within half a metre), near the window/door, in
the corner, colour, and bigger/smaller than the other objects of the same label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ReferralObject:
    """What referral generation needs of an instance."""

    instance_id: int
    label: str
    color_name: str
    box_min: np.ndarray
    box_max: np.ndarray
    support: str | int


def _gap(a: ReferralObject, b: ReferralObject) -> float:
    """Horizontal distance between two footprints (0 if they touch or overlap)."""
    d = np.maximum(0.0, np.maximum(a.box_min[:2] - b.box_max[:2], b.box_min[:2] - a.box_max[:2]))
    return float(np.linalg.norm(d))


def relations(
    obj: ReferralObject,
    objects: list[ReferralObject],
    room_size: tuple[float, ...],
    door_center: np.ndarray,
    window_centers: list[np.ndarray],
) -> list[str]:
    """Relation phrases that hold for ``obj``."""
    by_id = {o.instance_id: o for o in objects}
    phrases = []
    if isinstance(obj.support, int) and obj.support in by_id:
        phrases.append(f"on the {by_id[obj.support].label}")
    elif obj.support == "wall":
        phrases.append("on the wall")
    center = (obj.box_min + obj.box_max) / 2
    others = [
        o
        for o in objects
        if o.instance_id != obj.instance_id
        and o.support != obj.instance_id
        and o.instance_id != obj.support
    ]
    if others:
        nearest = min(others, key=lambda o: _gap(obj, o))
        if _gap(obj, nearest) < 0.5 and nearest.label != obj.label:
            phrases.append(f"next to the {nearest.label}")
    if np.linalg.norm(center[:2] - door_center[:2]) < 1.3:
        phrases.append("near the door")
    if any(np.linalg.norm(center[:2] - w[:2]) < 1.3 for w in window_centers):
        phrases.append("by the window")
    width, depth = room_size[0], room_size[1]
    near_x = min(obj.box_min[0], width - obj.box_max[0]) < 0.5
    near_y = min(obj.box_min[1], depth - obj.box_max[1]) < 0.5
    if near_x and near_y and obj.support == "floor":
        phrases.append("in the corner")
    same = [o for o in objects if o.label == obj.label and o.instance_id != obj.instance_id]
    if same:
        volume = float(np.prod(obj.box_max - obj.box_min))
        others_volume = [float(np.prod(o.box_max - o.box_min)) for o in same]
        if volume > 1.15 * max(others_volume):
            phrases.append(
                f"that is bigger than the other {obj.label}" + ("s" if len(same) > 1 else "")
            )
        elif volume < min(others_volume) / 1.15:
            phrases.append(
                f"that is smaller than the other {obj.label}" + ("s" if len(same) > 1 else "")
            )
    return phrases


def make_referrals(
    objects: list[ReferralObject],
    room_size: tuple[float, ...],
    door_center: np.ndarray,
    window_centers: list[np.ndarray],
    rng: np.random.Generator,
    per_object: int = 2,
) -> list[dict]:
    """Up to ``per_object`` sentences per instance: ``[{"instance_id", "text"}]``."""
    out = []
    for obj in objects:
        phrases = relations(obj, objects, room_size, door_center, window_centers)
        color = "" if obj.color_name == "colourful" else f"{obj.color_name} "
        sentences = [f"the {color}{obj.label}"] if not phrases else []
        order = rng.permutation(len(phrases))
        for k in order[:per_object]:
            use_color = rng.random() < 0.6
            text = f"the {color if use_color else ''}{obj.label} {phrases[k]}"
            extra = [phrases[j] for j in order if j != k]
            if extra and rng.random() < 0.4:
                text += f" and {extra[0]}"
            sentences.append(text)
        out += [{"instance_id": obj.instance_id, "text": s} for s in sentences]
    return out
