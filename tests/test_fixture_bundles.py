"""The committed fixture bundles are what ``tests/fixtures/make_fixture_bundles.py`` writes with the training
code of today: rewritten into a temporary folder, every bundle comes back with the same architecture,
tokenizer, labels and variant (the weights may differ in the last bits, so they are not compared)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from support.stores import FIXTURES

from service.bundle import load_bundle

pytestmark = [pytest.mark.train, pytest.mark.slow]

BUNDLES = [
    "store/tiny-en/1",
    "store/tiny-zh/1",
    "int8/tiny-en/2",
    "shapes/tiny-deep/1",
    "shapes/tiny-bigram/1",
    "shapes/tiny-gru/1",
    "shapes/tiny-tags/1",
]


def test_the_fixture_script_writes_bundles_like_the_committed_ones(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "make_fixture_bundles", FIXTURES / "make_fixture_bundles.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    script.write_fixtures(tmp_path)

    written = sorted(str(path.parent.relative_to(tmp_path)) for path in tmp_path.rglob("manifest.json"))
    assert written == sorted(BUNDLES)
    for folder in BUNDLES:
        new, committed = load_bundle(tmp_path / folder), load_bundle(FIXTURES / folder)
        assert new.labels == committed.labels, folder
        assert new.tokenizer.to_dict() == committed.tokenizer.to_dict(), folder
        assert dict(new.manifest.model) == dict(committed.manifest.model), folder
        assert (new.manifest.variant, new.manifest.batch_invariant) == (
            committed.manifest.variant,
            committed.manifest.batch_invariant,
        ), folder
    assert (tmp_path / "graphs" / "other-inputs.onnx").read_bytes() == (
        FIXTURES / "graphs" / "other-inputs.onnx"
    ).read_bytes()
