"""From labelled texts to a served bundle, step by step: data → model → train → export → bundle.

- :func:`fit`: the split (:mod:`training.data`), the tokenizer, the model (:mod:`training.model`) with its
  embedding (:mod:`training.model.pretrained`), trained with early stopping (:mod:`training.loop.trainer`);
- :func:`train_bundle`: :func:`fit`, then evaluation, ONNX export with the parity gate and the bundle
  (:mod:`training.export.publish`, which uses :mod:`training.export.graph`). The CLI's ``train`` runs it,
  and so do the test fixtures with tiny settings;
- :func:`export_checkpoint`: the same bundle from a checkpoint written by an earlier run.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from service.bundle import DataReport, TrainingRecord
from service.tokenizer import PAD, UNK, Tokenizer, build_vocabulary
from training.data import runs
from training.data.advice import warn_about_texts
from training.data.progress import track
from training.data.source import DataSpec, recorded_splits
from training.data.splits import Splits
from training.export.publish import BundleResult, evaluate_and_bundle
from training.loop.batches import encode_texts
from training.loop.config import PretrainedSettings, TokenizerSettings, TrainSettings
from training.loop.distributed import SINGLE, Distributed, check_size, parameters_digest
from training.loop.objectives import Objective, positive_weights
from training.loop.resume import data_fingerprint, differences
from training.loop.resume import refusal as resume_refusal
from training.loop.scoring import assess
from training.loop.trainer import LAST, load_checkpoint, load_checkpoint_model, seed_everything, train
from training.model import pretrained as w2v
from training.model import unlabelled
from training.model.classifier import LSTMClassifier, ModelConfig
from training.model.ensemble import SeedEnsemble
from training.model.summary import format_summary, parameter_summary

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitResult:
    """A trained model (holding its best weights) with what it was trained on and how."""

    model: LSTMClassifier
    tokenizer: Tokenizer
    splits: Splits
    parameters: dict[str, Any]  # training.model.summary.parameter_summary of the model
    record: TrainingRecord  # the manifest's training section (no command yet)


def build_tokenizer(settings: TokenizerSettings, train_texts: list[str], progress: bool = False) -> Tokenizer:
    """Vocabulary from the training split only (``min_freq``, ``max_vocab`` including ``<pad>``/``<unk>``)."""
    splitter = Tokenizer(settings.mode, [PAD, UNK], settings.lowercase, settings.max_length)
    vocabulary = build_vocabulary(
        (splitter.keys(text) for text in track(train_texts, "vocabulary", bar=progress)),
        settings.min_freq,
        settings.max_vocab,
    )
    return Tokenizer(settings.mode, vocabulary, settings.lowercase, settings.max_length)


def fit(
    data: DataSpec | Splits,
    *,
    tokenizer: TokenizerSettings | None = None,
    model: ModelConfig | None = None,
    training: TrainSettings | None = None,
    pretrained: PretrainedSettings | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    progress: bool = False,
    pos_weight: bool = False,
    context: Distributed = SINGLE,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
) -> FitResult:
    """Load data, build the tokenizer and model, initialise embeddings, train with early stopping.

    Settings left ``None`` take their defaults (BiLSTM 128/128, max pooling, word tokens, 10 epochs).
    The task (single- or multi-label) is the data's; ``pos_weight`` weighs each label's positives by its
    negatives / positives in binary cross-entropy (multi-label only). Under torchrun (``context``) every
    process runs this with its shard of each epoch; the returned model is the same on every rank."""
    tokenizer_settings = tokenizer or TokenizerSettings()
    training = training or TrainSettings()
    pretrained = pretrained or PretrainedSettings()
    started = time.perf_counter()
    splits = data.load() if isinstance(data, DataSpec) else data
    check_size(context, len(splits.train))
    targets = {part: splits.targets(part) for part in ("train", "dev")}
    objective = Objective(
        task=splits.task,
        pos_weight=tuple(positive_weights(np.asarray(targets["train"])).tolist())
        if pos_weight and splits.task == "multi-label"
        else None,
        label_smoothing=training.label_smoothing,
    )
    fingerprint = data_fingerprint(splits)
    resumed = None
    if resume and run_dir is not None and (Path(run_dir) / LAST).is_file():
        # checked before anything is built from the data: a refusal costs seconds, not a vocabulary
        resumed = load_checkpoint(Path(run_dir) / LAST)
        found = differences(resumed, model or ModelConfig(), tokenizer_settings, training, fingerprint)
        if found:
            started_with = (runs.read_json(Path(run_dir) / runs.RUN_FILE) or {}).get("command")
            raise ValueError(resume_refusal(Path(run_dir) / LAST, found, started_with))
    train_texts = [example.text for example in splits.train]
    if context.is_main:
        splitter = Tokenizer(tokenizer_settings.mode, [PAD, UNK], tokenizer_settings.lowercase)
        warn_about_texts(train_texts, splitter.keys, tokenizer_settings.max_length)
    built = build_tokenizer(tokenizer_settings, train_texts, progress)
    config = (model or ModelConfig()).sized(built.vocab_size, len(splits.labels))
    seed_everything(training.seed)  # before the model exists: the initial weights are seeded too
    classifier = LSTMClassifier(config)
    if resumed is not None:
        # the checkpoint's weights replace the embedding anyway: don't re-train word2vec (minutes) for nothing
        vectors_report = _resumed_embedding(classifier, pretrained, resumed["config"])
    else:
        vectors_report = _init_embedding(classifier, built, splits, pretrained, training.seed)
    summary = parameter_summary(classifier)
    logger.info(
        "task %s, vocabulary %d (%s tokens), labels %s\n%s",
        splits.task,
        built.vocab_size,
        built.mode,
        splits.labels,
        format_summary(summary),
    )
    encoded = {
        part: (_encode_compact(built, getattr(splits, part), part, progress), targets[part])
        for part in ("train", "dev")
    }
    checkpoint_config = {
        "model": config.to_dict(),
        "tokenizer": built.to_dict(),
        "labels": splits.labels,
        "data": splits.report.get("source"),
        "pretrained": vectors_report,
        "tokenizer_settings": asdict(tokenizer_settings),
        "data_fingerprint": fingerprint,
    }
    result = train(
        classifier,
        encoded["train"],
        encoded["dev"],
        training,
        run_dir,
        checkpoint_config,
        resume,
        progress,
        objective=objective,
        context=context,
        on_epoch=on_epoch,
    )
    extra: dict[str, Any] = {"objective": objective.to_dict(), "best_dev_score": result.best_dev_score}
    if context.enabled:
        extra["distributed"] = _rank_report(context, classifier, result, len(splits.train), run_dir)
    record = TrainingRecord(
        seed=training.seed,
        settings=asdict(training),
        tokenizer_settings=asdict(tokenizer_settings),
        pretrained=vectors_report,
        data=DataReport.from_dict(splits.report),
        epochs_run=result.epochs_run,
        best_epoch=result.best_epoch,
        best_dev_accuracy=result.best_dev_accuracy,
        stopped_early=result.stopped_early,
        history=tuple(result.history),
        train_seconds=round(time.perf_counter() - started, 1),
        extra=extra,
    )
    return FitResult(classifier, built, splits, summary, record)


def _encode_compact(tokenizer: Tokenizer, examples: Sequence[Any], part: str, progress: bool) -> list[Any]:
    """Each text's ids as an int32 array: about a fifth of the memory of lists of Python ints."""
    texts = (example.text for example in track(examples, f"encoding {part}", bar=progress))
    return [np.asarray(ids, dtype=np.int32) for ids in encode_texts(tokenizer, texts)]


