"""``crossover_ros changes``: replay a bag through the node's pipeline, keep its change reports,
and score them against a generated building's rescan ground truth.

The reports come from the same pipeline the node runs (``evaluate_offline``: one factory, one
configuration tree); the last report of each visit is the visit's answer. Ground truth per
visit: the walked rescan against the map's reference scan (ids are stable across a room's
scans): *removed* the rescan's ``removed_instance_ids``, *moved* an id whose centroid moved by at
least ``changes.moved_threshold_m``, *added* an id the reference lacks. Restricted to what the
camera covered, as the method is: the reference and the rescan are rendered from the true camera
poses of the keyframes the report rests on; an object is covered when at least
``changes.min_covered_pixels`` x stride^2 of its pixels show (the method counts depth pixels at
the fusion's stride), not covered below a quarter of that, and not scored in between (a sliver
of it). A moved object counts as covered where it now stands; seen only where it stood, it is
not scored either (nothing could tell it from a removed one). Nothing here imports ROS.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from crossover_ros.datasets.scan import Building, Scan
from crossover_ros.eval.bag_eval import BagEvalCfg, GroundTruth, RunRecord, evaluate_offline
from crossover_ros.pipeline.changes import ADDED, MOVED, REMOVED, ChangeReport
from crossover_ros.pipeline.config import PipelineCfg
from crossover_ros.pipeline.events import ChangeEvent, Event
from crossover_ros.synthetic.render import Renderer

SCORED = (MOVED, REMOVED, ADDED)
ADDED_MATCH_M = 0.5  # a reported new object this close to a true one found it


@dataclass
class ChangeRun:
    """A bag replayed for its changes: the run and every report, in order."""

    record: RunRecord
    reports: list[tuple[int, ChangeReport]] = field(default_factory=list)  # (stamp_ns, report)

    def per_visit(self) -> list[tuple[dict, ChangeReport | None]]:
        """Each visit of the bag with its last report (None: no confirmed pose in it)."""
        out = []
        for visit in self.record.truth.visits:
            inside = [r for s, r in self.reports if visit["start_ns"] <= s <= visit["end_ns"]]
            out.append((visit, inside[-1] if inside else None))
        return out


def replay_changes(bag: Path, cfg: PipelineCfg, progress: bool = True, **shared) -> ChangeRun:
    """Run ``bag`` through the pipeline ``cfg`` describes and keep its change reports."""
    reports: list[tuple[int, ChangeReport]] = []

    def keep(event: Event) -> None:
        if isinstance(event, ChangeEvent):
            reports.append((event.stamp_ns, event.report))

    record = evaluate_offline(
        Path(bag), cfg, BagEvalCfg(pipeline=cfg), "changes", progress, listeners=[keep], **shared
    )
    return ChangeRun(record, reports)


@dataclass
class VisitTruth:
    """The covered ground truth of one visit, ids of the map's scene (the reference scan)."""

    moved: set[int] = field(default_factory=set)
    removed: set[int] = field(default_factory=set)
    added: dict[int, np.ndarray] = field(default_factory=dict)  # id -> centroid, room frame
    unscored: dict[str, set[int]] = field(default_factory=dict)  # kind -> ids not scored


@dataclass
class Counts:
    true_positives: int = 0
    false_positives: int = 0
    missed: int = 0

    @property
    def precision(self) -> float | None:
        reported = self.true_positives + self.false_positives
        return self.true_positives / reported if reported else None

    @property
    def recall(self) -> float | None:
        truth = self.true_positives + self.missed
        return self.true_positives / truth if truth else None


