"""Live quality from feedback: accuracy with its Wilson interval, per-label precision and recall, the
confusion matrix (single-label), subset accuracy and micro-F1 (multi-label), per version."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from prometheus_client import Gauge

ACCURACY = Gauge(
    "lstm_service_live_accuracy",
    "Accuracy (subset accuracy for multi-label models) of logged answers that got feedback, per model "
    "version, over the window of the last GET /models/{name}/quality.",
    ("model", "version"),
    multiprocess_mode="mostrecent",
)
JUDGED = Gauge(
    "lstm_service_live_judged_answers",
    "Logged answers with feedback that the live accuracy rests on.",
    ("model", "version"),
    multiprocess_mode="mostrecent",
)


def wilson(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion (sound at small counts, unlike the normal one)."""
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize(judged: Sequence[tuple[list[str], list[str]]], multi_label: bool) -> dict[str, Any]:
    """Quality of (answered labels, true labels) pairs."""
    total = len(judged)
    exact = sum(1 for answered, true in judged if set(answered) == set(true))
    low, high = wilson(exact, total)
    counts: dict[str, Counter[str]] = defaultdict(Counter)  # label -> tp, fp, fn
    for answered, true in judged:
        for label in set(answered) | set(true):
            if label in answered and label in true:
                counts[label]["tp"] += 1
            elif label in answered:
                counts[label]["fp"] += 1
            else:
                counts[label]["fn"] += 1
    per_label = {
        label: {
            "precision": _ratio(c["tp"], c["tp"] + c["fp"]),
            "recall": _ratio(c["tp"], c["tp"] + c["fn"]),
            "support": c["tp"] + c["fn"],
        }
        for label, c in sorted(counts.items())
    }
    summary: dict[str, Any] = {
        "count": total,
        "accuracy": _ratio(exact, total),
        "accuracy_interval": [low, high] if total else None,
        "per_label": per_label,
    }
    if multi_label:
        tp = sum(c["tp"] for c in counts.values())
        fp = sum(c["fp"] for c in counts.values())
        fn = sum(c["fn"] for c in counts.values())
        summary["micro_f1"] = _ratio(2 * tp, 2 * tp + fp + fn)
    else:
        matrix: dict[str, Counter[str]] = defaultdict(Counter)
        for answered, true in judged:
            matrix[true[0] if true else "-"][answered[0] if answered else "-"] += 1
        summary["confusion"] = {true: dict(row) for true, row in sorted(matrix.items())}
    return summary


def by_version(
    model: str, rows: Sequence[tuple[int, list[str], list[str]]], multi_label: bool
) -> dict[str, dict[str, Any]]:
    """Per version (as a string key), its summary; the gauges follow."""
    grouped: dict[int, list[tuple[list[str], list[str]]]] = defaultdict(list)
    for version, answered, true in rows:
        grouped[version].append((answered, true))
    out = {}
    for version, judged in sorted(grouped.items()):
        summary = summarize(judged, multi_label)
        out[str(version)] = summary
        ACCURACY.labels(model, str(version)).set(summary["accuracy"] or 0.0)
        JUDGED.labels(model, str(version)).set(summary["count"])
    return out


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None
