"""Start a server as a subprocess on given CPUs, wait until it is ready, measure it, always kill it.

Every server runs in its own process group, so stopping it takes its workers too; :func:`running` is
a context manager whose exit kills the group whatever happened inside (and ``atexit`` does the same for
anything still alive if the benchmark itself is interrupted).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

_LIVE_GROUPS: set[int] = set()


@dataclass
class ServerSpec:
    name: str
    command: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    ready_path: str = "/readyz"


@dataclass
class RunningServer:
    spec: ServerSpec
    process: subprocess.Popen
    cold_start_s: float
    log_path: Path

    def memory_mb(self) -> dict[str, float]:
        """Resident memory of the process and its children: now (sum), peak (sum of each one's peak),
        and the largest single process's peak (with several workers: the heaviest worker)."""
        pids = process_tree(self.process.pid)
        rss = [_status_kb(pid, "VmRSS") for pid in pids]
        peaks = [_status_kb(pid, "VmHWM") for pid in pids]
        return {
            "rss_mb": sum(rss) / 1024,
            "peak_rss_mb": sum(peaks) / 1024,
            "largest_peak_rss_mb": max(peaks, default=0) / 1024,
            "processes": len(pids),
        }

    def per_process_rss_mb(self) -> list[float]:
        return [_status_kb(pid, "VmRSS") / 1024 for pid in process_tree(self.process.pid)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_tree(root: int) -> list[int]:
    """``root`` and all of its descendants (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    fields = handle.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry))
    tree, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        tree.append(pid)
        frontier.extend(parents.get(pid, []))
    return tree


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pinned(cpus: set[int] | None):
    """A ``preexec_fn`` that pins the child (and so every process it starts) to ``cpus``."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def _get(url: str, timeout: float) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, ValueError):
        return 0


def _kill_group(pgid: int, grace_s: float = 5.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    _LIVE_GROUPS.discard(pgid)


@atexit.register
def _kill_leftovers() -> None:
    for pgid in list(_LIVE_GROUPS):
        _kill_group(pgid, grace_s=1.0)


@contextlib.contextmanager
def running(
    spec: ServerSpec, cpus: set[int] | None, log_dir: Path, ready_timeout_s: float = 120.0
) -> Iterator[RunningServer]:
    """Start ``spec`` pinned to ``cpus``, wait for ``ready_path`` to answer 200, yield, then kill it."""
    log_path = log_dir / f"{spec.name}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **spec.env}
    with log_path.open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            spec.command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: killpg takes the workers too
            preexec_fn=pinned(cpus),
        )
    _LIVE_GROUPS.add(process.pid)
    try:
        url = f"http://127.0.0.1:{spec.port}{spec.ready_path}"
        deadline = time.monotonic() + ready_timeout_s
        while _get(url, timeout=1.0) != 200:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{spec.name} exited with {process.returncode} before it was ready:\n{_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{spec.name} was not ready after {ready_timeout_s} s:\n{_tail(log_path)}")
            time.sleep(0.01)
        yield RunningServer(spec, process, time.perf_counter() - started, log_path)
    finally:
        _kill_group(process.pid)
        process.wait(timeout=10)


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def python_command(*args: str) -> list[str]:
    return [sys.executable, *args]
