"""With the text kept as its hash, no logged or corrected text reaches any sink: the SQLite file (and its
write-ahead log), the PostgreSQL tables and the JSONL files are searched for it byte by byte."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from learning_db import admin_connection, pg_url
from support.apps import running_app

from service.predictions.records import kept_text
from service.settings import Settings

pytestmark = pytest.mark.anyio

SECRET = "zebracorn ticket 4471 from alice@example.com about the match"
SECOND = "quokkaflower stocks fell sharply"
MARKERS = [b"zebracorn", b"quokkaflower", b"alice@example", b"4471"]


async def _use(client: httpx.AsyncClient, *, feedback: bool) -> None:
    reply = await client.post("/classify", json={"texts": [SECRET, SECOND], "model": "tiny-en"})
    assert reply.status_code == 200
    if feedback:
        request_id = reply.headers["x-request-id"]
        batch = [
            {"request_id": request_id, "item": 0, "label": "sport"},
            {"text": SECOND, "model": "tiny-en", "label": "tech"},
        ]
        assert (await client.post("/feedback", json={"feedback": batch})).status_code == 200
        queue = (await client.get("/labelling/queue", params={"model": "tiny-en"})).json()
        assert queue["items"] == []  # no text to show: the queue lists only texts it kept


def _sqlite_bytes(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(folder.iterdir()))  # db, -wal, -shm


@pytest.mark.parametrize("sink", ["sqlite", "postgresql", "jsonl"])
async def test_hashed_texts_reach_no_sink(
    sink: str, tiny_store: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    folder = tmp_path / "log"
    schema = request.getfixturevalue("pg_schema") if sink == "postgresql" else ""
    url = {
        "sqlite": f"sqlite:///{folder / 'predictions.db'}",
        "postgresql": pg_url(schema),
        "jsonl": f"jsonl://{folder}",
    }[sink]
    settings = Settings(model_store=tiny_store, prediction_log=url, prediction_log_text="hash")
    async with running_app(settings) as client:
        await _use(client, feedback=sink != "jsonl")
        if sink == "jsonl":  # written by the background writer: wait for the file
            await client.post("/classify", json={"text": "flush marker", "model": "tiny-en"})
    if sink == "postgresql":
        with admin_connection() as connection:
            dumped = "".join(
                str(row)
                for table in ("predictions", "feedback")
                for row in connection.execute(f'SELECT * FROM "{schema}".{table}').fetchall()
            ).encode()
        assert dumped.count(hashlib.sha256(SECRET.encode()).hexdigest().encode()) == 2  # logged, corrected
    else:
        dumped = _sqlite_bytes(folder)
        assert hashlib.sha256(SECRET.encode()).hexdigest().encode() in dumped
    for marker in MARKERS:
        assert marker not in dumped, f"{marker!r} reached the {sink} sink"


def test_redaction_masks_addresses_and_digits() -> None:
    assert kept_text(SECRET, "redacted") == "zebracorn ticket #### from <email> about the match"
    assert kept_text(SECRET, "hash") is None and kept_text(SECRET, "full") == SECRET
