"""Furniture and small objects composed from trimesh primitives.

Every builder returns an :class:`ObjectModel` in its own frame: origin at the centre of the
footprint on the floor, z up, the front (where a person sits or looks from) facing +y. Shapes and
sizes are drawn from the given generator, so one seed gives one object, and look-alike rooms can
reuse the very same model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import trimesh

from crossover_ros.synthetic.materials import Material, fabric, solid, speckle, stripes, wood


@dataclass
class Part:
    """One primitive of an object with its material."""

    mesh: trimesh.Trimesh
    material: Material


@dataclass(frozen=True)
class Surface:
    """A horizontal rectangle, in the object's frame, on which small objects can stand."""

    z: float
    center: tuple[float, float]
    half_size: tuple[float, float]
    clearance: float = 1.0  # free height above the surface (shelf spacing)


@dataclass
class ObjectModel:
    """An object ready to be placed: parts, footprint and supporting surfaces.

    Attributes:
        category: builder name, e.g. ``"floor_lamp"``.
        label: the word used in referrals and instance labels, e.g. ``"lamp"``.
        color_name: the dominant colour a person would name.
        parts: primitives in the object frame.
        half_extents: footprint half-size (x, y) in the object frame.
        height: top of the object above its base.
        surfaces: places for small objects.
    """

    category: str
    label: str
    color_name: str
    parts: list[Part]
    half_extents: tuple[float, float]
    height: float
    surfaces: list[Surface] = field(default_factory=list)

    def mesh_bounds(self) -> np.ndarray:
        """(2, 3) axis-aligned bounds of all parts in the object frame."""
        bounds = np.array([p.mesh.bounds for p in self.parts])
        return np.stack([bounds[:, 0].min(axis=0), bounds[:, 1].max(axis=0)])


def _box(size: tuple[float, float, float], center: tuple[float, float, float]) -> trimesh.Trimesh:
    mesh = trimesh.creation.box(extents=size)
    mesh.apply_translation(center)
    return mesh


def _cylinder(
    radius: float, height: float, base: tuple[float, float, float], sections: int = 14
) -> trimesh.Trimesh:
    mesh = trimesh.creation.cylinder(radius=radius, height=height, sections=sections)
    mesh.apply_translation((base[0], base[1], base[2] + height / 2.0))
    return mesh


def _lathe(
    profile: list[tuple[float, float]], base: tuple[float, float, float], sections: int = 16
) -> trimesh.Trimesh:
    """A solid of revolution from (radius, height) pairs, listed bottom to top."""
    mesh = trimesh.creation.revolve(np.asarray(profile, dtype=np.float64), sections=sections)
    mesh.apply_translation(base)
    return mesh


def _ellipsoid(
    radii: tuple[float, float, float], center: tuple[float, float, float]
) -> trimesh.Trimesh:
    mesh = trimesh.creation.icosphere(subdivisions=1)
    mesh.apply_scale(radii)
    mesh.apply_translation(center)
    return mesh


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


WOODS = ["light brown", "brown", "dark brown", "beige"]
FABRICS = [
    "red",
    "blue",
    "navy",
    "grey",
    "dark grey",
    "green",
    "beige",
    "teal",
    "orange",
    "purple",
    "olive",
    "dark red",
]
PAINTS = ["white", "light grey", "black", "grey", "cream", "dark grey"]


def _legs(
    hx: float, hy: float, height: float, radius: float, inset: float, mat: Material
) -> list[Part]:
    return [
        Part(_cylinder(radius, height, (sx * (hx - inset), sy * (hy - inset), 0.0), 8), mat)
        for sx in (-1, 1)
        for sy in (-1, 1)
    ]


