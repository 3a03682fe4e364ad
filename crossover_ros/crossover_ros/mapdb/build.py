"""Build a map database from scans: generated buildings, ScanNet or 3RScan layouts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from crossover_ros.datasets.rscan import find_rscan_scans
from crossover_ros.datasets.scan import Scan, load_building
from crossover_ros.datasets.scannet import SCENE_NAME, find_scannet_scenes
from crossover_ros.datasets.sequence import SequenceScan
from crossover_ros.errors import DataError, MapDatabaseError, MapNotFoundError
from crossover_ros.mapdb.base import MapBase
from crossover_ros.mapdb.open import create_map, is_postgres_url, open_map
from crossover_ros.mapdb.records import SceneData, SceneRecord, voxel_downsample
from crossover_ros.model.registry import RecognitionEncoder

LAYOUTS = ("auto", "generated", "scannet", "3rscan")
BUILD_SOURCE = "map build"  # the provenance of the scans it stores


@dataclass
class MapScan:
    """One scan from any layout, reduced to what a map stores."""

    record: SceneRecord
    source: Scan | SequenceScan  # a generated scan, or a ScanNet or 3RScan one

    def instances(self) -> list[dict]:
        return [
            {
                "id": inst.id,
                "label": inst.label,
                "centroid": [float(v) for v in inst.centroid],
                "box_min": [float(v) for v in inst.box_min],
                "box_max": [float(v) for v in inst.box_max],
            }
            for inst in self.source.instances
        ]


def detect_layout(scans: Path) -> str:
    """The layout of a scan folder: generated, 3rscan or scannet."""
    if not scans.is_dir():
        raise DataError(f"scan folder {scans} does not exist")
    if (scans / "building.json").is_file():
        return "generated"
    if (scans / "3RScan.json").is_file():
        return "3rscan"

    base = scans / "scans" if (scans / "scans").is_dir() else scans
    if SCENE_NAME.match(base.name) or any(SCENE_NAME.match(p.name) for p in base.iterdir()):
        return "scannet"
    raise DataError(
        f"{scans} is neither a generated building (building.json), a 3RScan root (3RScan.json)"
        " nor a ScanNet folder (sceneXXXX_YY)"
    )


def list_scans(
    scans: Path,
    layout: str = "auto",
    include_rescans: bool = False,
    frame_step: int | None = None,
) -> list[MapScan]:
    """The scans to map, in a stable order; by default only each room's reference scan.

    ``frame_step``: of a ScanNet or 3RScan sequence, every n-th frame with a pose is read
    (None: the layout's default, 10 for ScanNet at 30 Hz, 5 for 3RScan's slower sequences).
    """
    if frame_step is not None and frame_step < 1:
        raise DataError(f"frame step must be at least 1, got {frame_step}")
    steps = {} if frame_step is None else {"frame_step": frame_step}
    scans = Path(scans)
    if not scans.is_dir():
        raise DataError(f"scan folder {scans} does not exist")
    if layout not in LAYOUTS:
        raise DataError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout}")
    layout = detect_layout(scans) if layout == "auto" else layout
    out: list[MapScan] = []
    if layout == "generated":
        building = load_building(scans)
        for info in building.scans:
            scan = building.scan(info.scan_id)
            pose = building.room_pose(info.room_id).reshape(-1)
            record = SceneRecord(
                info.scan_id,
                building.building_id,
                str(info.room_id),
                info.scan_index,
                scan.meta.get("scan_time"),
                "room",
                tuple(float(v) for v in pose),
                source=BUILD_SOURCE,
            )
            out.append(MapScan(record, scan))
    elif layout == "scannet":
        for scene in find_scannet_scenes(scans, **steps):
            record = SceneRecord(
                scene.scan_id, "scannet", scene.room_id, scene.scan_index, source=BUILD_SOURCE
            )
            out.append(MapScan(record, scene))
    else:
        for scan in find_rscan_scans(scans, **steps):
            record = SceneRecord(
                scan.scan_id,
                "3rscan",
                scan.room_id,
                scan.scan_index,
                frame="reference" if scan.scan_index == 0 else "rescan",
                frame_to_building=scan.rescan_to_reference,
                source=BUILD_SOURCE,
            )
            out.append(MapScan(record, scan))
    return [s for s in out if include_rescans or s.record.scan_index == 0]


def embed_scan(scan: MapScan, encoder: RecognitionEncoder, voxel: float = 0.05) -> SceneData:
    """The encoder's vectors, the instances and the downsampled point cloud of one scan."""
    embeddings, instance_embeddings = encoder.embed_scan(scan.source)
    instances = scan.instances()
    for instance in instances:
        if instance["id"] in instance_embeddings:
            instance["embeddings"] = instance_embeddings[instance["id"]]
    xyz, rgb, _ = scan.source.point_cloud()
    return SceneData(scan.record, embeddings, instances, voxel_downsample(xyz, rgb, voxel))


def _target_map(
    location: Path | str, encoder: RecognitionEncoder, resume: bool, overwrite: bool
) -> tuple[MapBase, bool]:
    """The map to build into, and whether it is new."""
    if resume:
        try:
            mapdb = open_map(location, encoder.fingerprint)
        except MapNotFoundError:
            pass
        else:
            if (mapdb.embedding_dim, mapdb.instance_dim) != (encoder.dim, encoder.instance_dim):
                mapdb.close()
                raise MapDatabaseError(
                    f"{mapdb.path} holds {mapdb.embedding_dim}/{mapdb.instance_dim}-d vectors,"
                    f" the model makes {encoder.dim}/{encoder.instance_dim}-d: cannot resume"
                )
            return mapdb, False
    elif overwrite:
        if is_postgres_url(location):
            raise MapDatabaseError("--overwrite replaces SQLite files; drop a PostgreSQL map first")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{location}{suffix}").unlink(missing_ok=True)
    return create_map(location, encoder.fingerprint, encoder.dim, encoder.instance_dim), True


def build_map(
    building_dir: Path | Sequence[Path],
    out_path: Path | str,
    encoder: RecognitionEncoder,
    include_rescans: bool = False,
    progress: bool = True,
    layout: str = "auto",
    frame_step: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> MapBase:
    """Embed every reference scan (and optionally rescans) of one scan folder, or of several
    (buildings side by side), into a new map (file or URL).

    The map holds what the robot knew before it came back: by default only each room's
    reference scan (scan_index 0); query bags walk through the rescans. Each scan is committed
    on its own: a killed or interrupted build keeps the scans done so far, and ``resume`` goes on
    with the scans the map lacks (a map of the same model only). A scan that cannot be read or
    embedded deletes a map this call created, so no partial map is left to be mistaken for a
    whole one. ``overwrite`` replaces an existing SQLite map.
    """
    folders = [building_dir] if isinstance(building_dir, str | Path) else building_dir
    scans = [
        scan
        for folder in folders
        for scan in list_scans(Path(folder), layout, include_rescans, frame_step)
    ]
    mapdb, created = _target_map(out_path, encoder, resume, overwrite)
    try:
        done = {scene.scene_id for scene in mapdb.scenes()}
        todo = [scan for scan in scans if scan.record.scene_id not in done]
        for scan in tqdm(todo, desc="embedding scans", unit="scan", disable=not progress):
            mapdb.add_scenes([embed_scan(scan, encoder)])
    except Exception:
        if created:
            mapdb.discard()
        else:
            mapdb.close()
        raise
    except BaseException:  # interrupted: what is committed stays, for --resume
        mapdb.close()
        raise
    return mapdb
