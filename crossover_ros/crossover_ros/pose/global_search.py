"""Global registration without an initial guess: pose hypotheses for ICP to refine.

Default, ``correlative`` (gravity-aligned clouds): the unknown is yaw + translation, and indoor
geometry is mostly vertical walls and furniture sides plus horizontal floors and tops. Yaw comes
from the circular cross-correlation of the two clouds' histograms of wall-normal directions, x-y
from the FFT cross-correlation of top-down occupancy images of vertical surfaces at each
candidate yaw (as 2D laser scan matchers do), z from the cross-correlation of the heights of
horizontal surfaces. It is exhaustive over the translation grid, so it does not depend on local
descriptors being distinctive, and it costs a few milliseconds.

Why not FPFH + RANSAC by default: generated and real rooms are dominated by planes, where FPFH
descriptors are nearly all alike; on the generated benchmark rooms it found a pose within ICP's
reach in about a third of the windows and took 100-400 ms (see ``crossover_ros bench pose
--global-method fpfh``). It stays available for clouds that are not gravity-aligned.
"""

from __future__ import annotations

import numpy as np
from scipy import fft

from crossover_ros.pose.registration import PreparedCloud, o3d, reg

_VERTICAL_NZ = 0.35  # |n_z| below: a vertical surface (within ~20 degrees)
_HORIZONTAL_NZ = 0.94  # |n_z| above: a horizontal surface


def yaw_pose(yaw: float, translation: np.ndarray) -> np.ndarray:
    """4x4 rotation about the gravity axis (radians) followed by ``translation``."""
    out = np.eye(4)
    c, s = np.cos(yaw), np.sin(yaw)
    out[:2, :2] = [[c, -s], [s, c]]
    out[:3, 3] = translation
    return out


def _circular_smooth(hist: np.ndarray, sigma_bins: float) -> np.ndarray:
    k = np.fft.fftfreq(len(hist))
    return np.real(np.fft.ifft(np.fft.fft(hist) * np.exp(-2.0 * (np.pi * k * sigma_bins) ** 2)))


def _peaks_1d(values: np.ndarray, count: int, min_separation: int, circular: bool) -> list[int]:
    """Indices of the highest local maxima, at least ``min_separation`` bins apart."""
    order = np.argsort(values)[::-1]
    picked: list[int] = []
    n = len(values)
    for index in order:
        if len(picked) >= count:
            break
        gaps = [abs(int(index) - p) for p in picked]
        if circular:
            gaps = [min(g, n - g) for g in gaps]
        if all(g >= min_separation for g in gaps):
            picked.append(int(index))
    return picked


def _parabolic(values: np.ndarray, index: int, circular: bool) -> float:
    """Sub-bin offset of a peak from its two neighbours."""
    n = len(values)
    if not circular and (index == 0 or index == n - 1):
        return 0.0
    a, b, c = values[(index - 1) % n], values[index], values[(index + 1) % n]
    denom = a - 2.0 * b + c
    return float(0.5 * (a - c) / denom) if denom < 0 else 0.0


def yaw_candidates(
    query_normals: np.ndarray, map_normals: np.ndarray, bin_deg: float, peaks: int
) -> list[float]:
    """Yaws (radians) that line up the clouds' wall directions, best first, both senses.

    Normals are unoriented, so directions are compared modulo 180 degrees: each peak gives two
    candidates, 180 degrees apart; the occupancy correlation tells them apart.
    """
    bins = round(180.0 / bin_deg)
    hists = []
    for normals in (query_normals, map_normals):
        wall = normals[np.abs(normals[:, 2]) < _VERTICAL_NZ]
        angle = np.mod(np.arctan2(wall[:, 1], wall[:, 0]), np.pi)
        hist = np.bincount((angle / np.pi * bins).astype(int) % bins, minlength=bins)
        hists.append(_circular_smooth(hist.astype(np.float64), 1.0))
    hq, hm = hists
    corr = np.real(np.fft.ifft(np.conj(np.fft.fft(hq)) * np.fft.fft(hm)))
    separation = max(1, round(10.0 / bin_deg))
    out = []
    for index in _peaks_1d(corr, peaks, separation, circular=True):
        yaw = (index + _parabolic(corr, index, circular=True)) * np.pi / bins
        out.extend([yaw, yaw + np.pi])
    return out