def bed(rng: np.random.Generator) -> ObjectModel:
    """Bed: frame, mattress, blanket, pillows and a headboard at the back (-y)."""
    width = float(rng.choice([0.95, 1.45, 1.65]))
    length = float(rng.uniform(1.95, 2.15))
    frame_mat = wood(_pick(rng, WOODS))
    blanket_color = _pick(rng, FABRICS)
    blanket = fabric(blanket_color) if rng.random() < 0.6 else stripes(blanket_color, "white", 0.2)
    hx, hy = width / 2, length / 2
    parts = [
        Part(_box((width, length, 0.25), (0, 0, 0.175)), frame_mat),
        Part(_box((width - 0.06, length - 0.1, 0.2), (0, 0.02, 0.4)), solid("white")),
        Part(_box((width - 0.02, length * 0.62, 0.06), (0, hy - length * 0.31, 0.52)), blanket),
        Part(_box((width, 0.07, float(rng.uniform(0.9, 1.15))), (0, -hy + 0.035, 0.5)), frame_mat),
    ]
    pillow_count = 1 if width < 1.2 else 2
    for k in range(pillow_count):
        x = 0.0 if pillow_count == 1 else (-0.35 if k == 0 else 0.35) * width / 1.45
        parts.append(Part(_ellipsoid((0.3, 0.17, 0.07), (x, -hy + 0.3, 0.56)), fabric("white")))
    height = max(p.mesh.bounds[1, 2] for p in parts)
    return ObjectModel("bed", "bed", blanket_color, parts, (hx, hy), height)


def nightstand(rng: np.random.Generator) -> ObjectModel:
    """Small bedside cabinet with a drawer and a knob."""
    color = _pick(rng, [*WOODS, "white"])
    mat = wood(color) if color != "white" else solid(color)
    w, d, h = rng.uniform(0.4, 0.55), rng.uniform(0.35, 0.45), rng.uniform(0.45, 0.6)
    parts = [
        Part(_box((w, d, h - 0.05), (0, 0, (h - 0.05) / 2 + 0.05)), mat),
        Part(_box((w - 0.06, 0.02, h * 0.3), (0, d / 2 + 0.01, h * 0.7)), mat),
        Part(_ellipsoid((0.02, 0.02, 0.02), (0, d / 2 + 0.03, h * 0.7)), solid("dark grey")),
    ]
    parts += _legs(w / 2, d / 2, 0.05, 0.02, 0.04, solid("dark grey"))
    return ObjectModel(
        "nightstand",
        "nightstand",
        color,
        parts,
        (w / 2, d / 2),
        h,
        [Surface(h, (0, 0), (w / 2 - 0.02, d / 2 - 0.02))],
    )


def chair(rng: np.random.Generator) -> ObjectModel:
    """Four-legged chair with a backrest at -y."""
    color = _pick(rng, FABRICS + WOODS)
    frame = wood(_pick(rng, WOODS)) if rng.random() < 0.6 else solid(_pick(rng, PAINTS))
    seat_mat = fabric(color) if color in FABRICS else wood(color)
    w, d, seat = rng.uniform(0.42, 0.5), rng.uniform(0.42, 0.5), rng.uniform(0.43, 0.48)
    back = rng.uniform(0.35, 0.5)
    parts = [
        Part(_box((w, d, 0.05), (0, 0, seat)), seat_mat),
        Part(_box((w, 0.04, back), (0, -d / 2 + 0.02, seat + back / 2 + 0.02)), seat_mat),
    ]
    parts += _legs(w / 2, d / 2, seat - 0.025, 0.018, 0.03, frame)
    return ObjectModel("chair", "chair", color, parts, (w / 2, d / 2), seat + back + 0.05)


def office_chair(rng: np.random.Generator) -> ObjectModel:
    """Swivel chair: five-spoke base, gas column, seat, backrest and armrests."""
    color = _pick(rng, ["black", "dark grey", "blue", "red", "grey", "navy"])
    mat = fabric(color)
    metal = solid("dark grey")
    parts = [Part(_cylinder(0.03, 0.42, (0, 0, 0.05)), metal)]
    for k in range(5):
        angle = 2 * np.pi * k / 5
        spoke = _box((0.3, 0.04, 0.03), (0.15, 0, 0.06))
        spoke.apply_transform(trimesh.transformations.rotation_matrix(angle, (0, 0, 1)))
        parts.append(Part(spoke, metal))
        wheel_xy = (0.29 * np.cos(angle), 0.29 * np.sin(angle), 0.0)
        parts.append(Part(_cylinder(0.025, 0.05, wheel_xy, 8), solid("black")))
    parts.append(Part(_box((0.5, 0.48, 0.08), (0, 0, 0.5)), mat))
    parts.append(Part(_box((0.46, 0.06, 0.55), (0, -0.24, 0.85)), mat))
    if rng.random() < 0.7:
        for sx in (-1, 1):
            parts.append(Part(_box((0.05, 0.3, 0.04), (sx * 0.27, 0.0, 0.7)), solid("black")))
            parts.append(Part(_box((0.03, 0.03, 0.16), (sx * 0.27, -0.05, 0.6)), metal))
    return ObjectModel("office_chair", "office chair", color, parts, (0.32, 0.32), 1.13)


