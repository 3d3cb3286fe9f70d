"""The rollout commands refuse bad input with exit status 2 and a message, and change nothing; good input
changes the file and says what it did."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.live_server import REPO
from support.stores import add_version

from service.rollout.state import ROLLOUT_FILE


@pytest.fixture
def store(store_copy: Path) -> Path:
    add_version(store_copy, "tiny-en", 2)
    return store_copy


def _run(store: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *arguments, "--model-store", str(store)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_commands_change_the_file_and_refuse_bad_input_without_changing_it(store: Path) -> None:
    made = _run(
        store, "alias", "tiny-en", "canary", "2", "--weight", "30", "--why", "first look", "--by", "ana"
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "tiny-en: alias canary -> version 2, 30 % of unpinned traffic"
    path = store / "tiny-en" / ROLLOUT_FILE
    written = path.read_text()
    refused = [
        (("alias", "tiny-en", "9lives", "2"), "invalid alias '9lives'"),
        (("alias", "tiny-en", "blue", "5"), "tiny-en has no version 5 in the store (versions: 1, 2)"),
        (("alias", "tiny-en", "blue", "1", "--weight", "71"), "the weights would add up to 101 % (over 100)"),
        (("alias", "tiny-en", "blue", "1", "--weight", "-5"), "weight must be a number from 0 to 100"),
        (("alias", "tiny-en", "blue"), "give the VERSION"),
        (("alias", "nope", "blue", "1"), "model 'nope' is not in the store"),
        (("shadow", "tiny-en", "2", "--percent", "120"), "percent must be a number from 0 to 100"),
        (("promote", "tiny-en", "beta"), "tiny-en has no alias 'beta' (aliases: canary)"),
        (("rollback", "tiny-en"), "the alias stable has no change to roll back"),
    ]
    for arguments, message in refused:
        done = _run(store, *arguments)
        assert done.returncode == 2, (arguments, done.stdout, done.stderr)
        assert message in done.stderr, (arguments, done.stderr)
        assert path.read_text() == written, arguments
    shown = _run(store, "rollout", "tiny-en")
    assert shown.returncode == 0
    history = json.loads(shown.stdout)["history"]
    assert [(c["action"], c["alias"], c["to"], c["who"], c["why"]) for c in history] == [
        ("alias", "canary", 2, "ana", "first look")
    ]
    promoted = _run(store, "promote", "tiny-en", "canary")
    assert promoted.returncode == 0, promoted.stderr
    assert "stable -> version 2 (was 2)" in promoted.stdout  # the store's highest already serves
    assert "no prediction log" in promoted.stdout
