"""Opening one bundle for serving: read and check it, create its session, verify its golden examples, and
leave the process's memory as it was before the load's temporaries."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from service.bundle import load_bundle
from service.engine.memory import release_memory
from service.engine.runtime import ModelRuntime
from service.engine.verification import verify_golden

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def open_model(
    folder: Path, intra_op_threads: int = 1, public_key: Ed25519PublicKey | None = None
) -> ModelRuntime:
    """Read, check and verify one bundle (signed with ``public_key``'s private key, when given); raise
    :class:`BundleError` (or ORT's error) if it must not serve."""
    runtime = ModelRuntime.open(load_bundle(folder, public_key), intra_op_threads)
    verify_golden(runtime)
    if runtime.tokenizer.segments_chinese:
        _load_jieba()
    runtime.shrink_arena()  # the golden texts' buffers
    release_memory()  # the parsed ONNX file and the other load-time garbage
    return runtime


def _load_jieba() -> None:
    """The word tokenizer segments Chinese with jieba, which reads its dictionary on first use (~1-2 s,
    ~70 MB): for a Chinese word model, do that at start-up rather than inside the first request.
    A word model without Chinese entries loads it only if a request brings Chinese text."""
    import jieba

    jieba.setLogLevel(logging.WARNING)  # else its own handler prints DEBUG lines to stderr
    jieba.initialize()