def table(
    rng: np.random.Generator, width: float | None = None, depth: float | None = None
) -> ObjectModel:
    """Dining or meeting table: rectangular on four legs, or round on a pedestal."""
    color = _pick(rng, [*WOODS, "white", "black"])
    mat = wood(color) if color in WOODS else solid(color)
    h = float(rng.uniform(0.72, 0.77))
    if width is None and rng.random() < 0.3:
        radius = float(rng.uniform(0.45, 0.6))
        parts = [
            Part(_cylinder(radius, 0.04, (0, 0, h - 0.04), 24), mat),
            Part(_cylinder(0.05, h - 0.04, (0, 0, 0)), solid("dark grey")),
            Part(_cylinder(0.28, 0.03, (0, 0, 0), 16), solid("dark grey")),
        ]
        half = radius * 0.68
        return ObjectModel(
            "table", "table", color, parts, (radius, radius), h, [Surface(h, (0, 0), (half, half))]
        )
    w = width if width is not None else float(rng.uniform(1.0, 1.6))
    d = depth if depth is not None else float(rng.uniform(0.7, 0.9))
    parts = [Part(_box((w, d, 0.04), (0, 0, h - 0.02)), mat)]
    parts += _legs(w / 2, d / 2, h - 0.04, 0.03, 0.06, mat)
    return ObjectModel(
        "table",
        "table",
        color,
        parts,
        (w / 2, d / 2),
        h,
        [Surface(h, (0, 0), (w / 2 - 0.05, d / 2 - 0.05))],
    )


def coffee_table(rng: np.random.Generator) -> ObjectModel:
    """Low table with a lower shelf."""
    color = _pick(rng, [*WOODS, "black", "white"])
    mat = wood(color) if color in WOODS else solid(color)
    w, d, h = rng.uniform(0.8, 1.2), rng.uniform(0.45, 0.65), rng.uniform(0.38, 0.46)
    parts = [
        Part(_box((w, d, 0.04), (0, 0, h - 0.02)), mat),
        Part(_box((w - 0.1, d - 0.1, 0.02), (0, 0, 0.12)), mat),
    ]
    parts += _legs(w / 2, d / 2, h - 0.04, 0.025, 0.04, mat)
    return ObjectModel(
        "coffee_table",
        "coffee table",
        color,
        parts,
        (w / 2, d / 2),
        h,
        [Surface(h, (0, 0), (w / 2 - 0.05, d / 2 - 0.05))],
    )


def desk(rng: np.random.Generator) -> ObjectModel:
    """Desk: top, side panel, drawer block with handles, modesty panel at the back."""
    color = _pick(rng, [*WOODS, "white", "light grey"])
    mat = wood(color) if color in WOODS else solid(color)
    w, d, h = rng.uniform(1.1, 1.5), rng.uniform(0.6, 0.75), 0.74
    side = -1 if rng.random() < 0.5 else 1
    parts = [
        Part(_box((w, d, 0.03), (0, 0, h - 0.015)), mat),
        Part(_box((0.03, d, h - 0.03), (-side * (w / 2 - 0.015), 0, (h - 0.03) / 2)), mat),
        Part(_box((0.4, d - 0.02, h - 0.03), (side * (w / 2 - 0.2), 0, (h - 0.03) / 2)), mat),
        Part(_box((w - 0.05, 0.02, 0.35), (0, -d / 2 + 0.02, h - 0.2)), mat),
    ]
    for k in range(3):
        z = 0.15 + k * 0.2
        parts.append(
            Part(_box((0.12, 0.02, 0.02), (side * (w / 2 - 0.2), d / 2 + 0.005, z)), solid("grey"))
        )
    return ObjectModel(
        "desk",
        "desk",
        color,
        parts,
        (w / 2, d / 2),
        h,
        [Surface(h, (0, 0), (w / 2 - 0.05, d / 2 - 0.05))],
    )


