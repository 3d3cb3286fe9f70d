"""What each CLI subcommand does, once its arguments are parsed (imports torch)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from service.bundle import load_bundle
from training.batches import encode_texts
from training.bundling import quantize_bundle
from training.data import DataSpec, Example, read_file
from training.evaluate import classification_metrics
from training.export import ort_logits
from training.model import LSTMClassifier, ModelConfig
from training.pipeline import (
    ModelSettings,
    PretrainedSettings,
    TokenizerSettings,
    export_checkpoint,
    train_bundle,
)
from training.trainer import BEST, TrainSettings, load_checkpoint, predict_logits

logger = logging.getLogger(__name__)


def run(args: argparse.Namespace, data: DataSpec | None, command: str) -> int:
    torch.set_num_threads(max(1, getattr(args, "threads", 2) or 2))
    return {"train": _train, "export": _export, "evaluate": _evaluate}[args.command](args, data, command)


def _train(args: argparse.Namespace, data: DataSpec, command: str) -> int:
    w2v = None if args.w2v in ("none", "") else args.w2v
    result = train_bundle(
        data,
        args.store,
        args.name,
        tokenizer=TokenizerSettings(
            args.tokenizer, args.lowercase, args.max_length, args.min_freq, args.max_vocab
        ),
        model=ModelSettings(
            args.embedding_dim,
            args.hidden_dim,
            args.num_layers,
            args.bidirectional,
            args.pooling,
            args.dropout,
            args.embedding_dropout,
        ),
        training=TrainSettings(
            args.epochs,
            args.batch_size,
            args.lr,
            args.clip,
            args.patience,
            args.seed,
            args.length_pool,
            args.lr_decay,
        ),
        pretrained=PretrainedSettings(w2v, args.w2v_mode, args.w2v_binary, args.w2v_epochs),
        run_dir=args.run_dir or Path("runs") / args.name,
        resume=args.resume,
        version=args.version,
        baseline=args.baseline,
        quantize=args.quantize,
        command=command,
        progress=args.progress and sys.stderr.isatty(),
    )
    _print_summary(result.manifest, result.path, result.int8_path)
    return 0


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
        checkpoint, args.store, name, data, args.version, args.baseline, args.quantize, command
    )
    _print_summary(result.manifest, result.path, result.int8_path)
    return 0


def _examples(
    args: argparse.Namespace, data: DataSpec | None, fallback: dict[str, Any] | None
) -> list[Example]:
    if data is not None and data.data is not None and args.part == "all":
        return read_file(Path(data.data), data.text_column, data.label_column, data.format)
    if data is None:
        if not fallback:
            raise ValueError(
                "no data to evaluate on: give --data FILE, --dataset NAME or --train/--dev/--test"
            )
        data = DataSpec.from_dict(fallback)
    splits = data.load()
    if args.part == "all":
        return splits.train + splits.dev + splits.test
    return getattr(splits, args.part)


def _evaluate(args: argparse.Namespace, data: DataSpec | None, command: str) -> int:
    if args.bundle is not None:
        bundle = load_bundle(args.bundle)
        labels, tokenizer = bundle.labels, bundle.tokenizer
        examples = _examples(args, data, bundle.manifest.get("training", {}).get("data", {}).get("source"))
        predictions = ort_logits(
            bundle.model_path, encode_texts(tokenizer, [e.text for e in examples])
        ).argmax(1)
        source = str(args.bundle)
    else:
        path = args.checkpoint / BEST if args.checkpoint.is_dir() else args.checkpoint
        payload = load_checkpoint(path)
        from service.tokenizer import Tokenizer

        labels, tokenizer = payload["config"]["labels"], Tokenizer.from_dict(payload["config"]["tokenizer"])
        model = LSTMClassifier(ModelConfig.from_dict(payload["config"]["model"]))
        model.load_state_dict(payload.get("best_state") or payload["model_state"])
        examples = _examples(args, data, payload["config"].get("data"))
        predictions = predict_logits(model, encode_texts(tokenizer, [e.text for e in examples])).argmax(1)
        source = str(path)
    index = {label: position for position, label in enumerate(labels)}
    unknown = sorted({e.label for e in examples} - set(index))
    if unknown:
        raise ValueError(f"the data has labels the model does not know: {unknown} (model labels: {labels})")
    report = classification_metrics([index[e.label] for e in examples], np.asarray(predictions), labels)
    report.update({"model": source, "part": args.part, "command": command})
    text = json.dumps(report, indent=1, ensure_ascii=False)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
        logger.info("report written to %s", args.output)
    else:
        print(text)
    return 0


def _print_summary(manifest: dict[str, Any], path: Path, int8_path: Path | None = None) -> None:
    metrics = manifest["metrics"]
    baseline = (metrics.get("baseline") or {}).get("accuracy")
    print(
        f"bundle {path}: test accuracy {metrics.get('accuracy')}, macro-F1 {metrics.get('macro_f1')}"
        + (f" (TF-IDF+LR baseline {baseline})" if baseline is not None else "")
    )
    if int8_path is not None:
        print(f"int8 bundle {int8_path}")
