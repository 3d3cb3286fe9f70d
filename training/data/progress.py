"""Progress of every phase that can take more than a few seconds: a bar on a terminal, periodic log lines
with the rate and the time left otherwise (a log file, a CI job, ``nohup``).

:func:`track` wraps an iterable; with ``bar`` (a terminal) it is a tqdm bar, else a line is logged at most
every :data:`LOG_EVERY_SECONDS` ("vocabulary: 120,000 of 317,229 texts (38%), 9,800 texts/s, about
20 s left") and once at the end if the phase took longer than that. Short phases say nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

logger = logging.getLogger(__name__)

LOG_EVERY_SECONDS = 15.0
Item = TypeVar("Item")


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 90:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 90:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def track(
    items: Iterable[Item],
    what: str,
    *,
    total: int | None = None,
    unit: str = "texts",
    bar: bool = False,
    every: float | None = None,
) -> Iterator[Item]:
    """Yield ``items``, reporting progress of the phase ``what`` (see the module docstring)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if bar:
        yield from tqdm(items, desc=what, total=total, unit=unit.rstrip("s") or unit, leave=False)
        return
    interval = LOG_EVERY_SECONDS if every is None else every
    started = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= interval:
            last = now
            logger.info("%s", _line(what, done, total, unit, now - started))
    elapsed = time.monotonic() - started
    if elapsed >= interval:
        logger.info(
            "%s: %s %s in %s (%s)",
            what,
            f"{done:,}",
            unit,
            _duration(elapsed),
            _speed(done, elapsed, unit),
        )


def _speed(done: int, elapsed: float, unit: str) -> str:
    """``9,800 texts/s``, or ``4.2 s per fit`` below one a second."""
    if done <= 0 or elapsed <= 0:
        return f"? {unit}/s"
    rate = done / elapsed
    if rate >= 1:
        return f"{rate:,.0f} {unit}/s"
    return f"{elapsed / done:.1f} s per {unit.rstrip('s') or unit}"


def _line(what: str, done: int, total: int | None, unit: str, elapsed: float) -> str:
    speed = _speed(done, elapsed, unit)
    if not total:
        return f"{what}: {done:,} {unit}, {speed}, {_duration(elapsed)} so far"
    left = (total - done) * elapsed / done if done else 0.0
    return (
        f"{what}: {done:,} of {total:,} {unit} ({100 * done / total:.0f}%), {speed}, "
        f"about {_duration(left)} left"
    )


def phase_done(what: str, started: float, detail: str = "") -> None:
    """One line for a phase that is not a loop (a fit), when it took longer than a few seconds."""
    elapsed = time.perf_counter() - started
    if elapsed >= 2.0:
        logger.info("%s: done in %s%s", what, _duration(elapsed), f" ({detail})" if detail else "")
