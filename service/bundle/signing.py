"""Ed25519 signatures of bundle manifests: who wrote a bundle, not only whether its files are intact.

The manifest holds the sha256 of every payload file (graph, tokenizer, labels), so a signature of the
manifest's bytes covers the whole bundle. :func:`sign_bundle` writes it to :data:`SIGNATURE_FILE` (base64
text) beside the manifest; :func:`verify_signature` checks it against a public key and raises
:class:`BundleError` saying why a bundle is refused (unsigned, or signed by another key, or changed
since). A checksum alone proves nothing against someone who can rewrite the manifest too; a signature
does, as long as the private key stays with whoever trains the models.

Keys are PEM files: ``lstm-service keygen`` writes a pair, as do
``openssl genpkey -algorithm ed25519 -out bundle-signing.pem`` and
``openssl pkey -in bundle-signing.pem -pubout -out bundle-signing.pub.pem``.
``cryptography`` is imported only here, and only when a key is used.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from service.bundle.record import MANIFEST_FILE, BundleError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNATURE_FILE = "manifest.sig"
# The key bundles written in this context are signed with (write_bundle, record_in_manifest); see signing().
_SIGNING_KEY: contextvars.ContextVar[Ed25519PrivateKey | None] = contextvars.ContextVar(
    "bundle_signing_key", default=None
)


@contextlib.contextmanager
def signing(path: Path | None) -> Iterator[None]:
    """Within it, every bundle written (or whose manifest is rewritten) is signed with the private key in
    ``path`` (None: not signed). The key is read on entry: a bad one raises ``ValueError`` before any
    work starts, as a command's bad argument does."""
    if path is None:
        yield
        return
    try:
        key = load_private_key(path)
    except BundleError as error:
        raise ValueError(str(error)) from None
    token = _SIGNING_KEY.set(key)
    try:
        yield
    finally:
        _SIGNING_KEY.reset(token)


def sign_if_signing(folder: Path) -> None:
    """Sign the bundle in ``folder`` with the key of the enclosing :func:`signing`; without one, remove a
    signature it may hold (its manifest was just written, so an old signature would not match)."""
    key = _SIGNING_KEY.get()
    if key is None:
        remove_signature(folder)
    else:
        sign_bundle(folder, key)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file ``path`` (unencrypted); BundleError saying what is wrong."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise BundleError(f"cannot read the signing key {path}: {_why(error)}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"the signing key {path} is not an Ed25519 key (make one with lstm-service keygen)")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The Ed25519 public key in the PEM file ``path``; BundleError saying what is wrong."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as error:
        raise BundleError(f"cannot read the public key {path}: {_why(error)}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"the public key {path} is not an Ed25519 key (make one with lstm-service keygen)")
    return key


def _why(error: Exception) -> str:
    return error.strerror if isinstance(error, OSError) and error.strerror else str(error) or "not a PEM key"


def sign_bundle(folder: Path, key: Ed25519PrivateKey) -> Path:
    """Sign the manifest of the bundle in ``folder``; returns the signature file."""
    folder = Path(folder)
    signature = key.sign((folder / MANIFEST_FILE).read_bytes())
    target = folder / SIGNATURE_FILE
    staging = folder / f".{SIGNATURE_FILE}.tmp"
    staging.write_text(base64.b64encode(signature).decode("ascii") + "\n", encoding="ascii")
    os.replace(staging, target)
    return target


def verify_signature(manifest_bytes: bytes, folder: Path, key: Ed25519PublicKey) -> None:
    """Raise :class:`BundleError` unless ``folder``'s signature file signs ``manifest_bytes`` with ``key``."""
    from cryptography.exceptions import InvalidSignature

    try:
        text = (Path(folder) / SIGNATURE_FILE).read_text(encoding="ascii")
    except FileNotFoundError:
        raise BundleError(
            f"the bundle is not signed (no {SIGNATURE_FILE}) and LSTM_SERVICE_BUNDLE_PUBLIC_KEY requires a "
            "signature: sign it with lstm-train's --sign-key"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise BundleError(f"{SIGNATURE_FILE} cannot be read: {error}") from None
    try:
        key.verify(base64.b64decode(text.strip(), validate=True), manifest_bytes)
    except (InvalidSignature, binascii.Error, ValueError):
        raise BundleError(
            f"{SIGNATURE_FILE} does not match: the manifest was changed after it was signed, or another "
            "key signed it (LSTM_SERVICE_BUNDLE_PUBLIC_KEY)"
        ) from None


def remove_signature(folder: Path) -> None:
    """Drop the signature of a bundle whose manifest is being rewritten (it would no longer match)."""
    (Path(folder) / SIGNATURE_FILE).unlink(missing_ok=True)


def write_key_pair(private_path: Path, public_path: Path) -> None:
    """A new Ed25519 key pair as PEM files (the private one readable by its owner only)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private)
    Path(public_path).write_bytes(public)
