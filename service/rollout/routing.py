"""Which version answers a request, per worker: a number as asked, an alias as the rollout file says, and
for a request that names no version the canary split.

The split is by a stable key: the caller's ``X-Routing-Key`` header (``x-routing-key`` metadata over gRPC)
when it sends one, else the request's texts, so the same key or text always gets the same version. The
key's BLAKE2b hash, modulo 10,000, falls in the weighted aliases' ranges (in alias order) or past them;
past them the ``stable`` alias answers, or without one the version the registry serves (the highest
promoted, or the pinned one).

Each worker reads ``rollout.json`` of every served model when its size, modification time or inode
changes (one ``stat`` per model every ``LSTM_SERVICE_ROLLOUT_POLL_SECONDS``), loads the versions it names
beside the serving one (:meth:`Registry.hold`), moves the serving version to ``stable`` (a pin), and only
then swaps in the new table, so an alias never points at a version that is not loaded. A version that
fails to load is reported on ``/models/{name}``; its alias answers 503 and takes no canary traffic.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from prometheus_client import Counter

from service.engine.registry import Registry
from service.errors import NotFound, Unavailable
from service.rollout.state import STABLE, Rollout, Shadow, path_of, read

logger = logging.getLogger(__name__)

BUCKETS = 10_000  # a weight's resolution: 0.01 %

ALIAS_REQUESTS = Counter(
    "lstm_service_alias_requests",
    "Requests answered through an alias (canary split or named), by model, alias and version.",
    ("model", "alias", "version"),
)


@dataclass(frozen=True)
class Table:
    """One model's routing, built from its rollout once every version it names is loaded."""

    rollout: Rollout
    aliases: Mapping[str, int]  # the aliases whose version is loaded
    weighted: tuple[tuple[int, str, int], ...] = ()  # (bucket bound, alias, version), bounds ascending
    shadow: Shadow | None = None
    failed: Mapping[str, str] = field(default_factory=dict)  # alias -> why it does not answer

    def to_dict(self) -> dict[str, object]:
        return {**self.rollout.to_dict(), "not_served": dict(self.failed)}


def bucket(key: str) -> int:
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


