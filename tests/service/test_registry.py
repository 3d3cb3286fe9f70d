"""The registry loads every model, keeps a failed one out with its reason, and looks models up."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from service.engine.registry import ModelState, Registry
from service.errors import NotFound, Unavailable


def test_every_model_of_the_store_is_loaded_and_verified(tiny_store: Path) -> None:
    registry = Registry(tiny_store)

    registry.load_all()

    assert registry.ready
    assert registry.names == ["tiny-en", "tiny-zh"]
    assert registry.default_model == "tiny-en"  # first alphabetically when none is configured
    assert registry.get().name == "tiny-en"
    assert registry.get("tiny-zh", 1).version == 1


def test_lookups_that_cannot_be_answered(tiny_store: Path) -> None:
    registry = Registry(tiny_store, default_model="tiny-zh")
    registry.load_all()

    assert registry.get().name == "tiny-zh"
    with pytest.raises(NotFound, match="unknown model 'ghost'"):
        registry.get("ghost")
    with pytest.raises(NotFound, match="no loaded version 2"):
        registry.get("tiny-en", 2)


def test_a_tampered_bundle_is_not_served_and_the_others_are(store_copy: Path) -> None:
    onnx_file = store_copy / "tiny-en" / "1" / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[:-10] + b"0123456789")
    registry = Registry(store_copy)

    registry.load_all()

    status = registry.statuses()["tiny-en"]
    assert not registry.ready
    assert status.state is ModelState.failed and status.version == 1
    assert "checksum mismatch for model.onnx" in (status.reason or "")
    assert str(store_copy) not in (status.reason or "")
    assert registry.get("tiny-zh").name == "tiny-zh"
    with pytest.raises(Unavailable, match="checksum mismatch"):
        registry.get("tiny-en")


def test_a_graph_onnxruntime_cannot_read_is_reported_without_paths(
    store_copy: Path, rewrite_manifest: Callable[..., None]
) -> None:
    bundle = store_copy / "tiny-zh" / "1"
    onnx_bytes = (bundle / "model.onnx").read_bytes()
    (bundle / "model.onnx").write_bytes(onnx_bytes[: len(onnx_bytes) // 2])  # truncated
    rewrite_manifest(bundle, refresh_checksums=True)
    registry = Registry(store_copy)

    registry.load_all()

    reason = registry.statuses()["tiny-zh"].reason or ""
    assert registry.statuses()["tiny-zh"].state is ModelState.failed
    assert "onnxruntime could not load model.onnx" in reason and "/" not in reason.replace("model.onnx", "")
    assert registry.statuses()["tiny-en"].state is ModelState.ready


def test_a_failed_reload_keeps_the_version_that_serves(store_copy: Path) -> None:
    registry = Registry(store_copy)
    registry.load_all()
    serving = registry.get("tiny-en")

    status = registry.reload("tiny-en", 9).status  # no such version

    assert status.state is ModelState.ready and "version 9 was not loaded" in (status.reason or "")
    assert registry.get("tiny-en") is serving and registry.ready


def test_a_pinned_version_is_the_one_served(tiny_store: Path) -> None:
    registry = Registry(tiny_store, pinned={"tiny-zh": 1})
    registry.load_all()

    assert registry.statuses()["tiny-zh"].pinned
    assert not registry.statuses()["tiny-en"].pinned
