"""The ``lstm-service`` command: training commands handed over lazily, serve flags turned into settings."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from service import cli
from service.settings import default_workers


def test_training_commands_go_to_training_cli_with_the_subcommand_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    received: list[list[str]] = []
    fake = types.ModuleType("training.cli")
    fake.main = lambda argv: received.append(argv) or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "training.cli", fake)

    assert cli.main(["export", "--checkpoint", "runs/x", "--help"]) == 0
    assert received == [["export", "--checkpoint", "runs/x", "--help"]]


def test_a_missing_train_extra_exits_2_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "training.cli", None)

    assert cli.main(["evaluate", "--data", "x.csv"]) == 2
    assert "lstm-service evaluate needs the training dependencies" in capsys.readouterr().err


def test_serve_flags_override_the_environment_and_reach_the_server(
    tiny_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service import server

    calls: list[tuple[cli.Settings, dict[str, Any]]] = []
    monkeypatch.setattr(os, "environ", {**os.environ, "LSTM_SERVICE_PORT": "9999"})
    monkeypatch.setattr(server, "run", lambda settings, log_config: calls.append((settings, log_config)) or 0)

    code = cli.main(
        ["serve", "--model-store", str(tiny_store), "--port", "8123", "--default-model", "tiny-zh"]
    )

    assert code == 0
    ((settings, log_config),) = calls
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8123, default_workers())
    assert log_config["handlers"]["default"]["filters"] == ["request_id"]
    # worker processes build their settings from the environment the flags were written to
    assert os.environ["LSTM_SERVICE_PORT"] == "8123"
    assert os.environ["LSTM_SERVICE_DEFAULT_MODEL"] == "tiny-zh"


def test_the_server_runs_the_factory_with_a_grace_period_for_requests_in_flight(
    tiny_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from service import server

    started: list[uvicorn.Config] = []

    def fake_run(self: server.DrainingServer, sockets: Any = None) -> None:
        started.append(self.config)
        self.started = True

    monkeypatch.setattr(server.DrainingServer, "run", fake_run)
    settings = cli.Settings(
        model_store=tiny_store, port=8124, request_timeout_seconds=2.5, drain_seconds=1, workers=1
    )

    assert server.run(settings, {"version": 1, "disable_existing_loggers": False}) == 0
    (config,) = started
    assert (config.app, config.factory) == ("service.api.app:create_app", True)
    assert (config.port, config.workers) == (8124, 1)
    assert config.timeout_graceful_shutdown == 4
    assert server.grace_seconds(settings) == 1 + 3 + 1


def test_serve_with_settings_that_cannot_work_exits_2(
    tiny_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["serve", "--model-store", str(tiny_store), "--default-model", "ghost"]) == 2
    assert "default model 'ghost' is not in the store" in capsys.readouterr().err


def test_every_setting_has_a_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    help_text = capsys.readouterr().out

    for name in cli.Settings.model_fields:
        assert "--" + name.replace("_", "-") in help_text
