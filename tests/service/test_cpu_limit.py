"""The CPU quota read from cgroup files (v2 ``cpu.max`` through the process's cgroup and its parents, v1
``cpu.cfs_quota_us``), and the native libraries' threads held to it before they load."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.cpu_limit import (
    THREAD_VARIABLES,
    available_cpus,
    cgroup_cpu_limit,
    hold_native_threads,
    parse_cfs,
    parse_cpu_max,
)

REPO = Path(__file__).resolve().parents[2]


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="ascii")


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("max 100000\n", None), ("150000 100000\n", 1.5), ("50000 100000", 0.5), ("200000", 2.0), ("", None)],
)
def test_cpu_max_lines(text: str, cpus: float | None) -> None:
    assert parse_cpu_max(text) == cpus


def test_cfs_files() -> None:
    assert parse_cfs("-1\n", "100000\n") is None
    assert parse_cfs("250000\n", "100000\n") == 2.5


def test_cgroup_v2_takes_the_smallest_quota_on_the_way_to_the_root(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    _write(root / "cpu.max", "max 100000\n")
    _write(root / "kubepods" / "pod1" / "cpu.max", "200000 100000\n")  # the pod's limit
    _write(root / "kubepods" / "pod1" / "ctr" / "cpu.max", "150000 100000\n")  # the container's
    proc = tmp_path / "proc-self-cgroup"
    _write(proc, "0::/kubepods/pod1/ctr\n")

    assert cgroup_cpu_limit(root, proc) == 1.5
    affinity = len(os.sched_getaffinity(0))
    assert available_cpus(root, proc) == min(affinity, 2)  # 1.5 CPUs: two threads can both make progress


def test_a_container_namespace_shows_its_own_cgroup_as_the_root(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    _write(root / "cpu.max", "100000 100000\n")  # podman --cpus 1
    proc = tmp_path / "proc-self-cgroup"
    _write(proc, "0::/\n")

    assert cgroup_cpu_limit(root, proc) == 1.0
    assert available_cpus(root, proc) == 1


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    _write(root / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us", "50000\n")
    _write(root / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_period_us", "100000\n")
    proc = tmp_path / "proc-self-cgroup"
    _write(proc, "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n")

    assert cgroup_cpu_limit(root, proc) == 0.5
    assert available_cpus(root, proc) == 1  # never 0


def test_no_quota_and_no_files_leave_the_affinity_mask(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    _write(root / "cpu" / "cpu.cfs_quota_us", "-1\n")
    _write(root / "cpu" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(root, tmp_path / "missing") is None
    assert cgroup_cpu_limit(tmp_path / "nothing-here", tmp_path / "missing") is None
    assert available_cpus(tmp_path / "nothing-here", tmp_path / "missing") == len(os.sched_getaffinity(0))


def test_threads_per_worker_unless_the_operator_set_them(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")  # the operator's choice stays

    with caplog.at_level(logging.INFO, logger="service.cpu_limit"):
        chosen = hold_native_threads(workers=2, intra_op_threads=8, cpus=4)

    assert chosen == {name: "2" for name in THREAD_VARIABLES if name != "OPENBLAS_NUM_THREADS"}
    assert os.environ["OPENBLAS_NUM_THREADS"] == "3" and os.environ["OMP_NUM_THREADS"] == "2"
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert warnings and "INTRA_OP_THREADS=8 is more than the 4 CPU(s)" in warnings[0]
    assert hold_native_threads(workers=8, intra_op_threads=1, cpus=4) == {}  # all set now
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert set(hold_native_threads(workers=8, intra_op_threads=1, cpus=4).values()) == {"1"}  # at least 1


def test_numpys_blas_loads_with_the_threads_held(tmp_path: Path) -> None:
    """In a fresh interpreter, as ``serve`` runs it: held to one CPU, numpy's BLAS starts one thread."""
    pytest.importorskip("threadpoolctl")
    script = (
        "from service.cpu_limit import hold_native_threads; hold_native_threads(1, 1, cpus=1); "
        "import numpy, threadpoolctl; "
        "print(sorted({pool['num_threads'] for pool in threadpoolctl.threadpool_info() "
        "if pool['user_api'] == 'blas'}))"
    )
    environment = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    environment["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "[1]", result.stdout + result.stderr
