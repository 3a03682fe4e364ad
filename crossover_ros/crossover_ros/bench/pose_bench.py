"""``crossover_ros bench pose``: accuracy, failure rates and latency of the 6-DoF pose estimator.

Data: a generated held-out building (``--building``, or a small one generated into a temporary
folder). The map side of each room is what ``mapdb build`` stores: the reference scan's point
cloud, voxel-downsampled at 5 cm, in the room frame, and its instance centroids. The query side
is a window of keyframes (chosen by motion, as the node does) from the room's rescans, in which
objects moved, vanished or appeared, fused by ``pipeline.fusion.PointCloudFusion`` in an
odometry frame: the building frame, as in query bags, moved by a random yaw and offset
(a robot's odometry starts wherever it was switched on). Ground truth: the rescan's
camera-to-room poses, so the true camera pose in the scene is ``frames/pose`` of the window's
last keyframe, and the true ``map_from_query`` is ``inv(odom_from_building @ room_to_building)``.

Modes: ``centroids`` gets matched instance centroids (from the renderer's instance masks, what a
perfect instance matcher would give; moved objects are wrong pairs, and ``--mismatch`` adds
wrong matches on top), ``global`` gets none. ``wrong scene`` registers each window against
another room's scene (the look-alike twin where there is one): a pose there is the recogniser's
error passed on, and should come out as NoPose. Times are of ``PoseEstimator.estimate`` with the
scene already prepared (done once per scene; its time is printed apart). Not a test: numbers
depend on the machine.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from crossover_ros.argtypes import fraction, int_at_least
from crossover_ros.datasets.scan import load_building
from crossover_ros.errors import CrossoverError
from crossover_ros.mapdb.records import voxel_downsample
from crossover_ros.pipeline.fusion import FusionCfg, PointCloudFusion
from crossover_ros.pipeline.keyframes import KeyframeSelector
from crossover_ros.pose import NoPose, PoseCfg, PoseEstimator
from crossover_ros.pose.evaluate import rotation_error_deg, summarize, translation_error_m
from crossover_ros.pose.global_search import yaw_pose
from crossover_ros.synthetic.building import BuildingConfig, generate_building

WRONG = "wrong scene"


def add_parser(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("pose", help="pose estimation error, wrong-pose rate and latency")
    bench.add_argument("--building", type=Path, help="generated building (default: a new one)")
    bench.add_argument(
        "--rooms", type=int_at_least(1), default=4, help="rooms of the generated building"
    )
    bench.add_argument(
        "--lookalike", type=int_at_least(0), default=2, help="of which near-identical"
    )
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument(
        "--windows", type=int_at_least(1), default=6, help="query windows per rescan"
    )
    bench.add_argument("--keyframes", type=int_at_least(1), default=8, help="keyframes per window")
    bench.add_argument(
        "--mismatch", type=fraction, default=0.2, help="share of wrong matches added"
    )
    bench.add_argument("--global-method", choices=("correlative", "fpfh"), default="correlative")
    bench.add_argument(
        "--drift",
        type=float,
        default=0.0,
        help="odometry drift, m per m walked (and 50x that in deg/m of yaw)",
    )
    bench.add_argument("--no-wrong-scene", action="store_true", help="skip the wrong-scene runs")
    bench.add_argument("--verbose", action="store_true", help="one line per query")
    bench.add_argument(
        "--cfg", action="append", default=[], metavar="KEY=VALUE", help="override a PoseCfg field"
    )
    bench.set_defaults(command=bench_pose_command)


def _scene(scan) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """What the map stores of a scan: 5 cm cloud (room frame) and instance centroids."""
    xyz, rgb, _ = scan.point_cloud()
    xyz, rgb = voxel_downsample(xyz, rgb, 0.05)
    return xyz, rgb, {inst.id: inst.centroid for inst in scan.instances}


def _keyframes(scan) -> list:
    selector = KeyframeSelector()
    frames = [scan.frame(i) for i in range(scan.num_frames)]
    return [f for f in frames if selector.accept(f.stamp, f.camera_to_world)]


def _drifted(poses: list[np.ndarray], drift: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Odometry that drifts: per step, random translation (``drift`` m per metre walked, 1 sigma)
    and yaw (50 * ``drift`` degrees per metre: 0.5 deg/m at 1 %) about the camera, accumulated.
    """
    if drift <= 0.0:
        return poses
    out, error = [poses[0]], np.eye(4)
    for previous, pose in itertools.pairwise(poses):
        step = float(np.linalg.norm(pose[:3, 3] - previous[:3, 3]))
        here = (error @ pose)[:3, 3]
        turn = yaw_pose(rng.normal(0.0, np.radians(50.0 * drift) * step), np.zeros(3))
        noise = yaw_pose(0.0, here + rng.normal(0.0, drift * step, 3)) @ turn
        noise = noise @ yaw_pose(0.0, -here)
        error = noise @ error
        out.append(error @ pose)
    return out