def bookshelf(rng: np.random.Generator) -> ObjectModel:
    """Open shelf unit: sides, back, top, four or five shelves."""
    color = _pick(rng, [*WOODS, "white", "black"])
    mat = wood(color) if color in WOODS else solid(color)
    w, d, h = rng.uniform(0.7, 1.0), rng.uniform(0.3, 0.38), rng.uniform(1.6, 2.0)
    levels = int(rng.integers(4, 6))
    gap = (h - 0.1) / levels
    parts = [
        Part(_box((0.02, d, h), (-w / 2 + 0.01, 0, h / 2)), mat),
        Part(_box((0.02, d, h), (w / 2 - 0.01, 0, h / 2)), mat),
        Part(_box((w, 0.01, h), (0, -d / 2 + 0.005, h / 2)), mat),
        Part(_box((w, d, 0.02), (0, 0, h - 0.01)), mat),
    ]
    surfaces = []
    for k in range(levels):
        z = 0.06 + k * gap
        parts.append(Part(_box((w - 0.04, d - 0.01, 0.02), (0, 0.005, z)), mat))
        surfaces.append(Surface(z + 0.01, (0, 0.005), (w / 2 - 0.03, d / 2 - 0.02), gap - 0.03))
    return ObjectModel("bookshelf", "bookshelf", color, parts, (w / 2, d / 2), h, surfaces)


def books(rng: np.random.Generator, width: float = 0.45, max_height: float = 0.3) -> ObjectModel:
    """A row of upright books of varied heights, thicknesses and colours."""
    colors = [
        "red",
        "blue",
        "green",
        "navy",
        "dark red",
        "yellow",
        "white",
        "black",
        "orange",
        "teal",
        "purple",
    ]
    parts: list[Part] = []
    x = -width / 2
    depth = float(rng.uniform(0.16, 0.24))
    while True:
        thick = float(rng.uniform(0.02, 0.05))
        if x + thick > width / 2:
            break
        height = float(rng.uniform(0.6, 1.0)) * min(max_height, 0.3)
        parts.append(
            Part(
                _box((thick, depth, height), (x + thick / 2, 0, height / 2)),
                solid(_pick(rng, colors)),
            )
        )
        x += thick + 0.002
    if not parts:
        parts.append(Part(_box((0.03, depth, 0.2), (0, 0, 0.1)), solid("red")))
    bounds = np.array([p.mesh.bounds for p in parts])
    lo, hi = bounds[:, 0].min(axis=0), bounds[:, 1].max(axis=0)
    center = (lo + hi) / 2
    for p in parts:
        p.mesh.apply_translation((-center[0], 0, 0))
    half = ((hi[0] - lo[0]) / 2, depth / 2)
    return ObjectModel("books", "books", "colourful", parts, half, float(hi[2]))


def _lamp_shade(
    radius_low: float, radius_high: float, height: float, base_z: float
) -> trimesh.Trimesh:
    return _lathe(
        [(0.0, 0.0), (radius_low, 0.0), (radius_high, height), (0.0, height)], (0, 0, base_z)
    )


def floor_lamp(rng: np.random.Generator) -> ObjectModel:
    """Standing lamp: round base, pole and a conical shade."""
    shade_color = _pick(rng, ["white", "cream", "beige", "black", "orange"])
    h = float(rng.uniform(1.45, 1.75))
    parts = [
        Part(_cylinder(0.16, 0.03, (0, 0, 0), 16), solid("dark grey")),
        Part(_cylinder(0.015, h - 0.3, (0, 0, 0.03), 8), solid("grey")),
        Part(_lamp_shade(0.22, 0.14, 0.3, h - 0.3), solid(shade_color)),
    ]
    return ObjectModel("floor_lamp", "lamp", shade_color, parts, (0.22, 0.22), h)


def table_lamp(rng: np.random.Generator) -> ObjectModel:
    """Small lamp: turned base (a lathe profile) and a shade."""
    shade_color = _pick(rng, ["white", "cream", "beige", "red", "green", "blue"])
    base_color = _pick(rng, ["black", "white", "brown", "grey", "yellow"])
    h = float(rng.uniform(0.35, 0.5))
    base_profile = [
        (0.0, 0.0),
        (0.07, 0.0),
        (0.07, 0.02),
        (0.03, 0.05),
        (0.05, 0.12),
        (0.015, h * 0.6),
        (0.0, h * 0.6),
    ]
    parts = [
        Part(_lathe(base_profile, (0, 0, 0)), solid(base_color)),
        Part(_lamp_shade(0.13, 0.08, h * 0.42, h * 0.58), solid(shade_color)),
    ]
    return ObjectModel("table_lamp", "lamp", shade_color, parts, (0.13, 0.13), h)


