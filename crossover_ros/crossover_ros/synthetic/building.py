"""Generate a synthetic building: rooms along a corridor, rescans, RGB-D frames, point clouds.

Reproducibility: every random draw comes from ``numpy.random.SeedSequence`` children of
``(seed, split stream)``, one child per room, template and scan, so the same config gives
byte-identical files, and changing one room does not reshuffle the others.

Splits (``split``): train, held-out (validation and the benchmarks) and test (a benchmark no
setting was chosen on) use (1) disjoint seed streams (the split is part of the seed-sequence
entropy), (2) disjoint wall-colour and floor families, and (3) rooms 10 % (held-out) and 20 %
(test) larger than any training room. So no held-out or test layout, template or room appearance
occurs in training, while room types and object categories are shared.

Look-alike rooms: ``num_lookalike_rooms`` rooms are copies of one template (office or hotel room,
up to four copies per template) with the same size, furniture, colours and door, differing only
in a few moved, missing or extra objects: the cases where relocalisation fails.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image
from tqdm import tqdm

from crossover_ros.datasets.scan import scan_id_for
from crossover_ros.frames import CameraIntrinsics
from crossover_ros.outputs import staged_output
from crossover_ros.synthetic.layout import (
    WALL_THICKNESS,
    RoomLayout,
    assemble,
    make_lookalike,
    make_rescan,
    make_room,
)
from crossover_ros.synthetic.referrals import ReferralObject, make_referrals
from crossover_ros.synthetic.render import Lighting, Renderer, SceneGeometry
from crossover_ros.synthetic.trajectory import room_walk

# Appearance families: "train" for training, "heldout" for validation and the benchmarks,
# "test" for a benchmark no setting was chosen on (other colours, floors and room sizes).
SPLITS = {"train": 0, "heldout": 1, "test": 2}
UNIQUE_ROOM_TYPES = ["bedroom", "living_room", "meeting_room", "kitchen", "office", "hotel_room"]
TEMPLATE_TYPES = ["office", "hotel_room"]
CORRIDOR_WIDTH = 2.0


@dataclass
class BuildingConfig:
    """What to generate. Defaults give the demo building (8 rooms, 4 look-alikes)."""

    seed: int = 0
    num_rooms: int = 8
    num_lookalike_rooms: int = 4
    rescans_per_room: int = 1
    # rescan k changes rescan k-1 (rounds of changes that accumulate), not the reference
    cumulative_rescans: bool = False
    frames_per_scan: int = 30
    image_width: int = 320
    image_height: int = 240
    split: str = "train"
    building_id: str = "bldg0"
    horizontal_fov_deg: float = 65.0
    frame_rate_hz: float = 2.0
    points_per_scan: int = 40000
    floorplan_meters_per_pixel: float = 0.025
    referrals_per_object: int = 2
    workers: int = 1  # processes rendering scans in parallel; 0 = min(cpu count, 4)

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {self.split!r}")
        if not 0 <= self.num_lookalike_rooms <= self.num_rooms:
            raise ValueError("num_lookalike_rooms must be between 0 and num_rooms")
        if self.num_lookalike_rooms == 1:
            raise ValueError("look-alike rooms come at least in pairs (0 or >= 2)")
        if self.num_rooms < 1 or self.frames_per_scan < 1 or self.rescans_per_room < 0:
            raise ValueError("num_rooms and frames_per_scan must be >= 1, rescans_per_room >= 0")

    @property
    def intrinsics(self) -> CameraIntrinsics:
        return CameraIntrinsics.from_fov(
            self.image_width, self.image_height, self.horizontal_fov_deg
        )


def _rng(root: np.random.SeedSequence, *key: int) -> np.random.Generator:
    """Independent generator for one purpose, addressed by integer keys."""
    return np.random.default_rng(np.random.SeedSequence(root.entropy, spawn_key=key))


def plan_rooms(cfg: BuildingConfig) -> list[RoomLayout]:
    """Reference layouts of all rooms: look-alike groups first (a corridor of them), then unique."""
    family = SPLITS[cfg.split]
    root = np.random.SeedSequence([cfg.seed, family])
    rooms: list[RoomLayout] = []
    groups = []
    remaining = cfg.num_lookalike_rooms
    while remaining > 0:
        size = min(4, remaining) if remaining - min(4, remaining) != 1 else 3
        groups.append(size)
        remaining -= size
    for t, size in enumerate(groups):
        template_rng = _rng(root, 1, t)
        room_type = TEMPLATE_TYPES[int(template_rng.integers(len(TEMPLATE_TYPES)))]
        template_id = f"{cfg.building_id}_tpl{t}_{room_type}"
        template = make_room(room_type, template_rng, family, template_id)
        for k in range(size):
            rooms.append(make_lookalike(template, _rng(root, 2, t, k)))
    order_rng = _rng(root, 3)
    types = list(order_rng.permutation(UNIQUE_ROOM_TYPES))
    for k in range(cfg.num_rooms - cfg.num_lookalike_rooms):
        room_type = str(types[k % len(types)])
        rooms.append(make_room(room_type, _rng(root, 4, k), family))
    return rooms


def _room_poses(rooms: list[RoomLayout]) -> list[np.ndarray]:
    """Rooms side by side along x, doors opening onto a corridor at y < 0."""
    poses, x = [], 0.0
    for room in rooms:
        pose = np.eye(4)
        pose[:3, 3] = (x, 0.0, 0.0)
        poses.append(pose)
        x += room.structure.width + WALL_THICKNESS * 2
    return poses


def _instances_json(layout: RoomLayout) -> list[dict]:
    out = []
    for obj in sorted(layout.objects, key=lambda o: o.instance_id):
        box = obj.aabb()
        out.append(
            {
                "id": obj.instance_id,
                "label": obj.model.label,
                "category": obj.category,
                "centroid": np.round(box.mean(axis=0), 4).tolist(),
                "box_min": np.round(box[0], 4).tolist(),
                "box_max": np.round(box[1], 4).tolist(),
                "color_name": obj.model.color_name,
                "state": obj.state,
                "support": obj.support,
                "pose": np.round(obj.pose, 6).tolist(),
            }
        )
    return out


def _sample_points(
    geometry: SceneGeometry, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Area-uniform surface samples (no ceiling) coloured by the same albedo as the images."""
    keep = ~geometry.is_ceiling_face()
    tris = geometry.vertices[geometry.faces].astype(np.float64)
    cross = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    area = 0.5 * np.linalg.norm(cross, axis=1) * keep
    faces = rng.choice(len(area), size=count, p=area / area.sum())
    r1, r2 = rng.random(count), rng.random(count)
    flip = r1 + r2 > 1
    r1, r2 = np.where(flip, 1 - r1, r1), np.where(flip, 1 - r2, r2)
    t = tris[faces]
    xyz = t[:, 0] + r1[:, None] * (t[:, 1] - t[:, 0]) + r2[:, None] * (t[:, 2] - t[:, 0])
    normals = cross[faces] / np.maximum(np.linalg.norm(cross[faces], axis=1, keepdims=True), 1e-12)
    rgb = (geometry.face_albedo(xyz, normals, faces) * 255 + 0.5).astype(np.uint8)
    return xyz.astype(np.float32), rgb, geometry.face_instance[faces].astype(np.uint16)


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, compress_level=1)


