"""``lstm-train tune``'s options: every option of ``train`` (data, tokenizer, model, training, output),
which set the values of whatever is not searched, plus the search's own. No torch here."""

from __future__ import annotations

import argparse
import re

TUNE_EXAMPLES = """examples:
  lstm-train tune --data reviews.csv --name reviews --trials 30 --time 2h
  lstm-train tune --dataset zh-sentiment --name zh --tokenizer char --max-length 128 --workers 2 \\
      --storage postgresql://postgres@127.0.0.1:5432/test --space cell=lstm --space lr=5e-4..3e-3:log
"""
# tune's own options and how many values each takes: stripped from a trial's reproducible train command
TUNE_OPTIONS = {
    "--trials": 1,
    "--time": 1,
    "--workers": 1,
    "--storage": 1,
    "--study": 1,
    "--space": 1,
    "--space-file": 1,
    "--no-publish": 0,
    "--no-prune": 0,
    "--prune-after": 1,
    "--seeds": 1,
    "--ensemble": 1,  # the final retraining's, not a trial's
}
PRUNE_AFTER_EPOCHS = 3  # dev curves of small data sets swing for the first epochs
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """``90s``, ``30m``, ``2h``, ``1.5h``, ``1d`` or plain seconds → seconds (> 0)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smhd]?)\s*", text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"expected a duration like 90s, 30m or 2h, got {text!r}")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"a time budget of {text!r} runs no trial: give more, e.g. 30m")
    return seconds


def _positive(what: str):  # type: ignore[no-untyped-def]
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number, got {text!r}") from error
        if value < 1:
            raise argparse.ArgumentTypeError(f"{what} of {value} runs nothing: give 1 or more")
        return value

    return parse


def _first_epoch(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"--prune-after takes an epoch (1, 2, ...), got {text!r}")
    return int(text)


def add_tune_parser(commands: argparse._SubParsersAction, train: argparse.ArgumentParser) -> None:
    """``tune`` takes every ``train`` option (the same action objects, so the two cannot drift apart)."""
    tune = commands.add_parser(
        "tune",
        formatter_class=train.formatter_class,
        conflict_handler="resolve",  # -h/--help comes from train's actions too
        help="search the training settings on dev (Optuna), then train the best with 3 seeds and bundle it",
        description="A hyperparameter search over train's settings, chosen on the dev split only. Every "
        "train option sets the value of what is not searched; --seeds (default: --seed and the next two) "
        "retrains the best configuration at the end.",
        epilog=TUNE_EXAMPLES,
    )
    tune._add_container_actions(train)
    search = tune.add_argument_group("search")
    search.add_argument(
        "--trials",
        type=_positive("--trials"),
        help="trials in the study, counted over every worker and "
        "every resumed run (default: 20 unless --time is given)",
    )
    search.add_argument(
        "--time",
        type=duration,
        metavar="DURATION",
        help="start no trial after this long (90s, 30m, 2h); running trials finish",
    )
    search.add_argument(
        "--workers", type=_positive("--workers"), default=1, help="local processes sharing the study"
    )
    search.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage of the study: a SQLite URL (default: sqlite:///<run-dir>/study.db) or a "
        "PostgreSQL URL that several processes or machines share",
    )
    search.add_argument("--study", metavar="NAME", help="study name in the storage (default: --name)")
    search.add_argument(
        "--space",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="change one parameter's values: a,b,c (choices; one value fixes it) or LOW..HIGH[:log]; "
        "repeatable",
    )
    search.add_argument("--space-file", metavar="FILE", help="JSON {NAME: [choices] | {low, high, log}}")
    search.add_argument(
        "--no-publish",
        dest="publish",
        action="store_false",
        help="only run trials in the study (a worker on another machine); another tune publishes",
    )
    search.add_argument(
        "--no-prune", dest="prune", action="store_false", help="never stop a trial early on its dev curve"
    )
    search.add_argument(
        "--prune-after",
        type=_first_epoch,
        default=PRUNE_AFTER_EPOCHS,
        metavar="EPOCH",
        help="the first epoch whose dev score may stop a trial (default: %(default)s); slow starters, "
        "such as frozen word2vec vectors, need a later one",
    )
