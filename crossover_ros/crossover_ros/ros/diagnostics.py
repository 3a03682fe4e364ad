"""diagnostic_msgs/DiagnosticArray from plain values (the bookkeeping is ``pipeline/stats.py``)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from crossover_ros.mapdb.open import is_postgres_url
from crossover_ros.mapdb.postgres import redact_url

__all__ = ["diagnostic_array", "diagnostic_status", "format_value", "mask_map_location"]


def format_value(value: object) -> str:
    """Readable strings for DiagnosticStatus values: '-' for unknown, 3 significant decimals."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def diagnostic_status(
    name: str, hardware_id: str, level: int, message: str, values: Mapping[str, object]
) -> DiagnosticStatus:
    """One status; ``level`` as in ``pipeline.stats`` (OK 0, WARN 1, ERROR 2, STALE 3)."""
    status = DiagnosticStatus()
    status.level = bytes([int(level)])  # a `byte` field: rclpy wants bytes of length one
    status.name = name
    status.message = message
    status.hardware_id = hardware_id
    status.values = [KeyValue(key=str(k), value=format_value(v)) for k, v in values.items()]
    return status


def diagnostic_array(stamp: Time, statuses: list[DiagnosticStatus]) -> DiagnosticArray:
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = statuses
    return msg


def mask_map_location(location: str) -> str:
    """A map path as logs may show it: a PostgreSQL URL with its password masked."""

    if not is_postgres_url(location):
        return str(location)

    return redact_url(str(location))
