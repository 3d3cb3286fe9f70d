"""The prediction log under faults, in a real server under load: the database cut off for a while (0 failed
requests, drops counted, writing resumes, nothing doubled) and a SIGTERM (every answered request logged).

Slow (a minute of load): under the ``learning`` marker, run by .ci/run, not by ``make test``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from learning_db import CuttableProxy, pg_url, server_address
from support.apps import metric_value
from support.live_server import LiveServer, Load
from support.stores import copy_store

pytestmark = [pytest.mark.learning, pytest.mark.e2e]

LOAD_SECONDS = 60
OUTAGE_SECONDS = 20
BUFFER = 2_000  # answers held while the database is away: less than the outage brings, so some drop


def _request(number: int) -> tuple[str, str, dict[str, str]]:
    return "POST", "/classify", {"text": f"text number {number} about the match", "model": "tiny-en"}


def _rows(url: str) -> tuple[int, int]:
    """(rows, distinct (request_id, item) pairs) of the predictions table."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection:
            total = connection.execute(sa.text("SELECT count(*) FROM predictions")).scalar()
            distinct = connection.execute(
                sa.text("SELECT count(*) FROM (SELECT DISTINCT request_id, item FROM predictions) AS d")
            ).scalar()
    finally:
        engine.dispose()
    return int(total or 0), int(distinct or 0)


def _counted(server: LiveServer, outcome: str) -> float:
    text = server.call("GET", "/metrics").body
    return metric_value(text, "lstm_service_prediction_log_records_total", f'outcome="{outcome}"')


def test_a_database_outage_fails_no_request_and_the_log_recovers(
    tiny_store: Path, tmp_path: Path, pg_schema: str
) -> None:
    host, port = server_address()
    proxy = CuttableProxy((host, port))
    through_proxy = pg_url(pg_schema).replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}")
    env = {"LSTM_SERVICE_PREDICTION_LOG": through_proxy, "LSTM_SERVICE_PREDICTION_LOG_BUFFER": str(BUFFER)}
    server = LiveServer.start(
        copy_store(tiny_store, tmp_path / "store"), tmp_path / "server.log", ["--workers", "1"], env
    )
    try:
        load = Load(server.port, _request, clients=4, max_requests=100_000).start()
        started = time.monotonic()
        time.sleep((LOAD_SECONDS - OUTAGE_SECONDS) / 2)
        proxy.disconnect()
        time.sleep(OUTAGE_SECONDS)
        proxy.reconnect()
        time.sleep(max(0.0, LOAD_SECONDS - (time.monotonic() - started)))
        load.stop()
        answered = [o for o in load.outcomes if o.status == 200]
        assert load.failures == [] and len(answered) == len(load.outcomes) > 0
        deadline = time.monotonic() + 30  # the writer catches up after the outage
        while True:
            written, dropped = _counted(server, "written"), _counted(server, "dropped")
            if written + dropped >= len(answered) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert dropped > 0, "the outage outlasted the buffer: some records must have been dropped"
        rows, distinct = _rows(pg_url(pg_schema))
        assert rows == distinct == written  # written after recovery, none twice
        assert written + dropped == len(answered)
        warnings = [
            r["message"]
            for r in server.log_records()
            if r.get("logger", "").startswith("service.predictions")
        ]
        assert any("dropped" in message for message in warnings)
        assert any("resumed" in message for message in warnings)
    finally:
        server.kill()
        proxy.close()


def test_sigterm_under_load_writes_every_answered_record(tiny_store: Path, tmp_path: Path) -> None:
    database = tmp_path / "log" / "predictions.db"
    env = {"LSTM_SERVICE_PREDICTION_LOG": f"sqlite:///{database}"}
    flags = ["--workers", "2", "--drain-seconds", "3"]
    server = LiveServer.start(copy_store(tiny_store, tmp_path / "store"), tmp_path / "server.log", flags, env)
    try:
        load = Load(server.port, _request, clients=4, max_requests=100_000).start()
        load.wait_for(200, deadline_seconds=60)
        server.terminate(group=True)
        time.sleep(1)  # answered while draining; the clients stop before the listener closes
        load.stop()
        assert server.process.wait(timeout=60) == 0
        server.wait_group_gone(30)  # the workers too
    finally:
        server.kill()
    answered = [o for o in load.outcomes if o.status == 200]
    assert load.failures == [] and answered
    rows, distinct = _rows(f"sqlite:///{database}")
    assert rows == distinct == len(answered)
