"""A ``score`` run killed with SIGKILL (the command and its workers, as a crash or the OOM killer would) and
run again finishes with the output an uninterrupted run writes, row for row: nothing lost, nothing twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
from support.corpora import make_texts, write_parquet

from service.cli import main

REPO = Path(__file__).resolve().parents[2]
ROWS, CHUNK = 6_000, 250


def command(source: Path, output: Path, store: Path) -> list[str]:
    return [
        "score", str(source), "-o", str(output), "--model-store", str(store), "--model", "tiny-en",
        "--chunk-rows", str(CHUNK), "--processes", "2", "--keep", "extra", "--quiet",
    ]  # fmt: skip


def kill_when(arguments: list[str], parts: Path, done_parts: int, timeout: float = 120) -> bool:
    """Start the command in its own process group and SIGKILL the group once ``done_parts`` chunks are
    written; False if it finished first."""
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "service", *arguments], env=environment, start_new_session=True
    )
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            written = len(list(parts.glob("[0-9]*[0-9].parquet"))) if parts.exists() else 0
            if written >= done_parts:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
                return True
            time.sleep(0.02)
        raise AssertionError(f"no {done_parts} parts within {timeout} s")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def test_killed_three_times_the_run_still_writes_every_row_once(tiny_store: Path, tmp_path: Path) -> None:
    texts: list[object] = list(make_texts(ROWS, seed=3))
    for index in range(0, ROWS, 997):
        texts[index] = None  # some rows rejected, so the rejects file is checked too
    source = write_parquet(tmp_path / "in.parquet", texts, extra=[f"e{i}" for i in range(ROWS)])
    reference = tmp_path / "reference" / "out.parquet"
    reference.parent.mkdir()
    assert main(command(source, reference, tiny_store)) == 1

    output = tmp_path / "run" / "out.parquet"
    output.parent.mkdir()
    parts = output.with_name(".out.parquet.parts")
    chunks = ROWS // CHUNK
    rng = random.Random(7)
    points = [
        rng.randint(1, chunks // 4),
        rng.randint(chunks // 4 + 1, chunks // 2),
        rng.randint(chunks // 2 + 1, chunks - 2),
    ]
    killed = [kill_when(command(source, output, tiny_store), parts, point) for point in points]
    assert killed == [True, True, True], "each kill must land mid-run"
    assert parts.exists() and not output.exists()

    assert main(command(source, output, tiny_store)) == 1  # the same command resumes and finishes

    assert pq.read_table(output).equals(pq.read_table(reference))
    assert pq.read_table(output.with_name("out.rejects.parquet")).equals(
        pq.read_table(reference.with_name("out.rejects.parquet"))
    )
    assert (
        pq.read_table(output).num_rows + pq.read_table(output.with_name("out.rejects.parquet")).num_rows
        == ROWS
    )
    assert not parts.exists()
