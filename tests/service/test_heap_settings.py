"""The worker's heap settings (service.engine.memory), observed in fresh interpreters: a freed large
block must leave the process, which glibc's default (a threshold that rises after each free) does not do."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="the settings are glibc's"
)

# Allocate and free 8 MB (mapped, which raises glibc's default threshold to 8 MB), then 7 MB: with the
# default threshold the second block comes from the heap and stays resident after it is freed.
_PROBE = """
import json, sys
import numpy as np
if sys.argv[1] == "configured":
    from service.engine import memory
    memory.configure_process()
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
first = np.ones(8 << 20, dtype=np.uint8); del first
before = rss_mb()
second = np.ones(7 << 20, dtype=np.uint8); del second
print(json.dumps({"retained_mb": rss_mb() - before}))
"""


def _retained_mb(mode: str) -> float:
    finished = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True, timeout=120
    )
    return float(json.loads(finished.stdout)["retained_mb"])


def test_a_freed_large_block_leaves_the_process_once_the_heap_is_configured():
    assert _retained_mb("default") > 5  # the probe sees glibc's retention ...
    assert _retained_mb("configured") < 1  # ... and the worker's settings remove it


def test_configuring_twice_is_harmless_and_sessions_still_run_on_the_shared_arena(tiny_store):
    from service.bundle import load_bundle
    from service.engine import memory
    from service.engine.runtime import ModelRuntime

    memory.configure_process()
    memory.configure_process()
    runtimes = [ModelRuntime.open(load_bundle(tiny_store / name / "1")) for name in ("tiny-en", "tiny-zh")]
    for runtime in runtimes:
        assert runtime.classify([[2, 3, 4]]).shape == (1, len(runtime.labels))