def visit_truth(
    building: Building,
    visit: dict,
    stamps_ns: Sequence[int],
    truth: GroundTruth,
    cfg: PipelineCfg,
) -> VisitTruth:
    """What changed in the visit's room, restricted to what the keyframes at ``stamps_ns``
    covered (see the module's docstring)."""
    reference = building.scan(visit["scene_id"])
    rescan = building.scan(visit["query_scan_id"])
    room_from_map = np.linalg.inv(building.room_pose(rescan.room_id))
    stride = cfg.fusion.stride_for(rescan.intrinsics.width)
    covered_px = cfg.changes.min_covered_pixels * stride * stride
    poses = [truth.true_pose_at(int(s)) for s in stamps_ns]
    poses = [room_from_map @ p for p in poses if p is not None]
    seen_now = _pixels(rescan, poses)
    seen_before = _pixels(reference, poses)
    before = {inst.id: inst for inst in reference.instances}
    out = VisitTruth(unscored={kind: set() for kind in SCORED})

    def place(kind: str, instance_id: int, pixels: int, target: set[int] | None) -> bool:
        if pixels >= covered_px:
            if target is not None:
                target.add(instance_id)
            return True
        if pixels >= covered_px / 4:
            out.unscored[kind].add(instance_id)
        return False

    for instance_id in rescan.removed_instance_ids:
        place(REMOVED, instance_id, seen_before.get(instance_id, 0), out.removed)
    for inst in rescan.instances:
        if inst.id not in before:
            if place(ADDED, inst.id, seen_now.get(inst.id, 0), None):
                out.added[inst.id] = inst.centroid
            continue
        moved_by = float(np.linalg.norm(inst.centroid - before[inst.id].centroid))
        if moved_by < 1e-3:
            continue
        if moved_by < cfg.changes.moved_threshold_m:  # moved less than the method reports
            out.unscored[MOVED].add(inst.id)
            out.unscored[REMOVED].add(inst.id)
            continue
        if not place(MOVED, inst.id, seen_now.get(inst.id, 0), out.moved):
            out.unscored[MOVED].add(inst.id)  # seen (if at all) only where it stood
            out.unscored[REMOVED].add(inst.id)
    return out


def _pixels(scan: Scan, poses: Sequence[np.ndarray]) -> dict[int, int]:
    """Pixels per instance over the scan rendered from ``poses`` (room frame)."""
    renderer = Renderer.from_scan(scan)
    counts: dict[int, int] = {}
    for pose in poses:
        ids, pixels = np.unique(renderer.render(pose, scan.intrinsics).instance, return_counts=True)
        for instance_id, count in zip(ids.tolist(), pixels.tolist(), strict=True):
            if instance_id:
                counts[instance_id] = counts.get(instance_id, 0) + count
    return counts


def score_visit(
    report: ChangeReport | None,
    visit: dict,
    truth: VisitTruth,
    building: Building,
    counts: dict[str, Counts],
) -> None:
    """Add one visit's answer to ``counts`` (per change type)."""
    right_room = report is not None and report.scene_id == visit["scene_id"]
    reported = {kind: [] for kind in SCORED}
    if report is not None:
        for change in report.changes:
            if change.kind in reported:
                reported[change.kind].append(change)
    for kind, expected in ((MOVED, truth.moved), (REMOVED, truth.removed)):
        found = {c.instance_id for c in reported[kind]} if right_room else set()
        wrong = len(reported[kind]) - len(found)  # reported in the wrong room
        counts[kind].true_positives += len(found & expected)
        counts[kind].false_positives += len(found - expected - truth.unscored[kind]) + wrong
        counts[kind].missed += len(expected - found)
    map_from_room = building.room_pose(building.scan(visit["query_scan_id"]).room_id)
    room_from_map = np.linalg.inv(map_from_room)
    remaining = dict(truth.added)
    unscored = truth.unscored[ADDED]
    for change in reported[ADDED]:
        where = room_from_map[:3, :3] @ change.after + room_from_map[:3, 3]
        near = sorted(
            (float(np.linalg.norm(where - centroid)), instance_id)
            for instance_id, centroid in remaining.items()
        )
        if right_room and near and near[0][0] <= ADDED_MATCH_M:
            counts[ADDED].true_positives += 1
            del remaining[near[0][1]]
        elif not (right_room and unscored):
            counts[ADDED].false_positives += 1
    counts[ADDED].missed += len(remaining)


