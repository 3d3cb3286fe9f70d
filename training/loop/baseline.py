"""The TF-IDF + logistic-regression baseline on the model's own split, the figure a model must beat.

- single-label: word 1-2-grams, char 1-3-grams or both, and C, chosen together by dev accuracy;
- multi-label: one-vs-rest on the tokenizer's features, C chosen by dev micro-F1 after each label's
  threshold is tuned on dev exactly as the model's are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import FeatureUnion

from service.tokenizer import Tokenizer
from training.data.progress import track
from training.loop.metrics import classification_metrics, multilabel_metrics
from training.loop.thresholds import predict, tune_thresholds

logger = logging.getLogger(__name__)

BASELINE_C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
OVR_C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)
# Above this many training texts the baseline fits on a seeded random sample of them (said in the log and
# recorded as ``train_texts``/``sampled_from``): 21 fits on 317,000 texts took minutes and GBs, while a
# bag-of-words model's accuracy barely moves beyond a few ten thousand texts.
BASELINE_MAX_TRAIN_TEXTS = 20_000
BASELINE_MAX_DEV_TEXTS = 10_000
SAMPLE_SEED = 13


def sample_training(
    train: tuple[Sequence[str], Any], limit: int = BASELINE_MAX_TRAIN_TEXTS, part: str = "training"
) -> tuple[tuple[Sequence[str], Any], dict[str, int]]:
    """``train`` itself up to ``limit`` texts, else a seeded random sample of ``limit`` of them."""
    texts, targets = train
    if len(texts) <= limit:
        return train, {"train_texts": len(texts)}
    chosen = np.sort(np.random.default_rng(SAMPLE_SEED).choice(len(texts), size=limit, replace=False))
    logger.info(
        "baseline: %s on a random %s of the %s %s texts (above %s it samples; the test split is scored "
        "in full)",
        "fitted" if part == "training" else "chosen",
        f"{limit:,}",
        f"{len(texts):,}",
        part,
        f"{limit:,}",
    )
    sampled = ([texts[index] for index in chosen], np.asarray(targets)[chosen])
    return sampled, {"train_texts": limit, "sampled_from": len(texts)}


def baseline_vectorizer(tokenizer: Tokenizer) -> TfidfVectorizer:
    """Char 1–2-grams for char tokenizers; the tokenizer's own words (regex + jieba) for ``word``."""
    common = {"sublinear_tf": True, "min_df": 2, "lowercase": tokenizer.lowercase}
    if tokenizer.mode in ("char", "char-bigram"):
        return TfidfVectorizer(analyzer="char", ngram_range=(1, 2), **common)
    return TfidfVectorizer(analyzer=tokenizer.keys, **common)


class WordNgrams:
    """The tokenizer's words (regex, jieba for Chinese) and their adjacent pairs, as one analyzer."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, text: str) -> list[str]:
        words = self.tokenizer.keys(text)
        return words + [f"{first} {second}" for first, second in zip(words, words[1:], strict=False)]


def baseline_feature_sets(tokenizer: Tokenizer) -> dict[str, Callable[[], Any]]:
    """The strong baseline's candidates: word 1–2-grams, char 1–3-grams, and their union (sublinear tf,
    min_df 2). On BBC news word bigrams matter (unigrams alone: 0.972, 1–2-grams: 0.986 on test)."""
    common = {"sublinear_tf": True, "min_df": 2, "lowercase": tokenizer.lowercase}

    def words() -> TfidfVectorizer:
        return TfidfVectorizer(analyzer=WordNgrams(tokenizer), **common)

    def chars() -> TfidfVectorizer:
        return TfidfVectorizer(analyzer="char", ngram_range=(1, 3), **common)

    return {
        "word 1-2-grams": words,
        "char 1-3-grams": chars,
        "word 1-2-grams + char 1-3-grams": lambda: FeatureUnion([("word", words()), ("char", chars())]),
    }


def _fit_features(make: Callable[[], Any], texts: Sequence[str]) -> tuple[Any, Any]:
    vectorizer = make()
    try:
        return vectorizer, vectorizer.fit_transform(texts)
    except ValueError:  # min_df=2 left no features (tiny data sets): keep every feature
        vectorizer.set_params(**{key: 1 for key in vectorizer.get_params() if key.endswith("min_df")})
        return vectorizer, vectorizer.fit_transform(texts)


def tfidf_baseline(
    tokenizer: Tokenizer,
    train: tuple[Sequence[str], Sequence[int]],
    dev: tuple[Sequence[str], Sequence[int]],
    test: tuple[Sequence[str], Sequence[int]],
    labels: Sequence[str],
) -> dict[str, Any]:
    """TF-IDF + LogisticRegression on the same split, the features (:func:`baseline_feature_sets`) and C
    chosen together by dev accuracy; returns its test metrics and every candidate's dev accuracy."""
    best: tuple[float, str, float, Any, Any] | None = None
    grid: dict[str, dict[str, float]] = {}
    train, sampling = sample_training(train)
    # choosing among 21 candidates needs no more dev texts than this; the chosen one is tested in full
    dev, dev_sampling = sample_training(dev, BASELINE_MAX_DEV_TEXTS, "dev")
    sampling["dev_texts"] = dev_sampling["train_texts"]
    if "sampled_from" in dev_sampling:
        sampling["dev_sampled_from"] = dev_sampling["sampled_from"]
    candidates = [
        (name, make, c) for name, make in baseline_feature_sets(tokenizer).items() for c in BASELINE_C_GRID
    ]
    fitted: dict[str, tuple[Any, Any, Any]] = {}
    for name, make, c in track(candidates, "baseline", unit="fits"):
        if name not in fitted:
            fitted.clear()  # one feature set's matrices at a time
            vectorizer, train_x = _fit_features(make, train[0])
            fitted[name] = (vectorizer, train_x, vectorizer.transform(dev[0]))
            grid[name] = {}
        vectorizer, train_x, dev_x = fitted[name]
        classifier = LogisticRegression(C=c, max_iter=2000).fit(train_x, train[1])
        accuracy = float(accuracy_score(dev[1], classifier.predict(dev_x)))
        grid[name][str(c)] = round(accuracy, 4)
        if best is None or accuracy > best[0]:
            best = (accuracy, name, c, vectorizer, classifier)
    assert best is not None
    dev_accuracy, features, c, vectorizer, classifier = best
    report = (
        classification_metrics(test[1], classifier.predict(vectorizer.transform(test[0])), labels)
        if len(test[0])
        else {"accuracy": None, "macro_f1": None, "count": 0}
    )
    report.update(
        {
            "model": "tfidf+logistic-regression",
            "features": features,
            "C": c,
            "dev_accuracy": round(dev_accuracy, 4),
            "min_df": min(v for k, v in vectorizer.get_params().items() if k.endswith("min_df")),
            "sublinear_tf": True,
            "selected_on": "dev accuracy over features x C",
            "dev_grid": grid,
            **sampling,
        }
    )
    logger.info(
        "baseline TF-IDF+LR (%s, C=%s): dev %.4f, test %s", features, c, dev_accuracy, report["accuracy"]
    )
    return report


