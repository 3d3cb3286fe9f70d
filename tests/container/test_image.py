"""The real image, built and run with the container engine this machine has (docker, else podman).

Built once per module from the repository's Dockerfile, run the way the docs say to run it in production
(``--read-only`` with a tmpfs at /tmp, published on a free loopback port), then checked from outside:
health check, /classify on the default models (and on a store mounted by the user), non-root, no torch,
and a clean, drained stop within docker's default 10 s. The image size and cold start go to the summary.

Needs an engine: ``make test-container`` (on the project machines, run ../shared/tools/container-sandbox.sh
first; docker/ci-container.sh does both). Without one every test here is skipped.
Environment: BASE_IMAGE (build argument), CONTAINER_ENGINE (docker or podman, to force one).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/lstm-service:test"
LOCAL_BASE = "localhost/python:3.11-slim-bookworm"  # what ../shared/tools/container-sandbox.sh builds
DEFAULT_MODELS = ("news-topic", "review-sentiment-zh")
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

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]


# ---- the engine ----------------------------------------------------------------------------------------


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


@pytest.fixture(scope="module")
def engine() -> Engine:
    forced = os.environ.get("CONTAINER_ENGINE")
    for name in [forced] if forced else ["docker", "podman"]:
        executable = shutil.which(name)
        if executable and _works(executable):  # a docker client without a daemon does not count
            return Engine(executable)
    pytest.skip(
        "no working container engine (docker or podman); on the project machines run "
        "../shared/tools/container-sandbox.sh as root first"
    )


# ---- build once ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def image(engine: Engine, container_report: dict[str, str]) -> str:
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
        args += ["--build-arg", f"{name}={value}"]
    started = time.monotonic()
    engine(*args, str(ROOT), timeout=1500)
    container_report["engine"] = engine.name
    container_report["base image"] = base or "Dockerfile default (python:3.12-slim)"
    container_report["image build"] = f"{time.monotonic() - started:.0f} s (with the engine's layer cache)"
    return IMAGE


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


def test_image_carries_the_oci_labels(engine: Engine, image: str) -> None:
    labels = engine.inspect("image", image)["Config"]["Labels"]
    expected = build_labels()
    for name in ("version", "revision", "created", "source"):
        assert labels[f"org.opencontainers.image.{name}"] == expected[name.upper()], name


def test_installed_versions_are_the_locked_ones(engine: Engine, image: str) -> None:
    """Every distribution in the image is pinned by requirements/serve.txt at that version (for the
    image's Python), and every pin that applies is installed: two builds install the same versions."""
    listing = engine(
        "run",
        "--rm",
        "--entrypoint",
        "python",
        image,
        "-c",
        "import importlib.metadata as m, platform; print(platform.python_version()); "
        "print('\\n'.join(sorted(f'{d.name}=={d.version}' for d in m.distributions())))",
    ).stdout.split()
    python, installed = listing[0], dict(line.split("==") for line in listing[1:])
    installed = {canonicalize_name(name): version for name, version in installed.items()}
    assert installed.pop("lstm-service") == build_labels()["VERSION"]
    environment = {"python_full_version": python, "python_version": ".".join(python.split(".")[:2])}
    locked = {}
    for line in (ROOT / "requirements" / "serve.txt").read_text(encoding="utf-8").splitlines():
        if line[:1].isalnum():
            requirement = Requirement(line.rstrip(" \\"))
            if requirement.marker is None or requirement.marker.evaluate(environment):
                (version,) = [spec.version for spec in requirement.specifier]
                locked[canonicalize_name(requirement.name)] = version
    assert installed == locked


def test_image_config(engine: Engine, image: str, container_report: dict[str, str]) -> None:
    """Non-root numeric user, port 8000, a HEALTHCHECK on /readyz, exec-form entrypoint; size reported."""
    info = engine.inspect("image", image)
    config = info["Config"]
    user = config["User"].split(":")[0]
    assert user.isdigit() and int(user) != 0, f"USER must be a numeric non-root uid, not {config['User']!r}"
    assert "8000/tcp" in config["ExposedPorts"]
    healthcheck = config.get("Healthcheck") or info.get("Healthcheck")
    assert healthcheck, "no HEALTHCHECK (podman: build with --format docker)"
    assert healthcheck["Test"][0] == "CMD" and "/readyz" in healthcheck["Test"][-1]
    assert healthcheck["StartPeriod"] >= 10 * 10**9  # nanoseconds: covers model loading
    assert config["Entrypoint"] == ["lstm-service"], "exec form, so the server itself receives SIGTERM"
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["LSTM_SERVICE_MODEL_STORE"] == STORE_IN_IMAGE and env["LSTM_SERVICE_HOST"] == "0.0.0.0"

    size = int(info["Size"])
    line = f"{size / 1e6:.0f} MB"
    base = container_report.get("base image", "")
    if base and engine.image_exists(base):
        base_size = int(engine.inspect("image", base)["Size"])
        line += f" ({base_size / 1e6:.0f} MB base {base} + {(size - base_size) / 1e6:.0f} MB added)"
    container_report["image size"] = line
    print(f"image size: {line}")


# ---- running containers --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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


@pytest.fixture(scope="module")
def run_container(engine: Engine, image: str) -> Iterator[Callable[..., Running]]:
    """``run_container(*extra_args)`` → a healthy container, removed at the end of the module."""
    started: list[Running] = []

    def run(*extra: str) -> Running:
        running = start(engine, image, *extra)
        started.append(running)
        return running

    yield run
    for running in started:
        kill_now = ["-t", "0"] if engine.name == "podman" else []  # podman rm -f would wait 10 s first
        engine("rm", "-f", *kill_now, running.cid, check=False, timeout=60)


@pytest.fixture(scope="module")
def mountable_store(tiny_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny store, readable by the image's non-root user (pytest's temporary folders are 0700),
    as a user's own store must be: ``chmod -R a+rX my_models``."""
    store = tmp_path_factory.mktemp("mounted") / "store"
    shutil.copytree(tiny_store, store)
    for path in [store, *store.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return store


def bundle_manifest(store: Path, name: str, version: int | str) -> dict[str, Any]:
    return json.loads((store / name / str(version) / "manifest.json").read_text(encoding="utf-8"))


def has_default_models(store: Path) -> bool:
    return all(any((store / name).glob("*/manifest.json")) for name in DEFAULT_MODELS)


@pytest.fixture(scope="module")
def served(
    run_container: Callable[..., Running], container_report: dict[str, str], request: pytest.FixtureRequest
) -> Running:
    """The image as shipped: the bundles baked into it (or, while model_store/ lacks the default models,
    a tiny store mounted over them, so everything but the default-model check still runs)."""
    if has_default_models(ROOT / "model_store"):
        running = run_container()
        running.notes.append("baked model_store")
        running.models = list(DEFAULT_MODELS)
    else:
        store: Path = request.getfixturevalue("mountable_store")
        running = run_container("-v", f"{store}:{STORE_IN_IMAGE}:ro")
        running.notes.append("tiny store mounted: model_store/ lacks the default models")
        running.models = ["tiny-en", "tiny-zh"]
    container_report["cold start (run -> healthy)"] = f"{running.cold_start_s:.1f} s ({running.notes[0]})"
    print(f"cold start: {running.cold_start_s:.1f} s")
    return running


# ---- what the running container does -------------------------------------------------------------------


def softmax(logits: list[float]) -> list[float]:
    top = max(logits)
    exps = [math.exp(value - top) for value in logits]
    return [value / sum(exps) for value in exps]


def check_classify(running: Running, store: Path, name: str) -> None:
    """/classify on the model's golden texts gives softmax(torch logits) recorded at training time."""
    version = max(int(p.name) for p in (store / name).iterdir() if p.name.isdigit())
    manifest = bundle_manifest(store, name, version)
    labels = json.loads((store / name / str(version) / "labels.json").read_text(encoding="utf-8"))
    golden = manifest["golden"][:4]
    status, body = running.post("/classify", {"model": name, "texts": [g["text"] for g in golden]})
    assert status == 200, body
    assert body["model"] == name and int(body["version"]) == version
    assert len(body["results"]) == len(golden)
    for example, result in zip(golden, body["results"], strict=True):
        assert set(result["scores"]) == set(labels)
        assert result["label"] == max(result["scores"], key=result["scores"].get)
        if manifest.get("variant", "fp32") == "fp32":  # an int8 variant's golden logits are its own
            expected = dict(zip(labels, softmax(example["logits"]), strict=True))
            for label in labels:
                assert result["scores"][label] == pytest.approx(expected[label], abs=1e-4), example["text"]


def test_becomes_healthy(served: Running) -> None:
    assert served.healthy()
    assert served.cold_start_s < READY_DEADLINE_S


def test_classify_default_models(served: Running) -> None:
    store = ROOT / "model_store"
    if not has_default_models(store):
        pytest.skip(f"model_store/ lacks the default models {DEFAULT_MODELS} (not trained yet)")
    for name in DEFAULT_MODELS:
        check_classify(served, store, name)


def test_classify_with_a_mounted_store(
    run_container: Callable[..., Running], served: Running, mountable_store: Path
) -> None:
    """Users mount their own store read-only over /models (``-v ./my_models:/models:ro``)."""
    running = (
        served
        if "tiny store" in served.notes[0]
        else run_container("-v", f"{mountable_store}:{STORE_IN_IMAGE}:ro")
    )
    for name in ("tiny-en", "tiny-zh"):
        check_classify(running, mountable_store, name)


def test_runs_as_non_root_with_the_server_as_pid_1(served: Running) -> None:
    uid = served.exec("id", "-u")
    assert uid.returncode == 0 and uid.stdout.strip() != "0", uid
    # exec-form entrypoint: PID 1 is the server itself, so `docker stop`'s SIGTERM reaches it
    cmdline = served.exec("cat", "/proc/1/cmdline").stdout.replace("\0", " ")
    assert "lstm-service" in cmdline and "sh -c" not in cmdline, cmdline


def test_root_filesystem_is_read_only_and_tmp_writable(served: Running) -> None:
    probe = (
        "import os, tempfile\n"
        "for path in ('/opt/venv/probe', '/models/probe', '/probe'):\n"
        "    try:\n"
        "        open(path, 'w').close()\n"
        "    except OSError as error:\n"
        "        assert error.errno in (13, 30), (path, error)\n"  # EACCES / EROFS
        "    else:\n"
        "        raise SystemExit(f'{path} is writable')\n"
        "with tempfile.NamedTemporaryFile() as scratch:\n"
        "    scratch.write(b'ok')\n"
    )
    result = served.exec("python", "-c", probe)
    assert result.returncode == 0, result.stdout + result.stderr
    assert served.state()["Running"]


def test_torch_and_training_code_are_not_in_the_image(served: Running) -> None:
    for module in ("torch", "training"):
        result = served.exec("python", "-c", f"import {module}")
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, (module, result.stderr)
    result = served.exec("python", "-c", "import service.api.app, onnxruntime")
    assert result.returncode == 0, result.stderr


# Last: it stops the shared container.
def test_stop_drains_and_exits_zero(served: Running, container_report: dict[str, str]) -> None:
    """``stop -t 10`` sends SIGTERM: readiness turns 503 while requests are still answered (the drain),
    then the server exits 0 before the engine would fall back to SIGKILL."""
    model = served.models[0]
    started = time.monotonic()
    stop = subprocess.Popen(
        [served.engine.executable, "stop", "-t", "10", served.cid],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[tuple[int | None, int | None]] = []  # (/readyz, /classify) while stopping
    while stop.poll() is None and time.monotonic() - started < 30:
        seen.append((served.get_status("/readyz"), _classify_status(served, model)))
        time.sleep(0.2)
    stop.wait(timeout=30)
    elapsed = time.monotonic() - started
    served.stopped = True
    state, logs = served.state(), served.logs()
    container_report["stop -t 10"] = f"{elapsed:.1f} s, exit code {state['ExitCode']}"
    assert state["ExitCode"] == 0, f"exit code {state['ExitCode']} (137 = SIGKILL); logs:\n{logs[-3000:]}"
    assert elapsed < 10, "the engine had to fall back to SIGKILL"
    if not re.search("drain", logs, re.IGNORECASE):
        pytest.fail(f"no drain message in the logs after SIGTERM:\n{logs[-3000:]}")
    # during the drain window: not ready, yet still serving
    assert (503, 200) in seen, f"no moment with /readyz 503 and /classify 200 while stopping: {seen}"


def _classify_status(running: Running, model: str) -> int | None:
    try:
        return running.post("/classify", {"model": model, "text": "draining"})[0]
    except (OSError, ValueError):
        return None
