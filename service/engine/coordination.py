"""Every worker of one server applies the same admin changes (load, pin, unload), in the same order.

With ``--workers N`` an admin call reaches one worker. That worker appends the change to a shared log,
a JSON file in a folder all workers of the server share, and applies it; every other worker watches the
file (one ``stat`` every :data:`WATCH_SECONDS`), applies what it has not applied yet, in order, and says
so in its own acknowledgement file. The admin call answers once every live worker has acknowledged the
change, or after :data:`WAIT_SECONDS` with the count of workers it reached (the others apply it as soon
as their current load finishes). A worker that starts later (a replacement for one that died) applies
the whole log before it serves.

The supervisor creates a fresh folder for each run of a server (so a restart starts from the configuration
again) and hands it to its workers (:mod:`service.engine.workers_folder`, which also refuses a folder
another user could write to, and never opens a file in it through a symbolic link). A single process, or
an app built outside a supervisor's worker (tests), has none (:func:`shared_folder` returns None).
Whatever the log holds is checked before it is applied: an entry that is not a well-formed action on a
valid model name is skipped with an ERROR line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.bundle import is_valid_name, is_valid_version
from service.engine import workers_folder
from service.engine.registry import LoadOutcome, Registry
from service.errors import ServiceError

logger = logging.getLogger(__name__)

WATCH_SECONDS = 0.05  # how often a worker looks at the log file (a stat call)
WAIT_SECONDS = 20.0  # how long an admin call waits for the other workers
LOG_FILE, LOCK_FILE = "actions.json", "lock"
_OPERATIONS = frozenset({"load", "unload", "rollout"})  # rollout: re-read the model's rollout file


def shared_folder(workers: int) -> Path | None:
    """The folder the workers of this server share (None for a single process); raises
    :class:`~service.engine.workers_folder.FolderRefused` for a folder another user could write to."""
    if workers <= 1:
        return None
    return workers_folder.handed_folder()


def valid_action(entry: object) -> bool:
    """Is ``entry`` an action a worker may apply: an id, a known operation on a valid model name, and
    for a load an optional valid version and pin flag?"""
    if not isinstance(entry, dict):
        return False
    version, pin = entry.get("version"), entry.get("pin")
    return (
        is_valid_version(entry.get("id"))
        and entry.get("op") in _OPERATIONS
        and is_valid_name(entry.get("name"))
        and (version is None or is_valid_version(version))
        and (pin is None or isinstance(pin, bool))
    )


@dataclass(frozen=True)
class Reach:
    """How many workers of the server applied a change when the answer was written."""

    applied: int
    workers: int

    def to_dict(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"applied": self.applied, "of": self.workers}
        if self.applied < self.workers:
            answer["note"] = (
                f"applied in {self.applied} of {self.workers} workers so far; the others apply it as soon as "
                "the load they are busy with finishes"
            )
        return answer


class Coordinator:
    """One worker's side of the shared log (or, without a folder, a pass-through to the registry)."""

    def __init__(
        self,
        registry: Registry,
        folder: Path | None,
        workers: int,
        on_rollout: Callable[[str], Any] | None = None,
    ) -> None:
        self.registry = registry
        self.on_rollout = on_rollout  # applies a model's changed rollout file (service.rollout.routing)
        self.folder = folder
        self.workers = workers if folder is not None else 1
        self.applied = 0  # the id of the last action this worker applied
        self._applying = threading.Lock()  # the watcher and an admin call may catch up at the same time
        self._seen: tuple[int, int] | None = None  # the log file's (mtime_ns, size) when last read

    # -- the log ----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl  # POSIX only, like the supervisor's worker processes that need it

        assert self.folder is not None
        descriptor = workers_folder.open_lock(self.folder / LOCK_FILE)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # releases the lock

    def _read_log(self) -> list[dict[str, Any]]:
        """The log's well-formed actions, in order; anything else is skipped with an ERROR line."""
        assert self.folder is not None
        try:
            entries = json.loads(workers_folder.read_text(self.folder / LOG_FILE))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as error:
            logger.error("the workers' admin log is unreadable and is ignored: %s", error)
            return []
        if not isinstance(entries, list):
            logger.error("the workers' admin log is not a list of actions and is ignored")
            return []
        actions: list[dict[str, Any]] = []
        for entry in entries:
            if valid_action(entry) and (not actions or entry["id"] > actions[-1]["id"]):
                actions.append(entry)
            else:
                logger.error("skipping a malformed entry of the workers' admin log: %.200r", entry)
        return actions

    def _append(self, action: dict[str, Any]) -> int:
        assert self.folder is not None
        actions = self._read_log()
        action = {**action, "id": (actions[-1]["id"] if actions else 0) + 1}
        staging = self.folder / f".{LOG_FILE}.{os.getpid()}"
        workers_folder.replace_text(self.folder / LOG_FILE, json.dumps([*actions, action]), staging)
        return int(action["id"])

    def _acknowledge(self) -> None:
        assert self.folder is not None
        staging = self.folder / f".ack-{os.getpid()}"
        workers_folder.replace_text(self.folder / f"ack-{os.getpid()}", str(self.applied), staging)

    def reached(self, action_id: int) -> int:
        """Live workers that applied ``action_id`` (their acknowledgement files say so)."""
        assert self.folder is not None
        count = 0
        for path in self.folder.glob("ack-*"):
            try:
                pid = int(path.name.removeprefix("ack-"))
                applied = int(workers_folder.read_text(path))
            except (OSError, ValueError):
                continue
            if applied >= action_id and workers_folder.alive(pid):
                count += 1
        return count

    def leave(self) -> None:
        """At shutdown: withdraw this worker's acknowledgement; the last worker out removes the folder."""
        if self.folder is None:
            return
        (self.folder / f"ack-{os.getpid()}").unlink(missing_ok=True)
        if not any(self.folder.glob("ack-*")):
            shutil.rmtree(self.folder, ignore_errors=True)

    # -- applying ---------------------------------------------------------------------------------------

    def _apply(self, action: dict[str, Any]) -> None:
        name = action["name"]
        if not valid_action(action):  # the log's reader checked it already; a caller might not have
            logger.error("refusing a malformed admin action: %.200r", action)
            return
        try:
            if action["op"] == "rollout":
                if self.on_rollout is not None:
                    self.on_rollout(name)
            elif action["op"] == "unload":
                self.registry.unload(name)
            else:
                self.registry.reload(name, action.get("version"), pin=action.get("pin"), kind="admin")
        except ServiceError as error:  # e.g. unloaded here already: the state asked for holds
            logger.info("admin %s of %s from another worker: %s", action["op"], name, error.message)

    def catch_up(self) -> None:
        """Apply every logged action this worker has not applied yet (blocking: run it in a thread)."""
        if self.folder is None:
            return
        with self._applying:
            for action in self._read_log():
                if action["id"] > self.applied:
                    self._apply(action)
                    self.applied = action["id"]
            self._acknowledge()

    def _changed(self) -> bool:
        assert self.folder is not None
        try:
            info = (self.folder / LOG_FILE).stat()
        except FileNotFoundError:
            return False
        seen = (info.st_mtime_ns, info.st_size)
        if seen == self._seen:
            return False
        self._seen = seen
        return True

    async def watch(self) -> None:
        """Apply the other workers' admin changes until cancelled."""
        if self.folder is None:
            return
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            if self._changed():
                try:
                    await asyncio.to_thread(self.catch_up)
                except Exception:
                    self._seen = None  # try again at the next look
                    logger.exception("applying the other workers' admin changes failed; trying again")

    # -- the admin calls --------------------------------------------------------------------------------

    def run(self, action: dict[str, Any], here: Callable[[], Any]) -> tuple[Any, int | None]:
        """Apply ``action`` here (``here()`` does it and returns its outcome) and log it for the other
        workers unless it was refused here; returns the outcome and the action's id (None: not logged)."""
        if self.folder is None:
            return here(), None
        with self._locked():
            self.catch_up()
            with self._applying:
                outcome = here()  # raises for a refused unload: nothing logged
                if isinstance(outcome, LoadOutcome) and outcome.missing:
                    return outcome, None
                action_id = self._append(action)
                self.applied = action_id
                self._acknowledge()
        return outcome, action_id

    async def reach(self, action_id: int | None) -> Reach:
        """Wait until every worker applied ``action_id`` (at most :data:`WAIT_SECONDS`)."""
        if self.folder is None or action_id is None:  # one process, or nothing changed anywhere
            return Reach(self.workers, self.workers)
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            applied = await asyncio.to_thread(self.reached, action_id)
            if applied >= self.workers or time.monotonic() > deadline:
                return Reach(min(applied, self.workers), self.workers)
            await asyncio.sleep(WATCH_SECONDS)
