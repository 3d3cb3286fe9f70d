"""The committed fixture bundles and what tests do with stores: private copies, new versions, edits.

``tests/fixtures/`` (written by ``tests/fixtures/make_fixture_bundles.py``, which needs the train extra):

- ``store/``   ``tiny-en/1`` (word BiLSTM, 3 labels) and ``tiny-zh/1`` (char BiLSTM, 2 labels): the store
  most service tests serve
- ``shapes/``  ``tiny-deep/1`` (word, 2 layers, one direction, last-state pooling), ``tiny-bigram/1``
  (char-bigram BiLSTM, mean pooling), ``tiny-gru/1`` (a bidirectional GRU: no cell state) and
  ``tiny-tags/1`` (multi-label, 6 topics, a one-direction plain RNN, thresholds in its manifest)
- ``int8/``    ``tiny-en/2``: ``store/tiny-en/1`` quantized to int8 (alone, so a store serves it)
- ``graphs/other-inputs.onnx``: a valid ONNX graph whose inputs are not a bundle's
- ``data/``    the rows the bundles were trained on (:mod:`support.data`; ``tiny-tags.csv`` from
  ``training.data.datasets.make_multilabel``)

Tests never write into ``tests/fixtures``: they copy what they change (:func:`copy_store`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service.bundle import MANIFEST_FILE, load_bundle, sha256_file, write_bundle

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
STORE = FIXTURES / "store"
SHAPES = FIXTURES / "shapes"
INT8 = FIXTURES / "int8"
GRAPHS = FIXTURES / "graphs"
DATA = FIXTURES / "data"


def copy_store(source: Path, target: Path) -> Path:
    """A private copy of the store ``source`` at ``target`` (free to damage or to add versions to)."""
    return Path(shutil.copytree(source, target))


def add_version(store: Path, name: str, version: int, onnx_path: Path | None = None) -> Path:
    """A new, valid version of ``name`` (version 1's description, written by ``write_bundle``): its folder.

    ``onnx_path`` replaces the graph (checksums stay consistent: ``write_bundle`` computes them)."""
    original = load_bundle(store / name / "1")
    graph = onnx_path or original.model_path
    return write_bundle(store, name, graph, original.tokenizer, original.labels, original.manifest, version)


ManifestEdit = Callable[[dict[str, Any]], None]


def rewrite_manifest(
    bundle: Path, edit: ManifestEdit | None = None, *, refresh_checksums: bool = False
) -> None:
    """Edit the bundle's manifest file in place, as a damaged or hand-edited bundle would have it.

    ``refresh_checksums`` makes the recorded checksums match the files again, so a deliberately damaged
    payload file gets past the checksum step and the check after it is the one tested."""
    path = bundle / MANIFEST_FILE
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if edit is not None:
        edit(manifest)
    if refresh_checksums:
        manifest["files"] = {file: sha256_file(bundle / file) for file in manifest["files"]}
    path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")


def refresh_checksums(bundle: Path) -> None:
    """Make the manifest's checksums match the files again (so a damaged file gets past that check)."""
    rewrite_manifest(bundle, refresh_checksums=True)
