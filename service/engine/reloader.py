"""Polling the store for new versions and new models (``LSTM_SERVICE_RELOAD_INTERVAL_SECONDS``; 0 = off).

Every interval, each served and unpinned model whose store holds a newer promoted version than the one
serving is loaded and verified beside it, then swapped in (:meth:`Registry.reload_if_newer`); a model
the store gained is loaded too, unless an admin unloaded it. A new model that fails is logged and counted
(``model_loads_total``), not listed: it never served. A version that fails is
not retried until its files change (size or modification time), so a broken bundle costs one attempt and
one log line, not one per interval. Each worker process polls for itself, which is how every worker of a
``--workers N`` server converges on the same version (an admin call reaches one worker only).

A version folder still being copied into the store (``cp -r``, ``rsync``) is left alone until it settles
(``LSTM_SERVICE_RELOAD_SETTLE_SECONDS``): its files must look the same at two polls in a row and none may
have changed within the settle time. Until then one WARNING says it is waiting; nothing is loaded, counted
as failed or reported by ``/readyz``. A bundle written with ``write_bundle`` appears whole (renamed into
place) and settles at the next poll once the settle time has passed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from service.bundle import list_models, promoted_versions
from service.engine.registry import LoadOutcome, ModelState, Registry

logger = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(folder: Path) -> Fingerprint:
    """Name, size and modification time of each file of a bundle folder (empty if it is gone)."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return ()
    stats = []
    for entry in entries:
        try:
            info = entry.stat()
        except OSError:
            continue
        stats.append((entry.name, info.st_size, info.st_mtime_ns))
    return tuple(stats)


def tree_fingerprint(folder: Path) -> tuple[Fingerprint, int]:
    """Relative path, size and modification time of every file under ``folder``, and the newest
    modification time (ns; 0 for an empty or missing folder)."""
    stats = []
    for parent, _, names in os.walk(folder):
        for name in names:
            path = Path(parent, name)
            try:
                info = path.stat()
            except OSError:
                continue  # removed while walking: the next poll sees the change
            stats.append((path.relative_to(folder).as_posix(), info.st_size, info.st_mtime_ns))
    stats.sort()
    return tuple(stats), max((mtime for _, _, mtime in stats), default=0)


def newer_versions(registry: Registry) -> dict[str, int]:
    """Served, unpinned models whose store holds a newer promoted version than the one serving, and
    models the store gained (not unloaded by an admin) with their highest."""
    serving, pinned, unloaded = registry.serving_versions, registry.pinned, registry.unloaded
    statuses = registry.statuses()
    found = {}
    for name in sorted(set(statuses) | (set(list_models(registry.store)) - unloaded)):
        if name in pinned or (name in statuses and statuses[name].state is ModelState.evicted):
            continue  # pinned; or out of memory under the model budget: its next load takes the newest
        highest = next(iter(promoted_versions(registry.store, name)), None)
        active = serving.get(name)
        if highest is not None and (active is None or highest > active):
            found[name] = highest
    return found


class StorePoller:
    def __init__(self, registry: Registry, interval_seconds: float, settle_seconds: float = 0.0) -> None:
        self.registry = registry
        self.interval_seconds = interval_seconds
        self.settle_seconds = settle_seconds  # 0: a version is loaded as soon as it is seen
        self.polls = 0  # polls finished (with or without an error): "the poller looked and did nothing"
        self._refused: dict[tuple[str, int], Fingerprint] = {}
        self._seen: dict[tuple[str, int], Fingerprint] = {}  # unsettled versions' files at the last poll
        self._waiting: set[tuple[str, int]] = set()  # unsettled versions already logged

    def _settled(self, name: str, version: int) -> bool:
        """Whether the version's files have stopped changing (always, with no settle time)."""
        if self.settle_seconds <= 0:
            return True
        key = (name, version)
        files, newest = tree_fingerprint(self.registry.store / name / str(version))
        previous, self._seen[key] = self._seen.get(key), files
        # A modification time in the future (a copy from a host whose clock is ahead) is no evidence of a
        # write in progress; the two identical polls still are required.
        age = time.time() - newest / 1e9
        if files and files == previous and not 0 <= age < self.settle_seconds:
            self._seen.pop(key, None)
            if key in self._waiting:
                self._waiting.discard(key)
                logger.info("model %s version %s stopped changing; loading it", name, version)
            return True
        if key not in self._waiting:
            self._waiting.add(key)
            logger.warning(
                "model %s version %s is still being written to the store (its files changed within the last "
                "%s s); it is loaded once they stop changing",
                name,
                version,
                self.settle_seconds,
            )
        return False

    def poll_once(self) -> list[LoadOutcome]:
        """Load every newer version found now (blocking: run it in a thread)."""
        outcomes = []
        for name, version in newer_versions(self.registry).items():
            files = fingerprint(self.registry.store / name / str(version))
            if self._refused.get((name, version)) == files:
                continue  # refused before and unchanged since
            if not self._settled(name, version):
                continue  # still being copied in: neither loaded nor counted as failed
            outcome = self.registry.reload_if_newer(name, version)
            if outcome is None:
                continue
            if outcome.loaded:
                self._refused.pop((name, version), None)
            else:
                self._refused[(name, version)] = files
            outcomes.append(outcome)
        return outcomes

    async def run(self) -> None:
        """Poll until cancelled; an unexpected error is logged and the next interval tries again."""
        interval = self.interval_seconds
        logger.info("polling %s for new model versions every %s s", self.registry.store, interval)
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.poll_once)
            except Exception:
                logger.exception("polling the model store failed; trying again in %s s", interval)
            self.polls += 1
