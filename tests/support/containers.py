"""The container engine (docker, else podman) and the image, for the tests in tests/container.

:func:`find_engine` picks a working engine; :func:`build_image` builds the repository's Dockerfile the way
docker/README.md says (the local base image where the project's sandbox made one, the OCI label arguments,
the proxy and mirror settings passed through); :func:`start` runs it read-only and waits for its own health
check. Environment: BASE_IMAGE (build argument), CONTAINER_ENGINE (docker or podman, to force one).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from support.network import free_port

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/lstm-service:test"
LOCAL_BASE = "localhost/python:3.11-slim-bookworm"  # what the project's container sandbox script builds
STORE_IN_IMAGE = "/models"
READY_DEADLINE_S = 120.0
# Passed through to the build when set, for hosts behind a proxy or with a package mirror.
BUILD_ENV = (
    "PIP_INDEX_URL",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)


def _works(executable: str) -> bool:
    try:
        return subprocess.run([executable, "info"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass
class Engine:
    executable: str

    @property
    def name(self) -> str:
        return Path(self.executable).name

    def __call__(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.executable, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{self.name} {' '.join(args[:3])}... exited {result.returncode}:\n"
                f"{(result.stdout + result.stderr)[-4000:]}"
            )
        return result

    def image_exists(self, image: str) -> bool:
        return self("image", "inspect", image, check=False).returncode == 0

    def inspect(self, what: str, name: str) -> dict[str, Any]:
        return json.loads(self(what, "inspect", name).stdout)[0]


def find_engine() -> Engine | None:
    """docker, else podman (or CONTAINER_ENGINE), if one answers ``info``."""
    forced = os.environ.get("CONTAINER_ENGINE")
    for name in [forced] if forced else ["docker", "podman"]:
        executable = shutil.which(name)
        if executable and _works(executable):  # a docker client without a daemon does not count
            return Engine(executable)
    return None


def _git(*args: str) -> str:
    try:
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except OSError:
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def build_labels() -> dict[str, str]:
    """The build arguments behind the OCI labels, as docker/README.md says to pass them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {
        "VERSION": project["version"],
        "REVISION": _git("rev-parse", "HEAD") or "unknown",
        "CREATED": _git("log", "-1", "--format=%cI") or "unknown",
        "SOURCE": _git("remote", "get-url", "origin") or "local",
    }


def build_image(engine: Engine, report: dict[str, str]) -> str:
    """Build the repository's Dockerfile as :data:`IMAGE`; what was built goes to ``report``."""
    args = ["build", "-t", IMAGE, "-f", str(ROOT / "Dockerfile")]
    if engine.name == "podman":
        args += ["--format", "docker"]  # the OCI format drops HEALTHCHECK
        cert = os.environ.get("PIP_CERT")
        if cert and Path(cert).is_file():  # this sandbox's TLS proxy: pip inside RUN must trust it
            args += ["-v", f"{cert}:{cert}:ro"]
    base = os.environ.get("BASE_IMAGE") or (LOCAL_BASE if engine.image_exists(LOCAL_BASE) else None)
    if base:
        args += ["--build-arg", f"BASE_IMAGE={base}"]
    for name in BUILD_ENV:
        if os.environ.get(name):
            args += ["--build-arg", name]  # value taken from the environment, never written down
    for name, value in build_labels().items():
        # --label as well: podman (buildah) reuses a cached LABEL layer when only the value of the build
        # argument behind it changed, so a second clone of one commit would carry the first clone's labels.
        args += ["--build-arg", f"{name}={value}"]
        args += ["--label", f"org.opencontainers.image.{name.lower()}={value}"]
    started = time.monotonic()
    engine(*args, str(ROOT), timeout=1500)
    report["engine"] = engine.name
    report["base image"] = base or "Dockerfile default (python:3.12-slim)"
    report["image build"] = f"{time.monotonic() - started:.0f} s (with the engine's layer cache)"
    return IMAGE


@dataclass
class Running:
    engine: Engine
    cid: str
    port: int
    cold_start_s: float = math.nan
    stopped: bool = False
    models: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def logs(self) -> str:
        result = self.engine("logs", self.cid, check=False)
        return result.stdout + result.stderr

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return self.engine("exec", self.cid, *command, check=False, timeout=60)

    def state(self) -> dict[str, Any]:
        return self.engine.inspect("container", self.cid)["State"]

    def healthy(self) -> bool:
        if self.engine.name == "podman":  # podman runs scheduled checks only under systemd: run it now
            return self.engine("healthcheck", "run", self.cid, check=False).returncode == 0
        return (self.state().get("Health") or {}).get("Status") == "healthy"

    def post(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """POST ``body`` as JSON (GET without one) → (status, JSON body)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def get_status(self, path: str) -> int | None:
        """The status of GET ``path``, or None when nothing answers (listener closed)."""
        try:
            return self.post(path)[0]
        except (OSError, ValueError):  # refused, reset, timed out, a half-written body
            return None


def start(engine: Engine, image: str, *extra: str) -> Running:
    """Run the image read-only and wait, with a deadline, until its own health check passes."""
    port = free_port()
    args = ["run", "-d", "--read-only", "--tmpfs", "/tmp", "-p", f"127.0.0.1:{port}:8000"]
    if engine.name == "docker":
        args += ["--health-interval", "1s"]  # docker runs the check itself; look often while testing
    started = time.monotonic()
    cid = engine(*args, *extra, image).stdout.strip().splitlines()[-1]
    running = Running(engine, cid, port)
    while time.monotonic() - started < READY_DEADLINE_S:
        if running.healthy():
            running.cold_start_s = time.monotonic() - started
            return running
        if not running.state().get("Running", False):
            break
        time.sleep(0.5)
    logs = running.logs()
    engine("rm", "-f", cid, check=False)
    raise AssertionError(
        f"container never became healthy within {READY_DEADLINE_S:.0f} s; logs:\n{logs[-4000:]}"
    )
