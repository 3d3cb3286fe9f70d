"""The command's worker processes: a worker that dies stops the run with its reason (the chunks already
scored are kept and a re-run finishes), Ctrl-C on the command ends every worker, and no worker outlives
the command."""

from __future__ import annotations

import os
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


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # ended meanwhile
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _default_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored, and Python keeps an ignored SIGINT ignored:
    # the command gets the disposition a terminal's foreground job has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(arguments: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "service", *arguments],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_default_sigint,
    )


def _when_parts(process: subprocess.Popen[str], parts: Path, count: int, timeout: float = 120) -> list[int]:
    """The command's two workers once ``count`` chunks are written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before the test could interrupt it"
        written = len(list(parts.glob("[0-9]*[0-9].parquet"))) if parts.exists() else 0
        workers = _children(process.pid)
        if written >= count and len(workers) == 2:
            return workers
        time.sleep(0.02)
    raise AssertionError(f"no {count} parts within {timeout} s")


def _command(source: Path, output: Path, store: Path) -> list[str]:
    return [
        "score", str(source), "-o", str(output), "--model-store", str(store), "--model", "tiny-en",
        "--chunk-rows", str(CHUNK), "--processes", "2", "--id-column", "extra", "--quiet",
    ]  # fmt: skip


def test_a_worker_that_dies_stops_the_run_with_its_reason_and_a_rerun_finishes(
    tiny_store: Path, tmp_path: Path
) -> None:
    source = write_parquet(tmp_path / "in.parquet", list(make_texts(ROWS, seed=5)), extra=list(range(ROWS)))
    output = tmp_path / "out.parquet"
    process = _start(_command(source, output, tiny_store))
    try:
        workers = _when_parts(process, tmp_path / ".out.parquet.parts", 3)
        os.kill(workers[0], signal.SIGKILL)  # the OOM killer's way
        _, errors = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    assert process.returncode == 2, errors
    assert "a scoring worker stopped (exit status -9)" in errors and "run the same command again" in errors
    assert not output.exists()  # nothing committed
    assert not [pid for pid in workers if _alive(pid)]  # the other worker ended with the command

    assert main(_command(source, output, tiny_store)) == 0
    table = pq.read_table(output)
    assert sorted(table.column("extra").to_pylist()) == list(range(ROWS))


def test_ctrl_c_on_the_command_alone_ends_its_workers(tiny_store: Path, tmp_path: Path) -> None:
    source = write_parquet(tmp_path / "in.parquet", list(make_texts(ROWS, seed=6)), extra=list(range(ROWS)))
    output = tmp_path / "out.parquet"
    process = _start(_command(source, output, tiny_store))
    try:
        workers = _when_parts(process, tmp_path / ".out.parquet.parts", 2)
        process.send_signal(signal.SIGINT)  # to the command only, as `kill -INT` would: not the workers
        _, errors = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    assert process.returncode == 130, errors
    assert "interrupted; run the same command again" in errors
    assert "Traceback" not in errors
    assert not [pid for pid in workers if _alive(pid)]
