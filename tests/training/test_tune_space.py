"""``lstm-train tune`` before and around its trials: bad spaces and budgets are refused before any trial
runs (and before anything is written), the values a trial picks are the train command it records, a
trial is pruned from its dev curve epoch by epoch, and a study refuses to mix searches or to lose the
trials of a process that died."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import optuna
import pytest
from support.data import tiny_examples, write_csv

from service.bundle import load_bundle
from training.cli import main
from training.cli.arguments import build_parser
from training.cli.search import space as search_space
from training.cli.search import study as studies
from training.cli.search.command import _check_same_search, _strip, checked_space
from training.cli.search.objective import make_objective
from training.cli.search.settings import base_values, settings_for
from training.cli.search.space import SpaceError
from training.data.source import DataSpec


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "tiny.csv", tiny_examples("en", per_label=16))


def _tune(tmp_path: Path, data: Path, *extra: str) -> list[str]:
    return ["tune", "--data", str(data), "--name", "t", "--store", str(tmp_path / "store"), "--run-dir",
            str(tmp_path / "run"), *extra]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--space", "hiden_dim=8,16"], "unknown search parameter 'hiden_dim' (did you mean hidden_dim?)"),
        (
            ["--space", "lr=1e-2..1e-4"],
            "lr: empty range 0.01..0.0001 (low above high); write lr=0.0001..0.01",
        ),
        (["--space", "cell="], "cell: no values to choose from"),
        (["--space", "cell=lstm,transformer"], "cell: 'transformer' is not one of lstm, gru, rnn"),
        (["--space", "num_layers=1,1.5"], "num_layers: '1.5' is not an integer"),
        (["--space", "dropout=0.2..1.0"], "dropout: '1.0' must stay below 1"),
        (["--space", "lr=0..1e-2"], "lr: '0' must be above 0"),
        (["--space", "embedding_dropout=0..0.3:log"], "a log range needs low > 0"),
        (["--space", "pooling=max..mean"], "pooling takes choices, not a range"),
        (["--space", "w2v=none,text"], "give it with --pretrain-text"),
        (["--resume"], "tune resumes its study by itself"),
    ],
)
def test_bad_spaces_are_refused_before_any_trial_with_the_fix(tmp_path, data, caplog, extra, message) -> None:
    assert main(_tune(tmp_path, data, *extra)) == 2
    assert message in caplog.text
    assert not (tmp_path / "run").exists() and not (tmp_path / "store").exists()  # no study, no bundle


def test_a_space_file_with_an_unknown_parameter_is_refused(tmp_path, data, caplog) -> None:
    space = tmp_path / "space.json"
    space.write_text('{"hidden_dim": [8, 16], "learning_rate": [0.01]}')
    assert main(_tune(tmp_path, data, "--space-file", str(space))) == 2
    assert "unknown search parameter 'learning_rate'" in caplog.text and "lr" in caplog.text
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--trials", "0"], "--trials of 0 runs nothing: give 1 or more"),
        (["--time", "0m"], "a time budget of '0m' runs no trial"),
        (["--time", "soon"], "expected a duration like 90s, 30m or 2h"),
        (["--workers", "0"], "--workers of 0 runs nothing"),
        (["--prune-after", "0"], "--prune-after takes an epoch (1, 2, ...), got '0'"),
        (["--prune-after", "two"], "--prune-after takes an epoch (1, 2, ...), got 'two'"),
    ],
)
def test_a_bad_budget_or_first_epoch_is_refused_by_the_parser(tmp_path, data, capsys, extra, message) -> None:
    with pytest.raises(SystemExit) as exit_code:
        main(_tune(tmp_path, data, *extra))
    assert exit_code.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_space_options_and_files_narrow_and_widen_the_default(tmp_path) -> None:
    file = tmp_path / "space.json"
    file.write_text('{"hidden_dim": {"low": 16, "high": 64}, "clip": [1, 5]}')
    base = search_space.default_space(max_length=200, pretrain_text=False, w2v_file=False)
    space = search_space.build_space(base, ["cell=gru", "lr=1e-4..1e-2:log", "bidirectional=true"], file)
    assert space["cell"] == ["gru"] and "cell" not in search_space.searched(space)  # one choice: fixed
    assert space["lr"] == {"low": 1e-4, "high": 1e-2, "log": True}
    assert space["hidden_dim"] == {"low": 16, "high": 64, "log": False}  # widened to a range
    assert space["clip"] == [1.0, 5.0]  # not in the default space: added
    assert space["bidirectional"] == [True]
    assert space["max_length"] == [100, 200] and space["w2v"] == ["none", "train"]
    assert "w2v" not in search_space.default_space(200, False, w2v_file=True)


def test_a_trials_values_are_the_train_command_it_records() -> None:
    """The flags a trial records, parsed by ``train``'s own parser, give back exactly its values."""
    values = {
        "cell": "gru",
        "bidirectional": False,
        "dropout": 0.123456789012,
        "lr": 0.0031622776601683794,
        "max_length": 64,
        "w2v": "text",
        "ema_decay": 0.99,
    }
    flags = search_space.flags(values, ("/data/more.txt",))
    parsed = build_parser().parse_args(["train", "--dataset", "bbc-news", "--name", "n", *flags])
    assert base_values(parsed) == {**base_values(parsed), **values}
    settings = settings_for(parsed, {})
    assert settings["training"].learning_rate == values["lr"] and settings["model"].cell == "gru"
    assert settings["pretrained"].texts == ("/data/more.txt",) and settings["pretrained"].source == "train"