def write_scan(
    layout: RoomLayout, scan_dir: Path, meta: dict, cfg: BuildingConfig, rng: np.random.Generator
) -> None:
    """Render and write every file of one scan."""
    s = layout.structure
    lighting = Lighting.random(rng)
    mesh = assemble(layout)
    geometry = SceneGeometry(
        mesh.vertices,
        mesh.faces,
        mesh.face_instance,
        mesh.face_material,
        mesh.instance_poses,
        mesh.materials,
        lighting,
    )
    renderer = Renderer(geometry)
    for sub in ("color", "depth", "instance", "pose"):
        (scan_dir / "frames" / sub).mkdir(parents=True, exist_ok=True)
    geometry.save(scan_dir / "geometry.npz")

    intr = cfg.intrinsics
    k = np.eye(4)
    k[:3, :3] = intr.matrix
    np.savetxt(scan_dir / "frames" / "intrinsic.txt", k, fmt="%.6f")
    footprints = [o.aabb()[:, :2] for o in layout.objects if o.support == "floor"]
    poses = room_walk(
        (s.width, s.depth, s.height),
        cfg.frames_per_scan,
        cfg.frame_rate_hz,
        rng,
        obstacles=footprints,
    )
    for i, pose in enumerate(poses):
        frame = renderer.render(pose, intr, rng)
        depth_mm = np.nan_to_num(frame.depth * 1000.0, nan=0.0)
        depth_mm = np.clip(np.round(depth_mm), 0, 65535).astype(np.uint16)
        name = f"{i:06d}"
        _save_png(frame.color, scan_dir / "frames" / "color" / f"{name}.png")
        _save_png(depth_mm, scan_dir / "frames" / "depth" / f"{name}.png")
        _save_png(frame.instance, scan_dir / "frames" / "instance" / f"{name}.png")
        np.savetxt(scan_dir / "frames" / "pose" / f"{name}.txt", pose, fmt="%.8f")

    xyz, rgb, inst = _sample_points(geometry, cfg.points_per_scan, rng)
    np.savez_compressed(scan_dir / "points.npz", xyz=xyz, rgb=rgb, instance=inst)

    tri = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    centers = np.asarray(tri.triangles_center)
    face_rgb = (
        geometry.face_albedo(centers, np.asarray(tri.face_normals), np.arange(len(mesh.faces)))
        * 255
        + 0.5
    ).astype(np.uint8)
    tri.visual.face_colors = np.concatenate(
        [face_rgb, np.full((len(face_rgb), 1), 255, np.uint8)], axis=1
    )
    tri.export(scan_dir / "mesh.ply")

    plan, plan_meta = renderer.floorplan(cfg.floorplan_meters_per_pixel)
    _save_png(plan, scan_dir / "floorplan.png")

    instances = _instances_json(layout)
    (scan_dir / "instances.json").write_text(json.dumps(instances, indent=1))
    referral_objects = [
        ReferralObject(
            i["id"],
            i["label"],
            i["color_name"],
            np.array(i["box_min"]),
            np.array(i["box_max"]),
            i["support"],
        )
        for i in instances
    ]
    referrals = make_referrals(
        referral_objects,
        (s.width, s.depth, s.height),
        s.door.center(s.width, s.depth),
        [w.center(s.width, s.depth) for w in s.windows],
        rng,
        cfg.referrals_per_object,
    )
    (scan_dir / "referrals.json").write_text(json.dumps(referrals, indent=1))

    meta = dict(meta)
    meta.update(
        {
            "room_type": layout.room_type,
            "template_id": layout.template_id,
            "room_size": [round(s.width, 4), round(s.depth, 4), round(s.height, 4)],
            "door": s.door.to_json(s.width, s.depth),
            "windows": [w.to_json(s.width, s.depth) for w in s.windows],
            "lighting": lighting.to_json(),
            "removed_instance_ids": layout.removed_ids,
            "num_frames": cfg.frames_per_scan,
            "frame_rate_hz": cfg.frame_rate_hz,
            "image_size": [intr.width, intr.height],
            "num_points": len(xyz),
            "floorplan": plan_meta,
            "frame": "room: x along the door wall, y inward, z up",
        }
    )
    (scan_dir / "scan.json").write_text(json.dumps(meta, indent=1))