def z_offset(query: PreparedCloud, target: PreparedCloud, bin_m: float = 0.025) -> float:
    """Map z minus query z that lines up floors and table tops (all points if none level)."""
    heights = []
    for cloud in (query, target):
        points, normals = cloud.coarse_points, cloud.coarse_normals
        level = points[np.abs(normals[:, 2]) > _HORIZONTAL_NZ, 2]
        heights.append(level if len(level) >= 20 else points[:, 2])
    zq, zm = heights
    low = min(zq.min(), zm.min())
    size = int(np.ceil((max(zq.max(), zm.max()) - low) / bin_m)) + 1
    hq = np.bincount(((zq - low) / bin_m).astype(int), minlength=size)[:size].astype(np.float64)
    hm = np.bincount(((zm - low) / bin_m).astype(int), minlength=size)[:size].astype(np.float64)
    n = fft.next_fast_len(2 * size)
    corr = fft.irfft(np.conj(fft.rfft(hq, n)) * fft.rfft(hm, n), n)
    index = int(np.argmax(corr))
    shift = index + _parabolic(corr, index, circular=True)
    if shift > n / 2:
        shift -= n
    return float(shift * bin_m)


def _raster(xy: np.ndarray, origin: np.ndarray, cell: float, shape: tuple[int, int]) -> np.ndarray:
    ij = np.floor((xy - origin) / cell).astype(np.int64)
    inside = (ij[:, 0] >= 0) & (ij[:, 0] < shape[0]) & (ij[:, 1] >= 0) & (ij[:, 1] < shape[1])
    grid = np.zeros(shape, np.float64)
    grid[ij[inside, 0], ij[inside, 1]] = 1.0
    return grid


def wall_grid(target: PreparedCloud, cell_m: float) -> tuple[np.ndarray, np.ndarray]:
    """(origin, image) of the scene's vertical surfaces seen from above, blurred by one cell
    (a wall seen 5 cm off still scores); computed once per scene."""
    key = ("wall_grid", cell_m)
    if key not in target.extras:
        points, normals = target.coarse_points, target.coarse_normals
        wall = points[np.abs(normals[:, 2]) < _VERTICAL_NZ, :2]
        if len(wall) == 0:
            wall = np.zeros((1, 2))
        origin = wall.min(axis=0) - 2 * cell_m
        shape = tuple(np.ceil((wall.max(axis=0) + 2 * cell_m - origin) / cell_m).astype(int))
        spectrum = fft.rfft2(_raster(wall, origin, cell_m, shape))
        ky = fft.fftfreq(shape[0])[:, None]
        kx = fft.rfftfreq(shape[1])[None, :]
        blurred = fft.irfft2(spectrum * np.exp(-2.0 * np.pi**2 * (kx**2 + ky**2)), shape)
        target.extras[key] = (origin, np.clip(blurred / max(blurred.max(), 1e-9), 0.0, 1.0))
    return target.extras[key]


