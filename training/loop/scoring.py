"""How good a trained model is, per task, on the split it was trained with (dev for decisions, test for
the figures), beside a TF-IDF + logistic-regression baseline on the same split.

- single-label: test accuracy, macro-F1, per-class figures and the confusion matrix; a temperature fitted
  on dev logits, with the expected calibration error before and after on test;
- multi-label: per-label thresholds tuned on dev, then test micro/macro-F1, subset accuracy, Hamming loss
  and per-label precision/recall/F1/support; the baseline is one-vs-rest with thresholds tuned alike.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.tokenizer import Tokenizer
from training.data.progress import track
from training.data.splits import Splits
from training.loop.baseline import baseline_vectorizer, ovr_baseline, tfidf_baseline
from training.loop.batches import encode_texts
from training.loop.calibration import calibrate
from training.loop.metrics import classification_metrics, multilabel_metrics
from training.loop.thresholds import check_thresholds, predict, sigmoid, tune_thresholds
from training.loop.trainer import predict_logits
from training.model.classifier import RecurrentClassifier

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Assessment:
    metrics: dict[str, Any]  # the manifest's metrics (test at the top level, dev beside, baseline)
    thresholds: dict[str, float] | None = None  # multi-label: per label, tuned on dev
    calibration: dict[str, Any] | None = None  # single-label: temperature and ECE before/after


def assess(
    model: RecurrentClassifier,
    tokenizer: Tokenizer,
    splits: Splits,
    baseline: bool = True,
    calibrated: bool = True,
) -> Assessment:
    texts = {part: [example.text for example in getattr(splits, part)] for part in ("train", "dev", "test")}
    logits = {
        part: predict_logits(model, encode_texts(tokenizer, track(texts[part], f"encoding {part}")))
        if texts[part]
        else None
        for part in ("dev", "test")
    }
    if splits.task == "multi-label":
        return _assess_multilabel(tokenizer, splits, texts, logits, baseline)
    return _assess_single(tokenizer, splits, texts, logits, baseline, calibrated)


def _assess_single(
    tokenizer: Tokenizer,
    splits: Splits,
    texts: dict[str, list[str]],
    logits: dict[str, np.ndarray | None],
    baseline: bool,
    calibrated: bool,
) -> Assessment:
    targets = {part: np.asarray(splits.targets(part), dtype=np.int64) for part in ("train", "dev", "test")}
    test_logits, dev_logits = logits["test"], logits["dev"]
    metrics = (
        classification_metrics(targets["test"], test_logits.argmax(1), splits.labels)
        if test_logits is not None
        else {"accuracy": None, "macro_f1": None, "count": 0}
    )
    dev = classification_metrics(targets["dev"], dev_logits.argmax(1), None)
    metrics.update({"split": "test", "dev_accuracy": dev["accuracy"], "dev_macro_f1": dev["macro_f1"]})
    calibration = None
    if calibrated:
        empty = np.zeros((0, len(splits.labels)))
        calibration = calibrate(
            dev_logits, targets["dev"], test_logits if test_logits is not None else empty, targets["test"]
        )
        metrics["calibration"] = calibration
        logger.info(
            "temperature %.3f (fitted on dev): %s ECE %.4f → %.4f",
            calibration["temperature"],
            calibration["split"],
            calibration["ece_before"],
            calibration["ece_after"],
        )
    if baseline:
        metrics["baseline"] = tfidf_baseline(
            tokenizer,
            (texts["train"], targets["train"]),
            (texts["dev"], targets["dev"]),
            (texts["test"], targets["test"]),
            splits.labels,
        )
    logger.info(
        "test accuracy %s, macro-F1 %s (baseline %s)",
        metrics["accuracy"],
        metrics["macro_f1"],
        metrics.get("baseline", {}).get("accuracy"),
    )
    return Assessment(metrics, calibration=calibration)


def _assess_multilabel(
    tokenizer: Tokenizer,
    splits: Splits,
    texts: dict[str, list[str]],
    logits: dict[str, np.ndarray | None],
    baseline: bool,
) -> Assessment:
    labels = splits.labels
    targets = {part: np.asarray(splits.targets(part), dtype=np.float32) for part in ("train", "dev", "test")}
    dev_scores = sigmoid(logits["dev"])
    tuning = tune_thresholds(targets["dev"], dev_scores, labels)
    thresholds = tuning["thresholds"]
    check_thresholds(thresholds, labels)
    dev = multilabel_metrics(targets["dev"], predict(dev_scores, thresholds, labels), labels)
    if logits["test"] is not None:
        test_scores = sigmoid(logits["test"])
        metrics = multilabel_metrics(targets["test"], predict(test_scores, thresholds, labels), labels)
    else:
        metrics = {"accuracy": None, "macro_f1": None, "count": 0}
    metrics.update(
        {
            "split": "test",
            "dev_accuracy": dev["subset_accuracy"],
            "dev_macro_f1": dev["macro_f1"],
            "dev_micro_f1": dev["micro_f1"],
            "thresholds": {key: value for key, value in tuning.items() if key != "thresholds"},
        }
    )
    if baseline:
        vectorizer = baseline_vectorizer(tokenizer)
        features = "char 1-2-grams" if tokenizer.mode != "word" else "word unigrams (tokenizer words)"
        metrics["baseline"] = ovr_baseline(
            vectorizer,
            (texts["train"], targets["train"]),
            (texts["dev"], targets["dev"]),
            (texts["test"], targets["test"]),
            labels,
            features,
        )
    logger.info(
        "test micro-F1 %s, macro-F1 %s, subset accuracy %s, Hamming loss %s (baseline micro-F1 %s); "
        "thresholds %s",
        metrics.get("micro_f1"),
        metrics.get("macro_f1"),
        metrics.get("subset_accuracy"),
        metrics.get("hamming_loss"),
        metrics.get("baseline", {}).get("micro_f1"),
        thresholds,
    )
    return Assessment(metrics, thresholds=thresholds)
