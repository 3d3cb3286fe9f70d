"""The run folder's pictures are real PNG files of the size matplotlib draws."""

from __future__ import annotations

from pathlib import Path

from training.export.plots import CONFUSION, CURVES, PER_LABEL, write_run_plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

HISTORY = [
    {"epoch": 1, "train_loss": 1.1, "dev_accuracy": 0.5, "dev_macro_f1": 0.4},
    {"epoch": 2, "train_loss": 0.6, "dev_accuracy": 0.8, "dev_macro_f1": 0.78},
]


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 2000


def test_single_label_run_gets_curves_and_confusion_matrix(tmp_path: Path) -> None:
    metrics = {"best_epoch": 2, "confusion_matrix": {"labels": ["a", "b"], "matrix": [[5, 1], [0, 4]]}}
    written = write_run_plots(tmp_path, HISTORY, metrics)
    assert [path.name for path in written] == [CURVES, CONFUSION]
    assert all(_is_png(path) for path in written)


def test_multi_label_run_gets_per_label_bars(tmp_path: Path) -> None:
    per_class = {
        label: {"precision": 0.9, "recall": 0.7, "f1": 0.79, "support": 12} for label in ("x", "y", "z")
    }
    written = write_run_plots(tmp_path, HISTORY, {"micro_f1": 0.8, "per_class": per_class})
    assert [path.name for path in written] == [CURVES, PER_LABEL]
    assert all(_is_png(path) for path in written)
