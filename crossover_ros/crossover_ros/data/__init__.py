"""Synthetic buildings for training and testing: rooms, rescans, RGB-D frames, point clouds.

No ROS imports here: generation and loading are plain numpy + trimesh + embreex.
"""

from crossover_ros.data.building import BuildingConfig, generate_building
from crossover_ros.data.scan import Building, InstanceInfo, Scan, ScanInfo, load_building, load_scan

__all__ = [
    "Building",
    "BuildingConfig",
    "InstanceInfo",
    "Scan",
    "ScanInfo",
    "generate_building",
    "load_building",
    "load_scan",
]
