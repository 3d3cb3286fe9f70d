"""The study: where it lives (an Optuna RDB storage: a SQLite file, or PostgreSQL for several processes or
machines), how it samples and prunes, and how a worker takes trials until the budget is spent.

A study outlives the processes that work on it: an interrupted ``tune`` is resumed by running it again.
Trials that were running when their process died are marked failed and their configuration is queued
again: at once for processes of this machine (their pid is gone), after the heartbeat's grace period for
processes of other machines (:data:`HEARTBEAT_SECONDS`, :data:`GRACE_SECONDS`).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from training.cli.search.arguments import PRUNE_AFTER_EPOCHS
from training.data.runs import alive

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 120
WORKER_ATTR = "worker"
DEFAULT_TRIALS = 20


def default_storage(run_dir: Path) -> str:
    return f"sqlite:///{Path(run_dir).resolve() / 'study.db'}"


def _driver_url(url: str) -> str:
    """``postgresql://`` means psycopg2 to SQLAlchemy; with only psycopg 3 installed, use it instead."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            try:
                import psycopg2  # type: ignore[import-untyped]  # noqa: F401
            except ImportError:
                return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def redact(url: str) -> str:
    """The URL without its password, for logs and manifests."""
    return __import__("re").sub(r"(//[^/:@]+):[^/@]*@", r"\1:***@", url)


def storage(url: str) -> RDBStorage:
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        engine: dict[str, Any] = {"connect_args": {"timeout": 120}}  # several workers write one file
    else:
        engine = {"pool_pre_ping": True}
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna, and say so on every use
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(
            _driver_url(url),
            engine_kwargs=engine,
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=GRACE_SECONDS,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
        )


def open_study(
    url: str, name: str, prune: bool, seed: int | None = None, prune_after: int = PRUNE_AFTER_EPOCHS
) -> optuna.Study:
    """Create the study, or join it where it exists (TPE; a median pruner on the dev curve that may stop
    a trial from epoch ``prune_after`` on, once 3 trials have finished)."""
    pruner: optuna.pruners.BasePruner = (
        # a trial reports its dev score with the epoch (1, 2, ...) as the step; Optuna's earliest
        # pruning step is n_warmup_steps itself
        optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=prune_after)
        if prune
        else optuna.pruners.NopPruner()
    )
    return optuna.create_study(
        storage=storage(url),
        study_name=name,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=5),
        pruner=pruner,
        load_if_exists=True,
    )


def worker_id() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def requeue_abandoned(study: optuna.Study) -> list[int]:
    """Fail the running trials whose process on this machine is gone and queue their values again."""
    host = socket.gethostname()
    abandoned = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER_ATTR) or {}
        if worker.get("host") == host and not alive(int(worker.get("pid", 0))):
            study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            abandoned.append(trial.number)
    if abandoned:
        logger.info("trials %s were running in a process that is gone: queued again", abandoned)
    return abandoned


def counts(study: optuna.Study) -> Counter[str]:
    return Counter(trial.state.name.lower() for trial in study.get_trials(deepcopy=False))


@dataclass(frozen=True)
class Budget:
    trials: int | None  # over the whole study: complete + pruned (+ running, when deciding to start one)
    deadline: float | None  # time.monotonic() after which no trial starts

    def spent(self, study: optuna.Study) -> str | None:
        """Why no further trial should start, or None."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return "time budget spent"
        if self.trials is not None:
            seen = counts(study)
            if seen["complete"] + seen["pruned"] + seen["running"] >= self.trials:
                return f"{self.trials} trials reached"
            if seen["fail"] >= max(3, self.trials):  # every configuration failing: stop, don't loop
                return f"{seen['fail']} trials failed"
        return None


def work(study: optuna.Study, objective: Callable[[optuna.Trial], float], budget: Budget) -> str:
    """Take trials one at a time until the budget is spent; returns why it stopped."""
    while (reason := budget.spent(study)) is None:
        study.optimize(objective, n_trials=1, catch=(ValueError, RuntimeError), gc_after_trial=True)
    logger.info("worker %s stops: %s", worker_id(), reason)
    return reason


def wait_for_running(study: optuna.Study, poll_seconds: float = 2.0) -> None:
    """Until no trial runs (other machines' trials finish, or fail once their heartbeat stops)."""
    while running := study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        requeue_abandoned(study)
        optuna.storages.fail_stale_trials(study)
        logger.info("waiting for %d running trial(s) of other workers", len(running))
        time.sleep(poll_seconds)
