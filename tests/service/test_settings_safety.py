"""Safe defaults: an empty secret is refused, misspelt variables are named with the closest real one,
errors name the variable, the flag and the rejected value, and the start-up notes say whether
authentication is on. Uses the repository's own store (the settings' default)."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from pydantic import ValidationError

from service.settings import Settings, describe_error, startup_notes, unknown_variables


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.upper().startswith("LSTM_SERVICE_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("variable", ["LSTM_SERVICE_API_KEY", "LSTM_SERVICE_ADMIN_TOKEN"])
@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_secret_is_refused_not_taken_for_unset(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValidationError) as caught:
        Settings()

    described = describe_error(caught.value)
    assert variable in described and "set but empty" in described
    assert repr(value) not in described  # a secret's value is never printed


def test_a_real_secret_is_accepted_and_hidden_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LSTM_SERVICE_API_KEY", "s3cret-key-0123456789")
    assert Settings().api_key is not None

    with pytest.raises(ValidationError) as caught:
        Settings(api_key=123)  # type: ignore[arg-type]  # not a string
    assert "123" not in describe_error(caught.value) and "(hidden)" in describe_error(caught.value)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("LSTM_SERVICE_WORKERS", "0", "LSTM_SERVICE_WORKERS (--workers) = '0': Input should be greater"),
        ("LSTM_SERVICE_PORT", "eighty", "LSTM_SERVICE_PORT (--port) = 'eighty': Input should be a valid"),
        ("LSTM_SERVICE_READINESS", "most", "LSTM_SERVICE_READINESS (--readiness) = 'most':"),
        ("LSTM_SERVICE_DEFAULT_MODEL", "ghost", "LSTM_SERVICE_DEFAULT_MODEL='ghost': default model 'ghost'"),
    ],
)
def test_errors_name_the_variable_and_the_rejected_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValidationError) as caught:
        Settings()

    assert expected in describe_error(caught.value)


def test_unknown_variables_are_named_with_the_closest_known_one() -> None:
    environ = {
        "LSTM_SERVICE_WORKER": "2",
        "LSTM_SERVICE_API_KEYS": "x",
        "LSTM_SERVICE_ZZZ": "1",
        "LSTM_SERVICE_PORT": "8000",  # known: no warning
        "lstm_service_log_level": "info",  # read case-insensitively: known
        "OTHER_WORKER": "2",
    }

    warnings = unknown_variables(environ)

    assert warnings == [
        "LSTM_SERVICE_API_KEYS is not a setting and is ignored; did you mean LSTM_SERVICE_API_KEY?",
        "LSTM_SERVICE_WORKER is not a setting and is ignored; did you mean LSTM_SERVICE_WORKERS?",
        "LSTM_SERVICE_ZZZ is not a setting and is ignored; the known ones start with LSTM_SERVICE_",
    ]


def test_startup_notes_say_whether_authentication_is_on() -> None:
    off = dict(startup_notes(Settings(), environ={}))
    on = dict(
        startup_notes(
            Settings(api_key="k3y-0123456789abcdef", admin_token="t"), environ={"LSTM_SERVICE_WORKER": "2"}
        )
    )

    assert "inference and /models OFF" in off[logging.INFO] and "admin off" in off[logging.INFO]
    assert "inference and /models on" in on[logging.INFO] and "admin on" in on[logging.INFO]
    assert "did you mean LSTM_SERVICE_WORKERS?" in on[logging.WARNING]


def test_the_cli_refuses_an_empty_api_key_naming_the_variable() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service", "serve", "--port", "1"],
        env={"LSTM_SERVICE_API_KEY": "", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2, result.stderr
    assert "LSTM_SERVICE_API_KEY" in result.stderr and "set but empty" in result.stderr