def _rank_report(
    context: Distributed, model: LSTMClassifier, result: Any, training_texts: int, run_dir: Path | None
) -> dict[str, Any]:
    """What this rank trained on and a digest of the parameters it ended with, also written to
    ``<run_dir>/rank-<rank>.json``: every rank's digest must be the same."""
    report = {
        "rank": context.rank,
        "world_size": context.world_size,
        "backend": context.backend,
        "training_texts": training_texts,
        "training_texts_seen": result.texts_seen,
        "epochs_run": result.epochs_run,
        "parameters_sha256": parameters_digest(model),
    }
    if run_dir is not None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        (Path(run_dir) / f"rank-{context.rank}.json").write_text(json.dumps(report, indent=1) + "\n")
    logger.info("rank %d ends with parameters %s", context.rank, report["parameters_sha256"][:16])
    return {key: report[key] for key in ("world_size", "backend", "parameters_sha256")}


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
        tokens = w2v.TokenStream(tokenizer, [example.text for example in splits.train])
        if settings.texts:  # the training split, then the unlabelled files, streamed on every pass
            corpus = unlabelled.Corpus(tokenizer, tokens, settings.texts)
            vectors = unlabelled.train_vectors(corpus, model.config.embedding_dim, seed, settings.epochs)
        else:
            vectors = w2v.train_vectors(tokens, model.config.embedding_dim, seed, settings.epochs)
        source = "word2vec skip-gram trained on the training split"
        if settings.texts:
            source += f" and {len(settings.texts)} unlabelled text file(s): {', '.join(settings.texts)}"
    else:
        vectors = w2v.load_vectors(Path(settings.source), settings.binary)
        source = str(settings.source)
    report = w2v.apply_vectors(model.embedding, tokenizer.vocabulary, vectors, settings.mode)
    report["source"] = source
    if settings.texts:
        report["unlabelled_texts"] = corpus.lines
    if settings.source == "train":
        report["w2v_epochs"] = settings.epochs
    return report


