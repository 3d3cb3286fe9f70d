"""The service never needs torch or the training package: serve a request with both made unimportable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_SCRIPT = """
import sys
sys.modules["torch"] = None      # any `import torch` now raises ImportError
sys.modules["training"] = None

import asyncio
import httpx
from asgi_lifespan import LifespanManager
import service.cli  # the console script imports too
from service.api.app import create_app
from service.settings import Settings

async def main():
    app = create_app(Settings(model_store=sys.argv[1]))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            for model in ("tiny-en", "tiny-zh"):
                response = await client.post("/classify", json={"text": "goal 很好", "model": model})
                assert response.status_code == 200, response.text
            assert (await client.get("/readyz")).status_code == 200

asyncio.run(main())
assert sys.modules["torch"] is None and sys.modules["training"] is None
print("served without torch")
"""


def test_the_service_serves_with_torch_and_training_unimportable(tiny_store: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tiny_store)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert "served without torch" in result.stdout


def test_the_serving_command_points_training_commands_to_lstm_train() -> None:
    script = (
        "import sys; sys.modules['torch'] = None; sys.modules['training'] = None\n"
        "from service.cli import main; raise SystemExit(main(['train', '--dataset', 'bbc-news']))"
    )

    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 2
    assert "lstm-train train --help" in result.stderr and "Traceback" not in result.stderr