def evaluate_changes(
    run: ChangeRun, building: Building, cfg: PipelineCfg
) -> tuple[dict[str, Counts], list[dict]]:
    """Counts per change type over the bag's visits, and one row per visit."""
    counts = {kind: Counts() for kind in SCORED}
    rows = []
    for visit, report in run.per_visit():
        stamps = [round(s * 1e9) for s in report.stamps] if report is not None else []
        truth = visit_truth(building, visit, stamps, run.record.truth, cfg)
        score_visit(report, visit, truth, building, counts)
        rows.append(
            {
                "scene_id": visit["scene_id"],
                "reported_scene": report.scene_id if report is not None else None,
                "keyframes": len(stamps),
                "truth": {
                    MOVED: sorted(truth.moved),
                    REMOVED: sorted(truth.removed),
                    ADDED: sorted(truth.added),
                },
                "reported": {
                    kind: sorted(c.instance_id for c in report.of(kind)) if report else []
                    for kind in SCORED
                },
            }
        )
    return counts, rows


def report_json(run: ChangeRun) -> dict:
    """Every visit's last change report, as ``~/scene_changes`` would carry it."""
    visits = []
    for visit, report in run.per_visit():
        entry: dict = {"scene_id": visit.get("scene_id"), "start_ns": visit.get("start_ns")}
        if report is not None:
            entry["report"] = {
                "scene_id": report.scene_id,
                "frame_id": report.frame_id,
                "stamp": report.stamp,
                "keyframes": len(report.stamps),
                "changes": [
                    {
                        **{k: v for k, v in asdict(c).items() if k not in ("before", "after")},
                        "before": None if c.before is None else np.round(c.before, 4).tolist(),
                        "after": None if c.after is None else np.round(c.after, 4).tolist(),
                        "displacement_m": round(c.displacement_m, 4),
                    }
                    for c in report.changes
                ],
            }
        visits.append(entry)
    return {"bag": run.record.bag, "visits": visits}


def counts_json(counts: dict[str, Counts]) -> dict:
    return {
        kind: {**asdict(c), "precision": c.precision, "recall": c.recall}
        for kind, c in counts.items()
    }


def markdown(run: ChangeRun, counts: dict[str, Counts] | None, command: str = "") -> str:
    """The report as Markdown: changes per visit, and the scores when a building was given."""
    lines = ["# Scene changes", ""]
    if command:
        lines += [f"`{command}`", ""]
    lines += [f"Bag: `{run.record.bag}`", ""]
    for visit, report in run.per_visit():
        lines.append(f"## {visit.get('scene_id')}")
        if report is None:
            lines += ["", "no confirmed pose in this visit: no report", ""]
            continue
        lines += [
            "",
            f"recognised as {report.scene_id}; {len(report.stamps)} keyframes; frame"
            f" {report.frame_id}",
            "",
            "| change | instance | label | before | after | displacement (m) |",
            "|---|---|---|---|---|---|",
        ]
        for c in report.changes:
            if c.kind == "static":
                continue
            lines.append(
                f"| {c.kind} | {c.instance_id if c.instance_id >= 0 else ''} | {c.label}"
                f" | {_xyz(c.before)} | {_xyz(c.after)} | {c.displacement_m:.2f} |"
            )
        static = len(report.of("static"))
        lines += ["", f"{static} stored objects seen in place", ""]
    if counts is not None:
        lines += ["## Against the ground truth", "", "| change | P | R | TP | FP | missed |"]
        lines.append("|---|---|---|---|---|---|")
        for kind, c in counts.items():
            lines.append(
                f"| {kind} | {rate(c.precision)} | {rate(c.recall)} | {c.true_positives}"
                f" | {c.false_positives} | {c.missed} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_report(path: Path, run: ChangeRun, counts: dict[str, Counts] | None, rows, command):
    """Markdown for a ``.md`` path, else JSON."""
    if path.suffix == ".md":
        path.write_text(markdown(run, counts, command))
        return
    data = report_json(run)
    data["command"] = command
    if counts is not None:
        data["scores"] = counts_json(counts)
        data["per_visit"] = rows
    path.write_text(json.dumps(data, indent=1))


def _xyz(point: np.ndarray | None) -> str:
    return "" if point is None else "(" + ", ".join(f"{v:.2f}" for v in point) + ")"


def rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
