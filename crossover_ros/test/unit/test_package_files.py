"""Launch files, YAML and package.xml name only executables and parameters that exist."""

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

PACKAGE = Path(__file__).resolve().parents[2]


def _console_scripts() -> set[str]:
    tree = ast.parse((PACKAGE / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    return {ast.literal_eval(v).split("=")[0].strip() for v in value.elts}
    raise AssertionError("no console_scripts in setup.py")


def _param_specs(path: Path) -> set[str]:
    """Names of the ParamSpec(...) calls in a source file (read, not imported: no rclpy here)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ParamSpec":
            names.add(node.args[0].value)
    return names


def _declared_parameters(module: str) -> set[str]:
    ros = PACKAGE / "crossover_ros" / "ros"
    path = ros / "nodes" / f"{module}.py"
    names = _param_specs(path)
    if "*SENSOR_PARAMETERS" in path.read_text():
        names |= _param_specs(ros / "params.py")  # the shared table holds only ParamSpecs
    return names


NODES = ("scene_recognizer", "map_recorder")  # nodes with a config and a launch file each


def test_yaml_parameters_are_declared_by_the_node():
    for path in (PACKAGE / "config").glob("*.yaml"):
        for node_name, content in yaml.safe_load(path.read_text()).items():
            assert node_name in _console_scripts(), f"{path.name}: no executable {node_name}"
            params = set(content["ros__parameters"])
            unknown = params - _declared_parameters(node_name)
            assert not unknown, f"{path.name}: {node_name} declares no {sorted(unknown)}"


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
        config = yaml.safe_load((PACKAGE / "config" / f"{name}.yaml").read_text())
        missing = _declared_parameters(name) - set(config[name]["ros__parameters"])
        assert not missing, f"config/{name}.yaml lacks {sorted(missing)}"


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
            for item in keywords["parameters"].elts:
                if isinstance(item, ast.Dict):
                    keys = {k.value for k in item.keys}
                    unknown = keys - _declared_parameters(executable)
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


def _param_defaults(path: Path) -> dict[str, object]:
    """name -> default of the ParamSpec(...) calls in a source file (read, not imported)."""
    defaults = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ParamSpec":
            defaults[node.args[0].value] = ast.literal_eval(node.args[1])
    return defaults


def test_node_yaml_and_eval_defaults_are_the_pipelines_defaults():
    """The recogniser's settings are written four times (dataclass, node parameter, YAML, eval
    flag: the CLI and the node are read without importing the pipeline), the training stages
    twice (pipeline, train CLI); they must agree."""
    from crossover_ros.cli.main import build_parser
    from crossover_ros.cli.train import STAGES
    from crossover_ros.pipeline.object_ranking import ObjectRankingCfg
    from crossover_ros.pipeline.recognizer import RecognizerCfg
    from crossover_ros.pipeline.verification import VerificationCfg
    from crossover_ros.train.pipeline import ALL_STAGES

    pipeline = {
        "window_size": RecognizerCfg().window_size,
        "top_k": RecognizerCfg().top_k,
        "verify_candidates": VerificationCfg().top_k,
        "verify_score_weight": VerificationCfg().score_weight,
        "object_candidates": ObjectRankingCfg().top_k,
    }
    node = _param_defaults(PACKAGE / "crossover_ros" / "ros" / "nodes" / "scene_recognizer.py")
    assert {name: node[name] for name in pipeline} == pipeline
    for name in NODES:
        declared = _param_defaults(PACKAGE / "crossover_ros" / "ros" / "nodes" / f"{name}.py")
        declared |= _param_defaults(PACKAGE / "crossover_ros" / "ros" / "params.py")
        yaml_file = yaml.safe_load((PACKAGE / "config" / f"{name}.yaml").read_text())
        for param, value in yaml_file[name]["ros__parameters"].items():
            assert value == declared[param], f"{name}.yaml: {param} {value} != {declared[param]}"
    assert STAGES == ALL_STAGES  # `train --stages`: choices, default and order
    args = build_parser().parse_args(["eval", "--bag", "b", "--map", "m"])
    flags = {"verify_candidates", "verify_score_weight", "object_candidates"}
    assert {name: getattr(args, name) for name in flags} == {n: pipeline[n] for n in flags}
