"""The CPUs this process may really use: its affinity mask and its cgroup's CPU quota (a container's
``--cpus``, a Kubernetes CPU limit), and the thread counts of the native libraries held to them.

A container limited to 1 CPU on a 16-CPU host sees 16 CPUs in its affinity mask; OpenBLAS would start 16
threads for a matrix product, which then take turns on one CPU (the neighbour search of ``/embed`` took
8.1 s with them and 4.5 s with one). The quota is read from cgroup v2 (``cpu.max``: ``"<quota> <period>"``
or ``"max <period>"``, in the process's own cgroup and every parent up to the root, the smallest
winning) or cgroup v1 (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, ``-1`` for no quota).

:func:`hold_native_threads` runs before numpy and onnxruntime are first imported (``serve`` does it before
building the app; ``--workers N`` processes inherit it): it sets the thread-count variables those libraries
read when they load, unless the operator set them. onnxruntime's own threads are set per session
(``LSTM_SERVICE_INTRA_OP_THREADS``); a value above the CPUs available is warned about.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

logger = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
# Read by OpenBLAS, OpenMP runtimes (numpy builds, onnxruntime's optional OpenMP), MKL and Apple's Accelerate.
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def parse_cpu_max(text: str) -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` line (``"150000 100000"`` → 1.5; ``"max 100000"`` → None)."""
    parts = text.split()
    if len(parts) < 1 or parts[0] == "max":
        return None
    period = int(parts[1]) if len(parts) > 1 else 100_000
    quota = int(parts[0])
    return quota / period if quota > 0 and period > 0 else None


def parse_cfs(quota_text: str, period_text: str) -> float | None:
    """CPUs allowed by cgroup v1's ``cpu.cfs_quota_us`` and ``cpu.cfs_period_us`` (quota -1: no limit)."""
    quota, period = int(quota_text.strip()), int(period_text.strip())
    return quota / period if quota > 0 and period > 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii")
    except (OSError, ValueError):
        return None


def _own_paths(proc_cgroup: str) -> dict[str, str]:
    """``/proc/self/cgroup`` lines ``id:controllers:path`` → {controller (``""`` for v2): path}."""
    paths: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _ancestors(root: Path, path: str) -> list[Path]:
    """``root/path`` and each of its parents up to ``root`` (a container's namespace shows its cgroup as
    ``/``, so ``root`` itself is always looked at)."""
    parts = [part for part in path.split("/") if part and part != ".."]
    return [root.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (1.5 for ``--cpus 1.5``), or None without one."""
    paths = _own_paths(_read(proc_cgroup) or "")
    limits: list[float] = []
    for folder in _ancestors(root, paths.get("", "/")):  # cgroup v2
        text = _read(folder / "cpu.max")
        if text is not None and (limit := parse_cpu_max(text)) is not None:
            limits.append(limit)
    for name in ("cpu", "cpu,cpuacct"):  # cgroup v1, mounted under either name
        for folder in _ancestors(root / name, paths.get("cpu", "/")):
            quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
            if quota is not None and period is not None and (limit := parse_cfs(quota, period)) is not None:
                limits.append(limit)
    return min(limits) if limits else None


def available_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP) -> int:
    """Whole CPUs this process may use: its affinity mask, capped by the cgroup quota (rounded up, so
    ``--cpus 1.5`` gives 2), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        cpus = len(os.sched_getaffinity(0))
    else:
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root, proc_cgroup)
    if limit is not None:
        cpus = min(cpus, math.ceil(limit))
    return max(1, cpus)


def hold_native_threads(workers: int, intra_op_threads: int, cpus: int | None = None) -> dict[str, str]:
    """Set the native libraries' thread counts to the CPUs each worker has (``cpus // workers``, at
    least 1) where the environment does not set them; the variables set. Warns when onnxruntime's threads
    per call exceed the CPUs."""
    cpus = available_cpus() if cpus is None else cpus
    per_worker = str(max(1, cpus // max(1, workers)))
    chosen = {name: per_worker for name in THREAD_VARIABLES if not os.environ.get(name)}
    os.environ.update(chosen)
    if chosen:
        logger.info(
            "%d CPU(s) available (affinity and cgroup quota): BLAS/OpenMP threads per worker: %s",
            cpus,
            per_worker,
        )
    if intra_op_threads > cpus:
        logger.warning(
            "LSTM_SERVICE_INTRA_OP_THREADS=%d is more than the %d CPU(s) this process may use: the threads "
            "of one call will take turns; set it to %d or less",
            intra_op_threads,
            cpus,
            cpus,
        )
    return chosen
