"""The real image, built and run with the container engine this machine has (docker, else podman).

Built once per session from the repository's Dockerfile (``conftest.py``), run the way the docs say to run
it in production (``--read-only`` with a tmpfs at /tmp, published on a free loopback port), then checked
from outside: its labels and locked versions, health check, /classify on the default models (and on a store
mounted by the user), non-root, no torch, and a clean, drained stop within docker's default 10 s. The image
size and cold start go to the summary. Without an engine every test here is skipped.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from support.containers import READY_DEADLINE_S, ROOT, STORE_IN_IMAGE, Engine, Running, build_labels

DEFAULT_MODELS = ("news-topic", "review-sentiment-zh")

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]


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
        running = run_container(
            "-v", f"{store}:{STORE_IN_IMAGE}:ro", "-e", "LSTM_SERVICE_DEFAULT_MODEL=tiny-en"
        )
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
    """/classify on the model's golden texts gives softmax(torch logits / T) recorded at training time (T:
    the bundle's calibration temperature, 1 without one)."""
    version = max(int(p.name) for p in (store / name).iterdir() if p.name.isdigit())
    manifest = bundle_manifest(store, name, version)
    labels = json.loads((store / name / str(version) / "labels.json").read_text(encoding="utf-8"))
    golden = manifest["golden"][:4]
    temperature = float((manifest.get("calibration") or {}).get("temperature", 1.0))
    status, body = running.post("/classify", {"model": name, "texts": [g["text"] for g in golden]})
    assert status == 200, body
    assert body["model"] == name and int(body["version"]) == version
    assert len(body["results"]) == len(golden)
    for example, result in zip(golden, body["results"], strict=True):
        assert set(result["scores"]) == set(labels)
        assert result["label"] == max(result["scores"], key=result["scores"].get)
        if manifest.get("variant", "fp32") == "fp32":  # an int8 variant's golden logits are its own
            scaled = [logit / temperature for logit in example["logits"]]
            expected = dict(zip(labels, softmax(scaled), strict=True))
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
        else run_container(
            "-v", f"{mountable_store}:{STORE_IN_IMAGE}:ro", "-e", "LSTM_SERVICE_DEFAULT_MODEL=tiny-en"
        )
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