def ovr_baseline(
    vectorizer: Any,  # a fitted-to-be sklearn TfidfVectorizer
    train: tuple[Sequence[str], np.ndarray],
    dev: tuple[Sequence[str], np.ndarray],
    test: tuple[Sequence[str], np.ndarray],
    labels: Sequence[str],
    features: str,
) -> dict[str, Any]:
    """One-vs-rest TF-IDF + logistic regression on the same split: C chosen by dev micro-F1 after each
    label's threshold is tuned on dev exactly as the model's are; returns its test metrics."""
    train, sampling = sample_training(train)
    try:
        train_x = vectorizer.fit_transform(train[0])
    except ValueError:  # min_df left no features (tiny data sets)
        vectorizer.set_params(min_df=1)
        train_x = vectorizer.fit_transform(train[0])
    dev_x, test_x = vectorizer.transform(dev[0]), vectorizer.transform(test[0])
    best: tuple[float, float, dict[str, Any], np.ndarray] | None = None
    for c in track(OVR_C_GRID, "baseline (one-vs-rest)", unit="values of C"):
        dev_scores = _ovr_scores(train_x, train[1], dev_x, c)
        tuning = tune_thresholds(dev[1], dev_scores, labels)
        dev_f1 = multilabel_metrics(dev[1], predict(dev_scores, tuning["thresholds"], labels), labels)
        if best is None or dev_f1["micro_f1"] > best[0]:
            best = (dev_f1["micro_f1"], c, tuning, _ovr_scores(train_x, train[1], test_x, c))
    assert best is not None
    dev_micro_f1, c, tuning, test_scores = best
    report = multilabel_metrics(test[1], predict(test_scores, tuning["thresholds"], labels), labels)
    report.update(
        {
            "model": "one-vs-rest tfidf+logistic-regression",
            "features": features,
            "C": c,
            "dev_micro_f1": round(dev_micro_f1, 4),
            "thresholds": tuning["thresholds"],
            "vocabulary_size": len(vectorizer.vocabulary_),
            **sampling,
        }
    )
    logger.info("baseline one-vs-rest TF-IDF+LR (C=%s): dev micro-F1 %.4f", c, dev_micro_f1)
    return report


def _ovr_scores(train_x: Any, train_y: np.ndarray, other_x: Any, c: float) -> np.ndarray:
    """Each label's own logistic regression; a label constant in training scores that constant."""
    scores = np.zeros((other_x.shape[0], train_y.shape[1]), dtype=np.float64)
    for column in range(train_y.shape[1]):
        target = train_y[:, column] > 0.5
        if target.all() or not target.any():
            scores[:, column] = float(target[0]) if len(target) else 0.0
            continue
        classifier = LogisticRegression(C=c, max_iter=2000).fit(train_x, target)
        scores[:, column] = classifier.predict_proba(other_x)[:, 1]
    return scores
