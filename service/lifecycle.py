"""Whether this process is draining: set once on SIGTERM (see :mod:`service.server`), read by readiness.

Draining is a property of the process, not of one app object, so it lives here: the uvicorn server that
catches the signal and the routes that report it share nothing else. Tests that drain an in-process app
call :func:`reset` afterwards.
"""

from __future__ import annotations

import time


class _Lifecycle:
    def __init__(self) -> None:
        self.draining_since: float | None = None  # time.monotonic() when draining began

    @property
    def draining(self) -> bool:
        return self.draining_since is not None

    def begin_draining(self) -> bool:
        """Mark the process as draining; False if it already was. Safe to call from a signal handler."""
        if self.draining_since is not None:
            return False
        self.draining_since = time.monotonic()
        return True

    def reset(self) -> None:
        self.draining_since = None


LIFECYCLE = _Lifecycle()


def is_draining() -> bool:
    return LIFECYCLE.draining


def begin_draining() -> bool:
    return LIFECYCLE.begin_draining()


def reset() -> None:
    LIFECYCLE.reset()
