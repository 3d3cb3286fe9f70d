"""The bundle written by training reads back through the service's loader; tampering is refused."""

from __future__ import annotations

import json
import shutil

import pytest

from service.bundle import BundleError, load_bundle, write_bundle


@pytest.fixture
def copied(tiny_store, tmp_path):
    target = tmp_path / "store" / "tiny-en" / "1"
    shutil.copytree(tiny_store / "tiny-en" / "1", target)
    return target


def test_round_trip_keeps_tokenizer_labels_and_manifest(copied, tmp_path):
    bundle = load_bundle(copied)
    again = write_bundle(
        tmp_path / "other",
        "tiny-en",
        bundle.model_path,
        bundle.tokenizer,
        bundle.labels,
        {key: bundle.manifest[key] for key in ("model", "metrics", "golden")},
    )
    reread = load_bundle(again)
    assert reread.tokenizer == bundle.tokenizer and reread.labels == bundle.labels
    assert reread.manifest["files"] == bundle.manifest["files"]
    assert reread.manifest["schema_version"] == 1 and reread.version == 1


@pytest.mark.parametrize("victim", ["model.onnx", "tokenizer.json", "labels.json"])
def test_a_tampered_file_is_refused(copied, victim):
    path = copied / victim
    path.write_bytes(path.read_bytes() + b" ")
    with pytest.raises(BundleError, match="checksum"):
        load_bundle(copied)


def test_a_manifest_that_lies_about_its_place_is_refused(copied):
    manifest = json.loads((copied / "manifest.json").read_text(encoding="utf-8"))
    manifest["version"] = 7
    (copied / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(BundleError, match="sits in"):
        load_bundle(copied)


def test_bundles_are_immutable(copied):
    bundle = load_bundle(copied)
    with pytest.raises(BundleError, match="already exists"):
        write_bundle(
            copied.parent.parent, "tiny-en", bundle.model_path, bundle.tokenizer, bundle.labels, {}, 1
        )
