"""``lstm-train train --sign-key`` and ``export --sign-key``: the bundles they write are signed (a service
with the public key serves them); a key that is not a private Ed25519 key is refused before any training."""

from __future__ import annotations

import csv
from pathlib import Path

from service.bundle import SIGNATURE_FILE, load_bundle, load_public_key, write_key_pair
from training.cli import main

SMALL = ["--embedding-dim", "8", "--hidden-dim", "8", "--epochs", "1", "--batch-size", "16"]
SMALL += ["--lr", "0.01", "--threads", "1", "--no-progress", "--no-baseline", "--allow-weak"]


def _data(path: Path, rows) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("text", "label"), *rows])
    return path


def test_a_trained_bundle_is_signed_with_the_given_key(tmp_path: Path, tiny_dataset):
    write_key_pair(tmp_path / "key.pem", tmp_path / "key.pub")
    data = _data(tmp_path / "data.csv", tiny_dataset("en", per_label=15))
    store = tmp_path / "store"
    argv = ["train", "--data", str(data), "--name", "signed", "--store", str(store), "--sign-key"]
    assert main([*argv, str(tmp_path / "key.pem"), "--run-dir", str(tmp_path / "run"), *SMALL]) == 0
    bundle = store / "signed" / "1"
    assert (bundle / SIGNATURE_FILE).is_file()
    loaded = load_bundle(bundle, load_public_key(tmp_path / "key.pub"))  # raises unless the signature holds
    assert loaded.manifest.golden_labels == tuple(loaded.labels)

    # export writes a signed bundle too (and its int8 variant)
    argv = ["export", "--checkpoint", str(tmp_path / "run"), "--name", "exported", "--store", str(store)]
    argv += ["--allow-weak"]  # one epoch of a tiny model
    assert main([*argv, "--quantize", "--sign-key", str(tmp_path / "key.pem")]) == 0
    for version in (1, 2):
        load_bundle(store / "exported" / str(version), load_public_key(tmp_path / "key.pub"))


def test_a_bad_key_is_refused_before_training(tmp_path: Path, tiny_dataset, caplog):
    write_key_pair(tmp_path / "key.pem", tmp_path / "key.pub")
    data = _data(tmp_path / "data.csv", tiny_dataset("en", per_label=15))
    store = tmp_path / "store"
    for key in (tmp_path / "key.pub", tmp_path / "missing.pem"):
        argv = [
            "train",
            "--data",
            str(data),
            "--name",
            "signed",
            "--store",
            str(store),
            "--sign-key",
            str(key),
        ]
        assert main([*argv, *SMALL]) == 2
    assert not store.exists()
    assert "signing key" in caplog.text