def test_the_train_command_leaves_out_tunes_own_options() -> None:
    argv = ["--data", "d.csv", "--trials", "5", "--space", "lr=1..2", "--space=cell=gru", "--pretrain-text",
            "a.txt", "b.txt", "--no-prune", "--name", "n", "--time", "2h", "--seeds", "1,2", "--prune-after",
            "4"]  # fmt: skip
    assert _strip(argv) == ["--data", "d.csv", "--name", "n"]


def _args(tmp_path: Path, data: Path, *extra: str) -> argparse.Namespace:
    return build_parser().parse_args(_tune(tmp_path, data, "--epochs", "4", "--threads", "1", *extra))


def test_a_trial_below_the_pruners_bar_stops_after_its_first_epoch(tmp_path, data) -> None:
    args = _args(tmp_path, data)
    splits = DataSpec(data=str(data), seed=0).load()
    space = search_space.build_space({}, ["embedding_dim=8", "hidden_dim=8", "max_length=16", "lr=0.01"])
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1.01))
    study.optimize(make_objective(args, splits, space, ["lstm-train", "train"]), n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert [row["epoch"] for row in trial.user_attrs["history"]] == [1]  # of 4 epochs
    assert trial.intermediate_values.keys() == {1}

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    study.optimize(make_objective(args, splits, space, ["lstm-train", "train"]), n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE and len(trial.user_attrs["history"]) == 4
    assert trial.value == max(row["dev_accuracy"] for row in trial.user_attrs["history"])
    assert trial.user_attrs["command"].endswith(
        "--embedding-dim 8 --hidden-dim 8 --max-length 16 --lr 0.01 --seed 13"
    )


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
@pytest.mark.parametrize(
    ("extra", "first"), [([], 3), (["--prune-after", "1"], 1), (["--prune-after", "5"], 5)]
)
def test_the_pruner_judges_a_trial_from_the_epoch_prune_after_names(tmp_path, data, extra, first) -> None:
    """Three finished trials at 0.9 on every epoch, then one at 0.1: it is stopped at epoch ``first``
    (3 unless told), never before."""
    args = _args(tmp_path, data, "--epochs", "6", *extra)
    storage = studies.default_storage(tmp_path)
    study = studies.open_study(storage, "s", args.prune, prune_after=args.prune_after)
    for _ in range(3):
        done = study.ask()
        for epoch in range(1, 7):
            done.report(0.9, epoch)
        study.tell(done, 0.9)
    low = study.ask()
    judged = []
    for epoch in range(1, 7):
        low.report(0.1, epoch)
        judged.append(low.should_prune())
    assert judged == [epoch >= first for epoch in range(1, 7)]


def test_a_prune_after_past_the_last_epoch_says_that_no_trial_is_stopped(tmp_path, data, caplog) -> None:
    checked_space(_args(tmp_path, data, "--epochs", "4", "--prune-after", "5"))
    assert "--prune-after 5 with --epochs 4: no trial is stopped early" in caplog.text
    caplog.clear()
    checked_space(_args(tmp_path, data, "--epochs", "4", "--prune-after", "4"))
    assert "no trial is stopped early" not in caplog.text


def test_a_study_holds_one_search(tmp_path, data) -> None:
    study = studies.open_study(studies.default_storage(tmp_path), "s", prune=True)
    spec = DataSpec(data=str(data), seed=0)
    _check_same_search(study, {"cell": ["lstm", "gru"]}, spec)
    _check_same_search(study, {"cell": ["lstm", "gru"]}, spec)  # the same search joins
    with pytest.raises(SpaceError, match="started with another space.*name a new study with --study"):
        _check_same_search(study, {"cell": ["gru"]}, spec)


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_trials_of_a_dead_process_on_this_machine_are_failed_and_queued_again(tmp_path) -> None:
    study = studies.open_study(studies.default_storage(tmp_path), "s", prune=False)
    dead = subprocess.Popen(["true"])  # noqa: S603,S607
    dead.wait()
    orphan, alive = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2)}), study.ask()
    orphan.set_user_attr(studies.WORKER_ATTR, {"host": studies.worker_id()["host"], "pid": dead.pid})
    alive.set_user_attr(studies.WORKER_ATTR, studies.worker_id())

    assert studies.requeue_abandoned(study) == [orphan.number]
    states = {trial.number: trial.state.name for trial in study.get_trials()}
    assert states[orphan.number] == "FAIL" and states[alive.number] == "RUNNING"
    assert len(study.get_trials(states=(optuna.trial.TrialState.WAITING,))) == 1
    retried = study.ask()  # the queued trial comes first, with the orphan's values
    assert retried.suggest_float("lr", 1e-4, 1e-2) == orphan.params["lr"]
    assert retried.user_attrs["retry_of"] == orphan.number


