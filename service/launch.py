"""How ``lstm-service serve`` starts: one server process, or a supervisor of ``--workers`` processes.

It sits above both :mod:`service.server` (one uvicorn server) and :mod:`service.supervisor` (which runs
servers as worker processes), so that neither imports the other's caller.
"""

from __future__ import annotations

from typing import Any

from service.cpu_limit import hold_native_threads
from service.server import STARTUP_FAILURE, DrainingServer, uvicorn_config
from service.settings import Settings
from service.supervisor import supervise


def run(settings: Settings, log_config: dict[str, Any]) -> int:
    """Serve until told to stop; 0 after a clean shutdown, 3 if the server could not start."""
    # Before numpy and onnxruntime load (here, or in the workers, which inherit the environment).
    hold_native_threads(settings.workers, settings.intra_op_threads)
    if settings.workers > 1:
        return supervise(settings, log_config)
    server = DrainingServer(uvicorn_config(settings, log_config), settings.drain_seconds)
    server.run()
    return 0 if server.started else STARTUP_FAILURE
