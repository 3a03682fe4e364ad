"""The Markdown report and the JSON file of a bag evaluation (``crossover_ros eval``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from crossover_ros.eval.bag_eval import STAGES, BagContents, BagEvalCfg, Metrics

NO_POSE = "n/a (no pose published)"
NO_INSTANCES = "n/a (no correspondences published)"


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}"


def _num(value: float | None, fmt: str = ".1f", unit: str = "") -> str:
    return "-" if value is None else f"{value:{fmt}}{unit}"


def _esc(text: str) -> str:
    return str(text).replace("|", "\\|")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_esc(c) for c in row) + " |" for row in rows]
    return lines


def recognition_row(row: Metrics, ks: Sequence[int]) -> list[str]:
    """The main table's cells for one method."""
    if not row.available:
        return [row.label, row.pair or "-", row.unavailable_reason] + ["-"] * (len(ks) + 7)
    median_s, median_m = row.median_first_correct()
    recall = [_pct(row.recall.get(k)) for k in ks]
    if row.recall_capped_at is not None:
        cap = row.recall_capped_at
        recall = [c + ("*" if k > cap else "") for c, k in zip(recall, ks, strict=True)]
    if row.instance_windows:
        instances = f"{_pct(row.instance_precision)} / {_pct(row.instance_recall)}"
    else:
        instances = NO_INSTANCES
    if row.pose_windows:
        pose = (
            f"{100 * row.pose_error_m['p50']:.1f} cm / {row.pose_error_deg['p50']:.1f} deg"
            f" (wrong {_pct(row.wrong_pose_rate)}, none {_pct(row.no_pose_rate)})"
        )
    elif row.relocalizations:
        pose = f"no pose in {row.relocalizations} tries"
    else:
        pose = NO_POSE
    return [
        row.label,
        row.pair,
        str(row.windows),
        *recall,
        f"{row.rooms_recognised}/{len(row.visits)}",
        f"{_num(median_s, '.1f', ' s')} / {_num(median_m, '.2f', ' m')}",
        f"{row.never_correct}/{len(row.visits)}",
        f"{_pct(row.confident_wrong_rate)} ({row.confident_wrong})",
        _num(row.calibration.ece if row.calibration else None, ".3f"),
        instances,
        pose,
    ]


def _calibration_section(rows: Sequence[Metrics]) -> list[str]:
    """Per method, the reliability bins: how often answers of each confidence were right."""
    rated = [r for r in rows if r.available and r.calibration and r.calibration.answers]
    if not rated:
        return []
    lines = ["", "## Calibration", ""]
    bins = rated[0].calibration.bins
    header = ["method", "pair", *(f"{b.low:.1f}-{b.high:.1f}" for b in bins)]
    cells = [
        [
            r.label,
            r.pair,
            *(f"{_pct(b.accuracy, 0)} ({b.count})" if b.count else "-" for b in r.calibration.bins),
        ]
        for r in rated
    ]
    lines += _table(header, cells)
    lines += [
        "",
        "Share of the published answers that were right (count), by their confidence: a"
        " calibrated node is right about 95 % of the time in the 0.9-1.0 bin.",
    ]
    return lines


def cost_row(row: Metrics) -> list[str]:
    if not row.available:
        return [row.label, row.pair or "-", row.unavailable_reason, "-", "-", "-", "-"]
    e2e = row.latency_ms.get("end_to_end", {})
    latency = " / ".join(_num(e2e.get(p), ".0f") for p in ("p50", "p95", "p99"))
    frames = f"{row.frames_in_bag} / {_num(row.frames_processed, 'd')}"
    return [
        row.label,
        row.pair,
        latency,
        _num(row.peak_memory_mb, ".0f"),
        frames,
        _num(row.dropped_frames, "d"),
        f"{_num(row.keyframes, 'd')} ({row.wall_s:.0f} s)",
    ]