def test_a_one_worker_search_publishes_and_a_second_run_adds_only_the_missing_trials(
    tmp_path, data, capsys
) -> None:
    space = ["--space", "embedding_dim=8", "--space", "hidden_dim=8", "--space", "max_length=16"]
    space += ["--space", "batch_size=16", "--space", "w2v=none", "--space", "lr=0.005..0.02:log"]
    common = ["--epochs", "2", "--threads", "1", "--no-baseline", "--no-progress", "--seeds", "1", *space]

    assert main(_tune(tmp_path, data, "--trials", "2", *common)) == 0
    assert main(_tune(tmp_path, data, "--trials", "3", *common)) == 0  # the study resumes: one more trial

    study = optuna.load_study(study_name="t", storage=studies.default_storage(tmp_path / "run"))
    assert [trial.state.name for trial in study.trials] == ["COMPLETE"] * 3
    first = load_bundle(tmp_path / "store" / "t" / "1").manifest.training.extra["search"]
    second = load_bundle(tmp_path / "store" / "t" / "2").manifest.training.extra["search"]
    assert (first["trials"], second["trials"]) == (2, 3)
    assert second["best_trial"] == study.best_trial.number and second["chosen"]["hidden_dim"] == 8
    assert "search: 3 trials" in capsys.readouterr().out
