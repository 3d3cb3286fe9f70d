"""Train a tiny real bundle on the made-up data (needs the train extra: torch, onnx, scikit-learn).

One code path for ``tests/fixtures/make_fixture_bundles.py`` (the committed bundles) and the
``tiny_bundle`` fixture (tests that train at test time): ``training.cli.pipeline.train_bundle``, as the CLI.
"""

from __future__ import annotations

from pathlib import Path

from support.data import tiny_examples, write_csv


def train_tiny(
    store: Path,
    name: str,
    *,
    data_folder: Path,
    language: str = "en",
    tokenizer: str = "word",
    epochs: int = 12,
    baseline: bool = False,
    quantize: bool = False,
    command: str | None = None,
    version: int | None = None,
    **model: object,
) -> Path:
    """Train ``store/name/<version>`` on ``tiny_examples(language)`` (written to ``data_folder`` once).

    ``model`` overrides the architecture (default: embedding 16, hidden 16, BiLSTM, max pooling)."""
    import torch

    from training.cli.pipeline import train_bundle
    from training.data.source import DataSpec
    from training.loop.config import TokenizerSettings, TrainSettings
    from training.model.classifier import ModelConfig

    torch.set_num_threads(1)  # tiny tensors: a second thread only adds contention on a shared 2-core box
    csv_path = Path(data_folder) / f"tiny-{language}.csv"
    if not csv_path.exists():
        write_csv(csv_path, tiny_examples(language))
    settings = {"embedding_dim": 16, "hidden_dim": 16, "dropout": 0.1, "embedding_dropout": 0.0, **model}
    result = train_bundle(
        DataSpec(data=str(csv_path), seed=0),
        store,
        name,
        tokenizer=TokenizerSettings(mode=tokenizer, max_length=64, max_vocab=None),
        model=ModelConfig(**settings),
        training=TrainSettings(epochs=epochs, batch_size=16, learning_rate=1e-2, patience=epochs, seed=0),
        baseline=baseline,
        quantize=quantize,
        version=version,
        command=command or f"support.training.train_tiny({name!r}, language={language!r})",
    )
    return result.path
