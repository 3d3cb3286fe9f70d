"""The bundle contract at its edges: what the store lists (never a crashed write's leftovers or stray
files), which versions may be served unasked, how a bundle is written (its folder, its permissions, its
manifest's stamps, files people can read and diff) and every refusal, with its message compared whole."""

from __future__ import annotations

import json
import locale
import os
import stat
import tempfile
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from support.stores import add_version, refresh_checksums, rewrite_manifest

import service.bundle.store as store_module
from service.bundle import (
    MANIFEST_FILE,
    SCHEMA_VERSION,
    STORE_VARIABLE,
    Bundle,
    BundleError,
    default_store,
    is_valid_version,
    list_models,
    list_versions,
    load_bundle,
    load_private_key,
    load_public_key,
    promoted_versions,
    record_in_manifest,
    sign_bundle,
    write_bundle,
    write_key_pair,
)
from service.bundle.store import DEFAULT_MODEL_STORE


def _tiny_en(store: Path) -> Bundle:
    return load_bundle(store / "tiny-en" / "1")


def _write(store: Path, name: str = "tiny-en", version: int | None = None, **changes: object) -> Path:
    """A bundle of tiny-en's graph and tokenizer, with ``changes`` to its labels or manifest."""
    original = _tiny_en(store)
    labels = changes.pop("labels", original.labels)
    onnx = changes.pop("onnx", original.model_path)
    manifest = replace(original.manifest, **changes)
    return write_bundle(store, name, onnx, original.tokenizer, labels, manifest, version)


def _refusal(store: Path, **changes: object) -> str:
    with pytest.raises(BundleError) as refused:
        _write(store, **changes)
    return str(refused.value)


# --- what the store lists ---


def test_leftovers_and_stray_files_are_neither_models_nor_versions(store_copy: Path) -> None:
    (store_copy / "tiny-en" / ".2.tmp-k3j9x").mkdir()  # a write that crashed before its rename
    (store_copy / "tiny-en" / "3").write_text("not a bundle", encoding="utf-8")  # a file, not a folder
    (store_copy / ".cache").mkdir()  # not a model name
    (store_copy / "notes.txt").write_text("which model is which", encoding="utf-8")

    assert list_versions(store_copy, "tiny-en") == [1]
    assert list_models(store_copy) == {"tiny-en": [1], "tiny-zh": [1]}


@pytest.mark.parametrize(
    ("not_promoted", "served"),
    [
        ([3], [2, 1]),  # 3 is a candidate: the newest promoted one comes first
        ([2], [3, 1]),
        ([1, 2, 3], [3, 2, 1]),  # never left without a version
    ],
    ids=["newest-not-promoted", "middle-not-promoted", "none-promoted"],
)
def test_the_versions_served_unasked_leave_out_those_not_promoted(
    store_copy: Path, not_promoted: list[int], served: list[int]
) -> None:
    for version in (2, 3):
        add_version(store_copy, "tiny-en", version)
    for version in not_promoted:
        rewrite_manifest(store_copy / "tiny-en" / str(version), lambda m: m.update(promoted=False))

    assert promoted_versions(store_copy, "tiny-en") == served


def test_a_version_with_an_unreadable_manifest_is_tried_not_passed_over(store_copy: Path) -> None:
    add_version(store_copy, "tiny-en", 2)
    (store_copy / "tiny-en" / "2" / MANIFEST_FILE).write_text("{", encoding="utf-8")
    rewrite_manifest(store_copy / "tiny-en" / "1", lambda m: m.update(promoted=True))

    assert promoted_versions(store_copy, "tiny-en") == [2, 1]


def test_the_default_store_is_the_variable_else_the_repositorys_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(STORE_VARIABLE, str(tmp_path / "models"))
    assert default_store() == (tmp_path / "models").resolve()
    monkeypatch.setenv(STORE_VARIABLE, "")  # set but empty: as if unset
    assert default_store() == DEFAULT_MODEL_STORE
    monkeypatch.delenv(STORE_VARIABLE)
    assert default_store() == DEFAULT_MODEL_STORE and DEFAULT_MODEL_STORE.name == "model_store"


def test_versions_run_from_1_to_the_largest_folder_name_allowed() -> None:
    assert is_valid_version(1) and is_valid_version(2**31 - 1)
    assert not any(is_valid_version(value) for value in (0, -1, 2**31, True, "1", 1.0))


