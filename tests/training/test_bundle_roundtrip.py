"""The bundle written by training reads back through the service's loader; tampering is refused."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from service.bundle import PARITY_TOLERANCE, BundleError, Manifest, load_bundle, write_bundle


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
        bundle.manifest,
    )
    reread = load_bundle(again)
    assert reread.tokenizer == bundle.tokenizer and reread.labels == bundle.labels
    assert reread.manifest.files == bundle.manifest.files
    assert reread.manifest.schema_version == 1 and reread.version == 1
    # everything but where and when it was written reads back equal, typed; the golden examples' label
    # names are recorded by write_bundle (the committed bundle predates them)
    assert reread.manifest.golden_labels == tuple(bundle.labels) and bundle.manifest.golden_labels is None
    unset = {"created_at": None, "golden_labels": None}
    assert replace(reread.manifest, **unset) == replace(bundle.manifest, **unset)


def test_unknown_manifest_keys_pass_through_and_missing_optional_ones_take_defaults(copied):
    raw = json.loads((copied / "manifest.json").read_text(encoding="utf-8"))
    newer = {**raw, "from_a_newer_trainer": {"kept": [1, 2]}}
    newer["training"] = {**raw["training"], "also_new": True}
    manifest = Manifest.from_dict(newer)
    assert manifest.extra == {"from_a_newer_trainer": {"kept": [1, 2]}}
    assert manifest.training.extra["also_new"] is True
    assert manifest.to_dict()["from_a_newer_trainer"] == {"kept": [1, 2]}
    assert manifest.to_dict()["training"]["also_new"] is True
    required = ("schema_version", "name", "version", "task", "files", "model", "golden")
    older = {key: raw[key] for key in required}
    minimal = Manifest.from_dict(older)
    assert (minimal.variant, minimal.batch_invariant, minimal.data_source, minimal.parity) == (
        "fp32",
        True,
        None,
        None,
    )
    assert minimal.metrics.accuracy is None and minimal.training.command is None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.pop("golden"), "lacks golden"),
        (lambda m: m.update(schema_version=99), "schema_version 99 is not supported"),
        (lambda m: m.update(task="regression"), "task 'regression' is not supported"),
        (lambda m: m["golden"][0].pop("logits"), "golden example 0 must hold text, ids and logits"),
        (lambda m: m["golden"][1].update(ids=["a"]), "golden example 1: text must be a string"),
        (lambda m: m.update(parity={"texts": 3}), "Parity lacks max_abs_logit_diff"),
        (lambda m: m.update(metrics=[]), "Metrics must be a JSON object"),
    ],
)
def test_a_malformed_manifest_is_refused_with_the_reason(copied, edit, message):
    raw = json.loads((copied / "manifest.json").read_text(encoding="utf-8"))
    edit(raw)
    with pytest.raises(BundleError, match=message):
        Manifest.from_dict(raw)


def test_the_committed_default_bundles_load_unchanged():
    store = Path(__file__).resolve().parents[2] / "model_store"
    for name in ("news-topic", "review-sentiment-zh"):
        folder = store / name / "1"
        bundle = load_bundle(folder)  # checksums verified: the files are the committed ones
        raw = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        assert bundle.manifest.to_dict() == {**raw, "batch_invariant": True}  # written since, default True
        assert bundle.manifest.data_source.dataset == raw["training"]["data"]["source"]["dataset"]
        assert bundle.manifest.parity.tolerance == PARITY_TOLERANCE


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
            copied.parent.parent,
            "tiny-en",
            bundle.model_path,
            bundle.tokenizer,
            bundle.labels,
            bundle.manifest,
            1,
        )