def plant(rng: np.random.Generator, small: bool = False) -> ObjectModel:
    """Potted plant: tapered pot and a few leafy blobs or a cone tree."""
    pot_color = _pick(rng, ["white", "brown", "black", "orange", "grey", "light blue"])
    leaf = _pick(rng, ["green", "dark green", "light green", "olive"])
    scale = 0.35 if small else 1.0
    pot_r, pot_h = 0.16 * scale, 0.3 * scale
    parts = [
        Part(
            _lathe([(0, 0), (pot_r * 0.75, 0), (pot_r, pot_h), (0, pot_h)], (0, 0, 0)),
            solid(pot_color),
        ),
        Part(_cylinder(pot_r * 0.95, 0.01, (0, 0, pot_h - 0.02)), speckle("dark brown")),
    ]
    if rng.random() < 0.4 and not small:
        height = float(rng.uniform(0.8, 1.4))
        parts.append(Part(_cylinder(0.02, 0.3, (0, 0, pot_h)), wood("brown")))
        cone = trimesh.creation.cone(radius=0.3, height=height - 0.2, sections=12)
        cone.apply_translation((0, 0, pot_h + 0.2))
        parts.append(Part(cone, speckle(leaf)))
    else:
        for _ in range(int(rng.integers(3, 6))):
            r = float(rng.uniform(0.12, 0.22)) * scale
            offset = rng.normal(0, 0.06 * scale, 2)
            z = pot_h + r + float(rng.uniform(0.0, 0.45)) * scale
            parts.append(
                Part(_ellipsoid((r, r, r * 1.3), (offset[0], offset[1], z)), speckle(leaf))
            )
    lo, hi = ObjectModel("plant", "plant", leaf, parts, (0, 0), 0).mesh_bounds()
    half = float(max(np.abs(lo[:2]).max(), np.abs(hi[:2]).max()))
    return ObjectModel("plant", "plant", leaf, parts, (half, half), float(hi[2]))


def sofa(rng: np.random.Generator, seats: int | None = None) -> ObjectModel:
    """Sofa or armchair: base, seat cushions, backrest and armrests."""
    seats = seats if seats is not None else int(rng.integers(2, 4))
    color = _pick(rng, FABRICS)
    mat = fabric(color)
    w = 0.2 * 2 + 0.65 * seats
    d = float(rng.uniform(0.85, 0.95))
    parts = [
        Part(_box((w, d, 0.25), (0, 0, 0.175)), mat),
        Part(_box((w, 0.2, 0.5), (0, -d / 2 + 0.1, 0.55)), mat),
        Part(_box((0.2, d, 0.35), (-w / 2 + 0.1, 0, 0.475)), mat),
        Part(_box((0.2, d, 0.35), (w / 2 - 0.1, 0, 0.475)), mat),
    ]
    for k in range(seats):
        x = -w / 2 + 0.2 + 0.65 * (k + 0.5)
        parts.append(Part(_box((0.62, d - 0.24, 0.14), (x, 0.1, 0.37)), mat))
    parts += _legs(w / 2, d / 2, 0.05, 0.025, 0.05, wood("dark brown"))
    category, label = ("armchair", "armchair") if seats == 1 else ("sofa", "sofa")
    return ObjectModel(category, label, color, parts, (w / 2, d / 2), 0.8)


def armchair(rng: np.random.Generator) -> ObjectModel:
    """Single-seat sofa."""
    return sofa(rng, seats=1)


def cabinet(rng: np.random.Generator, height: float | None = None) -> ObjectModel:
    """Low or medium cabinet with two doors and bar handles."""
    color = _pick(rng, WOODS + PAINTS)
    mat = wood(color) if color in WOODS else solid(color)
    w = float(rng.uniform(0.8, 1.3))
    d = float(rng.uniform(0.4, 0.5))
    h = height if height is not None else float(rng.uniform(0.55, 1.0))
    parts = [
        Part(_box((w, d, h - 0.08), (0, 0, (h - 0.08) / 2 + 0.08)), mat),
        Part(_box((w - 0.04, d - 0.04, 0.08), (0, -0.02, 0.04)), solid("dark grey")),
        Part(_box((0.005, 0.01, h - 0.15), (0, d / 2 + 0.005, h / 2 + 0.04)), solid("dark grey")),
    ]
    for sx in (-1, 1):
        parts.append(
            Part(_box((0.02, 0.02, 0.15), (sx * 0.06, d / 2 + 0.015, h - 0.2)), solid("grey"))
        )
    return ObjectModel(
        "cabinet",
        "cabinet",
        color,
        parts,
        (w / 2, d / 2),
        h,
        [Surface(h, (0, 0), (w / 2 - 0.03, d / 2 - 0.03))],
    )


