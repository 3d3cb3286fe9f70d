"""The training split's input distribution: measured by the bundle contract, written by training."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from service.bundle import (
    BundleError,
    Manifest,
    load_bundle,
    measure_inputs,
    read_manifest,
    record_in_manifest,
)
from service.bundle.drift import distribution, quantile

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "store" / "tiny-zh" / "1"


def test_quantiles_interpolate_between_ranks() -> None:
    spread = distribution(float(value) for value in range(101))

    assert (spread.p10, spread.p50, spread.p90, spread.p99, spread.mean, spread.max) == (
        10,
        50,
        90,
        99,
        50,
        100,
    )
    assert quantile([0.0, 1.0], 0.25) == 0.25
    with pytest.raises(ValueError):
        quantile([], 0.5)


def test_unknown_ratio_and_length_are_measured_with_the_bundle_tokenizer() -> None:
    tokenizer = load_bundle(REPO / "model_store" / "news-topic" / "1").tokenizer
    drift = measure_inputs(tokenizer, ["the cup final", "qqqzzzxv the", "qqqzzzxv wwwyyyv"], split="dev")

    assert (drift.split, drift.texts) == ("dev", 3)
    assert drift.unknown_token_ratio.p50 == 0.5 and drift.unknown_token_ratio.max == 1.0
    assert drift.unknown_token_ratio.mean == pytest.approx(0.5)
    assert (drift.tokens_per_text.p50, drift.tokens_per_text.max) == (2, 3)


def test_the_drift_record_survives_a_manifest_round_trip_and_old_manifests_have_none() -> None:
    old = read_manifest(REPO / "model_store" / "review-sentiment-zh" / "1")
    tokenizer = load_bundle(REPO / "model_store" / "review-sentiment-zh" / "1").tokenizer
    measured = measure_inputs(tokenizer, ["质量很好", "太差了"])
    new = dataclasses.replace(old, drift=measured)

    assert "drift" in new.to_dict() and "drift" not in dataclasses.replace(old, drift=None).to_dict()
    assert Manifest.from_dict(new.to_dict()).drift == measured


def test_training_writes_the_training_split_distribution(
    tmp_path: Path, tiny_bundle: Callable[..., Path]
) -> None:
    from training.data.source import DataSpec

    folder = tiny_bundle(tmp_path / "store", "drift-en", language="en")
    bundle = load_bundle(folder)
    assert bundle.manifest.drift is not None and bundle.manifest.data_source is not None
    train = DataSpec.of(bundle.manifest.data_source).load().train

    assert bundle.manifest.drift == measure_inputs(bundle.tokenizer, [example.text for example in train])
    assert bundle.manifest.drift.texts == len(train) > 0


def test_a_bundle_written_before_drift_gets_it_recorded_without_changing_what_it_is(tmp_path: Path) -> None:
    folder = Path(shutil.copytree(FIXTURE, tmp_path / "store" / "tiny-zh" / "1"))
    bundle = load_bundle(folder)
    drift = measure_inputs(bundle.tokenizer, ["质量真的差", "物流快"])

    record_in_manifest(folder, dataclasses.replace(bundle.manifest, drift=drift))
    again = load_bundle(folder)  # checksums still verified

    assert again.manifest.drift == drift
    assert dataclasses.replace(again.manifest, drift=None) == dataclasses.replace(bundle.manifest, drift=None)
    for change in (
        {"version": 2},
        {"model": {**bundle.manifest.model, "hidden_dim": 9}},
        {"task": "multi-label"},
    ):
        with pytest.raises(BundleError, match="new version"):
            record_in_manifest(folder, dataclasses.replace(bundle.manifest, **change))


def test_the_backfill_command_measures_the_rebuilt_training_split(
    tmp_path: Path, tiny_bundle: Callable[..., Path]
) -> None:
    from training.export.drift import record_drift

    folder = tiny_bundle(tmp_path / "store", "drift-zh", language="zh", tokenizer="char")
    measured = load_bundle(folder).manifest
    record_in_manifest(folder, dataclasses.replace(measured, drift=None))
    assert load_bundle(folder).manifest.drift is None

    record_drift(folder)

    assert load_bundle(folder).manifest.drift == measured.drift
