"""Room layouts: walls with a door and windows, furniture placed without collisions, small objects
on supports, rescans with moved/removed/new objects, and look-alike variants of one template.

Room frame: x along the corridor wall in [0, width], y into the room in [0, depth], z up, floor at
z = 0. The door is always in the south wall (y = 0), which faces the corridor; windows are in the
north wall (y = depth) and sometimes the east wall.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import trimesh

from crossover_ros.synthetic.furniture import ObjectModel, Part, Surface, books, build_object, table
from crossover_ros.synthetic.materials import (
    Material,
    MaterialTable,
    color_rgb,
    solid,
    speckle,
    stripes,
    tiles,
    wood,
)

WALL_THICKNESS = 0.1
#: The yaw that turns an object's front (+y) to face into the room from each wall.
WALL_YAW = {"south": 0.0, "north": np.pi, "west": -np.pi / 2, "east": np.pi / 2}
#: Categories a person would move between scans.
MOVABLE_FLOOR = {
    "chair",
    "office_chair",
    "armchair",
    "plant",
    "trash_can",
    "floor_lamp",
    "box",
    "backpack",
    "coffee_table",
}
SMALL_OBJECTS = ["small_plant", "vase", "mug", "laptop", "table_lamp", "books"]
FLOOR_EXTRAS = ["box", "backpack", "plant", "trash_can", "chair"]


@dataclass(frozen=True)
class Opening:
    """A door or window: an interval along a wall and a vertical interval."""

    wall: str
    start: float
    end: float
    bottom: float
    top: float

    def center(self, width: float, depth: float) -> np.ndarray:
        """Centre of the opening in the room frame."""
        a, z = (self.start + self.end) / 2, (self.bottom + self.top) / 2
        return {
            "south": np.array([a, 0.0, z]),
            "north": np.array([a, depth, z]),
            "west": np.array([0.0, a, z]),
            "east": np.array([width, a, z]),
        }[self.wall]

    def to_json(self, width: float, depth: float) -> dict:
        return {
            "wall": self.wall,
            "start": self.start,
            "end": self.end,
            "bottom": self.bottom,
            "top": self.top,
            "center": self.center(width, depth).round(4).tolist(),
        }


@dataclass
class RoomStructure:
    """Walls, floor, ceiling, the door and windows of one room."""

    width: float
    depth: float
    height: float
    door: Opening
    windows: list[Opening]
    wall_material: Material
    floor_material: Material
    trim_material: Material
    door_material: Material


@dataclass
class PlacedObject:
    """An object instance in a room.

    ``support`` is ``"floor"``, ``"wall"`` or the instance id of the object it stands on.
    """

    instance_id: int
    model: ObjectModel
    pose: np.ndarray
    support: str | int
    state: str = "static"

    @property
    def category(self) -> str:
        return self.model.category

    def aabb(self) -> np.ndarray:
        """(2, 3) room-frame bounds."""
        lo, hi = self.model.mesh_bounds()
        corners = np.array(
            [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
        )
        world = corners @ self.pose[:3, :3].T + self.pose[:3, 3]
        return np.stack([world.min(axis=0), world.max(axis=0)])


@dataclass
class RoomLayout:
    """One room at one point in time."""

    room_type: str
    template_id: str | None
    structure: RoomStructure
    objects: list[PlacedObject] = field(default_factory=list)
    next_id: int = 1
    removed_ids: list[int] = field(default_factory=list)

    def get(self, instance_id: int) -> PlacedObject:
        return next(o for o in self.objects if o.instance_id == instance_id)

    def children(self, instance_id: int) -> list[PlacedObject]:
        """Objects standing on ``instance_id``, recursively."""
        direct = [o for o in self.objects if o.support == instance_id]
        return direct + [c for o in direct for c in self.children(o.instance_id)]


def pose_matrix(x: float, y: float, z: float, yaw: float) -> np.ndarray:
    """4x4 transform: rotation about z by ``yaw`` then translation."""
    c, s = np.cos(yaw), np.sin(yaw)
    pose = np.eye(4)
    pose[:2, :2] = [[c, -s], [s, c]]
    pose[:3, 3] = (x, y, z)
    return pose


def _boxes_overlap(a: np.ndarray, b: np.ndarray, gap: float) -> bool:
    return bool(np.all(a[0] < b[1] + gap) and np.all(a[1] > b[0] - gap))


class Placer:
    """Rejection-sampling placement of furniture against walls, in corners, around anchors."""

    def __init__(self, layout: RoomLayout, rng: np.random.Generator, gap: float = 0.03):
        self.layout = layout
        self.rng = rng
        self.gap = gap

    # -- collision model -------------------------------------------------------------------------
    def _keepouts(self) -> list[np.ndarray]:
        s = self.layout.structure
        door = s.door
        boxes = [np.array([[door.start - 0.15, 0.0, 0.0], [door.end + 0.15, 1.0, door.top]])]
        for win in s.windows:
            if win.wall == "north":
                boxes.append(
                    np.array([[win.start, s.depth - 0.5, win.bottom], [win.end, s.depth, win.top]])
                )
            elif win.wall == "east":
                boxes.append(
                    np.array([[s.width - 0.5, win.start, win.bottom], [s.width, win.end, win.top]])
                )
        return boxes

    def blockers(self, ignore: set[int] | None = None) -> list[np.ndarray]:
        """3D boxes nothing may enter: floor/wall objects and the door and window zones."""
        ignore = ignore or set()
        boxes = [
            o.aabb()
            for o in self.layout.objects
            if o.support in ("floor", "wall") and o.instance_id not in ignore
        ]
        return boxes + self._keepouts()

    def fits(self, model: ObjectModel, pose: np.ndarray, ignore: set[int] | None = None) -> bool:
        s = self.layout.structure
        box = PlacedObject(0, model, pose, "floor").aabb()
        if np.any(box[0, :2] < -1e-6) or box[1, 0] > s.width + 1e-6 or box[1, 1] > s.depth + 1e-6:
            return False
        if box[1, 2] > s.height - 0.05:
            return False
        return not any(_boxes_overlap(box, b, self.gap) for b in self.blockers(ignore))

    def add(self, model: ObjectModel, pose: np.ndarray, support: str | int) -> PlacedObject:
        obj = PlacedObject(self.layout.next_id, model, pose, support)
        self.layout.next_id += 1
        self.layout.objects.append(obj)
        return obj

    # -- floor placement -------------------------------------------------------------------------
    def wall_pose(
        self, model: ObjectModel, wall: str, along: float, offset: float = 0.01, z: float = 0.0
    ) -> np.ndarray:
        s = self.layout.structure
        o = model.half_extents[1] + offset
        x, y = {
            "south": (along, o),
            "north": (along, s.depth - o),
            "west": (o, along),
            "east": (s.width - o, along),
        }[wall]
        return pose_matrix(x, y, z, WALL_YAW[wall])

    def _wall_length(self, wall: str) -> float:
        s = self.layout.structure
        return s.width if wall in ("south", "north") else s.depth

    def against_wall(
        self,
        model: ObjectModel,
        walls: tuple[str, ...] = ("north", "east", "west"),
        tries: int = 60,
    ) -> PlacedObject | None:
        for _ in range(tries):
            wall = walls[int(self.rng.integers(len(walls)))]
            length, half = self._wall_length(wall), model.half_extents[0]
            if length < 2 * half + 0.02:
                continue
            pose = self.wall_pose(
                model, wall, float(self.rng.uniform(half + 0.01, length - half - 0.01))
            )
            if self.fits(model, pose):
                return self.add(model, pose, "floor")
        return None

    def in_corner(self, model: ObjectModel, tries: int = 20) -> PlacedObject | None:
        s = self.layout.structure
        for _ in range(tries):
            hx, hy = model.half_extents
            r = max(hx, hy) + 0.05
            x = r if self.rng.random() < 0.5 else s.width - r
            y = r if self.rng.random() < 0.5 else s.depth - r
            pose = pose_matrix(x, y, 0.0, float(self.rng.uniform(-np.pi, np.pi)))
            if self.fits(model, pose):
                return self.add(model, pose, "floor")
        return None

    def free(
        self, model: ObjectModel, tries: int = 60, near_center: bool = False
    ) -> PlacedObject | None:
        s = self.layout.structure
        for _ in range(tries):
            if near_center:
                x = s.width / 2 + self.rng.uniform(-0.15, 0.15) * s.width
                y = s.depth / 2 + self.rng.uniform(-0.15, 0.15) * s.depth
                yaw = float(self.rng.choice([0.0, np.pi / 2])) + self.rng.normal(0, 0.03)
            else:
                x, y = self.rng.uniform(0, s.width), self.rng.uniform(0, s.depth)
                yaw = float(self.rng.uniform(-np.pi, np.pi))
            pose = pose_matrix(float(x), float(y), 0.0, float(yaw))
            if self.fits(model, pose):
                return self.add(model, pose, "floor")
        return None

    def relative(
        self,
        anchor: PlacedObject,
        model: ObjectModel,
        side: str,
        gap: float = 0.08,
        lateral: float = 0.0,
        align_back: bool = False,
    ) -> PlacedObject | None:
        """Place next to ``anchor``: ``front`` (facing it), ``left``/``right`` (same heading)."""
        ax, ay = anchor.model.half_extents
        mx, my = model.half_extents
        if side == "front":
            local = (lateral, ay + my + gap, np.pi)
        elif side == "back":
            local = (lateral, -(ay + my + gap), 0.0)
        else:
            sign = -1.0 if side == "left" else 1.0
            forward = -(ay - my) if align_back else 0.0
            local = (sign * (ax + mx + gap), forward, 0.0)
        pose = anchor.pose @ pose_matrix(local[0], local[1], 0.0, local[2])
        if self.fits(model, pose):
            return self.add(model, pose, "floor")
        return None

    def on_wall(
        self,
        model: ObjectModel,
        z_bottom: float,
        walls: tuple[str, ...] = ("north", "east", "west", "south"),
        tries: int = 40,
    ) -> PlacedObject | None:
        for _ in range(tries):
            wall = walls[int(self.rng.integers(len(walls)))]
            length, half = self._wall_length(wall), model.half_extents[0]
            if length < 2 * half + 0.1:
                continue
            along = float(self.rng.uniform(half + 0.05, length - half - 0.05))
            pose = self.wall_pose(model, wall, along, offset=0.0, z=z_bottom)
            if self.fits(model, pose):
                return self.add(model, pose, "wall")
        return None

    # -- small objects on supports ---------------------------------------------------------------
    def on_top(
        self,
        parent: PlacedObject,
        model: ObjectModel,
        surface_index: int | None = None,
        tries: int = 25,
        facing_front: bool = True,
    ) -> PlacedObject | None:
        surfaces = parent.model.surfaces
        if not surfaces:
            return None
        siblings = [o.aabb() for o in self.layout.objects if o.support == parent.instance_id]
        for _ in range(tries):
            k = (
                surface_index
                if surface_index is not None
                else int(self.rng.integers(len(surfaces)))
            )
            surf: Surface = surfaces[k]
            if model.height > surf.clearance:
                return None
            yaw = 0.0 if facing_front else float(self.rng.choice([0, np.pi / 2, np.pi]))
            yaw += float(self.rng.normal(0, 0.12))
            c, s_ = abs(np.cos(yaw)), abs(np.sin(yaw))
            hx = c * model.half_extents[0] + s_ * model.half_extents[1]
            hy = s_ * model.half_extents[0] + c * model.half_extents[1]
            room_x, room_y = surf.half_size[0] - hx, surf.half_size[1] - hy
            if room_x < 0 or room_y < 0:
                return None
            x = surf.center[0] + self.rng.uniform(-room_x, room_x)
            y = surf.center[1] + self.rng.uniform(-room_y, room_y)
            pose = parent.pose @ pose_matrix(float(x), float(y), surf.z + 0.001, yaw)
            box = PlacedObject(0, model, pose, parent.instance_id).aabb()
            if not any(_boxes_overlap(box, b, 0.01) for b in siblings):
                return self.add(model, pose, parent.instance_id)
        return None


def _build(category: str, rng: np.random.Generator) -> ObjectModel:
    return build_object(category, rng)


def _fill_shelf(placer: Placer, shelf: PlacedObject, rng: np.random.Generator) -> None:
    surfaces = shelf.model.surfaces
    for k, surf in enumerate(surfaces[1:], start=1):
        if rng.random() < 0.75:
            width = float(min(2 * surf.half_size[0] - 0.02, rng.uniform(0.3, 0.6)))
            model = books_model(rng, width, surf.clearance - 0.02)
            placer.on_top(shelf, model, surface_index=k)
    if rng.random() < 0.5:
        placer.on_top(
            shelf,
            _build(str(rng.choice(["vase", "small_plant"])), rng),
            surface_index=int(rng.integers(len(surfaces))),
        )


def books_model(rng: np.random.Generator, width: float, max_height: float) -> ObjectModel:
    """A row of books sized to a shelf."""

    model = books(rng, width=width, max_height=max_height)
    lo, hi = model.mesh_bounds()
    model.half_extents = (float(max(-lo[0], hi[0])), float(max(-lo[1], hi[1])))
    model.height = float(hi[2])
    return model


# --- room recipes --------------------------------------------------------------------------------
def furnish_office(p: Placer, rng: np.random.Generator) -> None:
    """Single office: desk under the window, swivel chair, shelf with books, cabinet, plant."""
    desk = p.against_wall(_build("desk", rng), ("north",)) or p.against_wall(_build("desk", rng))
    if desk:
        p.relative(desk, _build("office_chair", rng), "front", gap=0.05)
        p.on_top(desk, _build("monitor", rng))
        if rng.random() < 0.7:
            p.on_top(desk, _build("table_lamp", rng))
        p.on_top(desk, _build(str(rng.choice(["mug", "laptop"])), rng))
    shelf = p.against_wall(_build("bookshelf", rng), ("west", "east"))
    if shelf:
        _fill_shelf(p, shelf, rng)
    cab = p.against_wall(_build("cabinet", rng), ("west", "east", "south"))
    if cab and rng.random() < 0.6:
        p.on_top(cab, _build("small_plant", rng))
    p.in_corner(_build("plant", rng))
    p.free(_build("trash_can", rng))
    p.on_wall(_build("whiteboard", rng), 0.9, ("west", "east", "south"))
    if rng.random() < 0.5:
        p.on_wall(_build("picture", rng), 1.4)


def furnish_hotel(p: Placer, rng: np.random.Generator) -> None:
    """Hotel room: bed with nightstands and lamps, wardrobe, desk, TV, armchair."""
    bed = p.against_wall(_build("bed", rng), ("west", "east"))
    if bed:
        for side in ("left", "right"):
            stand = p.relative(bed, _build("nightstand", rng), side, gap=0.03, align_back=True)
            if stand:
                p.on_top(stand, _build("table_lamp", rng))
        if rng.random() < 0.8:
            p.on_wall(_build("picture", rng), 1.25, ("west", "east"))
    p.against_wall(_build("wardrobe", rng), ("south", "west", "east"))
    desk = p.against_wall(_build("desk", rng), ("north", "west", "east"))
    if desk:
        p.relative(desk, _build("chair", rng), "front", gap=0.05)
        p.on_top(desk, _build("table_lamp", rng))
    tv_stand = p.against_wall(_build("cabinet", rng), ("west", "east", "north"))
    if tv_stand:
        p.on_top(tv_stand, _build("tv", rng))
    p.in_corner(_build("armchair", rng))
    p.in_corner(_build("floor_lamp", rng))


def furnish_bedroom(p: Placer, rng: np.random.Generator) -> None:
    """Private bedroom: bed, nightstand, wardrobe, desk, shelf, plant, boxes."""
    bed = p.against_wall(_build("bed", rng), ("north", "west", "east"))
    if bed:
        stand = p.relative(
            bed,
            _build("nightstand", rng),
            str(rng.choice(["left", "right"])),
            gap=0.03,
            align_back=True,
        )
        if stand:
            p.on_top(stand, _build("table_lamp", rng))
            if rng.random() < 0.5:
                p.on_top(stand, _build("mug", rng))
    p.against_wall(_build("wardrobe", rng), ("south", "west", "east"))
    desk = p.against_wall(_build("desk", rng))
    if desk:
        p.relative(desk, _build(str(rng.choice(["chair", "office_chair"])), rng), "front")
        p.on_top(desk, _build("laptop", rng))
    shelf = p.against_wall(_build("bookshelf", rng))
    if shelf:
        _fill_shelf(p, shelf, rng)
    p.in_corner(_build("plant", rng))
    p.free(_build("box", rng))
    p.on_wall(_build("picture", rng), 1.4)


def furnish_living(p: Placer, rng: np.random.Generator) -> None:
    """Living room: sofa facing a TV, coffee table, armchairs, shelf, lamp, plants."""
    sofa = p.against_wall(_build("sofa", rng), ("north", "west", "east"))
    if sofa:
        table = p.relative(sofa, _build("coffee_table", rng), "front", gap=0.4)
        if table:
            p.on_top(table, _build(str(rng.choice(["vase", "mug", "small_plant"])), rng))
        p.relative(sofa, _build("floor_lamp", rng), str(rng.choice(["left", "right"])), gap=0.1)
    stand = p.against_wall(_build("cabinet", rng), ("south", "west", "east", "north"))
    if stand:
        p.on_top(stand, _build("tv", rng))
    for _ in range(int(rng.integers(1, 3))):
        p.free(_build("armchair", rng))
    shelf = p.against_wall(_build("bookshelf", rng))
    if shelf:
        _fill_shelf(p, shelf, rng)
    for _ in range(int(rng.integers(1, 3))):
        p.in_corner(_build("plant", rng))
    p.on_wall(_build("picture", rng), 1.3)


def furnish_meeting(p: Placer, rng: np.random.Generator) -> None:
    """Meeting room: a long table with chairs around it, whiteboard, cabinet, plants."""

    model = table(rng, width=float(rng.uniform(1.8, 2.4)), depth=float(rng.uniform(0.9, 1.1)))
    tbl = p.free(_finalise(model), near_center=True)
    if tbl:
        chair_model = _build(str(rng.choice(["chair", "office_chair"])), rng)
        half_w = tbl.model.half_extents[0]
        per_side = max(1, int((2 * half_w) // 0.7))
        for side in ("front", "back"):
            for k in range(per_side):
                lateral = -half_w + (k + 0.5) * 2 * half_w / per_side
                p.relative(tbl, copy.deepcopy(chair_model), side, gap=0.05, lateral=lateral)
        if rng.random() < 0.6:
            p.on_top(tbl, _build("laptop", rng))
        p.on_top(tbl, _build(str(rng.choice(["mug", "vase"])), rng))
    p.on_wall(_build("whiteboard", rng), 0.9, ("west", "east"))
    cab = p.against_wall(_build("cabinet", rng), ("north", "west", "east", "south"))
    if cab:
        p.on_top(cab, _build("tv", rng))
    p.in_corner(_build("plant", rng))
    p.free(_build("trash_can", rng))


def furnish_kitchen(p: Placer, rng: np.random.Generator) -> None:
    """Kitchen-ish: counter with a sink, fridge, table with chairs, bin."""
    ctr = p.against_wall(_build("counter", rng), ("north", "west", "east"))
    if ctr:
        p.on_top(ctr, _build(str(rng.choice(["mug", "vase", "small_plant"])), rng))
    p.against_wall(_build("fridge", rng), ("west", "east", "north"))
    tbl = p.free(_build("table", rng), near_center=True)
    if tbl:
        chair_model = _build("chair", rng)
        for side in ("front", "back", "left", "right")[: int(rng.integers(2, 5))]:
            p.relative(tbl, copy.deepcopy(chair_model), side, gap=0.05)
        p.on_top(tbl, _build(str(rng.choice(["vase", "mug"])), rng))
    p.free(_build("trash_can", rng))
    if rng.random() < 0.6:
        p.in_corner(_build("plant", rng))


def _finalise(model: ObjectModel) -> ObjectModel:
    lo, hi = model.mesh_bounds()
    model.half_extents = (float(max(-lo[0], hi[0])), float(max(-lo[1], hi[1])))
    model.height = float(hi[2])
    return model


ROOM_RECIPES = {
    "office": (furnish_office, (3.0, 3.6), (3.6, 4.4)),
    "hotel_room": (furnish_hotel, (3.4, 4.0), (4.6, 5.3)),
    "bedroom": (furnish_bedroom, (3.2, 4.2), (3.4, 4.4)),
    "living_room": (furnish_living, (4.4, 5.6), (4.4, 5.6)),
    "meeting_room": (furnish_meeting, (4.2, 5.4), (4.2, 5.2)),
    "kitchen": (furnish_kitchen, (3.4, 4.4), (3.4, 4.4)),
}

#: Wall paint / floor families per split: held-out and test buildings use colours of their own.
WALL_COLORS = {
    0: ["white", "cream", "light grey", "beige", "light blue"],
    1: ["light green", "pink", "yellow", "grey"],
    2: ["teal", "orange", "purple", "olive"],
}
FLOOR_STYLES = {
    0: ["planks light brown", "planks brown", "tiles light grey", "speckle grey"],
    1: ["planks dark brown", "planks beige", "tiles beige", "speckle navy"],
    2: ["tiles dark grey", "planks cream", "speckle dark green", "tiles white"],
}
# Rooms of the validation family are 10 % larger than training's, of the test family 20 %.
ROOM_STRETCH = {0: 1.0, 1: 1.1, 2: 1.2}


def _floor_material(style: str) -> Material:
    kind, color = style.split(" ", 1)
    if kind == "planks":
        return wood(color, 0.15)
    if kind == "tiles":
        return tiles(color, "grey", 0.4)
    return speckle(color)


def make_structure(
    rng: np.random.Generator, size: tuple[float, float], family: int, east_window: bool
) -> RoomStructure:
    """Walls, door and windows for a room of ``size`` (width, depth)."""
    width, depth = size
    height = float(rng.uniform(2.6, 2.9))
    door_width = 0.9
    door_start = float(rng.uniform(0.25, width - door_width - 0.25))
    door = Opening("south", door_start, door_start + door_width, 0.0, 2.1)
    windows = []
    count = 1 if width < 4.0 else 2
    for k in range(count):
        slot = width / count
        win_w = float(min(slot - 0.5, rng.uniform(0.9, 1.5)))
        start = k * slot + (slot - win_w) / 2
        windows.append(Opening("north", start, start + win_w, 0.9, 2.1))
    if east_window:
        win_w = float(rng.uniform(0.8, 1.2))
        start = float(rng.uniform(0.4, depth - win_w - 0.4))
        windows.append(Opening("east", start, start + win_w, 0.9, 2.1))
    wall_color = str(rng.choice(WALL_COLORS[family]))
    wall = stripes(wall_color, "white", 0.3) if rng.random() < 0.2 else speckle(wall_color)
    trim = solid(str(rng.choice(["white", "dark brown", "grey"])))
    door_mat = wood(str(rng.choice(["light brown", "brown", "dark brown"])), 0.25)
    return RoomStructure(
        width,
        depth,
        height,
        door,
        windows,
        wall,
        _floor_material(str(rng.choice(FLOOR_STYLES[family]))),
        trim,
        door_mat,
    )


def make_room(
    room_type: str, rng: np.random.Generator, family: int, template_id: str | None = None
) -> RoomLayout:
    """A furnished room of a recipe type."""
    furnish, width_range, depth_range = ROOM_RECIPES[room_type]
    stretch = ROOM_STRETCH[family]
    size = (float(rng.uniform(*width_range)) * stretch, float(rng.uniform(*depth_range)) * stretch)
    structure = make_structure(rng, size, family, east_window=rng.random() < 0.3)
    layout = RoomLayout(room_type, template_id, structure)
    furnish(Placer(layout, rng), rng)
    return layout


# --- changes between scans / look-alikes ---------------------------------------------------------
@dataclass
class Changes:
    """Ground truth of a perturbation."""

    moved: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    added: list[int] = field(default_factory=list)


def _move_floor_object(p: Placer, obj: PlacedObject, rng: np.random.Generator) -> bool:
    ignore = {obj.instance_id}
    old = obj.pose
    for attempt in range(40):
        radius = 0.8 if attempt < 25 else 2.5
        shift = rng.uniform(-radius, radius, 2)
        dyaw = float(rng.uniform(-0.8, 0.8))
        if np.linalg.norm(shift) < 0.25 and abs(dyaw) < 0.35:
            continue
        new = pose_matrix(
            old[0, 3] + shift[0],
            old[1, 3] + shift[1],
            0.0,
            float(np.arctan2(old[1, 0], old[0, 0]) + dyaw),
        )
        if p.fits(obj.model, new, ignore):
            delta = new @ np.linalg.inv(old)
            obj.pose = new
            for child in p.layout.children(obj.instance_id):
                child.pose = delta @ child.pose
            return True
    return False


def _move_small_object(p: Placer, obj: PlacedObject, rng: np.random.Generator) -> bool:
    supports = [
        o
        for o in p.layout.objects
        if o.model.surfaces and o.instance_id != obj.instance_id and o.support in ("floor", "wall")
    ]
    if not supports:
        return False
    old_pose, old_support = obj.pose, obj.support
    p.layout.objects.remove(obj)
    for _ in range(10):
        parent = supports[int(rng.integers(len(supports)))]
        placed = p.on_top(parent, obj.model, facing_front=False)
        if placed is not None:
            p.layout.objects.remove(placed)
            p.layout.next_id -= 1
            if np.linalg.norm(placed.pose[:3, 3] - old_pose[:3, 3]) < 0.2:
                continue
            obj.pose, obj.support = placed.pose, parent.instance_id
            p.layout.objects.append(obj)
            return True
    obj.pose, obj.support = old_pose, old_support
    p.layout.objects.append(obj)
    return False


def perturb(
    layout: RoomLayout, rng: np.random.Generator, moves: int, removals: int, additions: int
) -> Changes:
    """Move, remove and add objects in place; returns which instance ids changed how."""
    p = Placer(layout, rng)
    changes = Changes()
    candidates = [o for o in layout.objects if o.category in MOVABLE_FLOOR and o.support == "floor"]
    small = [
        o
        for o in layout.objects
        if isinstance(o.support, int) and not layout.children(o.instance_id)
    ]
    rng.shuffle(candidates)
    rng.shuffle(small)
    pool = candidates + small
    for obj in pool:
        if len(changes.moved) >= moves:
            break
        mover = _move_floor_object if obj.support == "floor" else _move_small_object
        if mover(p, obj, rng):
            changes.moved.append(obj.instance_id)
            changes.moved += [c.instance_id for c in layout.children(obj.instance_id)]
    removable = [
        o
        for o in layout.objects
        if o.instance_id not in changes.moved
        and (o.category in MOVABLE_FLOOR or isinstance(o.support, int))
    ]
    rng.shuffle(removable)
    for obj in removable[:removals]:
        if obj not in layout.objects:
            continue
        gone = [obj, *layout.children(obj.instance_id)]
        for g in gone:
            layout.objects.remove(g)
            changes.removed.append(g.instance_id)
            if g.instance_id in changes.moved:
                changes.moved.remove(g.instance_id)
    for _ in range(additions * 3):
        if len(changes.added) >= additions:
            break
        if rng.random() < 0.5:
            supports = [o for o in layout.objects if o.model.surfaces and o.support == "floor"]
            if not supports:
                continue
            parent = supports[int(rng.integers(len(supports)))]
            placed = p.on_top(
                parent, _build(str(rng.choice(SMALL_OBJECTS[:4])), rng), facing_front=False
            )
        else:
            placed = p.free(_build(str(rng.choice(FLOOR_EXTRAS)), rng))
        if placed is not None:
            changes.added.append(placed.instance_id)
    return changes


def make_rescan(reference: RoomLayout, rng: np.random.Generator) -> RoomLayout:
    """A later visit: some objects moved, some gone, some new (3RScan-style ground truth)."""
    layout = copy.copy(reference)
    layout.structure = reference.structure
    layout.objects = [copy.copy(o) for o in reference.objects]
    for o in layout.objects:
        o.state = "static"
    changes = perturb(
        layout,
        rng,
        moves=int(rng.integers(1, 4)),
        removals=int(rng.integers(1, 3)),
        additions=int(rng.integers(1, 3)),
    )
    for o in layout.objects:
        if o.instance_id in changes.added:
            o.state = "new"
        elif o.instance_id in changes.moved:
            o.state = "moved"
    layout.removed_ids = sorted(changes.removed)
    return layout


def make_lookalike(template: RoomLayout, rng: np.random.Generator) -> RoomLayout:
    """A room built from the same template (size, furniture, colours) with a few differences."""
    layout = copy.copy(template)
    layout.objects = [copy.copy(o) for o in template.objects]
    perturb(layout, rng, moves=int(rng.integers(1, 3)), removals=1, additions=1)
    for o in layout.objects:
        o.state = "static"
    layout.removed_ids = []
    return layout


# --- geometry assembly ---------------------------------------------------------------------------
def _wall_segments(
    length: float, height: float, openings: list[Opening]
) -> list[tuple[float, float, float, float]]:
    """(a0, a1, z0, z1) solid rectangles of a wall with rectangular holes."""
    cuts = sorted(openings, key=lambda o: o.start)
    pieces, cursor = [], -WALL_THICKNESS
    for o in cuts:
        pieces.append((cursor, o.start, 0.0, height))
        if o.bottom > 0:
            pieces.append((o.start, o.end, 0.0, o.bottom))
        pieces.append((o.start, o.end, o.top, height))
        cursor = o.end
    pieces.append((cursor, length + WALL_THICKNESS, 0.0, height))
    return [p for p in pieces if p[1] - p[0] > 1e-6 and p[3] - p[2] > 1e-6]


def _wall_box(
    wall: str,
    a0: float,
    a1: float,
    z0: float,
    z1: float,
    inset: float,
    thickness: float,
    w: float,
    d: float,
) -> trimesh.Trimesh:
    """Box on ``wall`` from ``inset`` (into the room, negative = outside) over ``thickness``."""
    if wall in ("south", "north"):
        y0 = -inset - thickness if wall == "south" else d + inset
        lo, hi = (a0, y0, z0), (a1, y0 + thickness, z1)
    else:
        x0 = -inset - thickness if wall == "west" else w + inset
        lo, hi = (x0, a0, z0), (x0 + thickness, a1, z1)
    size = np.subtract(hi, lo)
    mesh = trimesh.creation.box(extents=size)
    mesh.apply_translation(np.add(lo, hi) / 2)
    return mesh


GLASS = Material("glass", "light blue", color_rgb("light blue"), (0.85, 0.92, 1.0), 0, 0.2, 1.0)
CEILING = Material("ceiling", "white", (0.93, 0.93, 0.92), (0.93, 0.93, 0.92))


def structure_parts(s: RoomStructure) -> list[Part]:
    """Floor, ceiling, walls with holes, door frame and leaf, window frames and panes."""
    w, d, h, t = s.width, s.depth, s.height, WALL_THICKNESS
    parts = [
        Part(_box_lohi((-t, -t, -0.05), (w + t, d + t, 0.0)), s.floor_material),
        Part(_box_lohi((-t, -t, h), (w + t, d + t, h + 0.05)), CEILING),
    ]
    openings = [s.door, *s.windows]
    for wall in ("south", "north", "west", "east"):
        length = w if wall in ("south", "north") else d
        holes = [o for o in openings if o.wall == wall]
        for a0, a1, z0, z1 in _wall_segments(length, h, holes):
            if wall in ("west", "east"):
                a0, a1 = max(a0, 0.0), min(a1, d)
            parts.append(Part(_wall_box(wall, a0, a1, z0, z1, 0.0, t, w, d), s.wall_material))
        # skirting board along the wall, interrupted by the door
        for a0, a1, _, _ in _wall_segments(length, 0.08, [o for o in holes if o.bottom == 0]):
            a0, a1 = max(a0, 0.0), min(a1, length)
            if a1 - a0 > 0.01:
                parts.append(
                    Part(_wall_box(wall, a0, a1, 0.0, 0.08, -0.012, 0.012, w, d), s.trim_material)
                )
    for o in openings:
        is_door = o is s.door
        frame = 0.06
        parts.append(
            Part(
                _wall_box(
                    o.wall, o.start - frame, o.start, o.bottom, o.top + frame, -0.02, 0.02 + t, w, d
                ),
                s.trim_material,
            )
        )
        parts.append(
            Part(
                _wall_box(
                    o.wall, o.end, o.end + frame, o.bottom, o.top + frame, -0.02, 0.02 + t, w, d
                ),
                s.trim_material,
            )
        )
        parts.append(
            Part(
                _wall_box(o.wall, o.start, o.end, o.top, o.top + frame, -0.02, 0.02 + t, w, d),
                s.trim_material,
            )
        )
        if is_door:
            parts.append(
                Part(
                    _wall_box(o.wall, o.start, o.end, o.bottom, o.top, -0.06, 0.04, w, d),
                    s.door_material,
                )
            )
            handle_a = o.end - 0.1
            parts.append(
                Part(
                    _wall_box(o.wall, handle_a - 0.06, handle_a + 0.06, 1.0, 1.03, 0.0, 0.06, w, d),
                    solid("grey"),
                )
            )
        else:
            parts.append(
                Part(
                    _wall_box(
                        o.wall, o.start, o.end, o.bottom - 0.04, o.bottom, 0.0, 0.06 + t, w, d
                    ),
                    s.trim_material,
                )
            )
            parts.append(
                Part(_wall_box(o.wall, o.start, o.end, o.bottom, o.top, -0.05, 0.01, w, d), GLASS)
            )
            mid = (o.start + o.end) / 2
            parts.append(
                Part(
                    _wall_box(
                        o.wall, mid - 0.025, mid + 0.025, o.bottom, o.top, -0.055, 0.03, w, d
                    ),
                    s.trim_material,
                )
            )
    return parts


def _box_lohi(lo: tuple[float, float, float], hi: tuple[float, float, float]) -> trimesh.Trimesh:
    mesh = trimesh.creation.box(extents=np.subtract(hi, lo))
    mesh.apply_translation(np.add(lo, hi) / 2)
    return mesh


@dataclass
class AssembledMesh:
    """All triangles of a scan with per-face instance and material ids."""

    vertices: np.ndarray
    faces: np.ndarray
    face_instance: np.ndarray
    face_material: np.ndarray
    materials: dict[str, np.ndarray]
    instance_poses: np.ndarray


def assemble(layout: RoomLayout) -> AssembledMesh:
    """Concatenate structure and object parts into one indexed mesh."""
    table = MaterialTable()
    verts, faces, inst, mats = [], [], [], []
    offset = 0

    def push(
        mesh: trimesh.Trimesh, material: Material, instance_id: int, pose: np.ndarray | None
    ) -> None:
        nonlocal offset
        v = np.asarray(mesh.vertices, np.float64)
        if pose is not None:
            v = v @ pose[:3, :3].T + pose[:3, 3]
        f = np.asarray(mesh.faces, np.int64) + offset
        verts.append(v)
        faces.append(f)
        inst.append(np.full(len(f), instance_id, np.uint16))
        mats.append(np.full(len(f), table.add(material), np.uint16))
        offset += len(v)

    for part in structure_parts(layout.structure):
        push(part.mesh, part.material, 0, None)
    max_id = max([o.instance_id for o in layout.objects], default=0)
    poses = np.tile(np.eye(4), (max_id + 1, 1, 1))
    for obj in layout.objects:
        poses[obj.instance_id] = obj.pose
        for part in obj.model.parts:
            push(part.mesh, part.material, obj.instance_id, obj.pose)
    return AssembledMesh(
        np.concatenate(verts).astype(np.float32),
        np.concatenate(faces).astype(np.int32),
        np.concatenate(inst),
        np.concatenate(mats),
        table.arrays(),
        poses,
    )
