"""Settings declared once, on the configuration dataclasses themselves.

A field made with :func:`setting` carries its description and range; a field made with
:func:`group` nests another such dataclass. :func:`settings_of` walks the tree and lists every
setting under a dotted name (``recognizer.window_size``): what the nodes declare as ROS
parameters, what the YAML in ``config/`` holds and what the evaluations pass on. :func:`build`
makes the tree back from values by dotted name, checking each against its range, and
:func:`validate` checks a directly constructed one. Other fields are internal constants: they
keep their defaults and are not exposed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import yaml

from crossover_ros.errors import ConfigError

Scalar = bool | int | float | str
T = TypeVar("T")
_META = "crossover_ros.setting"
_GROUP = "crossover_ros.group"


@dataclass(frozen=True)
class Setting:
    """One exposed field: dotted name, default, description, inclusive range, run-time change."""

    name: str
    default: Scalar
    description: str
    low: float | None = None
    high: float | None = None
    read_only: bool = True
    choices: tuple[str, ...] = ()

    def check(self, value: Any) -> Scalar:
        """``value`` as this setting's type, or ValueError naming the setting and the range."""
        kind = type(self.default)
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{self.name} must be true or false, not {value!r}")
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{self.name} must be an integer, not {value!r}")
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{self.name} must be a number, not {value!r}")
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{self.name} must be finite, not {value!r}")
        elif not isinstance(value, str):
            raise ValueError(f"{self.name} must be a string, not {value!r}")
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            raise ValueError(f"{self.name} must be in [{self.low}, {self.high}], not {value!r}")
        if self.choices and value not in self.choices:
            raise ValueError(f"{self.name} must be one of {', '.join(self.choices)}, not {value!r}")
        return value


def setting(
    default: Scalar,
    description: str,
    low: float | None = None,
    high: float | None = None,
    *,
    read_only: bool = True,
    choices: tuple[str, ...] = (),
) -> Any:
    """A dataclass field exposed as a setting (a ROS parameter of the nodes that use it)."""
    meta = {_META: (description, low, high, read_only, choices)}
    return dataclasses.field(default=default, metadata=meta)


def group(factory: Any) -> Any:
    """A dataclass field holding a nested configuration whose settings are exposed under its
    name (``factory``: the class, or a function making a non-default instance)."""
    return dataclasses.field(default_factory=factory, metadata={_GROUP: True})


def settings_of(cls: type, prefix: str = "", defaults: Any = None) -> list[Setting]:
    """Every exposed field of ``cls`` and of its groups, by dotted name."""
    out: list[Setting] = []
    hints = get_type_hints(cls)
    defaults = cls() if defaults is None else defaults
    for field in dataclasses.fields(cls):
        name, default = f"{prefix}{field.name}", getattr(defaults, field.name)
        if _META in field.metadata:
            description, low, high, read_only, choices = field.metadata[_META]
            out.append(Setting(name, default, description, low, high, read_only, choices))
        elif _GROUP in field.metadata:
            out.extend(settings_of(hints[field.name], f"{name}.", default))
    return out


def validate(cfg: Any) -> None:
    """Check every setting of a dataclass against its declaration (call in ``__post_init__``)."""
    for field in dataclasses.fields(cfg):
        if _META in field.metadata:
            description, low, high, read_only, choices = field.metadata[_META]
            default = field.default
            Setting(field.name, default, description, low, high, read_only, choices).check(
                getattr(cfg, field.name)
            )


def values_of(cfg: Any, prefix: str = "") -> dict[str, Scalar]:
    """The exposed values of a configuration tree by dotted name (the inverse of :func:`build`)."""
    out: dict[str, Scalar] = {}
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        if _META in field.metadata:
            out[f"{prefix}{field.name}"] = value
        elif _GROUP in field.metadata:
            out.update(values_of(value, f"{prefix}{field.name}."))
    return out


def build(cls: type[T], values: Mapping[str, Any], base: T | None = None) -> T:
    """``cls`` (or ``base``) with the exposed fields in ``values`` (dotted names) replaced.

    Every value is checked against its setting; an unknown name is an error, so a misspelt
    parameter in a YAML file is not silently ignored.
    """
    known = {s.name: s for s in settings_of(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(unknown)}")
    checked = {name: known[name].check(value) for name, value in values.items()}
    return _replace(base if base is not None else cls(), checked, "")


def _replace(cfg: Any, values: dict[str, Scalar], prefix: str) -> Any:
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(cfg):
        name = f"{prefix}{field.name}"
        if name in values:
            changes[field.name] = values[name]
        elif _GROUP in field.metadata and any(key.startswith(f"{name}.") for key in values):
            changes[field.name] = _replace(getattr(cfg, field.name), values, f"{name}.")
    return dataclasses.replace(cfg, **changes) if changes else cfg


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings (a ROS parameter YAML) as dotted names."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def load_yaml(path: Path, node: str, cls: type[T], base: T | None = None) -> T:
    """``cls`` from a ROS 2 parameter file's ``node:`` (or ``/**:``) ``ros__parameters:``
    section; the settings of other trees in it (the node's own topics, say) are left to those
    trees."""
    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read parameter file {path}: {err}") from err
    section = None
    if isinstance(document, dict):
        section = document.get(node, document.get("/**"))
    section = section.get("ros__parameters") if isinstance(section, Mapping) else None
    if not isinstance(section, Mapping):
        raise ConfigError(f"{path} has no '{node}:' or '/**:' section with ros__parameters")
    known = {item.name for item in settings_of(cls)}
    values = {k: v for k, v in flatten(section).items() if k in known}
    try:
        return build(cls, values, base)
    except ValueError as err:
        raise ConfigError(f"{path}: {err}") from err


def parse_assignment(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` (the value read as YAML: 3, 0.5, true, text) -> (name, value)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ConfigError(f"'{text}' is not NAME=VALUE")
    return name.strip(), yaml.safe_load(value) if value.strip() else ""