def wardrobe(rng: np.random.Generator) -> ObjectModel:
    """Tall two-door wardrobe with a plinth and cornice."""
    color = _pick(rng, [*WOODS, "white", "light grey"])
    mat = wood(color, 0.3) if color in WOODS else solid(color)
    w, d, h = rng.uniform(0.9, 1.4), rng.uniform(0.55, 0.62), rng.uniform(1.9, 2.15)
    parts = [
        Part(_box((w, d, h - 0.1), (0, 0, (h - 0.1) / 2 + 0.08)), mat),
        Part(_box((w - 0.04, d - 0.04, 0.08), (0, -0.01, 0.04)), solid("dark grey")),
        Part(_box((w + 0.03, d + 0.03, 0.02), (0, 0, h - 0.01)), mat),
        Part(_box((0.006, 0.01, h - 0.3), (0, d / 2 + 0.004, h / 2)), solid("dark grey")),
    ]
    for sx in (-1, 1):
        parts.append(
            Part(_cylinder(0.01, 0.3, (sx * 0.05, d / 2 + 0.015, h / 2), 8), solid("grey"))
        )
    return ObjectModel("wardrobe", "wardrobe", color, parts, (w / 2, d / 2), h)


def monitor(rng: np.random.Generator) -> ObjectModel:
    """Computer monitor: foot, neck and a screen (glossy black: depth holes)."""
    w = float(rng.uniform(0.5, 0.65))
    frame = _pick(rng, ["black", "dark grey", "white"])
    parts = [
        Part(_box((0.22, 0.16, 0.015), (0, -0.02, 0.0075)), solid(frame)),
        Part(_box((0.05, 0.03, 0.2), (0, -0.06, 0.11)), solid(frame)),
        Part(_box((w, 0.03, w * 0.58), (0, -0.04, 0.16 + w * 0.29)), solid(frame)),
        Part(
            _box((w - 0.02, 0.005, w * 0.58 - 0.02), (0, -0.024, 0.16 + w * 0.29)),
            solid("black", depth_dropout=0.5),
        ),
    ]
    return ObjectModel("monitor", "monitor", frame, parts, (w / 2, 0.1), 0.16 + w * 0.58)


def tv(rng: np.random.Generator) -> ObjectModel:
    """Flat TV on a small foot."""
    w = float(rng.uniform(0.9, 1.3))
    h = w * 0.58
    parts = [
        Part(_box((0.35, 0.2, 0.02), (0, 0, 0.01)), solid("dark grey")),
        Part(_box((0.06, 0.03, 0.08), (0, 0, 0.06)), solid("dark grey")),
        Part(_box((w, 0.05, h), (0, 0, 0.08 + h / 2)), solid("black")),
        Part(
            _box((w - 0.03, 0.005, h - 0.03), (0, 0.026, 0.08 + h / 2)),
            solid("black", depth_dropout=0.6),
        ),
    ]
    return ObjectModel("tv", "tv", "black", parts, (w / 2, 0.1), 0.08 + h)


def whiteboard(rng: np.random.Generator) -> ObjectModel:
    """Wall-mounted whiteboard with a frame and a marker tray; base is its bottom edge."""
    w, h = float(rng.uniform(1.2, 1.8)), float(rng.uniform(0.9, 1.2))
    parts = [
        Part(_box((w + 0.04, 0.02, h + 0.04), (0, 0, h / 2)), solid("light grey")),
        Part(_box((w, 0.005, h), (0, 0.012, h / 2)), solid("white")),
        Part(_box((w * 0.4, 0.06, 0.02), (0, 0.03, 0.01)), solid("grey")),
    ]
    return ObjectModel("whiteboard", "whiteboard", "white", parts, (w / 2 + 0.02, 0.03), h + 0.02)


