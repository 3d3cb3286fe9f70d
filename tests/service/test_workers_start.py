"""``--workers N`` and its temporary folders: no usable temporary folder stops the start with a message that
says what to mount (exit 3, no traceback); the metrics folder of a supervisor killed with SIGKILL is
removed by the next one; a server's own folders are removed when it stops."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.live_server import LiveServer
from support.network import free_port

from service.supervisor import METRICS_PREFIX

ENTRY = (  # the CLI with Python's temporary folder set to argv[1]
    "import sys, tempfile; tempfile.tempdir = sys.argv[1]; "
    "from service.cli import main; raise SystemExit(main(sys.argv[2:]))"
)


def _dead_pid() -> int:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    return int(finished.stdout)


def test_no_usable_temporary_folder_stops_the_start_with_a_clear_message(
    tiny_store: Path, tmp_path: Path
) -> None:
    not_a_folder = (
        tmp_path / "tmp-is-a-file"
    )  # as a read-only root without a /tmp mount behaves: mkdtemp fails
    not_a_folder.write_text("", encoding="utf-8")
    arguments = ["serve", "--workers", "2", "--port", str(free_port()), "--model-store", str(tiny_store)]
    result = subprocess.run(
        [sys.executable, "-c", ENTRY, str(not_a_folder), *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 3, result.stderr
    assert "--workers 2 needs a writable temporary folder" in result.stderr
    assert "--tmpfs /tmp" in result.stderr and "--workers 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_killed_servers_metrics_folder_is_removed_and_its_own_at_exit(
    tiny_store: Path, tmp_path: Path
) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    leftover = temporary / f"{METRICS_PREFIX}{_dead_pid()}-abc123"
    leftover.mkdir(mode=0o700)
    (leftover / "counter_123.db").write_bytes(b"\0" * 16)
    alive = temporary / f"{METRICS_PREFIX}1-keep"  # pid 1 is alive: another server's folder stays
    alive.mkdir(mode=0o700)

    server = LiveServer.start(
        tiny_store, tmp_path / "server.log", ["--workers", "2"], env={"TMPDIR": str(temporary)}
    )
    try:
        own = sorted(path.name for path in temporary.glob(f"{METRICS_PREFIX}*") if path != alive)
        assert not leftover.exists() and alive.exists()
        assert len(own) == 1 and own[0].startswith(f"{METRICS_PREFIX}{server.process.pid}-")
        server.terminate()
        assert server.process.wait(timeout=60) == 0
    finally:
        server.kill()
    assert sorted(path.name for path in temporary.glob("lstm-service-*")) == [alive.name]
