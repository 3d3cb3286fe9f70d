"""Bundle folders in the model store: the only writer (:func:`write_bundle`) and reader (:func:`load_bundle`).

Layout of ``<store>/<name>/<version>/`` (``version`` is a positive integer):

- ``model.onnx``      the graph (inputs and outputs in :mod:`service.bundle.graph`)
- ``tokenizer.json``  :meth:`service.tokenizer.Tokenizer.to_dict`
- ``labels.json``     the class names, index = logit position
- ``manifest.json``   :class:`service.bundle.manifest.Manifest` (with the sha256 of each file above)

A bundle is written to a hidden temporary folder and renamed into place, so a crash never leaves half
a bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.bundle.manifest import MANIFEST_FILE, SCHEMA_VERSION, TASKS, BundleError, Manifest
from service.bundle.signing import sign_if_signing, verify_signature
from service.tokenizer import Tokenizer

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MODEL_FILE, TOKENIZER_FILE, LABELS_FILE = ("model.onnx", "tokenizer.json", "labels.json")
# The one store training writes to and the service serves, unless told otherwise: the variable (read by
# the service's settings and by lstm-train alike), else the repository's own model_store folder.
STORE_VARIABLE = "LSTM_SERVICE_MODEL_STORE"
DEFAULT_MODEL_STORE = Path(__file__).resolve().parents[2] / "model_store"
_PAYLOAD_FILES = (MODEL_FILE, TOKENIZER_FILE, LABELS_FILE)
# Checked with fullmatch (``$`` alone would let a trailing newline through); the pattern is also the
# JSON Schema's, so it keeps its anchors.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_VERSION = 2**31 - 1  # versions are folder names; a bound keeps 1e308 out of file system calls


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: Manifest
    tokenizer: Tokenizer
    labels: list[str]

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> int:
        return self.manifest.version

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_valid_name(name: object) -> bool:
    """A model name: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit (so never a
    path such as ``..`` or ``a/b``)."""
    return isinstance(name, str) and NAME_PATTERN.fullmatch(name) is not None


def is_valid_version(version: object) -> bool:
    """A version: an int (not a bool) from 1 to :data:`MAX_VERSION`."""
    return type(version) is int and 1 <= version <= MAX_VERSION


def check_name(name: str) -> str:
    if not is_valid_name(name):
        raise BundleError(f"invalid model name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
    return name


def list_versions(store: Path, name: str) -> list[int]:
    """Versions of ``name`` present in the store, ascending (hidden temporary folders are skipped)."""
    folder = Path(store) / check_name(name)
    if not folder.is_dir():
        return []
    return sorted(int(entry.name) for entry in folder.iterdir() if entry.is_dir() and entry.name.isdigit())


def default_store() -> Path:
    """``$LSTM_SERVICE_MODEL_STORE``, else the repository's ``model_store``, as an absolute path."""
    return Path(os.environ.get(STORE_VARIABLE) or DEFAULT_MODEL_STORE).expanduser().resolve()


def promoted_versions(store: Path, name: str) -> list[int]:
    """The versions the service may serve without being asked for one, newest first: every version whose
    manifest does not say ``"promoted": false`` (all of them if every one says so: a model is never left
    without a version). An unreadable manifest counts as promoted, so that its version is tried and its
    fault reported rather than silently passed over."""
    present = list(reversed(list_versions(store, name)))
    versions = []
    for version in present:
        try:
            promoted = read_manifest(Path(store) / name / str(version)).promoted
        except BundleError:
            promoted = None
        if promoted is not False:
            versions.append(version)
    return versions or present


def list_models(store: Path) -> dict[str, list[int]]:
    """Every model name in the store with its versions."""
    store = Path(store)
    if not store.is_dir():
        return {}
    found = {}
    for entry in sorted(store.iterdir()):
        if entry.is_dir() and is_valid_name(entry.name):
            versions = list_versions(store, entry.name)
            if versions:
                found[entry.name] = versions
    return found


def _dump_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1, sort_keys=False) + "\n", encoding="utf-8")


