"""The folder the workers of one ``--workers N`` server share for their admin log, and safe files in it.

The supervisor creates the folder with :func:`tempfile.mkdtemp` (a fresh, unguessable name, mode 0700,
owned by the service's user) and hands its path to the workers in :data:`FOLDER_VARIABLE`. A worker uses a
path only if it is a real directory (not a symbolic link) owned by its own user with mode 0700: no other
local user can then place, replace or read a file in it. Files in it are never opened through a symbolic
link: new ones are created with ``O_CREAT | O_EXCL | O_NOFOLLOW``, existing ones opened with
``O_NOFOLLOW``.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

FOLDER_VARIABLE = "LSTM_WORKERS_SHARED_FOLDER"  # set by the supervisor for its workers only
PREFIX = "lstm-service-workers-"
_MODE = 0o700
_FILE_MODE = 0o600


class FolderRefused(RuntimeError):
    """The path handed to a worker is not a folder only the service's user can use."""


def create_folder(prefix: str = PREFIX) -> Path:
    """A new folder for one server's workers (the supervisor's call), named ``<prefix><pid>-...`` after
    the supervisor's pid; the folders with that prefix this user's servers left when they were killed
    (their pid is gone) are removed."""
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
    for other in folder.parent.glob(f"{prefix}*"):
        owner = other.name.removeprefix(prefix).split("-")[0]
        if other != folder and owner.isdigit() and not alive(int(owner)) and _ours(other):
            shutil.rmtree(other, ignore_errors=True)
    return folder


def _ours(path: Path) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()


def alive(pid: int) -> bool:
    """Is process ``pid`` running (whoever's it is)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_folder(path: Path) -> Path:
    """``path`` if it is a directory (not a link) owned by this process's user with mode 0700, else
    :class:`FolderRefused` saying what is wrong."""
    try:
        info = os.lstat(path)
    except OSError as error:
        raise FolderRefused(f"the workers' shared folder {path} cannot be read: {error.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise FolderRefused(f"the workers' shared folder {path} is not a directory (a link or a file)")
    if info.st_uid != os.geteuid():
        raise FolderRefused(
            f"the workers' shared folder {path} belongs to user id {info.st_uid}, not to the service's "
            f"user ({os.geteuid()})"
        )
    if stat.S_IMODE(info.st_mode) != _MODE:
        raise FolderRefused(
            f"the workers' shared folder {path} has mode {stat.S_IMODE(info.st_mode):o}; it must be 700"
        )
    return path


def handed_folder() -> Path | None:
    """The checked folder the supervisor handed this worker, or None (no supervisor: one process)."""
    value = os.environ.get(FOLDER_VARIABLE)
    return check_folder(Path(value)) if value else None


def read_text(path: Path) -> str:
    """The text of ``path``; ``OSError`` (ELOOP) if it is a symbolic link."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(descriptor, encoding="utf-8") as handle:
        return handle.read()


def replace_text(path: Path, text: str, staging: Path) -> None:
    """Write ``text`` to ``path`` at once (readers see the old file or the new one, never half of it):
    into a new ``staging`` file (an old one, or a link left there, is removed, never followed), then
    renamed over ``path`` (a rename replaces a link at ``path`` rather than writing through it)."""
    staging.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    descriptor = os.open(staging, flags, _FILE_MODE)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(staging, path)


def open_lock(path: Path) -> int:
    """A descriptor of the lock file (created if missing), never through a symbolic link."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(path, flags, _FILE_MODE)
