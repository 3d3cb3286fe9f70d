"""One function from labelled texts to a served bundle: tokenizer → model → train → evaluate → export.

``train_bundle`` is what the CLI's ``train`` runs and what the test fixtures call with tiny settings;
``export_checkpoint`` rebuilds the same bundle from a checkpoint written by an earlier run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from service.tokenizer import PAD, UNK, Tokenizer, build_vocabulary
from training import pretrained as w2v
from training.batches import encode_texts
from training.bundling import BundleResult, evaluate_and_bundle
from training.data import DataSpec, Splits
from training.model import LSTMClassifier, ModelConfig
from training.summary import format_summary, parameter_summary
from training.trainer import BEST, LAST, TrainSettings, load_checkpoint, seed_everything, train

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenizerSettings:
    mode: str = "word"
    lowercase: bool = True
    max_length: int = 256
    min_freq: int = 1
    max_vocab: int | None = 30000


@dataclass(frozen=True)
class PretrainedSettings:
    """``source``: ``None`` (random init), ``"train"`` (word2vec on the training split) or a vectors file."""

    source: str | None = None
    mode: str = "finetune"
    binary: bool | None = None
    epochs: int = 10


@dataclass(frozen=True)
class ModelSettings:
    embedding_dim: int = 128
    hidden_dim: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    pooling: str = "max"
    dropout: float = 0.3
    embedding_dropout: float = 0.1


@dataclass
class TrainingRun:
    model: LSTMClassifier
    tokenizer: Tokenizer
    splits: Splits
    info: dict[str, Any] = field(default_factory=dict)


def build_tokenizer(settings: TokenizerSettings, train_texts: list[str]) -> Tokenizer:
    """Vocabulary from the training split only (``min_freq``, ``max_vocab`` including ``<pad>``/``<unk>``)."""
    splitter = Tokenizer(settings.mode, [PAD, UNK], settings.lowercase, settings.max_length)
    vocabulary = build_vocabulary(
        (splitter.keys(text) for text in train_texts), settings.min_freq, settings.max_vocab
    )
    return Tokenizer(settings.mode, vocabulary, settings.lowercase, settings.max_length)


def fit(
    data: DataSpec | Splits,
    tokenizer_settings: TokenizerSettings | None = None,
    model_settings: ModelSettings | None = None,
    train_settings: TrainSettings | None = None,
    pretrained: PretrainedSettings | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    progress: bool = False,
) -> TrainingRun:
    """Load data, build the tokenizer and model, initialise embeddings, train with early stopping."""
    tokenizer_settings = tokenizer_settings or TokenizerSettings()
    model_settings = model_settings or ModelSettings()
    train_settings = train_settings or TrainSettings()
    pretrained = pretrained or PretrainedSettings()
    started = time.perf_counter()
    splits = data.load() if isinstance(data, DataSpec) else data
    tokenizer = build_tokenizer(tokenizer_settings, [example.text for example in splits.train])
    label_index = {label: index for index, label in enumerate(splits.labels)}
    config = ModelConfig(
        vocab_size=tokenizer.vocab_size, num_labels=len(splits.labels), **asdict(model_settings)
    )
    seed_everything(train_settings.seed)  # before the model exists: the initial weights are seeded too
    model = LSTMClassifier(config)
    if resume and run_dir is not None and (Path(run_dir) / LAST).is_file():
        # the checkpoint's weights replace the embedding anyway: don't re-train word2vec (minutes) for nothing
        vectors_report = _resumed_embedding(
            model, pretrained, load_checkpoint(Path(run_dir) / LAST)["config"]
        )
    else:
        vectors_report = _init_embedding(model, tokenizer, splits, pretrained, train_settings.seed)
    summary = parameter_summary(model)
    logger.info(
        "vocabulary %d (%s tokens), labels %s\n%s",
        tokenizer.vocab_size,
        tokenizer.mode,
        splits.labels,
        format_summary(summary),
    )
    encoded = {}
    for part in ("train", "dev"):
        examples = getattr(splits, part)
        encoded[part] = (
            encode_texts(tokenizer, [e.text for e in examples]),
            [label_index[e.label] for e in examples],
        )
    checkpoint_config = {
        "model": config.to_dict(),
        "tokenizer": tokenizer.to_dict(),
        "labels": splits.labels,
        "data": splits.report.get("source"),
        "pretrained": vectors_report,
        "tokenizer_settings": asdict(tokenizer_settings),
    }
    result = train(
        model, encoded["train"], encoded["dev"], train_settings, run_dir, checkpoint_config, resume, progress
    )
    info = {
        "seed": train_settings.seed,
        "settings": asdict(train_settings),
        "tokenizer_settings": asdict(tokenizer_settings),
        "pretrained": vectors_report,
        "data": splits.report,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "best_dev_accuracy": result.best_dev_accuracy,
        "stopped_early": result.stopped_early,
        "history": result.history,
        "train_seconds": round(time.perf_counter() - started, 1),
        "parameters": summary,
    }
    return TrainingRun(model, tokenizer, splits, info)


def _resumed_embedding(
    model: LSTMClassifier, settings: PretrainedSettings, config: dict[str, Any]
) -> dict[str, Any] | None:
    report = config.get("pretrained")
    if (report is None) != (settings.source is None) or (report and report["mode"] != settings.mode):
        raise ValueError("--resume: the --w2v/--w2v-mode settings differ from the checkpoint's")
    if report is not None:
        model.embedding.weight.requires_grad_(settings.mode == "finetune")
    return report


def _init_embedding(
    model: LSTMClassifier, tokenizer: Tokenizer, splits: Splits, settings: PretrainedSettings, seed: int
) -> dict[str, Any] | None:
    if settings.source is None:
        return None
    if settings.source == "train":
        tokens = [tokenizer.keys(example.text) for example in splits.train]
        vectors = w2v.train_vectors(tokens, model.config.embedding_dim, seed, settings.epochs)
        source = "word2vec skip-gram trained on the training split"
    else:
        vectors = w2v.load_vectors(Path(settings.source), settings.binary)
        source = str(settings.source)
    report = w2v.apply_vectors(model.embedding, tokenizer.vocabulary, vectors, settings.mode)
    report["source"] = source
    if settings.source == "train":
        report["w2v_epochs"] = settings.epochs
    return report


def train_bundle(
    data: DataSpec | Splits,
    store: Path,
    name: str,
    *,
    tokenizer: TokenizerSettings | None = None,
    model: ModelSettings | None = None,
    training: TrainSettings | None = None,
    pretrained: PretrainedSettings | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    version: int | None = None,
    baseline: bool = True,
    quantize: bool = False,
    command: str | None = None,
    progress: bool = False,
) -> BundleResult:
    """Train and write ``store/name/<version>/`` (with ``quantize`` also an int8 variant, the next version).

    Settings left ``None`` take their defaults (BiLSTM 128/128, max pooling, word tokens, 10 epochs)."""
    run = fit(data, tokenizer, model, training, pretrained, run_dir, resume, progress)
    run.info["command"] = command
    return evaluate_and_bundle(
        run.model,
        run.tokenizer,
        run.splits,
        Path(store),
        name,
        run.info,
        version,
        baseline,
        quantize,
        run_dir,
    )


def export_checkpoint(
    checkpoint: Path,
    store: Path,
    name: str,
    data: DataSpec | Splits | None = None,
    version: int | None = None,
    baseline: bool = True,
    quantize: bool = False,
    command: str | None = None,
) -> BundleResult:
    """Bundle the weights in ``checkpoint`` (``best.pt`` or ``last.pt``; a run folder means its ``best.pt``).
    The split is rebuilt from the data source recorded in the checkpoint unless ``data`` is given."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        checkpoint = checkpoint / BEST
    payload = load_checkpoint(checkpoint)
    config = payload["config"]
    if data is None:
        if not config.get("data"):
            raise ValueError(
                f"{checkpoint} records no data source; pass --dataset, --data or --train/--dev/--test"
            )
        data = DataSpec.from_dict(config["data"])
    splits = data.load() if isinstance(data, DataSpec) else data
    tokenizer = Tokenizer.from_dict(config["tokenizer"])
    if splits.labels != config["labels"]:
        raise ValueError(f"the data's labels {splits.labels} differ from the checkpoint's {config['labels']}")
    model = LSTMClassifier(ModelConfig.from_dict(config["model"]))
    model.load_state_dict(payload.get("best_state") or payload["model_state"])
    info = {
        "command": command,
        "checkpoint": str(checkpoint),
        "seed": payload["settings"]["seed"],
        "settings": payload["settings"],
        "tokenizer_settings": config.get("tokenizer_settings"),
        "pretrained": config.get("pretrained"),
        "data": splits.report,
        "epochs_run": payload["epoch"],
        "history": payload.get("history", []),
        "parameters": parameter_summary(model),
    }
    return evaluate_and_bundle(model, tokenizer, splits, Path(store), name, info, version, baseline, quantize)


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