def correlative_hypotheses(
    query: PreparedCloud,
    target: PreparedCloud,
    cell_m: float,
    yaw_bin_deg: float,
    yaw_peaks: int,
    translation_peaks: int,
) -> list[tuple[float, np.ndarray]]:
    """(score, 4x4 map_from_query) of gravity-aligned poses, best score first.

    The score is the share of the query's vertical-surface cells that land on (blurred) map
    vertical-surface cells.
    """
    qp, qn = query.coarse_points, query.coarse_normals
    mn = target.coarse_normals
    q_wall = qp[np.abs(qn[:, 2]) < _VERTICAL_NZ, :2]
    if len(q_wall) < 10 or np.sum(np.abs(mn[:, 2]) < _VERTICAL_NZ) < 10:
        return []
    dz = z_offset(query, target)
    m_origin, m_grid = wall_grid(target, cell_m)
    q_centre = q_wall.mean(axis=0)
    hypotheses: list[tuple[float, np.ndarray]] = []
    for yaw in yaw_candidates(query.coarse_normals, target.coarse_normals, yaw_bin_deg, yaw_peaks):
        c, s = np.cos(yaw), np.sin(yaw)
        rotated = (q_wall - q_centre) @ np.array([[c, s], [-s, c]])
        q_origin = rotated.min(axis=0)
        q_shape = tuple(np.floor((rotated.max(axis=0) - q_origin) / cell_m).astype(int) + 1)
        q_grid = _raster(rotated, q_origin, cell_m, q_shape)
        occupied = q_grid.sum()
        size = [fft.next_fast_len(m_grid.shape[i] + q_shape[i]) for i in range(2)]
        key = ("wall_fft", cell_m, *size)
        m_spec = target.extras.get(key)
        if m_spec is None:
            m_spec = fft.rfft2(m_grid, size)
            target.extras[key] = m_spec
        corr = fft.irfft2(np.conj(fft.rfft2(q_grid, size)) * m_spec, size) / occupied
        # shifts wrap: valid ones are -(q-1)..(m-1); negative ones sit at the end
        top = np.argpartition(corr, -50 * translation_peaks, axis=None)[-50 * translation_peaks :]
        picked: list[tuple[int, int]] = []
        for index in top[np.argsort(corr.flat[top])[::-1]]:
            i, j = np.unravel_index(index, corr.shape)
            if all(
                min(abs(i - a), size[0] - abs(i - a)) + min(abs(j - b), size[1] - abs(j - b))
                > 0.5 / cell_m
                for a, b in picked
            ):
                picked.append((int(i), int(j)))
            if len(picked) >= translation_peaks:
                break
        for i, j in picked:
            di = _parabolic(corr[:, j], i, circular=True)
            dj = _parabolic(corr[i, :], j, circular=True)
            shift = np.array([i + di, j + dj])
            shift = np.where(shift > np.array(size) / 2, shift - np.array(size), shift)
            xy = m_origin + shift * cell_m - q_origin
            # query point x -> R (x - q_centre) + xy (both rasters floor() alike)
            transform = yaw_pose(yaw, np.array([0.0, 0.0, dz]))
            transform[:2, 3] = xy - transform[:2, :2] @ q_centre
            hypotheses.append((float(corr[i, j]), transform))
    hypotheses.sort(key=lambda h: -h[0])
    return hypotheses


def fpfh_hypothesis(
    query: PreparedCloud, target: PreparedCloud, voxel_m: float, gravity_aligned: bool
) -> list[tuple[float, np.ndarray]]:
    """open3d FPFH + RANSAC on the coarse clouds; with gravity, tilted solutions are rejected."""
    features = []
    for cloud, cache in ((query, None), (target, target.extras)):
        feature = cache.get("fpfh") if cache is not None else None
        if feature is None:
            feature = reg.compute_fpfh_feature(
                cloud.coarse, o3d.geometry.KDTreeSearchParamHybrid(radius=5 * voxel_m, max_nn=100)
            )
            if cache is not None:
                cache["fpfh"] = feature
        features.append(feature)
    checkers = [
        reg.CorrespondenceCheckerBasedOnEdgeLength(0.85),
        reg.CorrespondenceCheckerBasedOnDistance(1.5 * voxel_m),
    ]
    if gravity_aligned:
        checkers.append(reg.CorrespondenceCheckerBasedOnSourceRotation(np.array([0.2, 0.2, 10.0])))
    result = reg.registration_ransac_based_on_feature_matching(
        query.coarse,
        target.coarse,
        features[0],
        features[1],
        True,
        1.5 * voxel_m,
        reg.TransformationEstimationPointToPoint(False),
        3,
        checkers,
        reg.RANSACConvergenceCriteria(100000, 0.999),
    )
    if result.fitness <= 0.0:
        return []
    return [(float(result.fitness), np.asarray(result.transformation))]
