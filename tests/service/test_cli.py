"""The ``lstm-service`` command: serve flags turned into one settings object handed to the server; the
training commands point at ``lstm-train``."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from service import cli
from service.settings import Settings, default_workers


@pytest.mark.parametrize("command", ["train", "export", "evaluate"])
def test_training_commands_point_at_lstm_train_and_exit_2(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([command, "--data", "x.csv"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"lstm-train {command}" in line


def test_serve_flags_override_the_environment_and_reach_the_server(
    tiny_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service import launch

    calls: list[tuple[Settings, dict[str, Any]]] = []
    monkeypatch.setenv("LSTM_SERVICE_PORT", "9999")
    monkeypatch.setenv("LSTM_SERVICE_DRAIN_SECONDS", "7")
    monkeypatch.setattr(launch, "run", lambda settings, log_config: calls.append((settings, log_config)) or 0)
    environment_before = dict(os.environ)
    sigterm_handler_before = signal.getsignal(signal.SIGTERM)

    code = cli.main(
        ["serve", "--model-store", str(tiny_store), "--port", "8123", "--default-model", "tiny-zh"]
    )

    assert code == 0
    ((settings, log_config),) = calls
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8123, default_workers())
    assert (settings.default_model, settings.drain_seconds) == ("tiny-zh", 7)
    assert log_config["handlers"]["default"]["filters"] == ["request_id"]
    # the settings travel as an object: nothing is written to the environment, no handler left behind
    assert dict(os.environ) == environment_before
    assert signal.getsignal(signal.SIGTERM) == sigterm_handler_before


def test_the_server_runs_the_factory_with_a_grace_period_for_requests_in_flight(
    tiny_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from service import launch, server

    started: list[uvicorn.Config] = []

    def fake_run(self: server.DrainingServer, sockets: Any = None) -> None:
        started.append(self.config)
        self.started = True

    monkeypatch.setattr(server.DrainingServer, "run", fake_run)
    settings = Settings(
        model_store=tiny_store, port=8124, request_timeout_seconds=2.5, drain_seconds=1, workers=1
    )

    assert launch.run(settings, {"version": 1, "disable_existing_loggers": False}) == 0
    (config,) = started
    assert config.factory and config.port == 8124
    assert config.app().state.settings is settings  # the app is built from the settings handed over
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

    for name in Settings.model_fields:
        assert "--" + name.replace("_", "-") in help_text
