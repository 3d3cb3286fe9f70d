"""``lstm-train tune`` for real: two worker processes share one study (SQLite, then PostgreSQL), the search
is killed mid-way and resumed by running the same command again, and it ends with a served bundle whose
manifest names the chosen configuration and the number of trials. Slow (several processes that import
torch): marked ``search``, run by ``make test-search``, not ``make test``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import optuna
import pytest
from support.apps import running_app
from support.data import tiny_examples, write_csv

pytestmark = [pytest.mark.train, pytest.mark.slow, pytest.mark.search]

REPO = Path(__file__).resolve().parents[2]
TRIALS = 8
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432"


def _command(tmp_path: Path, data: Path, storage: str) -> list[str]:
    command = [sys.executable, "-m", "training.cli", "tune", "--data", str(data), "--name", "searched"]
    command += ["--store", str(tmp_path / "store"), "--run-dir", str(tmp_path / "run"), "--split-seed", "0"]
    command += ["--trials", str(TRIALS), "--workers", "2", "--storage", storage, "--seeds", "1,2"]
    command += ["--epochs", "3", "--patience", "3", "--threads", "1", "--no-baseline", "--no-progress"]
    # a tiny space: sizes fixed small, a few real choices for the sampler
    for spec in ("embedding_dim=8", "hidden_dim=8", "max_length=32", "batch_size=16", "w2v=none,train"):
        command += ["--space", spec]
    command += ["--space", "lr=0.005..0.03:log", "--space", "cell=lstm,gru", "--space", "num_layers=1"]
    return command


def _environment() -> dict[str, str]:
    return {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": "/tmp"}


def _states(storage: str) -> dict[str, int]:
    try:
        study = optuna.load_study(study_name="searched", storage=storage)
    except (KeyError, Exception):  # not created yet (or its tables are being created)
        return {}
    states: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        state = trial.state.name.lower()
        if state == "running" and "worker" not in trial.user_attrs:
            # asked for but not yet claimed by its worker (the first thing a worker does): killed now, it is
            # recovered by the heartbeat's grace period, not by the dead-pid check this test is about
            state = "starting"
        states[state] = states.get(state, 0) + 1
    return states


def _kill_while_trials_run(command: list[str], storage: str, log: Path) -> dict[str, int]:
    """Start the search, wait until a trial completed while another runs, then SIGKILL every process
    (tune and its worker: one process group). Returns the study's states after the kill."""
    with log.open("a") as output:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=_environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and process.poll() is None:
            states = _states(storage)
            if states.get("complete", 0) >= 1 and states.get("running", 0) >= 1:
                break
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, log.read_text()[-4000:]
    return _states(storage)


def _search_killed_and_resumed(tmp_path: Path, storage: str) -> None:
    data = write_csv(tmp_path / "tiny.csv", tiny_examples("en", per_label=24))
    command = _command(tmp_path, data, storage)

    # a trial may finish between the look and the kill: kill again until one was cut off mid-way
    for _ in range(3):
        after = _kill_while_trials_run(command, storage, tmp_path / "killed.log")
        if after.get("running", 0) >= 1:
            break
    assert after.get("running", 0) >= 1 and after.get("complete", 0) >= 1, after
    assert not (tmp_path / "store" / "searched").exists()  # killed: nothing published

    resumed = subprocess.run(
        command, cwd=REPO, env=_environment(), capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-6000:]
    assert "queued again" in resumed.stderr  # the killed trials were failed and their values re-queued

    study = optuna.load_study(study_name="searched", storage=storage)
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) >= TRIALS
    assert any(t.state.name == "FAIL" for t in trials) and any("retry_of" in t.user_attrs for t in trials)
    workers = {t.user_attrs["worker"]["pid"] for t in finished}
    assert len(workers) >= 2  # trials came from more than one process
    assert all(t.user_attrs["command"].startswith("lstm-train train ") for t in finished)

    manifest = json.loads((tmp_path / "store" / "searched" / "1" / "manifest.json").read_text())
    search = manifest["training"]["search"]
    assert search["trials"] == len(finished)
    assert search["best_trial"] == study.best_trial.number
    assert search["best_dev_score"] == study.best_trial.value
    assert {key: search["chosen"][key] for key in study.best_trial.params} == study.best_trial.params
    assert search["chosen"]["embedding_dim"] == 8 == manifest["model"]["embedding_dim"]
    assert manifest["model"]["cell"] == search["chosen"]["cell"]
    assert [row["seed"] for row in manifest["metrics"]["seeds"]["per_seed"]] == [1, 2]
    report = tmp_path / "run" / "search"
    assert {"trials.csv", "best.json", "history.png", "best_curves.png"} <= {p.name for p in report.iterdir()}
    assert len((report / "trials.csv").read_text().strip().splitlines()) == len(trials) + 1

    answer = asyncio.run(_classify(tmp_path / "store", "the chef made soup"))
    assert answer.status_code == 200, answer.text
    assert set(answer.json()["results"][0]["scores"]) == {"food", "sport", "tech"}


async def _classify(store: Path, text: str) -> httpx.Response:
    from service.settings import Settings

    async with running_app(Settings(model_store=store)) as client:
        return await client.post("/classify", json={"model": "searched", "text": text})


def test_two_workers_on_a_sqlite_study_killed_and_resumed_end_with_a_served_bundle(tmp_path: Path) -> None:
    _search_killed_and_resumed(tmp_path, f"sqlite:///{tmp_path / 'study.db'}")


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A database of its own on the project's PostgreSQL, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    name = f"tune_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True)
    except psycopg.OperationalError as error:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432: {error}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{POSTGRES}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_two_workers_on_a_postgresql_study_killed_and_resumed_end_with_a_served_bundle(
    tmp_path: Path, postgres_database: str
) -> None:
    _search_killed_and_resumed(tmp_path, postgres_database)
