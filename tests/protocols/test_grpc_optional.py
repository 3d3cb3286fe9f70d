"""gRPC is optional: the app imports no grpc module unless the port is set, and with the port set but the
grpc extra missing the start-up fails with a message that says what to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False
    )


def test_the_app_imports_no_grpc_module_without_the_port() -> None:
    finished = _run(
        "import sys; import service.api.app, service.api.oip_grpc.launch; "
        "loaded = sorted(name for name in sys.modules if name.split('.')[0] in ('grpc', 'grpc_health')); "
        "print(loaded)"
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "[]"


def test_the_port_without_the_extra_says_what_to_install() -> None:
    finished = _run(
        "import asyncio, sys; sys.modules['grpc'] = None; "
        "from service.api.oip_grpc.launch import start_grpc; asyncio.run(start_grpc(None))"
    )
    assert finished.returncode != 0
    assert "LSTM_SERVICE_GRPC_PORT is set but gRPC cannot be served" in finished.stderr
    assert "pip install 'lstm-service[grpc]'" in finished.stderr
