"""What an operator reads when newer versions of a model are broken: several broken versions are each
named for their own fault, and a payload file the manifest does not list is refused, not served
unchecked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.stores import add_version, rewrite_manifest

from service.bundle import BundleError, load_bundle
from service.settings import Settings

pytestmark = pytest.mark.anyio


def _append_space(bundle: Path, file: str) -> None:
    with (bundle / file).open("a", encoding="utf-8") as handle:
        handle.write(" ")  # changed after the bundle was written: its checksum no longer matches


async def test_with_two_broken_newer_versions_the_newest_is_named_and_each_for_its_own_fault(
    store_copy: Path, start_app
):
    _append_space(add_version(store_copy, "tiny-en", 2), "labels.json")
    _append_space(add_version(store_copy, "tiny-en", 3), "tokenizer.json")
    async with start_app(Settings(model_store=store_copy)) as client:
        ready = (await client.get("/readyz")).json()["models"]["tiny-en"]
        detail = (await client.get("/models/tiny-en")).json()
        classified = await client.post("/classify", json={"model": "tiny-en", "text": "the cup match"})
    assert classified.status_code == 200 and classified.json()["version"] == 1
    assert ready["state"] == "ready" and ready["version"] == 1 and ready["failed_version"] == 3
    assert detail["reason"].startswith("version 3 failed verification: checksum mismatch for tokenizer.json")
    assert "tiny-en/3" in detail["reason"] and "labels.json" not in detail["reason"]


async def test_with_every_version_broken_the_newest_fault_comes_first_then_each_older_one(
    store_copy: Path, start_app
):
    _append_space(add_version(store_copy, "tiny-en", 2), "labels.json")
    _append_space(add_version(store_copy, "tiny-en", 3), "tokenizer.json")
    _append_space(store_copy / "tiny-en" / "1", "model.onnx")  # last: the versions above copy it
    async with start_app(Settings(model_store=store_copy)) as client:
        ready = await client.get("/readyz")
        detail = (await client.get("/models/tiny-en")).json()
    assert ready.status_code == 503 and ready.json()["models"]["tiny-en"]["state"] == "failed"
    reason = detail["reason"]
    assert reason.startswith("checksum mismatch for tokenizer.json"), reason
    assert "version 2: checksum mismatch for labels.json" in reason
    assert "version 1: checksum mismatch for model.onnx" in reason


def _unlisted_swapped_labels(bundle: Path) -> None:
    labels = json.loads((bundle / "labels.json").read_text(encoding="utf-8"))
    (bundle / "labels.json").write_text(json.dumps(labels[::-1]), encoding="utf-8")  # every answer relabelled
    rewrite_manifest(bundle, lambda manifest: manifest["files"].pop("labels.json"))


def test_a_payload_file_the_manifest_does_not_list_is_refused(store_copy: Path):
    bundle = add_version(store_copy, "tiny-en", 2)
    _unlisted_swapped_labels(bundle)
    with pytest.raises(BundleError, match="manifest 'files' must list exactly model.onnx, tokenizer.json"):
        load_bundle(bundle)


async def test_a_version_with_an_unlisted_swapped_labels_file_is_not_served(store_copy: Path, start_app):
    _unlisted_swapped_labels(add_version(store_copy, "tiny-en", 2))
    async with start_app(Settings(model_store=store_copy)) as client:
        classified = await client.post("/classify", json={"model": "tiny-en", "text": "the cup match"})
        detail = (await client.get("/models/tiny-en")).json()
    assert classified.status_code == 200
    assert classified.json()["version"] == 1 and classified.json()["results"][0]["label"] == "sport"
    assert detail["reason"].startswith("version 2 failed verification: manifest 'files' must list exactly")
