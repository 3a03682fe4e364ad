"""PNG figures of a bag evaluation (matplotlib, Agg: no display, no pyplot global state).

- ``recall_at_k.png``: scene recall@K per query window against K, one curve per method and
  modality pair, as the paper's scene-retrieval figure;
- ``latency.png``: histogram of end-to-end latency per method;
- ``first_correct.png``: time from entering a room to the first correct answer, per visit and
  method ("never" marked above the bars).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from crossover_ros.datasets.scan import room_key
from crossover_ros.eval.bag_eval import Metrics


def _name(row: Metrics) -> str:
    return f"{row.label} {row.pair}".strip()


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def plot_recall_at_k(rows: Sequence[Metrics], path: Path) -> Path:
    figure = Figure(figsize=(6.4, 4.4))
    axes = figure.add_subplot()
    for row in rows:
        if row.recall_curve:
            ks = np.arange(1, len(row.recall_curve) + 1)
            axes.plot(ks, 100 * np.asarray(row.recall_curve), marker="o", label=_name(row))
    axes.set_xlabel("K (top-K candidates)")
    axes.set_ylabel("scene recall@K per query window (%)")
    axes.set_ylim(0, 102)
    axes.grid(alpha=0.3)
    axes.set_title("Scene retrieval from the robot's frames")
    if axes.lines:
        axes.legend(fontsize=8, loc="lower right")
    return _save(figure, path)


def plot_latency(rows: Sequence[Metrics], path: Path) -> Path:
    figure = Figure(figsize=(6.4, 4.4))
    axes = figure.add_subplot()
    values = [v for row in rows for v in row.end_to_end_ms]
    if values:
        low, high = max(min(values), 0.1), max(values)
        bins = np.geomspace(low, max(high, low * 1.01), 40)
        for row in rows:
            if row.end_to_end_ms:
                axes.hist(row.end_to_end_ms, bins=bins, histtype="step", lw=1.5, label=_name(row))
        axes.set_xscale("log")
        axes.legend(fontsize=8)
    axes.set_xlabel("end-to-end latency per match (ms)")
    axes.set_ylabel("matches")
    axes.grid(alpha=0.3)
    axes.set_title("Latency: frame in -> scene match out")
    return _save(figure, path)


def plot_first_correct(rows: Sequence[Metrics], path: Path) -> Path:
    """Left: share of visits relocalised within t; right: the time per visit and method."""
    rows = [row for row in rows if row.visits]
    visits = max((len(row.visits) for row in rows), default=0)
    figure = Figure(figsize=(min(16.0, 6.0 + 0.3 * visits), 4.6))
    cdf, strip = figure.subplots(1, 2, width_ratios=[1, 1.6])
    top = max((v for row in rows for v in row.first_correct_s if v is not None), default=1.0)
    top = max(top, 1e-3)
    for index, row in enumerate(rows):
        times = sorted(v for v in row.first_correct_s if v is not None)
        share = np.arange(1, len(times) + 1) / len(row.first_correct_s)
        (line,) = cdf.step(
            [0.0, *times, top * 1.05],
            [0.0, *share, share[-1] if times else 0.0],
            where="post",
            label=_name(row),
        )
        x = np.arange(len(row.visits)) + (index - (len(rows) - 1) / 2) * 0.8 / max(len(rows), 1)
        seconds = [v if v is not None else np.nan for v in row.first_correct_s]
        strip.scatter(x, seconds, s=18, color=line.get_color())
        never = [i for i, v in enumerate(row.first_correct_s) if v is None]
        strip.scatter(x[never], [top * 1.1] * len(never), marker="x", color=line.get_color())
    cdf.set_xlabel("time since entering the room (s)")
    cdf.set_ylabel("share of visits with a correct answer")
    cdf.set_ylim(0, 1.02)
    cdf.grid(alpha=0.3)
    if rows:
        cdf.legend(fontsize=7, loc="lower right")
        labels = [room_key(v.true_scene) or v.room_id for v in rows[0].visits]
        strip.set_xticks(np.arange(len(labels)), labels, rotation=70, fontsize=6)
    strip.axhline(top * 1.05, color="grey", lw=0.5)
    strip.set_ylim(0, top * 1.18)
    strip.set_ylabel("time to first correct answer (s); x = never")
    strip.grid(alpha=0.3, axis="y")
    figure.suptitle("Relocalisation: entering a room -> first correct answer, per visit")
    return _save(figure, path)


def plot_all(rows: Sequence[Metrics], out_dir: Path) -> dict[str, Path]:
    """Every figure into ``out_dir``; returns {name: path}."""
    rows = [row for row in rows if row.available]
    out_dir = Path(out_dir)
    return {
        "recall_at_k": plot_recall_at_k(rows, out_dir / "recall_at_k.png"),
        "latency": plot_latency(rows, out_dir / "latency.png"),
        "first_correct": plot_first_correct(rows, out_dir / "first_correct.png"),
    }
