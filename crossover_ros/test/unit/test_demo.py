"""The demo starts the node with parameters the node declares (a renamed one is ignored by ROS)."""

from __future__ import annotations

from pathlib import Path

from crossover_ros.cli.demo import node_command
from crossover_ros.ros.settings import node_settings


def test_the_demo_sets_declared_parameters_of_the_scene_recognizer(tmp_path: Path) -> None:
    command = node_command("crossover", tmp_path / "map.sqlite")
    overrides = dict(command[i + 1].split(":=", 1) for i, arg in enumerate(command) if arg == "-p")
    declared = {item.name for item in node_settings("scene_recognizer")}
    assert set(overrides) == {"map.path", "model.name"}
    assert set(overrides) <= declared
    assert overrides["map.path"] == str((tmp_path / "map.sqlite").resolve())
