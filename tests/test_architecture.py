"""The layout docs/architecture.md draws, enforced: floors that import only downwards, one home for
MLflow, components that never import each other, no import cycles, short functions and modules."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "govtrain"

# Lowest first; a package may import its own floor and the floors below it, never above.
FLOORS = ["core", "governance", "model", "data", "registry", "components", "serving", "monitoring", "pipelines"]
MLFLOW_HOMES = ("govtrain.registry", "govtrain.model.pyfunc")  # pyfunc: the file MLflow itself loads
WRAPPERS = {"govtrain.components.ops", "govtrain.components.platform"}  # KFP wrappers and task settings


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module imported anywhere in the file, function-level imports included (a cycle through a
    lazy import is still a cycle in the design)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {name: {m for m in imports_of(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def floor(module: str) -> int:
    parts = module.split(".")
    return FLOORS.index(parts[1]) if len(parts) > 1 else len(FLOORS)


def test_every_subpackage_has_a_floor():
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()} == set(FLOORS)


def upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets if floor(t) > floor(m))


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            # a package's __init__ re-exporting its own module is not a cycle of the design
            if target.startswith(node + ".") or node.startswith(target + "."):
                continue
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def test_imports_point_down_the_floors():
    assert upward(GRAPH) == []


def test_the_ground_floor_imports_nothing_of_the_project_and_governance_only_the_ground_floor():
    assert sorted(f"{m} -> {t}" for m, ts in GRAPH.items() if m.startswith("govtrain.core")
                  for t in ts if not t.startswith("govtrain.core")) == []
    assert sorted(f"{m} -> {t}" for m, ts in GRAPH.items() if m.startswith("govtrain.governance")
                  for t in ts if not t.startswith(("govtrain.core", "govtrain.governance"))) == []


def test_mlflow_is_imported_only_in_registry_and_the_pyfunc():
    users = sorted(m for m, p in MODULES.items() if any(i.split(".")[0] == "mlflow" for i in imports_of(p)))
    assert users and all(m.startswith(MLFLOW_HOMES) for m in users), users


def test_components_never_import_another_component():
    def component(module: str) -> str | None:
        parts = module.split(".")
        return parts[2] if len(parts) > 2 and parts[1] == "components" else None

    crossing = sorted(f"{m} -> {t}" for m, ts in GRAPH.items() if component(m) and m not in WRAPPERS
                      for t in ts if component(t) and t not in WRAPPERS and component(t) != component(m))
    assert crossing == []


def test_there_are_no_import_cycles():
    assert find_cycles(GRAPH) == []


@pytest.mark.parametrize("limit_function, limit_module", [(80, 400)])
def test_no_function_over_80_lines_and_no_module_over_400(limit_function, limit_module):
    long_functions, long_modules = [], []
    for name, path in MODULES.items():
        source = path.read_text()
        if len(source.splitlines()) > limit_module:
            long_modules.append(name)
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if node.end_lineno - node.lineno + 1 > limit_function:
                    long_functions.append(f"{name}.{node.name}")
    assert (long_functions, long_modules) == ([], [])


def test_the_checker_itself_sees_a_planted_upward_import_and_a_cycle():
    """The rules above can fail: an upward arrow and a cycle are caught on a planted graph."""
    planted = {"govtrain.core.config": {"govtrain.registry.models"},
               "govtrain.registry.models": {"govtrain.core.config"}}
    assert upward(planted) == ["govtrain.core.config -> govtrain.registry.models"]
    assert find_cycles(planted) == [["govtrain.core.config", "govtrain.registry.models", "govtrain.core.config"]]
