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


def _declared_parameters(module: str) -> set[str]:
    source = (PACKAGE / "crossover_ros" / "ros" / "nodes" / f"{module}.py").read_text()
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ParamSpec":
            names.add(node.args[0].value)
    return names


def test_yaml_parameters_are_declared_by_the_node():
    for path in (PACKAGE / "config").glob("*.yaml"):
        for node_name, content in yaml.safe_load(path.read_text()).items():
            assert node_name in _console_scripts(), f"{path.name}: no executable {node_name}"
            params = set(content["ros__parameters"])
            unknown = params - _declared_parameters(node_name)
            assert not unknown, f"{path.name}: {node_name} declares no {sorted(unknown)}"


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
