"""What the protocol tests share: the credentials they send and the handle of a live server."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from support.apps import ADMIN_TOKEN

API_KEY = "test-api-key-0123456789"
KEY = {"Authorization": f"Bearer {API_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Server:
    url: str  # http://127.0.0.1:<port>
    port: int
    store: Path
    process: subprocess.Popen[bytes]