def _write_scan_task(task: tuple) -> None:
    write_scan(*task)


def generate_building(
    out_dir: Path, cfg: BuildingConfig, progress: bool = True, overwrite: bool = False
) -> Path:
    """Generate every room and scan of a building under ``out_dir``; returns ``out_dir``.

    ``out_dir`` must be new or empty unless ``overwrite``; it appears only once complete.
    """
    out_dir = Path(out_dir)
    with staged_output(out_dir, overwrite) as staging:
        _generate_into(staging, cfg, progress)
    return out_dir


def _generate_into(out_dir: Path, cfg: BuildingConfig, progress: bool) -> None:
    (out_dir / "scans").mkdir(parents=True)
    family = SPLITS[cfg.split]
    root = np.random.SeedSequence([cfg.seed, family])
    started = time.perf_counter()
    rooms = plan_rooms(cfg)
    room_poses = _room_poses(rooms)
    jobs = []
    for room_id, reference in enumerate(rooms):
        next_id = reference.next_id
        ref_scan = scan_id_for(cfg.building_id, room_id, 0)
        jobs.append((room_id, 0, reference, None))
        base = reference
        for k in range(1, cfg.rescans_per_room + 1):
            base.next_id = next_id  # new objects never reuse an id of an earlier rescan
            rescan = make_rescan(base, _rng(root, 5, room_id, k))
            next_id = rescan.next_id
            jobs.append((room_id, k, rescan, ref_scan))
            if cfg.cumulative_rescans:
                base = rescan

    tasks = []
    for room_id, index, layout, ref in jobs:
        scan_id = scan_id_for(cfg.building_id, room_id, index)
        meta = {
            "scan_id": scan_id,
            "building_id": cfg.building_id,
            "room_id": room_id,
            "scan_index": index,
            "reference_scan_id": ref,
        }
        if cfg.cumulative_rescans and index > 0:  # moved/new/removed relative to this scan
            meta["changed_from_scan_id"] = scan_id_for(cfg.building_id, room_id, index - 1)
        tasks.append(
            (layout, out_dir / "scans" / scan_id, meta, cfg, _rng(root, 6, room_id, index))
        )
    workers = cfg.workers or min(os.cpu_count() or 1, 4)
    bar = tqdm(total=len(tasks), desc=f"scans of {cfg.building_id}", disable=not progress)
    if workers <= 1 or len(tasks) == 1:
        for task in tasks:
            write_scan(*task)
            bar.update()
    else:
        # each scan has its own generator, so the files do not depend on the worker count
        # spawn, not fork: forking a process that already runs DDS or torch threads can crash
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
            for _ in pool.map(_write_scan_task, tasks):
                bar.update()
    bar.close()
    scans_meta = [task[2] for task in tasks]

    building = {
        "building_id": cfg.building_id,
        "seed": cfg.seed,
        "split": cfg.split,
        "config": {k: v for k, v in asdict(cfg).items() if k != "workers"},
        "corridor": {"axis": "x", "y_range": [-CORRIDOR_WIDTH - WALL_THICKNESS, -WALL_THICKNESS]},
        "rooms": [
            {
                "room_id": i,
                "room_type": r.room_type,
                "template_id": r.template_id,
                "size": [
                    round(r.structure.width, 4),
                    round(r.structure.depth, 4),
                    round(r.structure.height, 4),
                ],
                "room_to_building": pose.tolist(),
            }
            for i, (r, pose) in enumerate(zip(rooms, room_poses, strict=True))
        ],
        "scans": scans_meta,
    }
    (out_dir / "building.json").write_text(json.dumps(building, indent=1))
    if progress:
        tqdm.write(f"{cfg.building_id}: {len(jobs)} scans in {time.perf_counter() - started:.1f} s")