def write_bundle(
    store: Path,
    name: str,
    onnx_path: Path,
    tokenizer: Tokenizer,
    labels: list[str],
    manifest: Manifest,
    version: int | None = None,
) -> Path:
    """Write a complete bundle atomically and return its folder.

    ``manifest`` describes the model; this function sets its ``schema_version``, ``name``, ``version``,
    ``files`` and ``created_at``. ``version`` defaults to one above the highest present.
    """
    check_name(name)
    if manifest.task not in TASKS:
        raise BundleError(f"task {manifest.task!r} is not supported (supported: {', '.join(TASKS)})")
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise BundleError(f"labels must be at least two distinct names, got {labels!r}")
    model_folder = Path(store) / name
    model_folder.mkdir(parents=True, exist_ok=True)
    if version is None:
        version = max(list_versions(store, name), default=0) + 1
    if not isinstance(version, int) or version < 1:
        raise BundleError(f"version must be a positive integer, got {version!r}")
    final = model_folder / str(version)
    if final.exists():
        raise BundleError(f"{final} already exists; bundles are immutable, write a new version")

    staging = Path(tempfile.mkdtemp(prefix=f".{version}.tmp-", dir=model_folder))
    try:
        shutil.copyfile(onnx_path, staging / MODEL_FILE)
        _dump_json(staging / TOKENIZER_FILE, tokenizer.to_dict())
        _dump_json(staging / LABELS_FILE, list(labels))
        written = replace(
            manifest,
            schema_version=SCHEMA_VERSION,
            name=name,
            version=version,
            files={file: sha256_file(staging / file) for file in _PAYLOAD_FILES},
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            golden_labels=tuple(labels),  # the golden logits are in this order
        )
        _dump_json(staging / MANIFEST_FILE, written.to_dict())
        sign_if_signing(staging)  # inside signing(): the bundle appears already signed
        for file in (*_PAYLOAD_FILES, MANIFEST_FILE):
            with (staging / file).open("rb") as handle:
                os.fsync(handle.fileno())
        staging.chmod(0o755)
        os.rename(staging, final)  # atomic on one file system; fails if another writer won the race
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def record_in_manifest(folder: Path, manifest: Manifest) -> Path:
    """Rewrite the manifest of the bundle in ``folder`` with fields that describe it and were measured after
    it was written (e.g. ``drift``). Everything that identifies the bundle (name, version, task, labels'
    and graph's checksums, golden examples) must be unchanged: a changed model is a new version. The
    bundle is signed again inside :func:`~service.bundle.signing.signing`; otherwise a signature of the old
    manifest is removed (it would not match the new one)."""
    folder = Path(folder)
    current = read_manifest(folder)
    verify_checksums(folder, current)
    identity = (
        "name",
        "version",
        "task",
        "variant",
        "files",
        "model",
        "golden",
        "golden_labels",
        "created_at",
    )
    for field_name in identity:
        if getattr(manifest, field_name) != getattr(current, field_name):
            raise BundleError(f"{field_name} differs from the bundle's; write a new version instead")
    written, before = manifest.to_dict(), _read_json(folder / MANIFEST_FILE)
    ordered = {key: written[key] for key in before if key in written}  # keep the file's order: a small diff
    ordered.update(written)
    staging = folder / f".{MANIFEST_FILE}.tmp"
    _dump_json(staging, ordered)
    os.replace(staging, folder / MANIFEST_FILE)
    sign_if_signing(folder)
    return folder


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise BundleError(f"missing file {path.name}") from error
    except (ValueError, UnicodeDecodeError) as error:
        raise BundleError(f"{path.name} is not valid JSON: {error}") from error


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as error:
        raise BundleError(f"missing file {path.name}") from error


def read_manifest(folder: Path, data: bytes | None = None) -> Manifest:
    """The manifest of the bundle in ``folder`` (``data``: its bytes, already read), checked against where
    the folder sits (not the checksums)."""
    folder = Path(folder)
    data = _read_bytes(folder / MANIFEST_FILE) if data is None else data
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise BundleError(f"{MANIFEST_FILE} is not valid JSON: {error}") from error
    manifest = Manifest.from_dict(parsed)
    if str(manifest.version) != folder.name or manifest.name != folder.parent.name:
        raise BundleError(
            f"manifest says {manifest.name}/{manifest.version} but the bundle sits in "
            f"{folder.parent.name}/{folder.name}"
        )
    if set(manifest.files) != set(_PAYLOAD_FILES):
        raise BundleError(f"manifest 'files' must list exactly {', '.join(_PAYLOAD_FILES)}")
    return manifest


def verify_checksums(folder: Path, manifest: Manifest) -> None:
    for file, expected in manifest.files.items():
        path = folder / file
        if not path.is_file():
            raise BundleError(f"missing file {file}")
        if sha256_file(path) != expected:
            raise BundleError(
                f"checksum mismatch for {file}: the file was changed after the bundle was written"
            )


def load_bundle(folder: Path, public_key: Ed25519PublicKey | None = None) -> Bundle:
    """Read and verify a bundle folder; raise :class:`BundleError` saying why if it must not be served.

    With ``public_key``, the manifest must be signed with its private key (:mod:`service.bundle.signing`);
    the bytes checked are the bytes then read."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BundleError(f"no bundle at {folder}")
    data = _read_bytes(folder / MANIFEST_FILE)
    if public_key is not None:
        verify_signature(data, folder, public_key)
    manifest = read_manifest(folder, data)
    verify_checksums(folder, manifest)
    try:
        tokenizer = Tokenizer.from_dict(_read_json(folder / TOKENIZER_FILE))
    except ValueError as error:
        raise BundleError(f"tokenizer.json: {error}") from error
    labels = _read_json(folder / LABELS_FILE)
    if not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(label, str) for label in labels):
        raise BundleError("labels.json must be a list of at least two strings")
    return Bundle(folder, manifest, tokenizer, labels)
