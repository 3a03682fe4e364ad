"""Odometry as a robot has it: its own frame, drifting, from the true path of a recorded walk.

A robot's ``odom`` frame starts wherever the robot was switched on, so it is not the map's, and
wheel or visual-inertial odometry integrates relative motion with small errors, so it drifts
with the distance travelled. :class:`DriftingOdometry` turns the true camera poses of a walk
(in the map frame) into what such odometry reports, one pose at a time, deterministically from
a seed:

- origin: the ``odom`` frame sits in the map at a random yaw and floor-plane offset;
- drift: each step's horizontal motion is integrated with an error of at most ``drift`` of its
  length, and the heading error grows by at most ``yaw_drift_deg_per_10m`` per 10 m. Each run
  has its own bias (a scale/side-slip and a turn rate between half and all of the configured
  rate, as a miscalibrated wheel or a gyro bias gives) with per-step noise around it. Height,
  roll and pitch stay exact: visual-inertial odometry observes gravity;
- jumps (off by default): with ``jump_per_m`` probability per metre, a sudden slip of
  ``jump_m`` and up to ``jump_deg`` of yaw, as wheel slip or a lost visual track gives.

The true ``map -> odom`` transform at a step is ``ground_truth @ inv(odometry)``; it moves as
the odometry drifts, which is why a localiser keeps estimating and publishing it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from crossover_ros.errors import BagError

_NOISE_STREAM = 0x0D0  # the noise draws from its own stream: the walk and images do not change


@dataclass(frozen=True)
class OdometryNoiseCfg:
    """How a recorded bag's odometry differs from the truth; defaults like a wheeled base with
    visual-inertial odometry. ``enabled=False`` (:meth:`perfect`) gives the old bags' odometry:
    the true pose, in the map frame."""

    enabled: bool = True
    origin: bool = True  # the odom frame at a random place in the map (else: the map frame)
    origin_range_m: float = 10.0  # origin offset uniform in +-this in x and y; yaw uniform
    drift: float = 0.01  # horizontal error, at most this share of the distance travelled
    yaw_drift_deg_per_10m: float = 1.0  # heading error at most this per 10 m travelled
    jump_per_m: float = 0.0  # probability of a jump per metre travelled (0: none)
    jump_m: float = 0.05  # size of a jump's slip
    jump_deg: float = 1.0  # a jump's yaw, uniform in +-this

    @classmethod
    def perfect(cls) -> OdometryNoiseCfg:
        """The true pose in the map frame, as bags were before odometry had its own frame."""
        return cls(enabled=False)

    def check(self) -> None:
        """Raise :class:`BagError` naming the first value out of range."""
        for name in (
            "origin_range_m",
            "drift",
            "yaw_drift_deg_per_10m",
            "jump_per_m",
            "jump_m",
            "jump_deg",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0.0:
                raise BagError(f"odometry noise {name} must be finite and >= 0, got {value}")
        if self.drift >= 1.0:
            raise BagError(f"odometry noise drift is a share of distance (< 1), got {self.drift}")


def planar_pose(yaw: float, x: float, y: float) -> np.ndarray:
    """4x4 rotation about the vertical (z) axis by ``yaw`` radians, then a floor-plane shift."""
    c, s = math.cos(yaw), math.sin(yaw)
    pose = np.eye(4)
    pose[:2, :2] = ((c, -s), (s, c))
    pose[:2, 3] = (x, y)
    return pose


class DriftingOdometry:
    """The odometry a robot reports along a true path, fed one map-frame pose at a time."""

    def __init__(self, cfg: OdometryNoiseCfg, seed: int) -> None:
        cfg.check()
        self.cfg = cfg
        self._rng = np.random.default_rng([seed, _NOISE_STREAM])
        rng = self._rng
        yaw, x, y = rng.uniform(-math.pi, math.pi), *rng.uniform(-1.0, 1.0, 2)
        reach = cfg.origin_range_m
        use_origin = cfg.enabled and cfg.origin
        # map -> odom at the start: where the odometry frame sits in the map
        self.origin = planar_pose(yaw, reach * x, reach * y) if use_origin else np.eye(4)
        self._odom_from_map = np.linalg.inv(self.origin)
        # per-run biases: a turn rate and a (forward, left) error, between half and all of the rate
        self._yaw_bias = rng.choice((-1.0, 1.0)) * rng.uniform(0.5, 1.0)
        angle = rng.uniform(-math.pi, math.pi)
        self._step_bias = rng.uniform(0.5, 1.0) * np.array((math.cos(angle), math.sin(angle)))
        self._yaw_rate = math.radians(cfg.yaw_drift_deg_per_10m) / 10.0  # rad per metre
        self._heading_error = 0.0
        self._true_xy: np.ndarray | None = None
        self._odom_xy = np.zeros(2)
        self.drift = np.eye(4)  # odometry = drift @ true pose in the odom frame
        self.distance_m = 0.0

    @property
    def map_to_odom(self) -> np.ndarray:
        """Where the odometry frame is in the map now (as a localiser would estimate it)."""
        return self.origin @ np.linalg.inv(self.drift)

    def __call__(self, true_in_map: np.ndarray) -> np.ndarray:
        """The odometry pose (4x4, in the odom frame) of the body at ``true_in_map``."""
        if not self.cfg.enabled:
            return np.array(true_in_map, np.float64)
        true = self._odom_from_map @ true_in_map
        xy = true[:2, 3]
        if self._true_xy is None:
            self._odom_xy = xy.copy()
        else:
            self._integrate(xy - self._true_xy)
        self._true_xy = xy.copy()
        theta = self._heading_error
        rotation = planar_pose(theta, 0.0, 0.0)[:2, :2]
        self.drift = planar_pose(theta, *(self._odom_xy - rotation @ xy))
        return self.drift @ true

    def _integrate(self, step: np.ndarray) -> None:
        """Add one step's motion as the odometry measures it: with the heading error so far,
        an error of at most ``drift`` of its length, then the heading error it adds."""
        rng, cfg = self._rng, self.cfg
        noise = rng.normal(0.0, 0.5, 3)  # drawn every step, so the stream never depends on d
        jump = rng.random(), rng.uniform(-math.pi, math.pi), rng.uniform(-1.0, 1.0)
        length = float(np.linalg.norm(step))
        if length == 0.0:
            return
        forward = step / length
        left = np.array((-forward[1], forward[0]))
        error = self._step_bias + noise[:2]
        error /= max(1.0, float(np.linalg.norm(error)))  # at most drift x length
        measured = step + cfg.drift * length * (error[0] * forward + error[1] * left)
        rotation = planar_pose(self._heading_error, 0.0, 0.0)[:2, :2]
        self._odom_xy += rotation @ measured
        turn = float(np.clip(self._yaw_bias + noise[2], -1.0, 1.0))
        self._heading_error += self._yaw_rate * length * turn
        if jump[0] < cfg.jump_per_m * length:
            self._odom_xy += cfg.jump_m * np.array((math.cos(jump[1]), math.sin(jump[1])))
            self._heading_error += math.radians(cfg.jump_deg) * jump[2]
        self.distance_m += length
