"""``train --feedback``: merge the corrections into the plan's splits, and afterwards score the new
version beside the one it replaces, on the base test split and on the held-out feedback."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from service.bundle import load_bundle
from training.data.feedback import merge_feedback, read_feedback
from training.data.multilabel import label_matrix
from training.data.preflight import Plan
from training.data.reading import Example
from training.export.graph import ort_logits
from training.loop.batches import encode_texts
from training.loop.thresholds import predict, sigmoid


def merged(args: argparse.Namespace, plan: Plan) -> tuple[Plan, list[Example]]:
    """The plan with the feedback in its training split, and the held-out feedback."""
    feedback = read_feedback(args.feedback, args.feedback_model or plan.name, plan.splits.task)
    splits, held_out = merge_feedback(plan.splits, feedback, seed=args.seed)
    return replace(plan, splits=splits), held_out


def accuracy(folder: Path, examples: list[Example]) -> float | None:
    """Accuracy (subset accuracy for a multi-label bundle) of a bundle on ``examples``."""
    if not examples:
        return None
    bundle = load_bundle(folder)
    logits = ort_logits(bundle.model_path, encode_texts(bundle.tokenizer, [e.text for e in examples]))
    labels = bundle.labels
    if bundle.manifest.thresholds:
        decided = predict(sigmoid(logits), bundle.manifest.thresholds, labels)
        truth = label_matrix([e.labels for e in examples], labels)
        return float(np.mean(np.all(np.asarray(decided) == np.asarray(truth), axis=1)))
    answered = [labels[i] for i in np.asarray(logits).argmax(1)]
    return float(np.mean([a == e.label for a, e in zip(answered, examples, strict=True)]))


def report(plan: Plan, new_folder: Path, held_out: list[Example]) -> dict[str, Any]:
    """Base test accuracy and held-out feedback accuracy of the replaced and the new version."""
    parts = {"base_test": plan.splits.test, "held_out_feedback": held_out}
    versions: dict[str, Path] = {}
    if plan.serving is not None:
        versions[f"replaced (version {plan.serving})"] = plan.store / plan.name / str(plan.serving)
    versions[f"new (version {plan.version})"] = new_folder
    table = {
        name: {part: accuracy(folder, rows) for part, rows in parts.items()}
        for name, folder in versions.items()
    }
    result = {"texts": {part: len(rows) for part, rows in parts.items()}, "accuracy": table}
    print(json.dumps({"feedback": result}, indent=1))
    return result
