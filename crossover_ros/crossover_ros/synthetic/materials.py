"""Surface materials and the procedural albedo shared by the renderer and the point sampler.

Images and point clouds must agree on colour, so both call :func:`albedo` with the same material
table. Patterns (wood planks, tiles, fabric weave, stripes, speckle) are computed from the surface
position in the *object's own frame*, so a moved chair keeps its texture between rescans.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PATTERN_SOLID = 0
PATTERN_PLANKS = 1
PATTERN_TILES = 2
PATTERN_FABRIC = 3
PATTERN_STRIPES = 4
PATTERN_SPECKLE = 5

#: Colour names used in referral sentences, with their sRGB values.
NAMED_COLORS: dict[str, tuple[int, int, int]] = {
    "white": (236, 236, 232),
    "cream": (238, 228, 200),
    "beige": (214, 196, 160),
    "light grey": (190, 190, 190),
    "grey": (128, 128, 128),
    "dark grey": (70, 70, 72),
    "black": (28, 28, 30),
    "red": (190, 40, 40),
    "dark red": (120, 25, 30),
    "orange": (225, 120, 40),
    "yellow": (230, 200, 60),
    "light green": (150, 200, 130),
    "green": (60, 140, 70),
    "dark green": (30, 80, 45),
    "olive": (120, 120, 50),
    "teal": (40, 130, 130),
    "light blue": (150, 190, 225),
    "blue": (50, 90, 180),
    "navy": (30, 40, 90),
    "purple": (110, 60, 140),
    "pink": (225, 150, 170),
    "light brown": (180, 135, 90),
    "brown": (125, 85, 50),
    "dark brown": (75, 50, 32),
}


def color_rgb(name: str) -> tuple[float, float, float]:
    """A named colour as floats in [0, 1]."""
    r, g, b = NAMED_COLORS[name]
    return (r / 255.0, g / 255.0, b / 255.0)


@dataclass(frozen=True)
class Material:
    """One surface appearance: a base colour, a pattern mixing in a second colour, and how
    reliably a depth sensor sees it.

    Attributes:
        name: unique key, e.g. ``"planks/light brown"``.
        color_name: the colour a person would name (used in referrals).
        base: base RGB in [0, 1].
        second: pattern RGB in [0, 1] (grout, seams, grain, stripes).
        pattern: one of the ``PATTERN_*`` constants.
        scale: pattern period in metres (plank width, tile size, stripe period).
        depth_dropout: probability that a depth pixel on this surface is missing (glass, gloss).
    """

    name: str
    color_name: str
    base: tuple[float, float, float]
    second: tuple[float, float, float]
    pattern: int = PATTERN_SOLID
    scale: float = 0.2
    depth_dropout: float = 0.0


def _shade(rgb: tuple[float, float, float], factor: float) -> tuple[float, float, float]:
    return (
        float(np.clip(rgb[0] * factor, 0, 1)),
        float(np.clip(rgb[1] * factor, 0, 1)),
        float(np.clip(rgb[2] * factor, 0, 1)),
    )


def solid(color_name: str, depth_dropout: float = 0.0) -> Material:
    """A plain painted or plastic surface."""
    rgb = color_rgb(color_name)
    return Material(
        f"solid/{color_name}/{depth_dropout}",
        color_name,
        rgb,
        rgb,
        PATTERN_SOLID,
        0.2,
        depth_dropout,
    )


def wood(color_name: str, plank_width: float = 0.12) -> Material:
    """Wood with planks/boards and grain; used for floors and furniture."""
    rgb = color_rgb(color_name)
    return Material(
        f"planks/{color_name}/{plank_width}",
        color_name,
        rgb,
        _shade(rgb, 0.62),
        PATTERN_PLANKS,
        plank_width,
    )


def tiles(color_name: str, grout_color: str = "light grey", size: float = 0.3) -> Material:
    """Square tiles with grout lines."""
    return Material(
        f"tiles/{color_name}/{grout_color}/{size}",
        color_name,
        color_rgb(color_name),
        color_rgb(grout_color),
        PATTERN_TILES,
        size,
    )


def fabric(color_name: str) -> Material:
    """Woven upholstery: a fine two-tone weave."""
    rgb = color_rgb(color_name)
    return Material(
        f"fabric/{color_name}", color_name, rgb, _shade(rgb, 0.8), PATTERN_FABRIC, 0.025
    )


def stripes(color_name: str, second_color: str, period: float = 0.25) -> Material:
    """Striped wallpaper or bedding."""
    return Material(
        f"stripes/{color_name}/{second_color}/{period}",
        color_name,
        color_rgb(color_name),
        color_rgb(second_color),
        PATTERN_STRIPES,
        period,
    )


def speckle(color_name: str) -> Material:
    """Carpet or plaster: fine random speckle."""
    rgb = color_rgb(color_name)
    return Material(
        f"speckle/{color_name}", color_name, rgb, _shade(rgb, 0.75), PATTERN_SPECKLE, 0.02
    )


@dataclass
class MaterialTable:
    """The deduplicated materials of one scan, indexed per face by the renderer."""

    materials: list[Material] = field(default_factory=list)
    _index: dict[str, int] = field(default_factory=dict)

    def add(self, material: Material) -> int:
        """Index of ``material``, appending it on first use."""
        if material.name not in self._index:
            self._index[material.name] = len(self.materials)
            self.materials.append(material)
        return self._index[material.name]

    def arrays(self) -> dict[str, np.ndarray]:
        """Arrays stored in geometry.npz (``material_*`` keys)."""
        return {
            "material_base": np.array([m.base for m in self.materials], np.float32).reshape(-1, 3),
            "material_second": np.array([m.second for m in self.materials], np.float32).reshape(
                -1, 3
            ),
            "material_pattern": np.array([m.pattern for m in self.materials], np.int32),
            "material_scale": np.array([m.scale for m in self.materials], np.float32),
            "material_dropout": np.array([m.depth_dropout for m in self.materials], np.float32),
            "material_names": np.array([m.name for m in self.materials]),
        }


def _hash(i: np.ndarray, j: np.ndarray | float = 0.0) -> np.ndarray:
    """Cheap deterministic pseudo-random value in [0, 1) per integer cell."""
    x = np.sin(i * 12.9898 + j * 78.233) * 43758.5453
    return x - np.floor(x)


def _tangent_coords(points: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Planar (u, v) texture coordinates: the two axes most orthogonal to the normal."""
    axis = np.argmax(np.abs(normals), axis=1)
    u_axis = np.where(axis == 0, 1, 0)
    v_axis = np.where(axis == 2, 1, 2)
    u = np.take_along_axis(points, u_axis[:, None], axis=1)[:, 0]
    v = np.take_along_axis(points, v_axis[:, None], axis=1)[:, 0]
    return u, v