def format_report(
    rows: Sequence[Metrics],
    bags: Sequence[BagContents],
    cfg: BagEvalCfg,
    meta: dict,
    plots: dict[str, Path] | None = None,
) -> str:
    """The whole Markdown report: results, cost, stages, bags, visits, plots."""
    ks = list(cfg.ks)
    lines = [f"# Bag evaluation ({meta.get('mode', 'offline')})", ""]
    if meta.get("command"):
        lines += ["```", meta["command"], "```", ""]
    maps = ", ".join(f"`{m}`" for m in meta.get("maps", []))
    lines += [
        f"{len(bags)} bag(s), {sum(b.duration_s for b in bags):.0f} s of recording; map(s) {maps};"
        f" {meta.get('machine', '')}",
        "",
        "## Scene recognition",
        "",
    ]
    header = [
        "method",
        "pair",
        "windows",
        *(f"R@{k}" for k in ks),
        "rooms (last answer)",
        "first correct: median time / distance",
        "never correct",
        f"confident wrong (conf >= {cfg.confident:g})",
        "ECE",
        "instance P / R",
        "pose error p50 (wrong, none)",
    ]
    lines += _table(header, [recognition_row(r, ks) for r in rows])
    lines += [
        "",
        "R@K: share of query windows (one per published match) whose true scene is among the"
        " window's top K candidates (its own ranking, before any temporal filter), percent. The"
        " other columns score the published answer (scene_id, filtered where the node filters):"
        " rooms whose last answer was right; first correct: from the first frame in a room to"
        " the first correct answer, sensor time, and the distance the odometry travelled"
        " meanwhile (median over visits that got one); confident wrong: share (count) of answers"
        " naming the wrong scene with at least that confidence, what makes a robot jump to the"
        " wrong room. ECE: expected calibration error of the published answers' confidence"
        " (10 bins; 0: a confidence of p is right p of the time; see Calibration)."
        " Instance P / R: relocalisations in the right room; a pair is right when the"
        " query object, placed by the true pose, lies in the paired instance's box; recall over"
        " the mapped instances in view. Pose error: the published pose (map -> odom as the"
        " node estimated it, times the odometry) against the ground-truth pose of the same"
        " stamp (map frame), median over published poses; wrong: beyond"
        f" {cfg.wrong_pose_m:g} m or {cfg.wrong_pose_deg:g} deg; none: relocalisations that"
        " published no pose (NoPose on weak evidence, or not yet confirmed by odometry).",
    ]
    if any(r.recall_capped_at is not None for r in rows if r.available):
        lines.append(
            "\\* fewer candidates were published than K: R@K is a lower bound"
            " (raise the node's top_k)."
        )
    lines += _calibration_section(rows)
    lines += ["", "## Cost", ""]
    lines += _table(
        [
            "method",
            "pair",
            "latency end to end p50 / p95 / p99 (ms)",
            "peak memory (MB)",
            "frames in bag / processed",
            "dropped frames",
            "keyframes (wall time)",
        ],
        [cost_row(r) for r in rows],
    )
    lines += [
        "",
        "Offline, end to end is message read -> match (deserialise + pipeline); live, colour"
        " frame published -> SceneMatch received over DDS. Peak memory: resident set of the"
        " evaluating process (with the node in it, live in-process). Dropped: colour frames"
        " that never reached the recogniser (not paired with depth, lost, rejected).",
        "",
        "## Latency per stage (ms)",
        "",
    ]
    stage_rows = []
    for row in rows:
        for stage in STAGES:
            values = row.latency_ms.get(stage)
            if values:
                cells = [_num(values.get(p), ".2f") for p in ("p50", "p95", "p99")]
                stage_rows.append([f"{row.label} {row.pair}", stage, *cells, str(values["n"])])
    lines += _table(["method", "stage", "p50", "p95", "p99", "n"], stage_rows) if stage_rows else []
    lines += ["", "## Bags", ""]
    for bag in bags:
        read = f"{bag.read} messages"
        if bag.indexed is not None and bag.indexed != bag.read:
            read += f" of {bag.indexed} indexed"
        lines.append(f"- `{bag.path}` ({bag.storage}, {bag.duration_s:.1f} s, {read})")
        problems = bag.problems()
        lines += [f"  - {p}" for p in problems] or ["  - read completely, no problems"]
    notes = sorted({n for r in rows for n in r.notes})
    if notes:
        lines += ["", "Notes:", *(f"- {n}" for n in notes)]
    if plots:
        lines += ["", "## Plots", ""]
        base = Path(meta.get("out_dir", "."))
        for name, path in plots.items():
            rel = Path(path).relative_to(base) if Path(path).is_relative_to(base) else path
            lines.append(f"![{name}]({rel})")
    lines += ["", "## Per visit", ""]
    for row in rows:
        if not row.available or not row.visits:
            continue
        lines += [f"<details><summary>{row.label} {row.pair}</summary>", ""]
        lines += _table(
            ["room", "true scene", "last answer", "ok", "top-1 share", "answers", "first ok"],
            [
                [
                    v.room_id,
                    v.true_scene,
                    v.final_scene or "(none)",
                    "yes" if v.correct else "NO",
                    f"{100 * v.top1_share:.0f} %",
                    str(v.num_matches),
                    "never"
                    if v.first_correct_s is None
                    else f"{v.first_correct_s:.1f} s, {_num(v.first_correct_m, '.2f', ' m')}",
                ]
                for v in row.visits
            ],
        )
        lines += ["", "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"


def report_json(
    rows: Sequence[Metrics], bags: Sequence[BagContents], cfg: BagEvalCfg, meta: dict
) -> str:
    """Every number of the report, and the bags' problems, as JSON."""
    payload = {
        "meta": meta,
        "config": {"ks": list(cfg.ks), "confident": cfg.confident, "top_k": cfg.top_k},
        "topics": {
            "color": cfg.topics.color,
            "depth": cfg.topics.depth,
            "camera_info": cfg.topics.camera_info,
            "odometry": cfg.topics.odometry,
            "ground_truth": cfg.topics.ground_truth,
        },
        "bags": [
            {
                "path": b.path,
                "storage": b.storage,
                "duration_s": b.duration_s,
                "messages_read": b.read,
                "messages_indexed": b.indexed,
                "counts": b.counts,
                "problems": b.problems(),
                "complete": b.read_error is None,
            }
            for b in bags
        ],
        "methods": [r.to_dict() for r in rows],
    }
    return json.dumps(payload, indent=2, allow_nan=False, default=str)