class Router:
    def __init__(self, registry: Registry, store: Path, poll_seconds: float = 1.0) -> None:
        self.registry = registry
        self.store = Path(store)
        self.poll_seconds = poll_seconds
        self._tables: Mapping[str, Table] = MappingProxyType({})  # replaced whole, read without a lock
        self._seen: dict[str, tuple[int, int, int] | None] = {}
        # One refresh at a time (the poller, an admin call, another worker's change): a refresh that read an
        # older file must not swap its table in after one that read the newer file.
        self._refreshing = threading.Lock()

    @property
    def active(self) -> bool:
        """Does any model have a rollout? (Without one every lookup is the registry's own.)"""
        return bool(self._tables)

    def table(self, name: str) -> Table | None:
        return self._tables.get(name)

    def describe(self, name: str) -> dict[str, object]:
        """The model's rollout as ``/models/{name}`` and the admin routes show it: the table in force, else
        the file (a model without aliases or shadow keeps its history), else what is wrong with the file."""
        table = self._tables.get(name)
        if table is not None:
            return table.to_dict()
        try:
            return {**read(self.store, name).to_dict(), "not_served": {}}
        except ValueError as error:  # a hand-edited file gone wrong: the model itself is still described
            return {"error": str(error).replace(str(self.store), "<model_store>")}

    # -- the request path -------------------------------------------------------------------------------

    def choose(
        self, name: str | None, version: int | str | None, texts: Sequence[str] | None, key: str | None
    ) -> tuple[int | None, str | None]:
        """The version to ask the registry for (None: the one it serves) and the alias that chose it."""
        table = self._tables.get(name) if name is not None else None
        if isinstance(version, str):
            if table is None or version not in table.aliases:
                if table is not None and version in table.failed:
                    raise Unavailable(f"model {name} alias {version}: {table.failed[version]}")
                known = ", ".join(sorted(table.aliases)) if table is not None else ""
                raise NotFound(f"model {name} has no alias {version!r} (aliases: {known or 'none'})")
            chosen, alias = table.aliases[version], version
        elif version is not None or table is None:
            return version, None
        else:
            split, chosen_by = self._split(table, texts, key)
            if split is None or chosen_by is None:
                return None, None
            chosen, alias = split, chosen_by
        ALIAS_REQUESTS.labels(name, alias, str(chosen)).inc()
        return chosen, alias

    def number(self, name: str, version: int | str | None) -> int | None:
        """A version named by number or by alias as its number (None stays None): for the routes that
        describe a version (metadata, readiness, statistics) rather than run it."""
        if not isinstance(version, str):
            return version
        chosen, _ = self.choose(name, version, None, None)
        return chosen

    def _split(
        self, table: Table, texts: Sequence[str] | None, key: str | None
    ) -> tuple[int | None, str | None]:
        if table.weighted:
            point = bucket(key if key is not None else "\x1f".join(texts or ()))
            for bound, alias, version in table.weighted:
                if point < bound:
                    return version, alias
        stable = table.aliases.get(STABLE)
        return (stable, STABLE) if stable is not None else (None, None)

    # -- following the rollout files --------------------------------------------------------------------

    def _stat(self, name: str) -> tuple[int, int, int] | None:
        try:
            info = os.stat(path_of(self.store, name))
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def refresh(self, names: Sequence[str] | None = None, force: bool = False) -> list[str]:
        """Apply the rollout files that changed (all of ``names`` with ``force``); blocking: loads versions.
        Returns the models whose routing changed."""
        with self._refreshing:
            return self._refresh(names, force)

    def _refresh(self, names: Sequence[str] | None, force: bool) -> list[str]:
        changed = []
        for name in names if names is not None else self.registry.names:
            seen = self._stat(name)
            if not force and name in self._seen and self._seen[name] == seen:
                continue
            self._seen[name] = seen
            try:
                if self._apply(name):
                    changed.append(name)
            except Exception:  # one model's trouble never stops the others' rollouts
                self._seen.pop(name, None)  # tried again at the next poll
                logger.exception("model %s: applying its rollout file failed", name)
        return changed

    def refresh_one(self, name: str) -> None:
        """Apply a model's rollout file now (another worker changed it)."""
        self.refresh([name], force=True)

    def _apply(self, name: str) -> bool:
        try:
            state = read(self.store, name)
        except ValueError as error:
            logger.error("model %s: %s; the routing in force is kept", name, error)
            return False
        previous = self._tables.get(name)
        if previous is not None and previous.rollout.revision == state.revision and previous.rollout == state:
            return False
        if name not in self.registry.names:
            return False
        failed: dict[str, str] = {}
        stable = state.aliases.get(STABLE)
        serving = self.registry.serving_versions.get(name)
        if stable is not None and serving != stable:
            outcome = self.registry.reload(name, stable, pin=True, kind="promote")
            if not outcome.loaded:
                failed[STABLE] = f"version {stable} could not be loaded: {outcome.reason}"
        elif stable is None and previous is not None and STABLE in previous.rollout.aliases:
            self.registry.reload(name, None, pin=False, kind="rollback")  # the highest promoted serves again
        refused = self.registry.hold(name, state.versions())
        loaded = self.registry.loaded_versions(name)
        aliases = {alias: version for alias, version in state.aliases.items() if version in loaded}
        for alias, version in state.aliases.items():
            if version not in loaded and alias not in failed:
                failed[alias] = f"version {version} could not be loaded: {refused.get(version, 'not loaded')}"
        weighted, bound = [], 0
        for alias in sorted(state.weights):
            share = round(state.weights[alias] * BUCKETS / 100)
            if alias in aliases and share > 0:
                bound += share
                weighted.append((bound, alias, aliases[alias]))
        shadow = state.shadow if state.shadow is not None and state.shadow.version in loaded else None
        if state.shadow is not None and shadow is None:
            failed["shadow"] = f"version {state.shadow.version} could not be loaded: " + refused.get(
                state.shadow.version, "not loaded"
            )
        table = Table(state, MappingProxyType(aliases), tuple(weighted), shadow, MappingProxyType(failed))
        tables = {key: value for key, value in self._tables.items() if key != name}
        if not state.empty or failed:
            tables[name] = table
        self._tables = MappingProxyType(tables)
        for alias, why in failed.items():
            logger.error("model %s: %s is not served: %s", name, alias, why)
        logger.info(
            "model %s: rollout revision %d applied (aliases %s; shadow %s)",
            name,
            state.revision,
            ", ".join(
                f"{a}={v}" + (f" {state.weights[a]:g}%" if a in state.weights else "")
                for a, v in sorted(aliases.items())
            )
            or "none",
            f"version {shadow.version} at {shadow.percent:g}%" if shadow is not None else "none",
        )
        return True

    async def watch(self) -> None:
        """Follow the rollout files until cancelled."""
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:
                logger.exception("following the rollout files failed; trying again")
