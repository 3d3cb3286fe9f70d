"""Record the training split's input distribution in bundles written before training measured it.

``python -m training.export.drift model_store/news-topic/1 ...`` rebuilds each bundle's split from the data
source its manifest records (``recorded_splits``: same deduplication, ratios and seed, and the recorded
sizes and labels), measures the training texts with the bundle's own tokenizer and adds the result to
the manifest as ``drift``. The graph, the tokenizer, the labels and their checksums do not change.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from service.bundle import load_bundle, measure_inputs, record_in_manifest
from training.data.source import recorded_splits


def record_drift(folder: Path) -> str:
    bundle = load_bundle(folder)
    manifest = bundle.manifest
    splits = recorded_splits(bundle)
    drift = measure_inputs(bundle.tokenizer, [example.text for example in splits.train])
    record_in_manifest(folder, dataclasses.replace(manifest, drift=drift))
    ratio, length = drift.unknown_token_ratio, drift.tokens_per_text
    return (
        f"{folder}: {drift.texts} training texts; unknown-token ratio p50 {ratio.p50:.4f} "
        f"p90 {ratio.p90:.4f}; tokens p50 {length.p50:.0f} p90 {length.p90:.0f} p99 {length.p99:.0f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.export.drift", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("bundles", nargs="+", type=Path, help="bundle folders, e.g. model_store/news-topic/1")
    arguments = parser.parse_args(argv)
    for folder in arguments.bundles:
        print(record_drift(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
