"""Signed bundles: with LSTM_SERVICE_BUNDLE_PUBLIC_KEY set, the service serves only bundles whose manifest
is signed with the matching private key, and says why it refuses the others on /readyz and /models;
without it, nothing changes. The golden examples record the label names, so a labels.json with two names
swapped (its checksum recomputed) fails verification even without a key."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError
from support.stores import add_version, rewrite_manifest

from service.bundle import (
    LABELS_FILE,
    SIGNATURE_FILE,
    BundleError,
    load_bundle,
    load_private_key,
    load_public_key,
    record_in_manifest,
    sign_bundle,
    signing,
    write_key_pair,
)
from service.cli import main as service_main
from service.engine.registry import ModelState, Registry
from service.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("keys")
    assert (
        service_main(["keygen", "--private", str(folder / "key.pem"), "--public", str(folder / "key.pub")])
        == 0
    )
    return folder / "key.pem", folder / "key.pub"


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("other-keys")
    write_key_pair(folder / "key.pem", folder / "key.pub")
    return folder / "key.pem", folder / "key.pub"


def _sign_all(store: Path, private: Path) -> None:
    key = load_private_key(private)
    for manifest in store.glob("*/*/manifest.json"):
        sign_bundle(manifest.parent, key)


def _swap_two_labels(bundle: Path) -> None:
    labels = json.loads((bundle / LABELS_FILE).read_text(encoding="utf-8"))
    labels[0], labels[1] = labels[1], labels[0]
    (bundle / LABELS_FILE).write_text(json.dumps(labels), encoding="utf-8")
    rewrite_manifest(bundle, refresh_checksums=True)


def test_keygen_writes_an_owner_only_private_key_and_refuses_to_overwrite(keys: tuple[Path, Path]):
    private, public = keys
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    load_private_key(private), load_public_key(public)
    assert service_main(["keygen", "--private", str(private), "--public", str(public)]) == 2


def test_a_signed_store_serves_and_an_unsigned_or_foreign_one_is_refused(
    store_copy: Path, keys: tuple[Path, Path], other_keys: tuple[Path, Path]
):
    public = load_public_key(keys[1])
    unsigned = Registry(store_copy, public_key=public)
    unsigned.load_all()
    assert {status.state for status in unsigned.statuses().values()} == {ModelState.failed}
    assert "not signed" in (unsigned.status("tiny-en").reason or "")

    _sign_all(store_copy, other_keys[0])  # signed, but by a key the service does not trust
    foreign = Registry(store_copy, public_key=public)
    foreign.load_all()
    assert "does not match" in (foreign.status("tiny-en").reason or "")

    _sign_all(store_copy, keys[0])
    signed = Registry(store_copy, public_key=public)
    signed.load_all()
    assert signed.ready and signed.get("tiny-en").version == 1


async def test_a_swapped_label_in_a_signed_bundle_is_refused_with_its_reason_on_readyz_and_models(
    store_copy: Path, keys: tuple[Path, Path], start_app
):
    _sign_all(store_copy, keys[0])
    _swap_two_labels(store_copy / "tiny-zh" / "1")  # checksums recomputed; the signature no longer holds
    settings = Settings(model_store=store_copy, bundle_public_key=keys[1], readiness="any")
    async with start_app(settings) as client:
        ready = await client.get("/readyz")
        model = await client.get("/models/tiny-zh")
        good = await client.post("/classify", json={"model": "tiny-en", "text": "goal"})
    assert ready.status_code == 200  # readiness "any": tiny-en serves
    assert "does not match" in ready.json()["models"]["tiny-zh"]["reason"]
    assert model.status_code == 200 and model.json()["state"] == "failed"
    assert "manifest was changed after it was signed" in model.json()["reason"]
    assert good.status_code == 200


async def test_without_a_key_signatures_are_not_needed(store_copy: Path, start_app):
    async with start_app(Settings(model_store=store_copy)) as client:
        assert (await client.get("/readyz")).status_code == 200


def test_swapped_labels_fail_verification_without_a_key(store_copy: Path):
    bundle = add_version(store_copy, "tiny-en", 2)  # written now: its golden examples record the labels
    assert load_bundle(bundle).manifest.golden_labels == tuple(load_bundle(bundle).labels)
    _swap_two_labels(bundle)
    registry = Registry(store_copy, pinned={"tiny-en": 2}, fallback=False)
    registry.load_all()
    status = registry.status("tiny-en")
    assert status.state is ModelState.failed
    assert "labels.json does not name the labels as the golden examples recorded them" in (
        status.reason or ""
    )


def test_bundles_written_and_rewritten_while_signing_are_signed(store_copy: Path, keys: tuple[Path, Path]):
    public = load_public_key(keys[1])
    with signing(keys[0]):
        bundle = add_version(store_copy, "tiny-en", 2)
    load_bundle(bundle, public)
    manifest = load_bundle(bundle).manifest
    record_in_manifest(bundle, manifest)  # outside signing(): the old signature is removed, not left stale
    assert not (bundle / SIGNATURE_FILE).exists()
    with signing(keys[0]):
        record_in_manifest(bundle, manifest)
    load_bundle(bundle, public)


def test_a_bad_signing_key_is_refused_before_work(tmp_path: Path, keys: tuple[Path, Path]):
    with pytest.raises(ValueError, match="not an Ed25519 key|cannot read the signing key"), signing(keys[1]):
        pass  # the public key is no private key
    with pytest.raises(ValueError, match="cannot read the signing key"), signing(tmp_path / "missing.pem"):
        pass


def test_the_public_key_setting_is_checked_at_start(
    store_copy: Path, keys: tuple[Path, Path], tmp_path: Path
):
    for wrong in (keys[0], tmp_path / "missing.pub"):
        with pytest.raises(ValidationError, match="public key"):
            Settings(model_store=store_copy, bundle_public_key=wrong)
    with pytest.raises(BundleError):
        load_public_key(keys[0])
