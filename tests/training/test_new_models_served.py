"""Acceptance: a GRU model, a plain-RNN model and a multi-label model, each trained from CSV by the
training command and served by a real server process, answer /classify, /tokenize, /embed and
/hidden-states over HTTP. Everything tiny: each model trains in a few seconds."""

from __future__ import annotations

import json
import os
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
from support.data import tiny_examples, write_csv
from support.network import free_port

from training.data.datasets.make_multilabel import generate, write

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TINY = ["--embedding-dim", "16", "--hidden-dim", "16", "--max-length", "48", "--epochs", "6"]
TINY += ["--batch-size", "16", "--lr", "0.01", "--patience", "6", "--threads", "1", "--no-progress"]
TINY += ["--no-baseline", "--allow-weak"]  # tiny models, published whatever they learned


def _train(store: Path, run_root: Path, name: str, data: Path, *options: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "training.cli", "train", "--data", str(data), "--name", name]
    command += [
        "--store",
        str(store),
        "--run-dir",
        str(run_root / name),
        "--split-seed",
        "0",
        *TINY,
        *options,
    ]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def _call(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("new-models")
    store, runs = folder / "store", folder / "runs"
    single = write_csv(folder / "topics.csv", tiny_examples("en"))
    tags = write(generate(360, seed=5), folder / "tags.csv")
    results = {
        "tiny-gru": _train(store, runs, "tiny-gru", single, "--cell", "gru", "--num-layers", "2"),
        "tiny-rnn": _train(store, runs, "tiny-rnn", single, "--cell", "rnn", "--no-bidirectional"),
        "tiny-tags": _train(
            store, runs, "tiny-tags", tags, "--label-column", "labels", "--cell", "gru", "--epochs", "12"
        ),
    }
    for name, result in results.items():
        assert result.returncode == 0, f"{name}: {result.stderr[-3000:]}"
    return {"store": store, "runs": runs, "logs": {name: r.stderr for name, r in results.items()}}


@pytest.fixture(scope="module")
def port(trained: dict[str, Any]) -> Iterator[int]:
    port = free_port()
    command = [sys.executable, "-m", "service", "serve", "--model-store", str(trained["store"])]
    command += ["--port", str(port), "--log-level", "warning", "--drain-seconds", "0"]
    process = subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"the server exited with {process.returncode}"
            try:
                if _call(port, "GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server was not ready within 60 s"
            time.sleep(0.1)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_task_was_inferred_from_the_data_and_said_in_the_log(trained: dict[str, Any]) -> None:
    assert "task multi-label (inferred" in trained["logs"]["tiny-tags"]
    assert "task single-label (inferred" in trained["logs"]["tiny-gru"]


@pytest.mark.parametrize("name", ["tiny-gru", "tiny-rnn", "tiny-tags"])
def test_each_model_answers_the_four_text_routes(port: int, name: str) -> None:
    status, classified = _call(port, "POST", "/classify", {"model": name, "text": "the coach scored a goal"})
    assert status == 200, classified
    status, tokens = _call(port, "POST", "/tokenize", {"model": name, "text": "goal!"})
    assert status == 200 and tokens["results"][0]["tokens"][0]["text"] == "goal"
    status, embedded = _call(port, "POST", "/embed", {"model": name, "tokens": ["goal"], "neighbors": 2})
    assert status == 200 and len(embedded["results"][0]["tokens"][0]["vector"]) == 16, embedded
    status, states = _call(port, "POST", "/hidden-states", {"model": name, "text": "goal match"})
    assert status == 200, states
    result = states["results"][0]
    assert len(result["hidden_states"]) == 2
    if name == "tiny-rnn":
        assert states["directions"] == 1 and len(result["hidden_states"][0]) == 16
    # only an LSTM has a cell state: the answer says so instead of inventing one
    assert result["c_n"] is None and states["cell"] in ("gru", "rnn")


def test_multi_label_answer_has_every_sigmoid_score_and_the_labels_over_their_thresholds(port: int) -> None:
    status, model = _call(port, "GET", "/models/tiny-tags")
    assert status == 200 and model["task"] == "multi-label"
    thresholds = model["thresholds"]
    assert set(thresholds) == {"health", "music", "politics", "sports", "tech", "travel"}
    assert all(0 < value < 1 for value in thresholds.values())

    texts = [
        "the coach and the team won the match",
        "the weather today",
        "the band played guitar at the concert",
    ]
    status, answer = _call(port, "POST", "/classify", {"model": "tiny-tags", "texts": texts})
    assert status == 200, answer
    sports, nothing, music = answer["results"]
    for result in answer["results"]:
        scores = result["scores"]
        assert set(scores) == set(thresholds)
        assert result["labels"] == sorted(
            (label for label in scores if scores[label] >= thresholds[label]), key=lambda name: -scores[name]
        )
    assert "sports" in sports["labels"] and "music" in music["labels"]
    # sigmoid scores are independent: they need not sum to 1
    assert abs(sum(sports["scores"].values()) - 1.0) > 1e-3
