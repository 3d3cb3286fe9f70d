"""One model's rollout, kept as ``<model_store>/<name>/rollout.json`` beside its versions.

A rollout holds the model's aliases (named pointers to versions: ``stable``, ``canary``, any name that
follows the model-name rule and begins with a letter, so that it never reads as a version number), the
share of unpinned traffic each weighted alias takes, the shadow version (a sampled copy of the traffic is
classified by it in the background) and the history of every change (who, when, from, to, why).

The file lives in the model store because every worker and every replica already shares it. Writers take
an exclusive lock on ``<name>/.rollout.lock``, read, change and write a new file that replaces the old one
in one ``rename``, so a reader (a worker polling the file) sees the old state or the new one, never half of
one; ``revision`` grows by one with each change.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from service.bundle import is_valid_version
from service.errors import InvalidRequest, Unavailable

ROLLOUT_FILE = "rollout.json"
LOCK_FILE = ".rollout.lock"
STABLE = "stable"
ALIAS_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")
HISTORY_KEPT = 200  # the newest changes a rollout file keeps


def is_alias(name: object) -> bool:
    return isinstance(name, str) and ALIAS_PATTERN.match(name) is not None


def check_alias(name: str) -> str:
    if not is_alias(name):
        raise InvalidRequest(
            f"invalid alias {name[:80]!r}: begin with a letter, then letters, digits, '.', '_' or '-' "
            "(at most 64 characters; a name that begins with a digit would read as a version number)"
        )
    return name


def check_percent(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise InvalidRequest(f"{what} must be a number from 0 to 100 (a percentage), not {value!r}")
    return float(value)


@dataclass(frozen=True)
class Shadow:
    version: int
    percent: float  # of the model's answered requests copied to the shadow

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "percent": self.percent}


@dataclass(frozen=True)
class Change:
    """One recorded change: ``action`` is alias, unalias, weight, shadow, unshadow, promote or rollback."""

    at: float  # Unix seconds
    who: str
    action: str
    alias: str | None = None
    from_version: int | None = None
    to_version: int | None = None
    why: str | None = None
    evidence: str | None = None  # a promotion's comparison, as stated to the operator

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at)),
            "at_unix": self.at,
            "who": self.who,
            "action": self.action,
            "alias": self.alias,
            "from": self.from_version,
            "to": self.to_version,
            "why": self.why,
            "evidence": self.evidence,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Change:
        return cls(
            float(data["at_unix"]), str(data["who"]), str(data["action"]), data.get("alias"),
            data.get("from"), data.get("to"), data.get("why"), data.get("evidence"),
        )  # fmt: skip


@dataclass(frozen=True)
class Rollout:
    aliases: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))  # alias -> percent
    shadow: Shadow | None = None
    history: tuple[Change, ...] = ()
    revision: int = 0

    @property
    def empty(self) -> bool:
        return not self.aliases and self.shadow is None

    def versions(self) -> set[int]:
        """Every version the rollout needs loaded."""
        needed = set(self.aliases.values())
        if self.shadow is not None:
            needed.add(self.shadow.version)
        return needed

    def changed(self, change: Change, **fields: Any) -> Rollout:
        """A new rollout with ``fields`` replaced and ``change`` recorded."""
        history = (*self.history, change)[-HISTORY_KEPT:]
        return replace(self, **fields, history=history, revision=self.revision + 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "aliases": dict(sorted(self.aliases.items())),
            "weights": dict(sorted(self.weights.items())),
            "shadow": None if self.shadow is None else self.shadow.to_dict(),
            "history": [change.to_dict() for change in self.history],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Rollout:
        """Parse a rollout file's content; ValueError says what is wrong with it."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        aliases = data.get("aliases") or {}
        weights = data.get("weights") or {}
        if not isinstance(aliases, dict) or not all(
            is_alias(alias) and is_valid_version(version) for alias, version in aliases.items()
        ):
            raise ValueError("'aliases' must map alias names to version numbers")
        if not isinstance(weights, dict) or not all(
            alias in aliases and isinstance(weight, int | float) and 0 <= weight <= 100
            for alias, weight in weights.items()
        ):
            raise ValueError("'weights' must map aliases to percentages from 0 to 100")
        if sum(weights.values()) > 100:
            raise ValueError("the weights add up to more than 100")
        shadow = data.get("shadow")
        if shadow is not None:
            if not (
                isinstance(shadow, dict)
                and is_valid_version(shadow.get("version"))
                and isinstance(shadow.get("percent"), int | float)
                and 0 <= shadow["percent"] <= 100
            ):
                raise ValueError('\'shadow\' must be {"version": N, "percent": 0-100}')
            shadow = Shadow(int(shadow["version"]), float(shadow["percent"]))
        try:
            history = tuple(Change.from_dict(entry) for entry in data.get("history") or ())
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"a history entry is malformed ({error})") from None
        revision = data.get("revision", 0)
        return cls(
            MappingProxyType(dict(aliases)),
            MappingProxyType({alias: float(weight) for alias, weight in weights.items()}),
            shadow,
            history,
            revision if isinstance(revision, int) else 0,
        )


def path_of(store: Path, name: str) -> Path:
    return Path(store) / name / ROLLOUT_FILE


def read(store: Path, name: str) -> Rollout:
    """The model's rollout (empty when it has none); ValueError for a file that is not a rollout."""
    path = path_of(store, name)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Rollout()
    try:
        return Rollout.from_dict(json.loads(text))
    except ValueError as error:
        raise ValueError(f"{path} is not a valid rollout file: {error}") from None


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    import fcntl  # POSIX, like the rest of the store's writers

    descriptor = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def update(store: Path, name: str, change: Callable[[Rollout], Rollout]) -> Rollout:
    """Apply ``change`` to the model's rollout under its lock and replace the file atomically; ``change``
    raises (a :class:`~service.errors.ServiceError`) to refuse, and then nothing is written."""
    folder = Path(store) / name
    try:
        with _locked(folder):
            try:
                current = read(store, name)
            except ValueError as error:
                raise Unavailable(f"{error}; fix or remove it") from None
            new = change(current)
            if new is current:
                return current
            staging = folder / f".{ROLLOUT_FILE}.{os.getpid()}.tmp"
            with open(staging, "w", encoding="utf-8") as handle:
                json.dump(new.to_dict(), handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(staging, path_of(store, name))
            return new
    except OSError as error:
        raise Unavailable(
            f"cannot write {folder / ROLLOUT_FILE}: {error.strerror or error} (the model store must be "
            "writable for aliases, canaries and promotions)"
        ) from None
