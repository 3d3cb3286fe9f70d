"""--seeds: one run per seed, the bundle is the best by dev (never by test), and the manifest reports
every seed's test figures with their mean and standard deviation."""

from __future__ import annotations

import statistics
from pathlib import Path

from support.data import tiny_examples, write_csv

from service.bundle import load_bundle
from training.cli.pipeline import train_bundle
from training.data.source import DataSpec
from training.loop.config import TokenizerSettings, TrainSettings
from training.model.classifier import ModelConfig


def test_the_best_seed_by_dev_is_bundled_with_the_spread_of_all_seeds(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "tiny.csv", tiny_examples("en", per_label=20))
    result = train_bundle(
        DataSpec(data=str(data), seed=0),
        tmp_path / "store",
        "seeded",
        tokenizer=TokenizerSettings(max_length=32, max_vocab=None),
        model=ModelConfig(embedding_dim=8, hidden_dim=8),
        training=TrainSettings(epochs=2, batch_size=16, learning_rate=1e-2),
        run_dir=tmp_path / "runs",
        baseline=False,
        seeds=(1, 2, 3),
    )
    seeds = load_bundle(result.path).manifest.metrics.extra["seeds"]
    rows = seeds["per_seed"]
    assert [row["seed"] for row in rows] == [1, 2, 3]
    best = max(rows, key=lambda row: row["dev_score"])
    assert seeds["chosen_seed"] == best["seed"] == load_bundle(result.path).manifest.training.seed
    assert seeds["accuracy_mean"] == round(statistics.mean(row["accuracy"] for row in rows), 4)
    assert seeds["accuracy_std"] == round(statistics.stdev(row["accuracy"] for row in rows), 4)
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == ["seed-1", "seed-2", "seed-3"]
    assert (tmp_path / "runs" / f"seed-{best['seed']}" / "curves.png").is_file()
