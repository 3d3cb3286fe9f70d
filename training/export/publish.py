"""The last step of training: evaluate the model, export it, check parity, write the bundle (and its int8).

Everything the bundle says about the model goes into its typed :class:`~service.bundle.Manifest`."""

from __future__ import annotations

import json
import logging
import platform
import tempfile
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from service.bundle import (
    MODEL_FILE,
    PARITY_TOLERANCE,
    Manifest,
    Metrics,
    Parity,
    TrainingRecord,
    load_bundle,
    measure_inputs,
    write_bundle,
)
from service.tokenizer import Tokenizer
from training.data.runs import claim_version, release
from training.data.source import recorded_splits
from training.data.splits import Splits
from training.export import graph as export
from training.export.plots import write_run_plots
from training.loop.batches import encode_texts
from training.loop.floor import WeakModelError, measure_floor, refusal
from training.loop.metrics import classification_metrics
from training.loop.scoring import assess
from training.model.classifier import LSTMClassifier, ModelConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BundleResult:
    path: Path
    manifest: Manifest
    int8_path: Path | None = None


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("torch", "onnx", "onnxruntime", "numpy", "scikit-learn", "gensim"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def evaluate_model(
    model: LSTMClassifier, tokenizer: Tokenizer, splits: Splits, baseline: bool = True
) -> dict[str, Any]:
    """Test metrics at the top level, dev figures beside them, the TF-IDF baseline under ``baseline``."""
    return assess(model, tokenizer, splits, baseline).metrics


def evaluate_and_bundle(
    model: LSTMClassifier,
    tokenizer: Tokenizer,
    splits: Splits,
    store: Path,
    name: str,
    training: TrainingRecord,
    parameters: dict[str, Any],
    *,
    version: int | None = None,
    baseline: bool = True,
    quantize: bool = False,
    run_dir: Path | None = None,
    calibrated: bool = True,
    extra_metrics: dict[str, Any] | None = None,
    promoted: bool | None = None,
    promote_int8: bool = False,
    refuse_weak: bool = False,
) -> BundleResult:
    """Test metrics, ONNX export, parity gate, golden examples, then ``store/name/<version>/``; the run
    folder gets ``report.json`` and the pictures of :mod:`training.export.plots`. ``promoted=False`` marks the
    bundle as not served unless asked for by version; the int8 variant is so marked unless
    ``promote_int8``. The floor of :mod:`training.loop.floor` is measured and recorded (``metrics.floor``);
    with ``refuse_weak`` a model below it is refused (:class:`WeakModelError`) before anything is written
    to the store."""
    model = model.eval()
    assessment = assess(model, tokenizer, splits, baseline, calibrated)
    metrics = {**assessment.metrics, **(extra_metrics or {})}
    floor = measure_floor(splits, metrics)
    metrics["floor"] = floor.to_dict()
    if not floor.passed:
        if refuse_weak:
            if run_dir is not None:
                _write_report(Path(run_dir), metrics)
            raise WeakModelError(refusal(floor, splits.task))
        logger.warning("%s", refusal(floor, splits.task).replace("not published", "published anyway", 1))
    held_out = splits.test or splits.dev  # parity and golden texts never come from training data
    texts = [example.text for example in held_out]
    sequences = encode_texts(tokenizer, texts)
    with tempfile.TemporaryDirectory(prefix="lstm-export-") as folder:
        onnx_path = export.export_onnx(model, Path(folder) / MODEL_FILE)
        parity = export.check_parity(model, onnx_path, sequences)
        picked = export.pick_golden(texts, sequences)
        golden = export.golden_examples(model, [texts[i] for i in picked], [sequences[i] for i in picked])
        manifest = Manifest(
            task=splits.task,
            thresholds=assessment.thresholds,
            calibration=assessment.calibration,
            variant="fp32",
            model=model.config.to_dict(),
            parameters=parameters,
            metrics=Metrics.from_dict(metrics),
            training=replace(training, split_counts=splits.counts(), labels=tuple(splits.labels)),
            libraries=library_versions(),
            golden=golden,
            golden_source="torch, one text per run",
            parity=Parity.from_dict(parity),
            drift=measure_inputs(tokenizer, [example.text for example in splits.train]),
            promoted=promoted,
        )
        path = write_bundle(store, name, onnx_path, tokenizer, splits.labels, manifest, version)
    logger.info("bundle written: %s", path)
    if run_dir is not None:
        _write_report(Path(run_dir), metrics)
        write_run_plots(Path(run_dir), training.history, {**metrics, "best_epoch": training.best_epoch})
    int8_path = quantize_bundle(path, splits, model=model, promote=promote_int8).path if quantize else None
    return BundleResult(path, load_bundle(path).manifest, int8_path)


def _write_report(run_dir: Path, metrics: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "report.json").write_text(json.dumps(metrics, indent=1, ensure_ascii=False) + "\n")


def quantize_bundle(
    fp32_folder: Path,
    splits: Splits | None = None,
    version: int | None = None,
    model: LSTMClassifier | None = None,
    promote: bool = False,
) -> BundleResult:
    """Write the int8 variant of a bundle as the next version of the same model; unless ``promote``, it is
    marked as not served by default (``promoted: false``: the fp32 version keeps serving).

    Dynamic int8 quantization moves the logits a little, so its golden logits are the int8 graph's own
    (run one text at a time through onnxruntime, as the service checks them); the difference from the
    fp32 logits and the test accuracy of both variants are recorded beside each other."""
    source = load_bundle(fp32_folder)
    manifest = source.manifest
    if manifest.variant == "int8":
        raise ValueError(f"{fp32_folder} is already an int8 bundle")
    if manifest.task != "single-label":
        raise ValueError(
            f"int8 variants are written for single-label models only; {fp32_folder} is {manifest.task}"
        )
    if splits is None:
        splits = recorded_splits(source)
    texts = [example.text for example in (splits.test or splits.dev)]
    index = {label: position for position, label in enumerate(source.labels)}
    targets = [index[example.label] for example in (splits.test or splits.dev)]
    sequences = encode_texts(source.tokenizer, texts)
    fp32_metrics = manifest.metrics
    with tempfile.TemporaryDirectory(prefix="lstm-int8-") as folder:
        int8_path = export.quantize_int8(source.model_path, Path(folder) / MODEL_FILE)
        config = ModelConfig.from_dict(manifest.model)
        export.check_graph(int8_path, config.num_layers, config.cell)
        int8_logits = export.ort_logits(int8_path, sequences)
        fp32_logits = export.ort_logits(source.model_path, sequences)
        metrics = {
            **classification_metrics(targets, int8_logits.argmax(1), source.labels),
            "split": "test",
            "batch_size": 32,
        }
        golden = export.golden_examples(
            None, [item.text for item in manifest.golden], [item.ids for item in manifest.golden], int8_path
        )
        alone = np.asarray([item.logits for item in golden])
        golden_shift = float(np.abs(alone - np.asarray([item.logits for item in manifest.golden])).max())
        # int8 activations are quantized with one scale per tensor, i.e. per *batch*: unlike fp32, a text's
        # logits depend on the texts batched with it. Measured here and recorded, not hidden.
        in_batch = export.ort_logits(int8_path, [item.ids for item in golden], batch_size=len(golden))
        batch_shift = float(np.abs(in_batch - alone).max())
        new_manifest = replace(
            manifest,
            metrics=Metrics.from_dict(
                {
                    **metrics,
                    "baseline": fp32_metrics.baseline,
                    "fp32_accuracy": fp32_metrics.accuracy,
                    "fp32_macro_f1": fp32_metrics.macro_f1,
                }
            ),
            variant="int8",
            promoted=promote,
            quantized_from={
                "version": source.version,
                "accuracy": fp32_metrics.accuracy,
                "macro_f1": fp32_metrics.macro_f1,
                "method": "onnxruntime.quantization.quantize_dynamic, QInt8 weights in 7 bits "
                "(reduce_range), ops LSTM/MatMul/Gemm; embedding kept float32",
            },
            golden=golden,
            golden_source="onnxruntime int8 graph, one text per run (dynamic quantization moves the "
            f"logits: up to {golden_shift:.2e} away from the fp32 golden logits)",
            parity=Parity(
                against="fp32 bundle through onnxruntime (informational; int8 is not expected to match)",
                max_abs_logit_diff=float(np.abs(int8_logits - fp32_logits).max()),
                argmax_agreement=float((int8_logits.argmax(1) == fp32_logits.argmax(1)).mean()),
                texts=len(sequences),
                extra={"golden_max_abs_logit_diff_vs_fp32": golden_shift},
            ),
            batch_invariant=batch_shift <= PARITY_TOLERANCE,
            batch_invariance={
                "golden_in_one_batch_vs_alone_max_abs_logit_diff": batch_shift,
                "note": "dynamic quantization scales activations per tensor (per batch), so batching can "
                "move an int8 model's logits; golden logits are each text alone",
            },
        )
        store = source.path.parent.parent
        # the next version is claimed like a training run's, so a run training meanwhile keeps its own
        claimed = claim_version(store, source.name, version)
        try:
            path = write_bundle(
                store, source.name, int8_path, source.tokenizer, source.labels, new_manifest, claimed
            )
        finally:
            release(store, source.name, claimed)
    logger.info(
        "int8 bundle written: %s (test accuracy %s vs fp32 %s)",
        path,
        metrics["accuracy"],
        fp32_metrics.accuracy,
    )
    return BundleResult(path, load_bundle(path).manifest)
