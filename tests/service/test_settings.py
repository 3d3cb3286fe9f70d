"""Settings refuse, at start, a configuration that cannot work; the environment and flags fill them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import DEFAULT_MODEL_STORE, Settings, default_workers, get_settings


def test_defaults(tiny_store: Path) -> None:
    settings = Settings(model_store=tiny_store)

    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, default_workers())
    assert settings.max_body_bytes == 1 << 20
    assert (settings.max_texts, settings.max_text_chars) == (256, 20_000)
    assert settings.default_model is None and settings.pinned == {}
    assert (
        DEFAULT_MODEL_STORE.name == "model_store" and DEFAULT_MODEL_STORE.parent.joinpath("service").is_dir()
    )


def test_environment_variables_with_the_prefix_are_read(
    tiny_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LSTM_SERVICE_MODEL_STORE", str(tiny_store))
    monkeypatch.setenv("LSTM_SERVICE_PORT", "9123")
    monkeypatch.setenv("LSTM_SERVICE_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("LSTM_SERVICE_PINNED", "tiny-en=1, tiny-zh=1")
    get_settings.cache_clear()
    try:
        settings = get_settings()
        assert get_settings() is settings
    finally:
        get_settings.cache_clear()

    assert settings.port == 9123 and settings.log_level == "debug"
    assert settings.pinned == {"tiny-en": 1, "tiny-zh": 1}


def test_init_arguments_override_the_environment(tiny_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LSTM_SERVICE_PORT", "9123")

    assert Settings(model_store=tiny_store, port="9000").port == 9000  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"port": 0}, "greater than or equal to 1"),
        ({"port": 70000}, "less than or equal to 65535"),
        ({"workers": 0}, "greater than or equal to 1"),
        ({"log_format": "xml"}, "'text' or 'json'"),
        ({"max_texts": 0}, "greater than or equal to 1"),
        ({"default_model": "news-topic"}, "default model 'news-topic' is not in the store"),
        ({"pinned": "tiny-en"}, "must look like name=version"),
        ({"pinned": "tiny-en=7"}, "pinned version tiny-en=7 is not in the store"),
        ({"pinned": "ghost=1"}, "pinned model 'ghost' is not in the store"),
    ],
)
def test_settings_that_cannot_work_are_refused(
    tiny_store: Path, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(model_store=tiny_store, **overrides)  # type: ignore[arg-type]


def test_a_missing_store_is_refused_with_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="LSTM_SERVICE_MODEL_STORE"):
        Settings(model_store=tmp_path / "nowhere")


def test_a_store_without_bundles_is_refused(tmp_path: Path) -> None:
    (tmp_path / "half-written" / ".1.tmp-abc").mkdir(parents=True)

    with pytest.raises(ValidationError, match="holds no model bundle"):
        Settings(model_store=tmp_path)


def test_workers_default_to_the_cpus_this_process_may_use(
    monkeypatch: pytest.MonkeyPatch, tiny_store: Path
) -> None:
    if hasattr(os, "sched_getaffinity"):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
        assert Settings(model_store=tiny_store).workers == 3
    monkeypatch.setenv("LSTM_SERVICE_WORKERS", "1")
    assert Settings(model_store=tiny_store).workers == 1