# --- writing a bundle ---


def test_a_written_bundle_is_stamped_now_with_this_schema_and_readable_by_others(store_copy: Path) -> None:
    older = _tiny_en(store_copy).manifest
    folder = _write(store_copy, schema_version=0, created_at="2020-01-01T00:00:00+00:00")
    written = load_bundle(folder).manifest

    assert folder == store_copy / "tiny-en" / "2"
    assert written.schema_version == SCHEMA_VERSION
    # recorded in the file, so that a later service reading it knows the schema it was written in
    assert (
        json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))["schema_version"] == SCHEMA_VERSION
    )
    assert written.created_at is not None and written.created_at != older.created_at
    created = datetime.fromisoformat(written.created_at)
    assert created.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - created) < timedelta(minutes=1)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755  # served by another user, written by no other


def test_a_bundles_json_files_are_written_for_people(store_copy: Path) -> None:
    folder = _write(store_copy, labels=["café", "thé", "naïve"])

    assert (folder / "labels.json").read_text(encoding="utf-8") == '[\n "café",\n "thé",\n "naïve"\n]\n'
    manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert list(manifest) == list(load_bundle(folder).manifest.to_dict())  # the fields in their order


def test_non_ascii_labels_are_written_and_read_as_utf8_whatever_the_locale(store_copy: Path) -> None:
    labels = ["café", "thé", "naïve"]
    before = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")  # ASCII here: a locale whose encoding is not UTF-8 (as cp1252)
    try:
        if locale.getpreferredencoding(False).replace("-", "").lower() == "utf8":
            pytest.skip("Python's UTF-8 mode is on: the locale does not choose the encoding")
        folder = _write(store_copy, labels=labels)
        read = load_bundle(folder).labels
    finally:
        locale.setlocale(locale.LC_CTYPE, before)
    assert read == labels
    assert (folder / "labels.json").read_bytes() == '[\n "café",\n "thé",\n "naïve"\n]\n'.encode()


def test_the_first_bundle_creates_the_store(tmp_path: Path, store_copy: Path) -> None:
    original = _tiny_en(store_copy)
    store = tmp_path / "new" / "store"
    folder = write_bundle(
        store, "tiny-en", original.model_path, original.tokenizer, original.labels, original.manifest
    )
    assert folder == store / "tiny-en" / "1" and load_bundle(folder).labels == original.labels


def test_a_bundle_is_staged_on_the_stores_file_system(
    store_copy: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == store_copy.stat().st_dev:
        pytest.skip("needs a second file system (/dev/shm) for the temporary folder")
    temporary = Path(tempfile.mkdtemp(dir=other))
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))  # the temporary folder: on another device
    try:
        folder = _write(store_copy)  # a rename across devices would fail
    finally:
        os.rmdir(temporary)
    assert load_bundle(folder).version == 2


def test_a_write_that_fails_leaves_nothing_and_raises_its_own_error(store_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        _write(store_copy, onnx=tmp_path / "missing.onnx")
    assert sorted(entry.name for entry in (store_copy / "tiny-en").iterdir()) == ["1"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"name": "../outside"},
            "invalid model name '../outside': use letters, digits, '.', '_' or '-' (at most 64)",
        ),
        ({"task": "regression"}, "task 'regression' is not supported (supported: single-label, multi-label)"),
        (
            {"labels": ["food", "food", "tech"]},
            "labels must be at least two distinct names, got ['food', 'food', 'tech']",
        ),
        ({"version": 0}, "version must be a positive integer, got 0"),
    ],
    ids=["name", "task", "labels", "version"],
)
def test_a_bundle_that_must_not_be_written_is_refused_whole(
    store_copy: Path, changes: dict[str, object], message: str
) -> None:
    before = sorted(path.relative_to(store_copy.parent) for path in store_copy.parent.rglob("*"))
    assert _refusal(store_copy, **changes) == message
    assert sorted(path.relative_to(store_copy.parent) for path in store_copy.parent.rglob("*")) == before


def test_a_version_is_never_written_twice(store_copy: Path) -> None:
    assert _refusal(store_copy, version=1) == (
        f"{store_copy / 'tiny-en' / '1'} already exists; bundles are immutable, write a new version"
    )


# --- rewriting a manifest ---


