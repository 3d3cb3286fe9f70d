"""The engine, the image (built once per session) and running containers for the container tests, and the
figures they measure (image size, cold start...), printed at the end of the run.

Needs an engine: ``make test-container`` (``docker/ci-container.sh`` sets podman up first on the project's
machines). Without one every test that uses these fixtures is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from support.containers import Engine, Running, build_image, find_engine, start

# Filled by tests/container/test_image.py; shown in the terminal summary whether or not -s is given.
REPORT: dict[str, str] = {}


@pytest.fixture(scope="session")
def container_report() -> dict[str, str]:
    return REPORT


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORT:
        return
    terminalreporter.section("container image")
    for key, value in REPORT.items():
        terminalreporter.write_line(f"{key}: {value}")


@pytest.fixture(scope="session")
def engine() -> Engine:
    found = find_engine()
    if found is None:
        pytest.skip(
            "no working container engine (docker or podman); on the project machines run "
            "docker/ci-container.sh as root, which sets podman up first"
        )
    return found


@pytest.fixture(scope="session")
def image(engine: Engine, container_report: dict[str, str]) -> str:
    return build_image(engine, container_report)


@pytest.fixture(scope="module")
def run_container(engine: Engine, image: str) -> Iterator[Callable[..., Running]]:
    """``run_container(*extra_args)`` → a healthy container, removed at the end of the module."""
    started: list[Running] = []

    def run(*extra: str) -> Running:
        running = start(engine, image, *extra)
        started.append(running)
        return running

    yield run
    for running in started:
        kill_now = ["-t", "0"] if engine.name == "podman" else []  # podman rm -f would wait 10 s first
        engine("rm", "-f", *kill_now, running.cid, check=False, timeout=60)
