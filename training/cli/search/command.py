"""``lstm-train tune``: check the space and the budget, join (or start) the study, run trials in this
process and ``--workers - 1`` more, then report the search and publish its best configuration, retrained
with ``--seeds`` (default: ``--seed`` and the two after it), the best seed by dev bundled as ``train
--seeds`` bundles it, the search's summary in the manifest (``training.extra.search``).
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from service.bundle import default_store
from training.cli.pipeline import train_bundle
from training.cli.search import report
from training.cli.search import study as studies
from training.cli.search.arguments import TUNE_OPTIONS
from training.cli.search.objective import make_objective
from training.cli.search.settings import pretrain_files, settings_for
from training.cli.search.space import SpaceError, build_space, default_space, flags, searched
from training.data import preflight
from training.data.source import DataSpec
from training.export.publish import BundleResult

logger = logging.getLogger(__name__)


def checked_space(args: argparse.Namespace) -> dict[str, Any]:
    """The search space and budget, refused before any data is read or trial runs."""
    if args.resume:
        raise SpaceError("tune resumes its study by itself: run the same command again, without --resume")
    if args.quantize and args.publish is False:
        raise SpaceError("--quantize with --no-publish: this worker publishes nothing to quantize")
    if args.prune and args.prune_after > args.epochs:
        logger.warning(
            "--prune-after %d with --epochs %d: no trial is stopped early", args.prune_after, args.epochs
        )
    w2v_file = args.w2v not in ("none", "", "train")
    base = default_space(args.max_length, bool(args.pretrain_text), w2v_file)
    space = build_space(base, args.space, Path(args.space_file) if args.space_file else None)
    w2v = space.get("w2v")
    if isinstance(w2v, list) and "text" in w2v and not args.pretrain_text:
        raise SpaceError("w2v=text trains word2vec on unlabelled text: give it with --pretrain-text FILE...")
    if not searched(space):
        logger.warning("the space fixes every parameter: each trial trains the same configuration")
    return space


def _strip(argv: list[str]) -> list[str]:
    """``argv`` without tune's own options and ``--pretrain-text`` (a trial's ``w2v`` value adds it)."""
    kept, skip = [], 0
    options = {**TUNE_OPTIONS, "--pretrain-text": -1}
    for token in argv:
        if skip == -1 and not token.startswith("--"):
            continue
        if skip > 0:
            skip -= 1
            continue
        skip = 0
        name = token.split("=", 1)[0]
        if name in options:
            skip = 0 if "=" in token else options[name]
            continue
        kept.append(token)
    return kept


def _die_with_parent() -> None:
    """A local worker gets SIGTERM when the tune that started it dies (Linux), never running on alone."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _start_workers(count: int, argv: list[str]) -> list[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "training.cli", *argv, "--workers", "1", "--no-publish"]
    return [subprocess.Popen(command, preexec_fn=_die_with_parent) for _ in range(count)]


def tune(
    args: argparse.Namespace, data: DataSpec, command: str
) -> tuple[preflight.Plan, BundleResult] | None:
    """The search; with ``--no-publish`` it returns None, else the plan and the bundle it published."""
    space = checked_space(args)
    trials = args.trials if args.trials or args.time else studies.DEFAULT_TRIALS
    budget = studies.Budget(trials, time.monotonic() + args.time if args.time else None)
    run_dir = Path(args.run_dir or Path("runs") / args.name).resolve()
    plan = None
    if args.publish:
        plan = preflight.plan_training(
            data,
            Path(args.store).expanduser().resolve() if args.store is not None else default_store(),
            args.name,
            version=args.version,
            run_dir=run_dir,
            force=args.force,
            promoted=args.promoted,
        )
        splits = plan.splits
    else:
        splits = data.load()
    url = args.storage or studies.default_storage(run_dir)
    study = studies.open_study(url, args.study or args.name, args.prune, prune_after=args.prune_after)
    _check_same_search(study, space, data)
    studies.requeue_abandoned(study)
    argv = shlex.split(command)[1:]
    base_command = ["lstm-train", "train", *_strip(argv[1:])]
    workers = _start_workers(args.workers - 1, argv) if args.workers > 1 else []
    logger.info(
        "study %s in %s: %s; budget %s trials%s, %d worker(s) here",
        study.study_name,
        studies.redact(url),
        dict(studies.counts(study)),
        trials,
        f", {args.time:.0f} s" if args.time else "",
        args.workers,
    )
    try:
        studies.work(study, make_objective(args, splits, space, base_command), budget)
    finally:
        for worker in workers:
            if worker.wait() != 0:
                logger.warning("worker process %d ended with status %d", worker.pid, worker.returncode)
    if plan is None:
        return None
    studies.wait_for_running(study)
    return _publish(args, plan, study, space, url, trials, base_command)


def _check_same_search(study: Any, space: dict[str, Any], data: DataSpec) -> None:
    """A study holds one search: joining it with another space or other data would mix incomparable
    trials, so that is refused (the first process to open the study records both)."""
    recorded = {"space": space, "data": data.describe()}
    existing = {key: study.user_attrs.get(key) for key in recorded}
    if existing["space"] is None:
        for key, value in recorded.items():
            study.set_user_attr(key, value)
        return
    if existing != recorded:
        differing = [key for key in recorded if existing[key] != recorded[key]]
        raise SpaceError(
            f"study {study.study_name} was started with another {' and '.join(differing)} "
            f"({existing}); resume it with the same options, or name a new study with --study"
        )


def _publish(
    args: argparse.Namespace,
    plan: preflight.Plan,
    study: Any,
    space: dict[str, Any],
    url: str,
    trials: int | None,
    base_command: list[str],
) -> tuple[preflight.Plan, BundleResult]:
    """Report the search, retrain its best configuration with every seed, bundle the best seed by dev."""
    seen = dict(studies.counts(study))
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise ValueError(
            f"no trial of study {study.study_name} completed ({seen}): nothing to publish; the log says why "
            "the trials failed or were pruned; run the same command again to add trials"
        )
    names = searched(space)
    best = study.best_trial
    values = {name: spec[0] for name, spec in space.items() if name not in names} | dict(best.params)
    found = report.summary(study, url, {"trials": trials, "seconds": args.time}, names, values)
    report.write_report(study, plan.run_dir / "search", names, found)
    seeds = tuple(args.seeds) or tuple(range(args.seed, args.seed + (args.ensemble or 3)))
    recipe = [*base_command, *flags(values, pretrain_files(args)), "--seeds", ",".join(map(str, seeds))]
    recipe += ["--ensemble", str(args.ensemble)] if args.ensemble else []
    logger.info(
        "best of %d trials: trial %d, dev %.4f: %s; retraining it with seeds %s",
        found["trials"],
        best.number,
        best.value,
        values,
        seeds,
    )
    result = train_bundle(
        plan.splits,
        plan.store,
        plan.name,
        **settings_for(args, values),
        run_dir=plan.run_dir / "best",
        version=plan.version,
        baseline=args.baseline,
        quantize=args.quantize,
        command=shlex.join(recipe),
        pos_weight=args.pos_weight,
        calibrated=args.calibration,
        seeds=seeds,
        promoted=None if args.promoted else False,
        promote_int8=args.promote,
        record_extra={"search": found},
        ensemble=bool(args.ensemble),
    )
    assert result is not None  # a single process: it writes the bundle
    print(
        f"search: {found['trials']} trials ({seen}), best trial {best.number} with dev {best.value:.4f}; "
        f"report in {plan.run_dir / 'search'}"
    )
    return plan, result