def train_bundle(
    data: DataSpec | Splits,
    store: Path,
    name: str,
    *,
    tokenizer: TokenizerSettings | None = None,
    model: ModelConfig | None = None,
    training: TrainSettings | None = None,
    pretrained: PretrainedSettings | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    version: int | None = None,
    baseline: bool = True,
    quantize: bool = False,
    command: str | None = None,
    progress: bool = False,
    pos_weight: bool = False,
    calibrated: bool = True,
    context: Distributed = SINGLE,
    seeds: Sequence[int] = (),
    promoted: bool | None = None,
    promote_int8: bool = False,
    refuse_weak: bool = False,
    record_extra: Mapping[str, Any] | None = None,
    ensemble: bool = False,
) -> BundleResult | None:
    """Train and write ``store/name/<version>/`` (with ``quantize`` also an int8 variant, the next version).

    ``model`` gives the architecture; its ``vocab_size`` and ``num_labels`` come from the data. Under
    torchrun only rank 0 evaluates, exports and writes the bundle; the other ranks return ``None``.

    ``seeds``: train the recipe once per seed (run folders ``<run_dir>/seed-<seed>``), bundle the run with
    the best *dev* score, and record every seed's test figures with their mean and standard deviation in
    ``metrics.seeds``: the spread of the recipe, not of one lucky draw. ``record_extra`` joins the
    manifest's ``training.extra`` (a search's summary, say). ``ensemble``: bundle every seed's model as one
    graph averaging their probabilities (:mod:`training.model.ensemble`) instead of the best seed."""
    options: dict[str, Any] = {
        "tokenizer": tokenizer,
        "model": model,
        "pretrained": pretrained,
        "resume": resume,
        "progress": progress,
        "pos_weight": pos_weight,
        "context": context,
    }
    extra_metrics = None
    if ensemble and quantize:
        raise ValueError("--quantize does not apply to an ensemble; bundle it without --quantize")
    if seeds:
        if resume:
            raise ValueError("--seeds trains several runs from scratch; it cannot --resume")
        splits = data.load() if isinstance(data, DataSpec) else data
        training = training or TrainSettings()
        runs = [
            fit(
                splits,
                training=replace(training, seed=seed),
                run_dir=Path(run_dir) / f"seed-{seed}" if run_dir is not None else None,
                **options,
            )
            for seed in seeds
        ]
        fitted, extra_metrics = _pick_seed(runs)
        if ensemble:
            fitted = ensemble_of(runs)
            extra_metrics["seeds"]["bundled"] = f"the ensemble of seeds {list(seeds)} (mean probability)"
        run_dir = Path(run_dir) / f"seed-{fitted.record.seed}" if run_dir is not None else None
    elif ensemble:
        raise ValueError("--ensemble averages several seeds' models: give --seeds S1,S2,...")
    else:
        fitted = fit(data, training=training, run_dir=run_dir, **options)
    if not context.is_main:
        return None
    if quantize and fitted.splits.task != "single-label":
        raise ValueError("--quantize writes int8 variants of single-label models only; train without it")
    return evaluate_and_bundle(
        fitted.model,
        fitted.tokenizer,
        fitted.splits,
        Path(store),
        name,
        replace(fitted.record, command=command, extra={**fitted.record.extra, **(record_extra or {})}),
        fitted.parameters,
        version=version,
        baseline=baseline,
        quantize=quantize,
        run_dir=run_dir,
        calibrated=calibrated,
        extra_metrics=extra_metrics,
        promoted=promoted,
        promote_int8=promote_int8,
        refuse_weak=refuse_weak,
    )


