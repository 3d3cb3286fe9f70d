"""Moved to :mod:`support.live_server`; these names stay importable from here until every test imports
them from there."""

from support.live_server import (
    REPO,
    STARTUP_DEADLINE_SECONDS,
    LiveServer,
    Load,
    Outcome,
    Refused,
    Reply,
    call,
    free_port,
)

__all__ = [
    "REPO",
    "STARTUP_DEADLINE_SECONDS",
    "LiveServer",
    "Load",
    "Outcome",
    "Refused",
    "Reply",
    "call",
    "free_port",
]
