"""Figures the container tests measure (image size, cold start...), printed at the end of the run."""

from __future__ import annotations

import pytest

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
