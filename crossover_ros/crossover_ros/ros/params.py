"""Declaring node parameters with descriptions and ranges, from one table per node."""

from __future__ import annotations

from dataclasses import dataclass

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: bool | int | float | str
    description: str
    min_value: float | None = None
    max_value: float | None = None
    read_only: bool = True


def declare(node: Node, specs: list[ParamSpec]) -> dict[str, object]:
    """Declare every parameter with its descriptor and return the current values by name.

    rclpy rejects a value outside the declared range (or of another type) with a clear error
    when the parameter is set, so the node never starts with a nonsensical configuration.
    """
    values = {}
    for spec in specs:
        descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
        if spec.min_value is not None and isinstance(spec.default, float):
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=spec.min_value, to_value=spec.max_value, step=0.0)
            ]
        elif spec.min_value is not None and isinstance(spec.default, int):
            descriptor.integer_range = [
                IntegerRange(from_value=int(spec.min_value), to_value=int(spec.max_value), step=1)
            ]
        values[spec.name] = node.declare_parameter(spec.name, spec.default, descriptor).value
    return values
