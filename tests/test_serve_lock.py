"""requirements/serve.txt, the pinned serving dependencies that the image and `make run` install, agrees
with the `serve` extra of pyproject.toml: every requirement of the extra is pinned to a version inside its
range (for every Python the lock covers), every pin carries hashes, and nothing serving does not need
(jieba, torch, the rest of uvicorn[standard]) is in it. Regenerate it with the command in its header."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "serve.txt"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>[^\s;\\]+)\s*(?:;\s*(?P<marker>[^\\]+?))?\s*\\?$")


def _entries() -> list[tuple[str, Requirement, str]]:
    """(name, ``name==version; marker`` as a Requirement, the entry's text) for every pin."""
    text = LOCK.read_text(encoding="utf-8")
    entries = []
    for block in re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2]):
        first = block.splitlines()[0]
        match = PIN.match(first)
        assert match, f"not a pinned entry: {first!r}"
        requirement = Requirement(first.rstrip("\\ ").strip())
        entries.append((canonicalize_name(match["name"]), requirement, block))
    return entries


def _serve_extra() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(line) for line in project["optional-dependencies"]["serve"]]


def test_every_pin_has_hashes() -> None:
    entries = _entries()
    assert entries
    for name, _, block in entries:
        assert "--hash=sha256:" in block, f"{name} has no hash"


def test_every_serve_requirement_is_pinned_inside_its_range() -> None:
    pins: dict[str, list[Requirement]] = {}
    for name, requirement, _ in _entries():
        pins.setdefault(name, []).append(requirement)
    for wanted in _serve_extra():
        name = canonicalize_name(wanted.name)
        assert name in pins, f"{wanted} is in the serve extra but not in {LOCK.name}: regenerate the lock"
        for pin in pins[name]:
            (version,) = [spec.version for spec in pin.specifier]
            assert wanted.specifier.contains(version, prereleases=True), (
                f"{LOCK.name} pins {name}=={version}, outside the serve extra's {wanted}: regenerate the lock"
            )
        assert not wanted.extras, f"{wanted}: an extra pulls in more than serving uses"


def test_what_serving_does_not_need_is_not_locked() -> None:
    names = {name for name, _, _ in _entries()}
    for absent in ("jieba", "torch", "watchfiles", "websockets", "pyyaml"):
        assert absent not in names, f"{absent} is in {LOCK.name}"
