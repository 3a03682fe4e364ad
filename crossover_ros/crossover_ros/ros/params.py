"""ROS parameters from the configuration tree: each setting declared once, on its dataclass.

A node declares every setting of its configuration classes (``crossover_ros.config``) with a
``ParameterDescriptor`` (description, range, read-only) under its dotted name, and reads the
tree back with :func:`read_tree`. rclpy rejects a value outside the declared range, or of
another type, when it is set, so a node never starts with a nonsensical configuration.
"""

from __future__ import annotations

from typing import Any, TypeVar

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter

from crossover_ros.config import Setting, build, settings_of, values_of

T = TypeVar("T")


def descriptor(item: Setting) -> ParameterDescriptor:
    """The descriptor of one setting: description (with its choices), range, read-only."""
    text = item.description
    if item.choices:
        text += f" One of: {', '.join(repr(c) for c in item.choices)}."
    out = ParameterDescriptor(description=text, read_only=item.read_only)
    if item.low is not None and isinstance(item.default, float):
        out.floating_point_range = [
            FloatingPointRange(from_value=item.low, to_value=item.high, step=0.0)
        ]
    elif (
        item.low is not None
        and isinstance(item.default, int)
        and not isinstance(item.default, bool)
    ):
        out.integer_range = [
            IntegerRange(from_value=int(item.low), to_value=int(item.high), step=1)
        ]
    return out


def declare_tree(node: Node, cls: type) -> None:
    """Declare every setting of ``cls`` as a parameter of ``node``."""
    for item in settings_of(cls):
        node.declare_parameter(item.name, item.default, descriptor(item))


def warn_undeclared(node: Node) -> list[str]:
    """Warn, in one line, of parameter overrides (``-p``, ``--params-file``) that ``node``
    did not declare: rclpy drops them silently, so a misspelt name would run the default.
    Call after every declaration; returns the names."""
    overrides = getattr(node, "_parameter_overrides", {})  # rclpy keeps no public view
    unknown = sorted(name for name in overrides if not node.has_parameter(name))
    if unknown:
        node.get_logger().warning(
            f"ignoring parameters this node does not have: {', '.join(unknown)}"
            " (see config/ for every name)"
        )
    return unknown


def read_tree(node: Node, cls: type[T]) -> T:
    """The configuration tree from ``node``'s current parameter values (ValueError: one that
    is not in its setting's choices)."""
    names = [item.name for item in settings_of(cls)]
    return build(cls, {name: node.get_parameter(name).value for name in names})


def parameters_of(cfg: Any) -> list[Parameter]:
    """A configuration tree as parameter overrides (a node started with it runs ``cfg``)."""
    return [Parameter(name, value=value) for name, value in values_of(cfg).items()]