def _window_query(frames, camera_to_odom, rng, mismatch, map_centroids):
    """Fused cloud and (query, map) centroid pairs of one window, all in the odometry frame."""
    cfg = FusionCfg(max_keyframes=len(frames))
    fusion = PointCloudFusion(cfg)
    sums: dict[int, np.ndarray] = {}
    start = time.perf_counter()
    for frame, pose in zip(frames, camera_to_odom, strict=True):
        fusion.add(frame, pose)
        xyz, index = fusion.points_in_odom(frame, pose)
        ids = frame.instance.reshape(-1)[index]
        for inst in np.unique(ids[ids > 0]):
            pts = xyz[ids == inst]
            acc = sums.setdefault(int(inst), np.zeros(4))
            acc[:3] += pts.sum(axis=0)
            acc[3] += len(pts)
    xyz, rgb = fusion.cloud()
    fuse_s = time.perf_counter() - start
    pairs = [
        (acc[:3] / acc[3], map_centroids[i])
        for i, acc in sums.items()
        if acc[3] >= 50 and i in map_centroids
    ]
    ids = list(map_centroids)
    for k in range(len(pairs)):  # a matcher's mistakes: another object of the scene
        if rng.random() < mismatch:
            pairs[k] = (pairs[k][0], map_centroids[ids[rng.integers(len(ids))]])
    return xyz, rgb, np.array(pairs).reshape(-1, 2, 3), fuse_s


def _pose_cfg(args: argparse.Namespace):
    """PoseCfg with ``--global-method`` and the ``--cfg KEY=VALUE`` overrides (typed by field)."""
    import ast
    from dataclasses import fields

    cfg = PoseCfg(global_method=args.global_method)
    names = {f.name for f in fields(PoseCfg)}
    for item in args.cfg:
        key, _, value = item.partition("=")
        if key not in names:
            raise CrossoverError(f"--cfg {item}: PoseCfg has no field '{key}'")
        default = getattr(cfg, key)
        try:
            parsed = value if isinstance(default, str) else ast.literal_eval(value)
            cfg = replace(cfg, **{key: type(default)(parsed)})
        except (ValueError, SyntaxError, TypeError) as err:
            raise CrossoverError(f"--cfg {item}: not a {type(default).__name__}") from err
    return cfg


def _other_room(building, room_id: int) -> int:
    """The look-alike twin of a room if it has one, else the next room."""
    rooms = building.rooms
    mine = next(r for r in rooms if int(r["room_id"]) == room_id)
    if mine.get("template_id"):
        for r in rooms:
            if r.get("template_id") == mine["template_id"] and int(r["room_id"]) != room_id:
                return int(r["room_id"])
    ids = sorted(int(r["room_id"]) for r in rooms)
    return ids[(ids.index(room_id) + 1) % len(ids)]


@dataclass
class _Record:
    """One query's outcome."""

    mode: str
    ms: float
    cpu_ms: float  # process CPU time: less hostage to other load on a shared machine
    error: tuple[float, float] | None  # (m, deg) of the camera pose; None: NoPose
    fitness: float
    reason: str = ""


def _building(args: argparse.Namespace, tmp: str):
    folder = args.building
    if folder is None:
        folder = Path(tmp) / "building"
        cfg = BuildingConfig(
            seed=args.seed,
            num_rooms=args.rooms,
            num_lookalike_rooms=args.lookalike,
            rescans_per_room=1,
            split="heldout",
            building_id="posebench",
        )
        print(f"generating a held-out building ({args.rooms} rooms) ...", flush=True)
        generate_building(folder, cfg, progress=False)
    return load_building(folder)


def _evaluate(
    result, cpu_s: float, camera_to_odom: np.ndarray, truth: np.ndarray, mode: str
) -> tuple:
    """(_Record without time, one-line description) of an estimate against the true camera."""

    def off(pose: np.ndarray) -> tuple[float, float]:
        camera = pose @ camera_to_odom
        return translation_error_m(camera, truth), rotation_error_deg(camera, truth)

    ms = 1000 * result.compute_time_s
    if isinstance(result, NoPose):
        line = f"no pose: {result.reason}"
        if result.best_guess is not None:
            t, r = off(result.best_guess)
            line += f" [guess off {100 * t:.1f} cm {r:.1f} deg]"
        label = result.reason.split(" (")[0].split(":")[0]
        return _Record(mode, ms, 1000 * cpu_s, None, result.fitness, label), line
    t, r = off(result.map_from_query)
    line = (
        f"{100 * t:6.1f} cm {r:5.2f} deg fit {result.fitness:.2f} "
        f"2nd {result.runner_up_fitness:.2f} rmse {100 * result.inlier_rmse:.1f} cm "
        f"c {result.constraint:.3f} {result.method}"
    )
    return _Record(mode, ms, 1000 * cpu_s, (t, r), result.fitness), line


