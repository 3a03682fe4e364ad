"""``crossover_ros run NODE``: start a node without ros2cli, with the launch files' YAML."""

from __future__ import annotations

import argparse
from pathlib import Path

from crossover_ros.errors import CrossoverError

NODES = {
    "scene_recognizer": "crossover_ros.ros.nodes.scene_recognizer",
    "bag_player": "crossover_ros.ros.nodes.bag_player",
    "map_recorder": "crossover_ros.ros.nodes.map_recorder",
}


def add_parser(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser("run", help="run a ROS 2 node (what 'ros2 run' does)")
    parser.add_argument("node", choices=sorted(NODES))
    parser.add_argument("--params-file", type=Path, help="ROS 2 parameter YAML (see config/)")
    parser.add_argument(
        "-p", "--param", action="append", default=[], metavar="NAME:=VALUE", help="a parameter"
    )
    parser.set_defaults(command=run_command)


def run_command(args: argparse.Namespace) -> int:
    import importlib

    if args.params_file is not None and not args.params_file.is_file():
        raise CrossoverError(f"parameter file {args.params_file} not found")
    ros_args = [args.node, "--ros-args"]
    if args.params_file is not None:
        ros_args += ["--params-file", str(args.params_file)]
    for param in args.param:
        if ":=" not in param:
            raise CrossoverError(f"parameter '{param}' is not NAME:=VALUE")
        ros_args += ["-p", param]
    importlib.import_module(NODES[args.node]).main(args=ros_args)
    return 0