def picture(rng: np.random.Generator) -> ObjectModel:
    """Framed picture on a wall: a frame and a striped or plain canvas."""
    w, h = float(rng.uniform(0.4, 0.9)), float(rng.uniform(0.3, 0.7))
    color = _pick(rng, ["blue", "red", "yellow", "green", "orange", "teal", "purple", "pink"])
    canvas = stripes(color, _pick(rng, ["white", "cream", "navy"]), float(rng.uniform(0.05, 0.2)))
    frame = _pick(rng, ["black", "brown", "white", "yellow"])
    parts = [
        Part(_box((w, 0.03, h), (0, 0, h / 2)), solid(frame)),
        Part(_box((w - 0.06, 0.005, h - 0.06), (0, 0.016, h / 2)), canvas),
    ]
    return ObjectModel("picture", "picture", color, parts, (w / 2, 0.02), h)


def trash_can(rng: np.random.Generator) -> ObjectModel:
    """Tapered bin."""
    color = _pick(rng, ["grey", "black", "white", "blue", "green"])
    r, h = float(rng.uniform(0.13, 0.18)), float(rng.uniform(0.3, 0.45))
    parts = [
        Part(
            _lathe([(0, 0), (r * 0.8, 0), (r, h), (r * 0.92, h), (0, 0.01)], (0, 0, 0)),
            solid(color),
        )
    ]
    return ObjectModel("trash_can", "trash can", color, parts, (r, r), h)


def counter(rng: np.random.Generator) -> ObjectModel:
    """Kitchen counter: base cabinets, tiled worktop, a sink basin and a tap."""
    color = _pick(rng, ["white", "light grey", "light brown", "dark grey", "teal"])
    w = float(rng.uniform(1.8, 2.6))
    d, h = 0.6, 0.9
    body = solid(color) if color not in WOODS else wood(color)
    parts = [
        Part(_box((w, d - 0.02, h - 0.1), (0, -0.01, (h - 0.1) / 2 + 0.08)), body),
        Part(_box((w, d, 0.04), (0, 0, h - 0.02)), speckle(_pick(rng, ["black", "beige", "grey"]))),
        Part(_box((w - 0.04, d - 0.08, 0.08), (0, -0.03, 0.04)), solid("dark grey")),
        Part(_box((0.5, 0.38, 0.02), (-w / 4, 0.0, h + 0.001)), solid("grey")),
        Part(_cylinder(0.015, 0.25, (-w / 4, -0.22, h), 8), solid("light grey")),
    ]
    doors = max(2, int(w / 0.5))
    for k in range(doors):
        x = -w / 2 + (k + 0.5) * w / doors
        parts.append(Part(_box((w / doors - 0.01, 0.015, h - 0.2), (x, d / 2 - 0.01, h / 2)), body))
        parts.append(Part(_box((0.1, 0.02, 0.02), (x, d / 2 + 0.005, h - 0.18)), solid("grey")))
    return ObjectModel(
        "counter",
        "kitchen counter",
        color,
        parts,
        (w / 2, d / 2),
        h,
        [Surface(h, (w / 4, 0), (w / 4 - 0.05, d / 2 - 0.05))],
    )


def fridge(rng: np.random.Generator) -> ObjectModel:
    """Refrigerator: tall box, two doors, long handles."""
    color = _pick(rng, ["white", "light grey", "grey", "black", "red"])
    w, d, h = float(rng.uniform(0.6, 0.75)), 0.65, float(rng.uniform(1.7, 1.9))
    parts = [
        Part(_box((w, d, h), (0, 0, h / 2)), solid(color)),
        Part(_box((w - 0.01, 0.01, 0.01), (0, d / 2 + 0.005, h * 0.62)), solid("dark grey")),
        Part(_box((0.02, 0.03, 0.4), (w / 2 - 0.06, d / 2 + 0.02, h * 0.8)), solid("grey")),
        Part(_box((0.02, 0.03, 0.5), (w / 2 - 0.06, d / 2 + 0.02, h * 0.35)), solid("grey")),
    ]
    return ObjectModel("fridge", "refrigerator", color, parts, (w / 2, d / 2 + 0.04), h)


def laptop(rng: np.random.Generator) -> ObjectModel:
    """Open laptop: base and a tilted lid."""
    color = _pick(rng, ["grey", "black", "light grey"])
    base = _box((0.33, 0.23, 0.02), (0, 0, 0.01))
    lid = _box((0.33, 0.01, 0.22), (0, 0, 0.11))
    lid.apply_transform(trimesh.transformations.rotation_matrix(-0.25, (1, 0, 0)))
    lid.apply_translation((0, -0.11, 0.02))
    return ObjectModel(
        "laptop",
        "laptop",
        color,
        [Part(base, solid(color)), Part(lid, solid(color))],
        (0.17, 0.14),
        0.24,
    )


