"""Shared fixtures and the test markers. Helpers live in the ``support`` package (``tests/support``).

Stores (real bundles, never a mock of onnxruntime; see :mod:`support.stores`):

- ``tiny_store``: ``tiny-en/1`` (word, 3 labels) and ``tiny-zh/1`` (char, 2 labels), copied from the
  committed ``tests/fixtures/store``; needs no torch
- ``shapes_store``: ``tiny-deep/1`` (2 layers, one direction), ``tiny-bigram/1`` (char bigrams),
  ``tiny-gru/1`` (GRU) and ``tiny-tags/1`` (multi-label RNN)
- ``tiny_bundle(store, name, ...)``: trains a bundle at test time (needs torch; skips without it)
- ``store_copy``: a private copy of ``tiny_store``, free to damage or to add versions to
- ``start_app``: ``async with start_app(settings) as client``, the real app in process

Markers: every test gets one kind (unit, api, e2e, train, container), set by :mod:`support.markers` from
where it lives and what it does unless the test sets one itself; a test that starts a real server process
(through ``support.live_server.launch``) is ``e2e``, found from its code before it runs and refused at run
time if it still ends up ``unit`` or ``api``.

Without torch installed the ``train`` tests skip, saying so; the rest run.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest
from support.apps import running_app
from support.data import tiny_examples
from support.markers import (  # noqa: F401  (pytest's hooks, found here by name)
    HAS_TORCH,
    NO_TORCH,
    pytest_collection_modifyitems,
    pytest_runtest_call,
    pytest_runtest_setup,
)
from support.stores import SHAPES, STORE, copy_store

from service.settings import Settings


@pytest.fixture(scope="session")
def tiny_dataset() -> Callable[..., list[tuple[str, str]]]:
    """``tiny_dataset("en" | "zh", per_label=40, seed=0)`` → the made-up (text, label) rows."""
    return tiny_examples


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tiny_bundle(store, name, language="en"|"zh", tokenizer="word", **model_settings)`` → bundle folder.

    Trains on the made-up data with embedding 16, hidden 16 and a few epochs (about a second)."""
    if not HAS_TORCH:
        pytest.skip(NO_TORCH)
    from support.training import train_tiny

    data_folder = tmp_path_factory.mktemp("tiny-data")

    def build(store: Path, name: str, **options: object) -> Path:
        command = f"tests/conftest.py tiny_bundle({name!r}, language={options.get('language', 'en')!r})"
        return train_tiny(store, name, data_folder=data_folder, command=command, **options)

    return build


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model store holding ``tiny-en/1`` (word, 3 labels) and ``tiny-zh/1`` (char, 2 labels).

    A copy of the committed fixture store, shared by the session: tests that change a store copy it."""
    return copy_store(STORE, tmp_path_factory.mktemp("tiny") / "store")


@pytest.fixture(scope="session")
def shapes_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny-deep/1`` (word, 2 layers, one direction, last-state pooling), ``tiny-bigram/1`` (char-bigram
    BiLSTM, mean pooling), ``tiny-gru/1`` (GRU) and ``tiny-tags/1`` (multi-label, one-direction RNN)."""
    return copy_store(SHAPES, tmp_path_factory.mktemp("shapes") / "store")


@pytest.fixture
def store_copy(tiny_store: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny store, free to add versions to and to damage."""
    return copy_store(tiny_store, tmp_path / "store")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def start_app() -> Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]:
    """``async with start_app(settings) as client``: a private app, for other stores or settings."""
    return running_app