def test_recording_in_a_manifest_keeps_the_files_order(store_copy: Path) -> None:
    folder = add_version(store_copy, "tiny-en", 2)
    rewrite_manifest(folder, lambda m: [m.update({key: m.pop(key)}) for key in reversed(list(m))])
    order = list(json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8")))

    manifest = load_bundle(folder).manifest
    record_in_manifest(folder, replace(manifest, drift={"split": "test", "texts": 1}))

    rewritten = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    assert list(rewritten) == order and rewritten["drift"] == {"split": "test", "texts": 1}


def test_recording_a_changed_identity_is_refused_whole(store_copy: Path) -> None:
    folder = add_version(store_copy, "tiny-en", 2)
    manifest = load_bundle(folder).manifest
    with pytest.raises(BundleError) as refused:
        record_in_manifest(folder, replace(manifest, variant="int8"))
    assert str(refused.value) == "variant differs from the bundle's; write a new version instead"


# --- reading a bundle: every refusal whole ---


def _labels(value: object):
    def damage(bundle: Path) -> None:
        (bundle / "labels.json").write_text(json.dumps(value), encoding="utf-8")
        refresh_checksums(bundle)

    return damage


def _replace_file(file: str, text: str, refresh: bool = True):
    def damage(bundle: Path) -> None:
        (bundle / file).write_text(text, encoding="utf-8")
        if refresh:
            refresh_checksums(bundle)

    return damage


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda bundle: (bundle / MANIFEST_FILE).unlink(), "missing file manifest.json"),
        (lambda bundle: (bundle / "tokenizer.json").unlink(), "missing file tokenizer.json"),
        (
            _replace_file(MANIFEST_FILE, "{", refresh=False),
            "manifest.json is not valid JSON: Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)",
        ),
        (
            _replace_file("labels.json", "[food, sport]"),
            "labels.json is not valid JSON: Expecting value: line 1 column 2 (char 1)",
        ),
        (_labels("food,sport,tech"), "labels.json must be a list of at least two strings"),
        (_labels(["food", 1, "tech"]), "labels.json must be a list of at least two strings"),
        (_labels(["food"]), "labels.json must be a list of at least two strings"),
        (
            lambda bundle: rewrite_manifest(bundle, lambda m: m.update(version=1)),
            "manifest says tiny-en/1 but the bundle sits in tiny-en/2",
        ),
    ],
    ids=[
        "no-manifest",
        "no-tokenizer",
        "manifest-json",
        "labels-json",
        "labels-string",
        "labels-number",
        "one-label",
        "moved-version",
    ],
)
def test_a_bundle_that_must_not_be_served_is_refused_whole(store_copy: Path, damage, message: str) -> None:
    bundle = add_version(store_copy, "tiny-en", 2)
    damage(bundle)
    with pytest.raises(BundleError) as refused:
        load_bundle(bundle)
    assert str(refused.value) == message


def test_a_tokenizer_file_that_is_not_a_tokenizer_is_named(store_copy: Path) -> None:
    bundle = add_version(store_copy, "tiny-en", 2)
    _replace_file("tokenizer.json", '{"mode": "word"}')(bundle)
    with pytest.raises(BundleError) as refused:
        load_bundle(bundle)
    assert str(refused.value).startswith("tokenizer.json: ")


def test_a_missing_folder_is_no_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError) as refused:
        load_bundle(tmp_path / "tiny-en" / "7")
    assert str(refused.value) == f"no bundle at {tmp_path / 'tiny-en' / '7'}"


def test_the_manifest_served_is_the_one_whose_signature_was_checked(
    store_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_key_pair(tmp_path / "key.pem", tmp_path / "key.pub")
    bundle = add_version(store_copy, "tiny-en", 2)
    sign_bundle(bundle, load_private_key(tmp_path / "key.pem"))
    checked = store_module.verify_signature

    def checked_then_replaced(data: bytes, folder: Path, key: object) -> None:
        checked(data, folder, key)
        # another writer replaces the manifest right after its signature was checked
        rewrite_manifest(folder, lambda m: m.update(promoted=False))

    monkeypatch.setattr(store_module, "verify_signature", checked_then_replaced)
    loaded = load_bundle(bundle, load_public_key(tmp_path / "key.pub"))

    assert loaded.manifest.promoted is None  # the signed bytes, not the file as it is now