def vase(rng: np.random.Generator) -> ObjectModel:
    """Turned vase with a narrow neck."""
    color = _pick(rng, ["blue", "white", "red", "yellow", "teal", "green"])
    h = float(rng.uniform(0.18, 0.32))
    profile = [(0, 0), (0.05, 0), (0.08, h * 0.4), (0.03, h * 0.85), (0.045, h), (0, h)]
    return ObjectModel(
        "vase", "vase", color, [Part(_lathe(profile, (0, 0, 0)), solid(color))], (0.08, 0.08), h
    )


def mug(rng: np.random.Generator) -> ObjectModel:
    """Mug with a handle."""
    color = _pick(rng, ["white", "red", "blue", "yellow", "black"])
    body = _cylinder(0.04, 0.1, (0, 0, 0), 12)
    handle = trimesh.creation.torus(0.03, 0.008, major_sections=10, minor_sections=6)
    handle.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (1, 0, 0)))
    handle.apply_translation((0.045, 0, 0.05))
    return ObjectModel(
        "mug",
        "mug",
        color,
        [Part(body, solid(color)), Part(handle, solid(color))],
        (0.08, 0.05),
        0.1,
    )


def storage_box(rng: np.random.Generator) -> ObjectModel:
    """Cardboard or plastic box on the floor."""
    color = _pick(rng, ["light brown", "beige", "blue", "white", "red"])
    w, d, h = rng.uniform(0.3, 0.55), rng.uniform(0.25, 0.45), rng.uniform(0.2, 0.4)
    parts = [
        Part(_box((w, d, h), (0, 0, h / 2)), solid(color)),
        Part(_box((w * 0.9, 0.01, 0.03), (0, d / 2, h - 0.05)), solid("dark brown")),
    ]
    return ObjectModel(
        "box",
        "box",
        color,
        parts,
        (w / 2, d / 2),
        h,
        [Surface(h, (0, 0), (w / 2 - 0.02, d / 2 - 0.02))],
    )


def backpack(rng: np.random.Generator) -> ObjectModel:
    """Backpack leaning on the floor: a squashed ellipsoid with a front pocket."""
    color = _pick(rng, ["red", "blue", "black", "green", "orange", "purple"])
    parts = [
        Part(_ellipsoid((0.16, 0.1, 0.22), (0, 0, 0.22)), fabric(color)),
        Part(_ellipsoid((0.11, 0.05, 0.1), (0, 0.08, 0.15)), fabric(color)),
    ]
    return ObjectModel("backpack", "backpack", color, parts, (0.16, 0.13), 0.44)


BUILDERS: dict[str, Callable[[np.random.Generator], ObjectModel]] = {
    "bed": bed,
    "nightstand": nightstand,
    "chair": chair,
    "office_chair": office_chair,
    "table": table,
    "coffee_table": coffee_table,
    "desk": desk,
    "bookshelf": bookshelf,
    "books": books,
    "floor_lamp": floor_lamp,
    "table_lamp": table_lamp,
    "plant": plant,
    "small_plant": lambda rng: plant(rng, small=True),
    "sofa": sofa,
    "armchair": armchair,
    "cabinet": cabinet,
    "wardrobe": wardrobe,
    "monitor": monitor,
    "tv": tv,
    "whiteboard": whiteboard,
    "picture": picture,
    "trash_can": trash_can,
    "counter": counter,
    "fridge": fridge,
    "laptop": laptop,
    "vase": vase,
    "mug": mug,
    "box": storage_box,
    "backpack": backpack,
}


def build_object(category: str, rng: np.random.Generator) -> ObjectModel:
    """Build one object of a registered category."""
    try:
        builder = BUILDERS[category]
    except KeyError as err:
        raise ValueError(
            f"unknown object category {category!r}; known: {sorted(BUILDERS)}"
        ) from err
    model = builder(rng)
    # Footprint and height from the actual geometry, so handles and knobs count for collisions.
    lo, hi = model.mesh_bounds()
    model.half_extents = (float(max(-lo[0], hi[0])), float(max(-lo[1], hi[1])))
    model.height = float(hi[2])
    return model
