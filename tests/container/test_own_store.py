"""The image serves a user's own store mounted over /models, one without the bundled models (news-topic,
review-sentiment-zh): with no default model set (the first model of the store by name serves requests that
name none) and with ``LSTM_SERVICE_DEFAULT_MODEL`` naming one of the store's models. The store is the tiny
fixture store (tiny-en, tiny-zh).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from support.containers import STORE_IN_IMAGE, Running
from support.stores import STORE

pytestmark = [pytest.mark.container, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def own_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture store, readable by the image's non-root user (``chmod -R a+rX``: pytest's temporary
    folders are 0700)."""
    store = Path(shutil.copytree(STORE, tmp_path_factory.mktemp("own") / "store"))
    for path in [store, *store.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return store


@pytest.mark.parametrize(("default_model", "serves_unnamed"), [(None, "tiny-en"), ("tiny-zh", "tiny-zh")])
def test_own_store_without_the_bundled_models(
    run_container: Callable[..., Running], own_store: Path, default_model: str | None, serves_unnamed: str
) -> None:
    assert not (own_store / "news-topic").exists()
    setting = ["-e", f"LSTM_SERVICE_DEFAULT_MODEL={default_model}"] if default_model else []
    running = run_container("-v", f"{own_store}:{STORE_IN_IMAGE}:ro", *setting)

    status, ready = running.post("/readyz")
    assert status == 200, (ready, running.logs()[-3000:])
    status, models = running.post("/models")
    assert status == 200, models
    assert {model["name"]: model["state"] for model in models["models"]} == {
        "tiny-en": "ready",
        "tiny-zh": "ready",
    }
    status, answer = running.post("/classify", {"text": "the cup final"})
    assert status == 200, answer
    assert answer["model"] == serves_unnamed
    for name in ("tiny-en", "tiny-zh"):
        status, answer = running.post("/classify", {"model": name, "text": "the cup final"})
        assert status == 200 and answer["model"] == name, answer
    status, answer = running.post("/classify", {"model": "news-topic", "text": "the cup final"})
    assert status == 404, answer  # the bundled models are hidden by the mount, not served from the image
