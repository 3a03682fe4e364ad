"""Build a map database from a generated building's scans."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from crossover_ros.data.scan import load_building
from crossover_ros.mapdb.database import MapDatabase, SceneRecord
from crossover_ros.pipeline.recognizer import FrameEncoder


def build_map(
    building_dir: Path,
    out_path: Path,
    encoder: FrameEncoder,
    include_rescans: bool = False,
    progress: bool = True,
) -> MapDatabase:
    """Embed every reference scan (and optionally rescans) of a building into a new map.

    The map holds what the robot knew before it came back: by default only each room's
    reference scan (scan_index 0); query bags walk through the rescans.
    """
    building = load_building(building_dir)
    scans = [s for s in building.scans if include_rescans or s.scan_index == 0]
    mapdb = MapDatabase.create(out_path, encoder.fingerprint, encoder.dim)
    for info in tqdm(scans, desc="embedding scans", unit="scan", disable=not progress):
        scan = building.scan(info.scan_id)
        images = [frame.color for frame in scan.frames()]
        instances = [
            {"id": inst.id, "label": inst.label, "centroid": [float(v) for v in inst.centroid]}
            for inst in scan.instances
        ]
        mapdb.add_scene(
            SceneRecord(info.scan_id, building.building_id, info.room_id, info.scan_index),
            {encoder.modality: encoder.encode(images)},
            instances,
        )
    return mapdb
