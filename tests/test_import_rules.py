"""The walls between the wings, read from the source (lazy imports inside functions count too).

- ``service`` never imports ``training`` or ``torch``: a serving install has neither.
- The engine, the error vocabulary and the bundle contract never import the web framework or the API wing.
- ``training`` has no import cycle, and its sub-packages import downward only: cli → export → loop →
  model, data.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[1] / "service"
TRAINING = SERVICE.parent / "training"
HTTP_FREE = ["engine", "errors", "bundle", "tokenizer"]
TRAINING_LAYERS = ("data", "model", "loop", "export", "cli")  # each may import only those before it


def imported_modules(path: Path) -> set[str]:
    """Every module named by an ``import`` or ``from ... import`` anywhere in ``path``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module",
            "__import__",
        ):
            names.update(arg.value for arg in node.args if isinstance(arg, ast.Constant))
    return names


def python_files(*parts: str) -> list[Path]:
    files: list[Path] = []
    for part in parts:
        target = SERVICE / part  # a package folder or a module file
        files.extend(sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")])
    return files


def offending(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in files:
        for module in sorted(imported_modules(path)):
            if any(module == root or module.startswith(root + ".") for root in forbidden):
                found.append(f"{path.name} imports {module}")
    return found


def test_service_never_imports_training_or_torch() -> None:
    assert offending(python_files("."), ("training", "torch")) == []


@pytest.mark.parametrize("part", HTTP_FREE)
def test_engine_and_contract_never_import_http(part: str) -> None:
    assert offending(python_files(part), ("fastapi", "starlette", "uvicorn", "service.api")) == []


def test_the_rule_detects_a_violation(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def later():\n    import importlib\n    importlib.import_module('training.x')\n")
    eager = tmp_path / "eager.py"
    eager.write_text("from fastapi import FastAPI\n")
    assert offending([sneaky], ("training",)) == ["sneaky.py imports training.x"]
    assert "eager.py imports fastapi" in offending([eager], ("fastapi",))


def module_graph(root: Path) -> dict[str, set[str]]:
    """Each module of the package at ``root`` → the modules of that package it imports (lazily too)."""
    modules = {
        ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__"): path
        for path in root.rglob("*.py")
    }
    return {
        name: {other for other in imported_modules(path) if other in modules and other != name}
        for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as the modules along it (first = last), or [] when there is none."""
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> list[str]:
        state[name] = "open"
        for other in sorted(graph.get(name, ())):
            if state.get(other) == "open":
                return [*path[path.index(other) :], other]
            if other not in state and (cycle := visit(other, [*path, other])):
                return cycle
        state[name] = "done"
        return []

    for name in sorted(graph):
        if name not in state and (cycle := visit(name, [name])):
            return cycle
    return []


def layer(module: str) -> int:
    parts = module.split(".")
    return TRAINING_LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in TRAINING_LAYERS else -1


def test_training_has_no_import_cycle() -> None:
    assert find_cycle(module_graph(TRAINING)) == []


def test_training_sub_packages_import_downward_only() -> None:
    upward = [
        f"{name} imports {other}"
        for name, others in sorted(module_graph(TRAINING).items())
        for other in sorted(others)
        if layer(other) > layer(name)
    ]
    assert upward == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []
