"""The deployment files as tests read them: YAML documents, a small kustomize (resources, JSON 6902
patches, image overrides: all that docker/k8s uses), and Kubernetes quantities and compose durations."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
K8S = DOCKER / "k8s"
KUSTOMIZATIONS = [K8S / "base", *sorted(p for p in (K8S / "overlays").iterdir() if p.is_dir())]


def load_all(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def is_resource(doc: Any) -> bool:
    """A Kubernetes object (not a kustomization, not a JSON patch, not a strategic-merge delete)."""
    return (
        isinstance(doc, dict)
        and "apiVersion" in doc
        and doc.get("kind") != "Kustomization"
        and "$patch" not in doc
    )


# ---- a small kustomize: resources, JSON 6902 patches, image overrides (all that these files use) ------


def _pointer(path: str) -> list[str]:
    return [part.replace("~1", "/").replace("~0", "~") for part in path.lstrip("/").split("/")]


def apply_json_patch(doc: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 ``add``/``replace``/``remove`` (the operations these overlays use)."""
    doc = copy.deepcopy(doc)
    for operation in operations:
        *parents, last = _pointer(operation["path"])
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        op = operation["op"]
        if isinstance(node, list):
            index = len(node) if last == "-" else int(last)
            if op == "add":
                node.insert(index, copy.deepcopy(operation["value"]))
            elif op == "replace":
                node[index] = copy.deepcopy(operation["value"])
            elif op == "remove":
                del node[index]
            else:
                raise AssertionError(f"unsupported patch op {op}")
        elif op in ("add", "replace"):
            assert op == "add" or last in node, f"replace of a missing {operation['path']}"
            node[last] = copy.deepcopy(operation["value"])
        elif op == "remove":
            del node[last]
        else:
            raise AssertionError(f"unsupported patch op {op}")
    return doc


def _matches(doc: dict[str, Any], target: dict[str, Any]) -> bool:
    group, _, version = doc["apiVersion"].rpartition("/")
    return (
        target.get("kind", doc["kind"]) == doc["kind"]
        and target.get("name", doc["metadata"]["name"]) == doc["metadata"]["name"]
        and target.get("group", group) == group
        and target.get("version", version) == version
    )


def _set_images(doc: dict[str, Any], images: list[dict[str, Any]]) -> None:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        name, _, tag = container["image"].partition(":")
        for image in images:
            if image["name"] == name:
                name = image.get("newName", name)
                tag = str(image.get("newTag", tag))
        container["image"] = f"{name}:{tag}" if tag else name


def render(folder: Path) -> list[dict[str, Any]]:
    """What ``kubectl kustomize folder`` produces, for the features these kustomizations use."""
    (kustomization,) = load_all(folder / "kustomization.yaml")
    unknown = set(kustomization) - {"apiVersion", "kind", "resources", "patches", "images"}
    assert not unknown, f"{folder}: this test's renderer does not know {unknown}; extend render()"
    docs: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = (folder / entry).resolve()
        docs += render(path) if path.is_dir() else load_all(path)
    for patch in kustomization.get("patches", []):
        operations = yaml.safe_load((folder / patch["path"]).read_text(encoding="utf-8"))
        if isinstance(operations, dict) and operations.get("$patch") == "delete":  # a strategic-merge delete
            group, _, version = operations["apiVersion"].rpartition("/")
            target = {"kind": operations["kind"], "name": operations["metadata"]["name"], "group": group}
            gone = [doc for doc in docs if _matches(doc, {**target, "version": version})]
            assert gone, f"{folder}: patch {patch['path']} deletes nothing"
            docs = [doc for doc in docs if doc not in gone]
            continue
        assert isinstance(operations, list), "only JSON 6902 patches are used here"
        targets = [i for i, doc in enumerate(docs) if _matches(doc, patch["target"])]
        assert targets, f"{folder}: patch {patch['path']} matches nothing"
        for i in targets:
            docs[i] = apply_json_patch(docs[i], operations)
    for doc in docs:
        _set_images(doc, kustomization.get("images", []))
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [doc for doc in docs if doc["kind"] == kind]
    return found


# ---- quantities and durations --------------------------------------------------------------------------

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "m": 10**-3, "": 1}


def quantity(value: str | int | float) -> float:
    """A Kubernetes quantity ("500m", "768Mi", "1") or a compose one ("768M", "1.0") as a number."""
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value).strip())
    assert match, f"not a quantity: {value!r}"
    number, unit = float(match.group(1)), match.group(2)
    if unit in _BINARY:
        return number * _BINARY[unit]
    if unit.lower() in ("b", "k", "m", "g") and unit not in _DECIMAL:  # compose: 64m, 1g
        unit = {"b": "", "k": "k", "m": "M", "g": "G"}[unit.lower()]
    return number * _DECIMAL[unit]


def seconds(value: str | int) -> float:
    """A compose duration ("20s", "1m30s") in seconds."""
    parts = re.findall(r"([0-9.]+)(ms|h|m|s)", str(value))
    assert parts, f"not a duration: {value!r}"
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(number) * scale[unit] for number, unit in parts)


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}
