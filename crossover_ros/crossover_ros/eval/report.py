"""Metric tables as Markdown, and results as JSON-ready dicts, for logs and the README."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class _HasTableRow(Protocol):
    def table_row(self) -> Mapping[str, float | None]: ...


def table_rows(results: Mapping[str, _HasTableRow]) -> dict[str, dict[str, float | None]]:
    """{row name: result} -> {row name: {column: value}}, from each result's ``table_row()``."""
    return {name: dict(r.table_row()) for name, r in results.items()}


def format_markdown_table(
    rows: Mapping[str, Mapping[str, float | None]],
    columns: Sequence[str] | None = None,
    *,
    row_header: str = "method",
    percent: bool = True,
    digits: int = 2,
) -> str:
    """A Markdown table, one row per method or modality pair, one column per metric.

    Values are fractions; ``percent=True`` prints them x100 as the paper does. Columns default to
    the union of the rows' keys in first-seen order; a missing or None value prints as "-".
    """
    if not rows:
        raise ValueError("no rows to format")
    if digits < 0:
        raise ValueError(f"digits must be >= 0, got {digits}")
    if columns is None:
        columns = list(dict.fromkeys(c for row in rows.values() for c in row))
    if not columns:
        raise ValueError("no columns to format")

    def cell(v: float | None) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        return f"{v * 100 if percent else v:.{digits}f}"

    def esc(text: str) -> str:
        return str(text).replace("|", "\\|")

    lines = [
        "| " + " | ".join([esc(row_header), *(esc(c) for c in columns)]) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for name, row in rows.items():
        lines.append("| " + " | ".join([esc(name), *(cell(row.get(c)) for c in columns)]) + " |")
    return "\n".join(lines) + "\n"


def results_to_dict(results: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
    """{name: result} -> {name: result.to_dict(**kwargs)}; checked to survive ``json.dumps``."""
    out = {str(name): r.to_dict(**kwargs) for name, r in results.items()}
    json.dumps(out, allow_nan=False)
    return out
