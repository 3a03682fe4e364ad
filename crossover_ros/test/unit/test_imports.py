"""The package's import structure: folders layered without circles, coupling in plain sight.

Read from the source (ast), not imported: a circle or a hidden import fails here whatever the
import order of a test run happens to be.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "crossover_ros"
# Folders that need rclpy (an optional dependency of the core): the only own modules that may be
# imported inside a function, so that the core and the offline tools run without ROS.
ROS_FOLDERS = ("ros",)
# Training is not inference: nothing a robot runs imports it.
INFERENCE_FOLDERS = (
    "model",
    "mapdb",
    "pipeline",
    "pose",
    "runtime",
    "bags",
    "datasets",
    "query",
    "ros",
)


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _folder(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir():
        return parts[1] if len(parts) > 1 else ""
    return ""  # a module at the package root (errors, frames, config)


def _imports(path: Path) -> tuple[set[str], list[tuple[int, str]]]:
    """(own modules imported at module level, (line, module) imported inside functions)."""
    tree = ast.parse(path.read_text())
    top: set[str] = set()
    local: list[tuple[int, str]] = []

    def own(node: ast.AST) -> list[str]:
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            return []
        return [n for n in names if n.split(".")[0] == "crossover_ros"]

    def visit(body: list[ast.stmt], in_function: bool, type_checking: bool = False) -> None:
        for node in body:
            for name in own(node):
                if in_function:
                    local.append((node.lineno, name))
                elif not type_checking:
                    top.add(name)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(node.body, True)
            elif isinstance(node, ast.If):
                checking = "TYPE_CHECKING" in ast.dump(node.test)
                visit(node.body, in_function, type_checking or checking)
                visit(node.orelse, in_function, type_checking)
            elif isinstance(node, ast.ClassDef | ast.With | ast.For | ast.While):
                visit(node.body, in_function, type_checking)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody):
                    visit(block, in_function, type_checking)
                for handler in node.handlers:
                    visit(handler.body, in_function, type_checking)

    visit(tree.body, False)
    return top, local


def _graph() -> tuple[dict[str, set[str]], dict[str, list[tuple[int, str]]]]:
    top, local = {}, {}
    for path in sorted(PACKAGE.rglob("*.py")):
        top[_module(path)], local[_module(path)] = _imports(path)
    return top, local


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of ``graph``, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circle_between_folders_or_modules():
    top, local = _graph()
    folders: dict[str, set[str]] = {}
    for module, targets in top.items():
        for target in {*targets, *(t for _, t in local[module])}:
            a, b = _folder(module), _folder(target)
            if a != b and a and b:
                folders.setdefault(a, set()).add(b)
    assert _cycle(folders) is None, f"folders import in a circle: {_cycle(folders)}"
    modules = {m: {t for t in targets if t in top} for m, targets in top.items()}
    assert _cycle(modules) is None, f"modules import in a circle: {_cycle(modules)}"


def test_own_modules_are_imported_at_module_top():
    """Coupling in plain sight: a function-local import only for what needs rclpy."""
    _, local = _graph()
    hidden = [
        f"{module}:{line} imports {target}"
        for module, imports in local.items()
        for line, target in imports
        if _folder(target) not in ROS_FOLDERS
    ]
    assert not hidden, "\n".join(hidden)


def _reaches(sources: tuple[str, ...], target: str) -> list[str]:
    """Modules of the ``sources`` folders that import from the ``target`` folder."""
    top, local = _graph()
    return [
        f"{module} imports {imported}"
        for module in top
        if _folder(module) in sources
        for imported in {*top[module], *(t for _, t in local[module])}
        if _folder(imported) == target
    ]


def test_what_a_robot_runs_does_not_import_training_code():
    leaks = _reaches(INFERENCE_FOLDERS, "train")
    assert not leaks, "\n".join(leaks)


def test_the_core_does_not_import_ros():
    leaks = _reaches(
        ("model", "mapdb", "pipeline", "pose", "runtime", "query", "eval", "train"), "ros"
    )
    assert not leaks, "\n".join(leaks)