def ensemble_of(runs: Sequence[FitResult]) -> FitResult:
    """One model of every run (same recipe, other seeds), as :class:`SeedEnsemble`; they must share the
    tokenizer (the vocabulary comes from the same training split)."""
    if any(run.tokenizer.to_dict() != runs[0].tokenizer.to_dict() for run in runs):
        raise ValueError("the seeds built different vocabularies: an ensemble needs one tokenizer")
    first = runs[0]
    model = SeedEnsemble([run.model for run in runs], multi_label=first.splits.task == "multi-label")
    parameters = {
        **first.parameters,
        "total": sum(int(run.parameters["total"]) for run in runs),
        "trainable": sum(int(run.parameters["trainable"]) for run in runs),
        "ensemble_members": len(runs),
    }
    extra = {
        **first.record.extra,
        "ensemble": {
            "members": len(runs),
            "seeds": [run.record.seed for run in runs],
            "combined": "mean of the members' probabilities (softmax; sigmoid for multi-label)",
            "hidden_states": "the first member's (hidden states, h_n, c_n and the embedding matrix)",
        },
    }
    return replace(first, model=model, parameters=parameters, record=replace(first.record, extra=extra))  # type: ignore[arg-type]


def _pick_seed(runs: Sequence[FitResult]) -> tuple[FitResult, dict[str, Any]]:
    """The run with the best dev score (ties: the first seed), and every run's test figures."""
    rows = []
    for run in runs:
        test = assess(run.model, run.tokenizer, run.splits, baseline=False, calibrated=False).metrics
        row = {"seed": run.record.seed, "dev_score": run.record.extra["best_dev_score"]}
        row.update({key: test.get(key) for key in ("accuracy", "macro_f1", "micro_f1") if key in test})
        rows.append(row)
    chosen = max(range(len(runs)), key=lambda index: (rows[index]["dev_score"], -index))
    summary: dict[str, Any] = {
        "selected_by": runs[chosen].record.extra["objective"]["selected_by"],
        "chosen_seed": rows[chosen]["seed"],
        "per_seed": rows,
    }
    for key in ("accuracy", "macro_f1", "micro_f1"):
        values = [row[key] for row in rows if row.get(key) is not None]
        if values:
            summary[f"{key}_mean"] = round(float(np.mean(values)), 4)
            summary[f"{key}_std"] = round(float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, 4)
    logger.info(
        "seeds %s: test accuracy %s ± %s; bundling seed %s (best dev %s)",
        [row["seed"] for row in rows],
        summary.get("accuracy_mean"),
        summary.get("accuracy_std"),
        summary["chosen_seed"],
        rows[chosen]["dev_score"],
    )
    return runs[chosen], {"seeds": summary}


def export_checkpoint(
    checkpoint: Path,
    store: Path,
    name: str,
    data: DataSpec | Splits | None = None,
    *,
    version: int | None = None,
    baseline: bool = True,
    quantize: bool = False,
    command: str | None = None,
    promoted: bool | None = None,
    promote_int8: bool = False,
    refuse_weak: bool = False,
) -> BundleResult:
    """Bundle the weights in ``checkpoint`` (``best.pt`` or ``last.pt``; a run folder means its ``best.pt``).
    The split is rebuilt from the data source recorded in the checkpoint unless ``data`` is given."""
    loaded = load_checkpoint_model(checkpoint)
    if data is None:
        splits = recorded_splits(loaded)
    else:
        splits = data.load() if isinstance(data, DataSpec) else data
    if splits.labels != loaded.labels:
        raise ValueError(f"the data's labels {splits.labels} differ from the checkpoint's {loaded.labels}")
    payload, config = loaded.payload, loaded.payload["config"]
    record = TrainingRecord(
        command=command,
        checkpoint=str(loaded.path),
        seed=payload["settings"]["seed"],
        settings=payload["settings"],
        tokenizer_settings=config.get("tokenizer_settings"),
        pretrained=config.get("pretrained"),
        data=DataReport.from_dict(splits.report),
        epochs_run=payload["epoch"],
        history=tuple(payload.get("history", [])),
    )
    return evaluate_and_bundle(
        loaded.model,
        loaded.tokenizer,
        splits,
        Path(store),
        name,
        record,
        parameter_summary(loaded.model),
        version=version,
        baseline=baseline,
        quantize=quantize,
        promoted=promoted,
        promote_int8=promote_int8,
        refuse_weak=refuse_weak,
    )
