"""Smooth camera walks through a room, like a person or robot carrying an RGB-D camera.

The walk is a closed loop through free floor (away from walls and furniture footprints), found on
an occupancy grid, smoothed, and followed at a walking speed of 0.3-0.6 m/s. The camera looks
mostly towards the middle of the room (where the contents are seen), with slow yaw sweeps, a
downward pitch and a small roll, and turn rates limited to what a person would do.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class WalkConfig:
    """Parameters of a walk; the defaults resemble a handheld scan."""

    grid_resolution_m: float = 0.1
    clearance_m: float = 0.4
    height_range_m: tuple[float, float] = (1.0, 1.6)
    speed_range_mps: tuple[float, float] = (0.3, 0.6)
    max_yaw_rate_dps: float = 60.0
    yaw_sweep_deg: float = 30.0
    pitch_deg: tuple[float, float] = (-25.0, -8.0)
    waypoints: int = 6


def _room_and_obstacles(room: Any) -> tuple[tuple[float, float, float], list[np.ndarray]]:
    """Room size and floor-standing obstacle footprints from a Scan or a size tuple."""
    if hasattr(room, "room_size"):
        size = tuple(float(v) for v in room.room_size)
        obstacles = [
            np.array([inst.box_min[:2], inst.box_max[:2]], np.float64)
            for inst in room.instances
            if inst.support == "floor"
        ]
        return (size[0], size[1], size[2]), obstacles
    size = tuple(float(v) for v in room)
    height = size[2] if len(size) > 2 else 2.7
    return (size[0], size[1], height), []


def _free_grid(
    width: float, depth: float, obstacles: Sequence[np.ndarray], clearance: float, res: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs = np.arange(res / 2, width, res)
    ys = np.arange(res / 2, depth, res)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    free = (gx > clearance) & (gx < width - clearance) & (gy > clearance) & (gy < depth - clearance)
    for box in obstacles:
        inside = (
            (gx > box[0, 0] - clearance)
            & (gx < box[1, 0] + clearance)
            & (gy > box[0, 1] - clearance)
            & (gy < box[1, 1] + clearance)
        )
        free &= ~inside
    return free, xs, ys


def _bfs_path(
    free: np.ndarray, start: tuple[int, int], goal: tuple[int, int]
) -> list[tuple[int, int]] | None:
    parent = {start: start}
    queue = deque([start])
    steps = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)]
    while queue:
        cell = queue.popleft()
        if cell == goal:
            path = [cell]
            while path[-1] != start:
                path.append(parent[path[-1]])
            return path[::-1]
        for di, dj in steps:
            nxt = (cell[0] + di, cell[1] + dj)
            if (
                0 <= nxt[0] < free.shape[0]
                and 0 <= nxt[1] < free.shape[1]
                and free[nxt]
                and nxt not in parent
            ):
                parent[nxt] = cell
                queue.append(nxt)
    return None


def _largest_component(free: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    labels, count = ndimage.label(free, structure=np.ones((3, 3)))
    if count <= 1:
        return free
    sizes = ndimage.sum(free, labels, index=np.arange(1, count + 1))
    return labels == (1 + int(np.argmax(sizes)))


def _loop(
    width: float,
    depth: float,
    obstacles: Sequence[np.ndarray],
    cfg: WalkConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """(M, 2) closed, smoothed, evenly sampled path through free floor."""
    res = cfg.grid_resolution_m
    free = None
    for clearance, obs in ((cfg.clearance_m, obstacles), (0.25, obstacles), (0.3, [])):
        grid, xs, ys = _free_grid(width, depth, obs, clearance, res)
        if grid.sum() >= 4:
            free = _largest_component(grid)
            break
    if free is None:  # a tiny room: walk a small circle around the centre
        angle = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        r = 0.2 * min(width, depth)
        return np.stack([width / 2 + r * np.cos(angle), depth / 2 + r * np.sin(angle)], axis=1)
    cells = np.argwhere(free)
    pts = np.stack([xs[cells[:, 0]], ys[cells[:, 1]]], axis=1)
    center = np.array([width / 2, depth / 2])
    rel = (pts - center) / np.array([width / 2, depth / 2])
    angle = np.arctan2(rel[:, 1], rel[:, 0])
    radius = np.linalg.norm(rel, axis=1)
    offset = rng.uniform(0, 2 * np.pi)
    waypoints: list[tuple[int, int]] = []
    for k in range(cfg.waypoints):
        target = offset + 2 * np.pi * k / cfg.waypoints
        diff = np.abs(np.angle(np.exp(1j * (angle - target))))
        score = diff * 1.5 + np.abs(radius - rng.uniform(0.45, 0.75))
        best = tuple(int(c) for c in cells[int(np.argmin(score))])
        if not waypoints or best != waypoints[-1]:
            waypoints.append(best)
    path_cells: list[tuple[int, int]] = []
    for a, b in zip(waypoints, waypoints[1:] + waypoints[:1], strict=True):
        segment = _bfs_path(free, a, b) or [a, b]
        path_cells += segment[:-1]
    if len(path_cells) < 3:
        path_cells = [tuple(int(c) for c in cells[i]) for i in range(min(len(cells), 3))]
    path = np.array([[xs[i], ys[j]] for i, j in path_cells])
    # resample evenly and smooth as a closed curve
    for _ in range(3):
        path = _resample_closed(path, 0.05)
        kernel = 9
        padded = np.concatenate([path[-kernel:], path, path[:kernel]])
        smooth = np.stack(
            [np.convolve(padded[:, d], np.ones(kernel) / kernel, "same") for d in range(2)], axis=1
        )
        path = smooth[kernel:-kernel]
    return path


def _resample_closed(path: np.ndarray, step: float) -> np.ndarray:
    closed = np.concatenate([path, path[:1]])
    seg = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] < 1e-6:
        return path
    samples = np.arange(0.0, s[-1], step)
    return np.stack([np.interp(samples, s, closed[:, d]) for d in range(2)], axis=1)


def look_at_pose(position: np.ndarray, yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """Camera-to-room pose (optical: x right, y down, z forward) from heading angles (z up)."""
    forward = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)])
    right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
    down = np.cross(forward, right)
    if roll:
        c, s = np.cos(roll), np.sin(roll)
        right, down = c * right + s * down, -s * right + c * down
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, forward, position
    return pose


def room_walk(
    room: Any,
    num_poses: int,
    rate_hz: float,
    rng: np.random.Generator,
    *,
    obstacles: Sequence[np.ndarray] | None = None,
    config: WalkConfig | None = None,
) -> np.ndarray:
    """(num_poses, 4, 4) camera-to-room poses of a smooth walk sampled at ``rate_hz``.

    Args:
        room: a loaded Scan (size and floor-standing instances are used) or a room size
            ``(width, depth[, height])`` in metres.
        num_poses: number of poses.
        rate_hz: sampling rate; consecutive poses are ``1 / rate_hz`` seconds apart.
        rng: source of randomness (start point, speed, height, sweeps).
        obstacles: extra (2, 2) footprints ``[[xmin, ymin], [xmax, ymax]]`` to keep away from.
        config: walk parameters.
    """
    cfg = config or WalkConfig()
    (width, depth, height), found = _room_and_obstacles(room)
    blockers = list(found) + [np.asarray(o, np.float64) for o in (obstacles or [])]
    path = _loop(width, depth, blockers, cfg, rng)
    closed = np.concatenate([path, path[:1]])
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(closed, axis=0), axis=1))])
    length = s[-1]
    dt = 1.0 / rate_hz
    t = np.arange(num_poses) * dt
    speed = rng.uniform(*cfg.speed_range_mps)
    phase = rng.uniform(0, 2 * np.pi, 4)
    # speed varies slowly by +-20 %
    along = rng.uniform(0, length) + speed * (t + 0.2 / 0.4 * np.sin(0.4 * t + phase[0]))
    along = np.mod(along, length) if length > 0 else along * 0
    xy = np.stack([np.interp(along, s, closed[:, d]) for d in range(2)], axis=1)

    center = np.array([width / 2, depth / 2])
    to_center = center - xy
    base_yaw = np.arctan2(to_center[:, 1], to_center[:, 0])
    sweep = np.radians(cfg.yaw_sweep_deg) * np.sin(2 * np.pi * t / 9.0 + phase[1])
    yaw = np.unwrap(base_yaw) + sweep
    max_step = np.radians(cfg.max_yaw_rate_dps) * dt
    for i in range(1, len(yaw)):
        yaw[i] = yaw[i - 1] + np.clip(yaw[i] - yaw[i - 1], -max_step, max_step)
    pitch_mid = np.radians(np.mean(cfg.pitch_deg))
    pitch_amp = np.radians(cfg.pitch_deg[1] - cfg.pitch_deg[0]) / 2
    pitch = pitch_mid + pitch_amp * np.sin(2 * np.pi * t / 7.0 + phase[2])
    roll = np.radians(2.0) * np.sin(2 * np.pi * t / 5.0 + phase[3])
    z0 = min(rng.uniform(*cfg.height_range_m), height - 0.3)
    z = z0 + 0.015 * np.sin(2 * np.pi * 1.8 * t)  # walking bob
    return np.stack(
        [
            look_at_pose(np.array([xy[i, 0], xy[i, 1], z[i]]), yaw[i], pitch[i], roll[i])
            for i in range(num_poses)
        ]
    )
