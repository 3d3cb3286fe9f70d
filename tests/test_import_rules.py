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


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(*roots: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports (at the top or inside functions), for ``roots``' packages."""
    modules = {_module_name(path, root): path for root in roots for path in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for name in imported_modules(path):
            # ``from a.b import c`` names a.b and a.b.c: keep the longest that is a module of ours
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_the_import_graph_of_service_and_training_has_no_cycle() -> None:
    graph = import_graph(SERVICE, SERVICE.parent / "training")
    assert "service.api.app" in graph and graph["service.launch"] >= {"service.server", "service.supervisor"}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# The engine's pieces a protocol adapter must not compose itself: it calls one verb of the engine instead.
ENGINE_PIECES = {
    "encode_ids",
    "encode_texts",
    "logits",
    "scores",
    "scored",
    "decide",
    "neighbors",
    "embeddings",
}
# ``encode`` is also str.encode: counted when called on the engine's parts.
ENGINE_PARTS = ("inference", "tokenizer", "runtime", "engine", "registry")


def test_the_api_calls_engine_verbs_not_engine_pieces() -> None:
    called = []
    for path in python_files("api"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                target = node.func.value if isinstance(node.func, ast.Attribute) else None
                receiver = ast.unparse(target) if isinstance(target, ast.Name | ast.Attribute) else ""
                if name in ENGINE_PIECES or (name == "encode" and any(p in receiver for p in ENGINE_PARTS)):
                    called.append(f"{path.name}:{node.lineno} calls {name}")
    assert called == []


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


def layer(module: str) -> int:
    parts = module.split(".")
    return TRAINING_LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in TRAINING_LAYERS else -1


def test_training_sub_packages_import_downward_only() -> None:
    upward = [
        f"{name} imports {other}"
        for name, others in sorted(module_graph(TRAINING).items())
        for other in sorted(others)
        if layer(other) > layer(name)
    ]
    assert upward == []