def albedo(
    materials: dict[str, np.ndarray],
    material_ids: np.ndarray,
    points_local: np.ndarray,
    normals_local: np.ndarray,
) -> np.ndarray:
    """Surface colour in [0, 1], shape (N, 3), before lighting.

    Args:
        materials: the ``material_*`` arrays of a scan.
        material_ids: (N,) material index per point.
        points_local: (N, 3) positions in the owning object's frame (room frame for structure).
        normals_local: (N, 3) normals in the same frame.
    """
    base = materials["material_base"][material_ids].astype(np.float64)
    second = materials["material_second"][material_ids].astype(np.float64)
    pattern = materials["material_pattern"][material_ids]
    scale = materials["material_scale"][material_ids].astype(np.float64)
    u, v = _tangent_coords(points_local.astype(np.float64), normals_local)
    mix = np.zeros(len(material_ids))
    gain = np.ones(len(material_ids))

    sel = pattern == PATTERN_PLANKS
    if sel.any():
        su, sv, ss = u[sel], v[sel], scale[sel]
        plank = np.floor(sv / ss)
        seed = _hash(plank, 3.0)
        grain = 0.5 + 0.5 * np.sin(su * (18.0 + 14.0 * seed) + 9.0 * seed + 2.0 * np.sin(su * 3.1))
        seam = (sv / ss - plank) < 0.05
        end_seam = np.mod(su + seed * 2.0, 1.6) < 0.012
        mix[sel] = np.where(seam | end_seam, 1.0, 0.25 * grain)
        gain[sel] = 0.88 + 0.24 * seed

    sel = pattern == PATTERN_TILES
    if sel.any():
        su, sv, ss = u[sel] / scale[sel], v[sel] / scale[sel], scale[sel]
        grout_width = 0.008 / ss
        grout = ((su - np.floor(su)) < grout_width) | ((sv - np.floor(sv)) < grout_width)
        mix[sel] = grout.astype(np.float64)
        gain[sel] = 0.94 + 0.1 * _hash(np.floor(su), np.floor(sv))

    sel = pattern == PATTERN_FABRIC
    if sel.any():
        cu, cv = np.floor(u[sel] / scale[sel]), np.floor(v[sel] / scale[sel])
        mix[sel] = 0.6 * np.mod(cu + cv, 2.0) + 0.3 * _hash(cu, cv)

    sel = pattern == PATTERN_STRIPES
    if sel.any():
        phase = u[sel] / scale[sel]
        mix[sel] = ((phase - np.floor(phase)) < 0.5).astype(np.float64)

    sel = pattern == PATTERN_SPECKLE
    if sel.any():
        cu, cv = np.floor(u[sel] / scale[sel]), np.floor(v[sel] / scale[sel])
        mix[sel] = 0.8 * _hash(cu, cv) ** 2

    color = (base * (1.0 - mix[:, None]) + second * mix[:, None]) * gain[:, None]
    return np.clip(color, 0.0, 1.0).astype(np.float32)
