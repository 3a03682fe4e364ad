"""Launch files, YAML and package.xml name only executables and parameters that exist."""

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from crossover_ros.config import flatten, load_yaml
from crossover_ros.eval.bag_eval import BagEvalCfg
from crossover_ros.pipeline.config import PipelineCfg
from crossover_ros.ros.settings import node_settings

PACKAGE = Path(__file__).resolve().parents[2]


def _console_scripts() -> set[str]:
    tree = ast.parse((PACKAGE / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    return {ast.literal_eval(v).split("=")[0].strip() for v in value.elts}
    raise AssertionError("no console_scripts in setup.py")


def _declared_parameters(node: str) -> dict[str, object]:
    """name -> default of every parameter ``node`` declares: its configuration trees."""
    return {item.name: item.default for item in node_settings(node)}


def _yaml_parameters(node: str) -> dict[str, object]:
    document = yaml.safe_load((PACKAGE / "config" / f"{node}.yaml").read_text())
    (section,) = document.values()
    return flatten(section["ros__parameters"])


NODES = ("scene_recognizer", "map_recorder")  # nodes with a config and a launch file each


def test_each_yaml_holds_every_parameter_of_its_node_at_its_default():
    """config/*.yaml is the tree as a file: nothing missing, nothing unknown, nothing else."""
    for node in NODES:
        assert _yaml_parameters(node) == _declared_parameters(node), f"config/{node}.yaml"


def test_the_yaml_is_what_the_evaluation_runs():
    """``crossover_ros eval --params-file config/scene_recognizer.yaml`` runs the defaults."""
    path = PACKAGE / "config" / "scene_recognizer.yaml"
    assert load_yaml(path, "scene_recognizer", PipelineCfg) == PipelineCfg()
    assert BagEvalCfg().pipeline == PipelineCfg()


def test_every_node_has_a_complete_yaml_a_launch_file_and_a_run_entry():
    from crossover_ros.cli.run import NODES as RUNNABLE

    launched = {}
    for path in (PACKAGE / "launch").glob("*.launch.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "executable":
                launched[node.value.value] = path.name
    for name in NODES:
        assert name in _console_scripts(), f"setup.py: no console script {name}"
        assert RUNNABLE.get(name) == f"crossover_ros.ros.nodes.{name}", f"cli/run.py: {name}"
        assert name in launched, f"no launch file starts {name}"
        assert (PACKAGE / "config" / f"{name}.yaml").is_file(), f"no config/{name}.yaml"


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == name
    ]


def test_launch_files_set_only_declared_parameters_from_declared_arguments():
    for path in (PACKAGE / "launch").glob("*.launch.py"):
        tree = ast.parse(path.read_text())
        arguments = {call.args[0].value for call in _calls(tree, "DeclareLaunchArgument")}
        used = {call.args[0].value for call in _calls(tree, "LaunchConfiguration")}
        assert used <= arguments, f"{path.name}: undeclared launch arguments {used - arguments}"
        for call in _calls(tree, "LifecycleNode"):
            keywords = {k.arg: k.value for k in call.keywords}
            executable = keywords["executable"].value
            assert keywords["name"].value == executable, f"{path.name}: node name != executable"
            namespace = keywords["namespace"]
            assert getattr(namespace.func, "id", None) == "LaunchConfiguration", path.name
            for item in keywords["parameters"].elts:
                if isinstance(item, ast.Dict):
                    keys = {k.value for k in item.keys}
                    unknown = keys - set(_declared_parameters(executable))
                    assert not unknown, f"{path.name}: {executable} declares no {sorted(unknown)}"


def test_launch_files_name_existing_executables_and_configs():
    launch_files = list((PACKAGE / "launch").glob("*.launch.py"))
    assert launch_files
    for path in launch_files:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "executable":
                assert node.value.value in _console_scripts(), f"{path.name}: {node.value.value}"
            if isinstance(node, ast.Constant) and str(node.value).endswith(".yaml"):
                assert (PACKAGE / "config" / node.value).is_file(), f"{path.name}: {node.value}"


def test_package_xml_is_format_3_and_versions_agree():
    root = ET.parse(PACKAGE / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "crossover_ros"
    setup = (PACKAGE / "setup.py").read_text()
    assert f'version="{root.findtext("version")}"' in setup
    assert root.find("export/build_type").text == "ament_python"
    assert (PACKAGE / "resource" / "crossover_ros").is_file()


def test_training_stages_are_written_once():
    from crossover_ros.cli.train import STAGES
    from crossover_ros.train.pipeline import ALL_STAGES

    assert STAGES == ALL_STAGES  # `train --stages`: choices, default and order


def test_every_setting_has_a_description_and_a_consistent_range():
    for node in NODES:
        for item in node_settings(node):
            assert item.description.strip(), item.name
            item.check(item.default)  # the default is in its own range
            if item.low is not None:
                assert isinstance(item.default, int | float), item.name