def bench_pose_command(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        _bench(args, _building(args, tmp))
    return 0


def _bench(args: argparse.Namespace, building) -> None:
    rng = np.random.default_rng(args.seed)
    cfg = _pose_cfg(args)
    # every scene stays prepared, as on a robot that knows which rooms it will ask about
    estimator = PoseEstimator(replace(cfg, map_cache_size=max(cfg.map_cache_size, 64)))
    scenes, prep_ms = {}, []
    for info in building.scans:
        if info.scan_index == 0:
            scenes[info.room_id] = (info.scan_id, *_scene(building.scan(info.scan_id)))
            start = time.perf_counter()
            estimator.prepare_map(scenes[info.room_id][1], scenes[info.room_id][2], info.scan_id)
            prep_ms.append(1000 * (time.perf_counter() - start))
    records: list[_Record] = []
    fuse_ms: list[float] = []
    for info in building.scans:
        if info.scan_index == 0:
            continue
        keyframes = _keyframes(building.scan(info.scan_id))
        room_to_building = building.room_pose(info.room_id)
        count = max(0, len(keyframes) - args.keyframes)
        for begin in np.unique(np.linspace(0, count, args.windows).round().astype(int)):
            frames = keyframes[begin : begin + args.keyframes]
            odom_from_building = yaw_pose(
                rng.uniform(-np.pi, np.pi), rng.uniform([-10, -10, -1], [10, 10, 1])
            )
            odom_from_room = odom_from_building @ room_to_building
            truth = frames[-1].camera_to_world  # camera to room = camera in the scene frame
            camera_to_odom = _drifted(
                [odom_from_room @ f.camera_to_world for f in frames], args.drift, rng
            )
            scene = scenes[info.room_id]
            xyz, rgb, pairs, fuse_s = _window_query(
                frames, camera_to_odom, rng, args.mismatch, scene[3]
            )
            fuse_ms.append(1000 * fuse_s)
            runs = [("centroids", scene, pairs), ("global", scene, None)]
            if not args.no_wrong_scene:
                runs.append((WRONG, scenes[_other_room(building, info.room_id)], None))
            for mode, (key, map_xyz, map_rgb, _), corr in runs:
                cpu = time.process_time()
                result = estimator.estimate(
                    xyz, rgb, estimator.prepare_map(map_xyz, map_rgb, key), corr
                )
                cpu = time.process_time() - cpu
                record, line = _evaluate(result, cpu, camera_to_odom[-1], truth, mode)
                records.append(record)
                if args.verbose:
                    print(
                        f"  {info.scan_id} kf {begin:2d}+{len(frames)} {mode:11s} "
                        f"pairs {len(pairs):2d} {record.ms:6.1f} ms {line}",
                        flush=True,
                    )
    _report(args, building, records, prep_ms, fuse_ms)


def _report(args, building, records: list[_Record], prep_ms, fuse_ms) -> None:
    queries = sum(r.mode == "global" for r in records)
    print(
        f"building {building.building_id}: {len(building.rooms)} rooms, {queries} query windows "
        f"of {args.keyframes} keyframes, global search {args.global_method}, "
        f"mismatched pairs {100 * args.mismatch:.0f} %, drift {args.drift} m/m"
    )
    print(
        f"scene preparation (once per scene) {np.median(prep_ms):.0f} ms, "
        f"fusion per window {np.median(fuse_ms):.0f} ms (median)"
    )
    print(f"{'mode':12s} {'p50 ms':>7s} {'p95 ms':>7s} {'cpu p50':>7s}  errors and rates")
    for mode in dict.fromkeys(r.mode for r in records):
        mine = [r for r in records if r.mode == mode]
        ms = np.array([r.ms for r in mine])
        summary = summarize([r.error for r in mine])
        if mode == WRONG:
            posed = [r.fitness for r in mine if r.error is not None]
            fit = f", their fitness median {np.median(posed):.2f}" if posed else ""
            share = 100 * len(posed) / len(mine)
            text = f"pose returned {share:.1f} % ({len(posed)}/{len(mine)}){fit}"
        else:
            text = summary.line()
        p50, p95, cpu = (
            np.percentile(ms, 50),
            np.percentile(ms, 95),
            np.median([r.cpu_ms for r in mine]),
        )
        print(f"{mode:12s} {p50:7.1f} {p95:7.1f} {cpu:7.1f}  {text}")
        reasons: dict[str, int] = {}
        for r in mine:
            if r.reason:
                reasons[r.reason] = reasons.get(r.reason, 0) + 1
        if reasons:
            listed = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
            print(f"{'':12s} no pose: {listed}")
    print(
        "ms: wall time of one estimate (scene prepared), cpu: its process CPU time (all threads);"
        " errors: camera pose of the window's last keyframe in the scene frame, over answered"
        " windows; wrong: > 0.5 m or > 10 deg, over all windows"
    )
