"""What each CLI subcommand does, once its arguments are parsed (imports torch)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from service.bundle import DataSource, Manifest, load_bundle
from training import distributed, multilabel
from training.batches import encode_texts
from training.cells import refuse_unexportable
from training.config import PretrainedSettings, TokenizerSettings, TrainSettings
from training.data import DataSpec, Example, read_file
from training.evaluate import classification_metrics
from training.export import ort_logits
from training.model import ModelConfig
from training.pipeline import export_checkpoint, train_bundle
from training.publish import BundleResult, quantize_bundle
from training.trainer import load_checkpoint_model, predict_logits

logger = logging.getLogger(__name__)


def run(args: argparse.Namespace, data: DataSpec | None, command: str) -> int:
    torch.set_num_threads(max(1, getattr(args, "threads", 2) or 2))
    return {"train": _train, "export": _export, "evaluate": _evaluate}[args.command](args, data, command)


def _train(args: argparse.Namespace, data: DataSpec, command: str) -> int:
    refuse_unexportable({"proj_size": args.proj_size})
    context = distributed.start()  # a single process unless launched by torchrun
    try:
        result = _train_bundle(args, data, command, context)
    finally:
        distributed.stop(context)
    if result is not None:  # rank 0 (or the only process) wrote the bundle
        _print_summary(result.manifest, result.path, result.int8_path)
    return 0


def _train_bundle(
    args: argparse.Namespace, data: DataSpec, command: str, context: distributed.Distributed
) -> BundleResult | None:
    if context.enabled and args.quantize:
        raise ValueError(
            "--quantize under torchrun: export the int8 variant afterwards with export --quantize"
        )
    w2v = None if args.w2v in ("none", "") else args.w2v
    return train_bundle(
        data,
        args.store,
        args.name,
        tokenizer=TokenizerSettings(
            mode=args.tokenizer,
            lowercase=args.lowercase,
            max_length=args.max_length,
            min_freq=args.min_freq,
            max_vocab=args.max_vocab,
        ),
        model=ModelConfig(
            cell=args.cell,
            embedding_dim=args.embedding_dim,
            hidden_dim=args.hidden_dim,
            num_layers=args.num_layers,
            bidirectional=args.bidirectional,
            pooling=args.pooling,
            dropout=args.dropout,
            embedding_dropout=args.embedding_dropout,
        ),
        training=TrainSettings(
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            clip=args.clip,
            patience=args.patience,
            seed=args.seed,
            length_pool=args.length_pool,
            lr_decay=args.lr_decay,
        ),
        pretrained=PretrainedSettings(
            source=w2v, mode=args.w2v_mode, binary=args.w2v_binary, epochs=args.w2v_epochs
        ),
        run_dir=args.run_dir or Path("runs") / args.name,
        resume=args.resume,
        version=args.version,
        baseline=args.baseline,
        quantize=args.quantize,
        command=command,
        progress=args.progress and sys.stderr.isatty() and context.is_main,
        pos_weight=args.pos_weight,
        calibrated=args.calibration,
        context=context,
        seeds=args.seeds,
    )


def _export(args: argparse.Namespace, data: DataSpec | None, command: str) -> int:
    if args.bundle is not None:
        if not args.quantize:
            raise ValueError("--bundle exports nothing new without --quantize (a bundle is already exported)")
        result = quantize_bundle(args.bundle, data.load() if data else None, args.version)
        _print_summary(result.manifest, result.path)
        return 0
    checkpoint = args.checkpoint
    name = args.name or (checkpoint if checkpoint.is_dir() else checkpoint.parent).resolve().name
    result = export_checkpoint(
        checkpoint,
        args.store,
        name,
        data,
        version=args.version,
        baseline=args.baseline,
        quantize=args.quantize,
        command=command,
    )
    _print_summary(result.manifest, result.path, result.int8_path)
    return 0


def _examples(args: argparse.Namespace, data: DataSpec | None, fallback: DataSource | None) -> list[Example]:
    if data is not None and data.data is not None and args.part == "all":
        separator = data.label_separator or "|"
        return read_file(
            Path(data.data),
            data.text_column,
            data.label_column,
            data.format,
            data.task,
            separator,
            delimiter=data.delimiter,
            encoding=data.encoding,
        )
    if data is None:
        if not fallback:
            raise ValueError(
                "no data to evaluate on: give --data FILE, --dataset NAME or --train/--dev/--test"
            )
        data = DataSpec.of(fallback)
    splits = data.load()
    if args.part == "all":
        return splits.train + splits.dev + splits.test
    return getattr(splits, args.part)


def _evaluate(args: argparse.Namespace, data: DataSpec | None, command: str) -> int:
    thresholds = None
    if args.bundle is not None:
        bundle = load_bundle(args.bundle)
        labels, tokenizer, thresholds = bundle.labels, bundle.tokenizer, bundle.manifest.thresholds
        examples = _examples(args, data, bundle.manifest.data_source)
        logits = ort_logits(bundle.model_path, encode_texts(tokenizer, [e.text for e in examples]))
        source = str(args.bundle)
    else:
        loaded = load_checkpoint_model(args.checkpoint)
        labels, tokenizer = loaded.labels, loaded.tokenizer
        examples = _examples(args, data, loaded.data_source)
        logits = predict_logits(loaded.model, encode_texts(tokenizer, [e.text for e in examples]))
        source = str(loaded.path)
    multi = any(not e.label for e in examples)  # multi-label examples carry label sets instead
    given = {label for e in examples for label in (e.labels if multi else (e.label,))}
    unknown = sorted(given - set(labels))
    if unknown:
        raise ValueError(f"the data has labels the model does not know: {unknown} (model labels: {labels})")
    if multi:
        # a checkpoint has no tuned thresholds (they are tuned when the bundle is written): 0.5 each
        decided = thresholds or dict.fromkeys(labels, multilabel.DEFAULT_THRESHOLD)
        scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        report = multilabel.multilabel_metrics(
            multilabel.label_matrix([e.labels for e in examples], labels),
            multilabel.predict(scores, decided, labels),
            labels,
        )
        report["thresholds"] = decided
    else:
        index = {label: position for position, label in enumerate(labels)}
        report = classification_metrics([index[e.label] for e in examples], logits.argmax(1), labels)
    report.update({"model": source, "part": args.part, "command": command})
    text = json.dumps(report, indent=1, ensure_ascii=False)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
        logger.info("report written to %s", args.output)
    else:
        print(text)
    return 0


def _print_summary(manifest: Manifest, path: Path, int8_path: Path | None = None) -> None:
    metrics = manifest.metrics
    if manifest.task == "multi-label":
        baseline = (metrics.baseline or {}).get("micro_f1")
        print(
            f"bundle {path}: test micro-F1 {metrics.extra.get('micro_f1')}, macro-F1 {metrics.macro_f1}, "
            f"subset accuracy {metrics.accuracy}"
            + (f" (one-vs-rest TF-IDF+LR baseline micro-F1 {baseline})" if baseline is not None else "")
        )
    else:
        baseline = (metrics.baseline or {}).get("accuracy")
        print(
            f"bundle {path}: test accuracy {metrics.accuracy}, macro-F1 {metrics.macro_f1}"
            + (f" (TF-IDF+LR baseline {baseline})" if baseline is not None else "")
        )
    if int8_path is not None:
        print(f"int8 bundle {int8_path}")
