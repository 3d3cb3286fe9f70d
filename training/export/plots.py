"""PNG pictures of a training run, written into the run folder beside ``report.json`` (matplotlib, Agg).

- ``curves.png``: training loss and the dev metrics per epoch, the best epoch marked;
- ``confusion.png`` (single-label): the test confusion matrix, rows = true label, counts in the cells;
- ``per_label.png`` (multi-label): each label's test precision, recall and F1 with its support.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display, no GUI toolkit
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

logger = logging.getLogger(__name__)

CURVES, CONFUSION, PER_LABEL = "curves.png", "confusion.png", "per_label.png"


def plot_curves(history: Sequence[Mapping[str, Any]], path: Path, best_epoch: int | None = None) -> Path:
    """Loss (left axis) and every ``dev_*`` figure (right axis) per epoch."""
    epochs = [record["epoch"] for record in history]
    figure, loss_axis = plt.subplots(figsize=(7, 4), dpi=100)
    loss_axis.plot(epochs, [record["train_loss"] for record in history], "o-", color="tab:red")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("training loss", color="tab:red")
    metric_axis = loss_axis.twinx()
    metric_names = sorted({key for record in history for key in record if key.startswith("dev_")})
    for name in metric_names:
        metric_axis.plot(epochs, [record.get(name) for record in history], "s-", label=name.replace("_", " "))
    metric_axis.set_ylabel("dev")
    if metric_names:
        metric_axis.legend(loc="lower right")
    if best_epoch:
        loss_axis.axvline(best_epoch, color="grey", linestyle=":", label="best epoch")
    loss_axis.set_title("training loss and dev metrics per epoch")
    if epochs:
        loss_axis.set_xticks(epochs)
    return _save(figure, path)


def plot_confusion(labels: Sequence[str], matrix: Sequence[Sequence[int]], path: Path) -> Path:
    size = max(4.0, 0.6 * len(labels) + 2)
    figure, axis = plt.subplots(figsize=(size, size), dpi=100)
    axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    peak = max((max(row) for row in matrix if len(row)), default=0)
    for row, values in enumerate(matrix):
        for column, value in enumerate(values):
            colour = "white" if peak and value > peak / 2 else "black"
            axis.text(column, row, str(value), ha="center", va="center", color=colour)
    axis.set_title("test confusion matrix")
    return _save(figure, path)


def plot_per_label(per_class: Mapping[str, Mapping[str, Any]], path: Path) -> Path:
    labels = list(per_class)
    figure, axis = plt.subplots(figsize=(max(6.0, 0.5 * len(labels) + 3), 4), dpi=100)
    width = 0.27
    for offset, name in enumerate(("precision", "recall", "f1")):
        axis.bar(
            [position + (offset - 1) * width for position in range(len(labels))],
            [per_class[label][name] for label in labels],
            width,
            label=name,
        )
    axis.set_xticks(
        range(len(labels)),
        [f"{label}\n(n={per_class[label]['support']})" for label in labels],
        rotation=45,
        ha="right",
    )
    axis.set_ylim(0, 1.05)
    axis.legend()
    axis.set_title("test precision / recall / F1 per label")
    return _save(figure, path)


def write_run_plots(
    run_dir: Path, history: Sequence[Mapping[str, Any]], metrics: Mapping[str, Any]
) -> list[Path]:
    """Every picture that applies to this run; returns the files written."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if history:
        best = metrics.get("best_epoch")
        written.append(plot_curves(history, run_dir / CURVES, best))
    confusion = metrics.get("confusion_matrix")
    if confusion:
        written.append(plot_confusion(confusion["labels"], confusion["matrix"], run_dir / CONFUSION))
    elif metrics.get("per_class") and "micro_f1" in metrics:
        written.append(plot_per_label(metrics["per_class"], run_dir / PER_LABEL))
    logger.info("plots written: %s", ", ".join(str(path) for path in written))
    return written


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)
    return Path(path)
