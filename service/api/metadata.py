"""What ``GET /models`` says about a model: its manifest, minus the vocabulary and the golden examples."""

from __future__ import annotations

from typing import Any

from service.engine.registry import ModelState, ModelStatus
from service.engine.runtime import ModelRuntime

# Manifest sections passed through as they are (they describe the model, they are not the model).
_PASSED_THROUGH = ("parameters", "metrics", "training", "libraries", "parity")


def model_summary(
    status: ModelStatus, runtime: ModelRuntime | None, default_model: str | None
) -> dict[str, Any]:
    return {
        "name": status.name,
        "state": status.state.value,
        "version": status.version,
        "reason": status.reason,
        "default": status.name == default_model,
        "pinned": status.pinned,
        "task": runtime.manifest.get("task") if runtime else None,
        "labels": list(runtime.labels) if runtime else None,
    }


def model_detail(
    status: ModelStatus, runtime: ModelRuntime | None, default_model: str | None, versions: list[int]
) -> dict[str, Any]:
    detail = model_summary(status, runtime, default_model)
    detail["versions"] = versions
    if runtime is None or status.state is not ModelState.ready:
        return detail | dict.fromkeys(
            ("tokenizer", "dimensions", *_PASSED_THROUGH, "checksums", "created_at")
        )
    manifest, tokenizer = runtime.manifest, runtime.tokenizer
    detail["tokenizer"] = {
        "mode": tokenizer.mode,
        "lowercase": tokenizer.lowercase,
        "max_length": tokenizer.max_length,
        "vocab_size": tokenizer.vocab_size,
    }
    detail["dimensions"] = dict(manifest.get("model") or {})
    detail.update((key, manifest.get(key)) for key in _PASSED_THROUGH)
    detail["checksums"] = dict(manifest["files"])
    detail["created_at"] = manifest.get("created_at")
    return detail
