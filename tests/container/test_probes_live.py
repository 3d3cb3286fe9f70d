"""The Kubernetes probes, as the rendered manifests configure them, against a real server process whose
store holds one corrupt bundle (the default model's): the startup probe passes once loading finished,
the readiness probe passes under the manifests' readiness policy while the healthy model serves, the
corrupt model answers 503, and ``model_ready`` reports it as failed. The same store under the "all"
policy is not ready, so the check can fail.

No cluster and no container engine needed: these run in ``make test``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.manifests import K8S, by_kind, env_of, render

ROOT = Path(__file__).resolve().parents[2]
STORE = ROOT / "model_store"
BROKEN, HEALTHY = "news-topic", "review-sentiment-zh"  # news-topic is the default model (first by name)
STARTUP_DEADLINE_S = 90.0

# Not `container` (which tests/container implies): a real server process, no engine, so `make test` runs it.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def _container() -> dict[str, Any]:
    (container,) = by_kind(render(K8S / "base"), "Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def request(port: int, path: str, body: dict[str, Any] | None = None) -> tuple[int, str]:
    data = None if body is None else json.dumps(body).encode()
    call = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(call, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture(scope="module")
def damaged_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's store with the default model's graph cut in half (its checksum no longer holds)."""
    if not all((STORE / name).is_dir() for name in (BROKEN, HEALTHY)):
        pytest.skip("model_store/ lacks the default models")
    store = Path(shutil.copytree(STORE, tmp_path_factory.mktemp("damaged") / "store"))
    (graph,) = sorted((store / BROKEN).glob("*/model.onnx"))
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])
    return store


def serve(store: Path, readiness: str) -> Iterator[int]:
    from support.network import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("LSTM_SERVICE_")}
    env.update(LSTM_SERVICE_READINESS=readiness, LSTM_SERVICE_WORKERS="1", LSTM_SERVICE_LOG_LEVEL="warning")
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--port", str(port), "--model-store", str(store)],
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def wait_for(port: int, path: str) -> None:
    """Poll ``path`` as the kubelet would until it answers 200 (the startup probe)."""
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    while time.monotonic() < deadline:
        try:
            if request(port, path)[0] == 200:
                return
        except OSError:  # not listening yet: still loading
            pass
        time.sleep(0.2)
    raise AssertionError(f"{path} never answered 200 within {STARTUP_DEADLINE_S:.0f} s")


@pytest.fixture(scope="module")
def container() -> dict[str, Any]:
    return _container()


@pytest.fixture(scope="module")
def manifest_server(damaged_store: Path, container: dict[str, Any]) -> Iterator[int]:
    readiness = env_of(container).get("LSTM_SERVICE_READINESS", "all")
    yield from serve(damaged_store, readiness)


def test_the_startup_probe_passes_although_a_bundle_is_corrupt(
    manifest_server: int, container: dict[str, Any]
) -> None:
    wait_for(manifest_server, container["startupProbe"]["httpGet"]["path"])


def test_the_pod_is_ready_and_the_healthy_model_serves(
    manifest_server: int, container: dict[str, Any]
) -> None:
    wait_for(manifest_server, container["startupProbe"]["httpGet"]["path"])

    status, body = request(manifest_server, container["readinessProbe"]["httpGet"]["path"])
    assert status == 200, body
    models = json.loads(body)["models"]
    assert models[BROKEN]["state"] == "failed" and models[HEALTHY]["state"] == "ready"

    assert request(manifest_server, "/classify", {"model": HEALTHY, "text": "质量很好"})[0] == 200
    status, body = request(manifest_server, "/classify", {"model": BROKEN, "text": "The striker scored"})
    assert status == 503 and json.loads(body)["error_type"] == "unavailable", body
    assert request(manifest_server, container["livenessProbe"]["httpGet"]["path"])[0] == 200


def test_model_ready_reports_the_failed_model(manifest_server: int, container: dict[str, Any]) -> None:
    wait_for(manifest_server, container["startupProbe"]["httpGet"]["path"])

    status, text = request(manifest_server, "/metrics")

    assert status == 200
    lines = [line for line in text.splitlines() if line.startswith("lstm_service_model_ready{")]
    assert any(
        f'model="{BROKEN}"' in line and 'state="failed"' in line and line.endswith(" 0.0") for line in lines
    )
    assert any(
        f'model="{HEALTHY}"' in line and 'state="ready"' in line and line.endswith(" 1.0") for line in lines
    )


def test_under_the_all_policy_the_same_store_is_not_ready(damaged_store: Path) -> None:
    for port in serve(damaged_store, "all"):
        wait_for(port, "/livez")
        status, body = request(port, "/readyz")
        assert status == 503 and BROKEN in json.loads(body)["error"], body
