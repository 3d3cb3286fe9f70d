"""What each CLI subcommand does, once its arguments are parsed (imports torch)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from service.bundle import (
    MANIFEST_FILE,
    NAME_PATTERN,
    Bundle,
    Manifest,
    default_store,
    load_bundle,
    promoted_versions,
    signing,
)
from training.cli.feedback_report import merged as merged_feedback
from training.cli.feedback_report import report as report_feedback
from training.cli.pipeline import export_checkpoint, train_bundle
from training.data import preflight, runs
from training.data.multilabel import label_matrix
from training.data.reading import Example, read_file
from training.data.source import DataSpec, recorded_splits
from training.export.graph import ort_logits
from training.export.publish import BundleResult, quantize_bundle
from training.loop import distributed
from training.loop.batches import encode_texts
from training.loop.config import PretrainedSettings, TokenizerSettings, TrainSettings
from training.loop.floor import WeakModelError
from training.loop.metrics import classification_metrics, multilabel_metrics
from training.loop.thresholds import DEFAULT_THRESHOLD, predict, sigmoid
from training.loop.trainer import CheckpointModel, load_checkpoint_model, predict_logits
from training.model.cells import refuse_unexportable
from training.model.classifier import ModelConfig

logger = logging.getLogger(__name__)


def run(args: argparse.Namespace, data: DataSpec | None, command: str) -> int:
    threads = max(1, getattr(args, "threads", 2) or 2)
    torch.set_num_threads(threads)
    # --threads holds every library's pool, not only torch's: the TF-IDF baseline's BLAS and OpenMP pools
    # took every core (44 s of a 56 s run on a shared machine; 1.1 s with one thread)
    with threadpool_limits(limits=threads), signing(getattr(args, "sign_key", None)):
        # every bundle written meanwhile is signed with the key
        if args.command == "tune":
            return _tune(args, data, command)
        return {"train": _train, "export": _export, "evaluate": _evaluate}[args.command](args, data, command)


def _train(args: argparse.Namespace, data: DataSpec, command: str) -> int:
    refuse_unexportable({"proj_size": args.proj_size})
    _refuse_both_promotions(args)
    plan = preflight.plan_training(
        data,
        _store(args),
        args.name,
        version=args.version,
        run_dir=args.run_dir,
        force=args.force,
        promoted=args.promoted,
        resume=args.resume,
        # under torchrun every rank plans; the ranks share --run-dir and only rank 0 writes the bundle
        reserve=not distributed.launched_by_torchrun(),
        epochs=args.epochs,
    )
    held_out = None
    if getattr(args, "feedback", None):
        plan, held_out = merged_feedback(args, plan)
    context = distributed.start()  # a single process unless launched by torchrun
    try:
        if context.is_main:
            runs.mark_started(plan.run_dir, plan.version, command)
        result = _train_bundle(args, plan, command, context)
    except KeyboardInterrupt:
        logger.error("%s", _interrupted(plan, command))
        return 130
    except WeakModelError:
        runs.mark_finished(plan.run_dir, None)  # trained to the end: not a run to resume
        raise
    finally:
        distributed.stop(context)
        if plan.claimed:
            runs.release(plan.store, plan.name, plan.version)
    if result is not None:  # rank 0 (or the only process) wrote the bundle
        record = result.manifest.training
        runs.mark_finished(plan.run_dir, result.path, record.epochs_run, record.stopped_early)
        _print_summary(result.manifest, result.path, result.int8_path)
        preflight.compare(plan, result.manifest, result.path)
        if held_out is not None:
            report_feedback(plan, result.path, held_out)
        _print_how_to_serve(plan.store, plan.name, result.manifest)
    return 0


def _interrupted(plan: preflight.Plan, command: str) -> str:
    """One line for Ctrl-C: where the run stopped and the command that continues it."""
    checkpoint = plan.run_dir / runs.LAST_CHECKPOINT
    if not checkpoint.is_file():
        return (
            f"interrupted before the first epoch ended: nothing was saved and no version written; run the "
            f"same command again to start {plan.name} afresh"
        )
    again = command if " --resume" in f"{command} " else f"{command} --resume"
    return (
        f"interrupted: {plan.name} version {plan.version} was not written; the last finished epoch is saved "
        f"in {checkpoint}. To continue from there: {again}"
    )


def _tune(args: argparse.Namespace, data: DataSpec, command: str) -> int:
    from training.cli.search.command import tune  # optuna is imported by tune only

    published = tune(args, data, command)
    if published is not None:  # None: a --no-publish worker
        plan, result = published
        _print_summary(result.manifest, result.path, result.int8_path)
        preflight.compare(plan, result.manifest, result.path)
        _print_how_to_serve(plan.store, plan.name, result.manifest)
    return 0


def ensemble_seeds(args: argparse.Namespace) -> tuple[int, ...]:
    """``--seeds``; with ``--ensemble K`` and no ``--seeds``: ``--seed`` and the K-1 after it."""
    if not args.ensemble:
        return tuple(args.seeds)
    if args.ensemble < 2:
        raise ValueError(f"--ensemble {args.ensemble}: an ensemble averages 2 or more models")
    if args.seeds and len(args.seeds) != args.ensemble:
        raise ValueError(f"--ensemble {args.ensemble} with {len(args.seeds)} --seeds: give as many seeds")
    return tuple(args.seeds) or tuple(range(args.seed, args.seed + args.ensemble))


def _store(args: argparse.Namespace) -> Path:
    """``--store``, else the store the service serves by default (``$LSTM_SERVICE_MODEL_STORE``, else the
    repository's ``model_store``)."""
    return Path(args.store).expanduser().resolve() if args.store is not None else default_store()


def _refuse_both_promotions(args: argparse.Namespace) -> None:
    if args.promote and not args.quantize:
        raise ValueError("--promote serves the int8 variant instead of the fp32 one: it needs --quantize")


def _train_bundle(
    args: argparse.Namespace, plan: preflight.Plan, command: str, context: distributed.Distributed
) -> BundleResult | None:
    if context.enabled and args.quantize:
        raise ValueError(
            "--quantize under torchrun: export the int8 variant afterwards with export --quantize"
        )
    w2v = None if args.w2v in ("none", "") else args.w2v
    return train_bundle(
        plan.splits,
        plan.store,
        plan.name,
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
            label_smoothing=args.label_smoothing,
            ema_decay=args.ema_decay,
        ),
        pretrained=PretrainedSettings(
            source=w2v,
            mode=args.w2v_mode,
            binary=args.w2v_binary,
            epochs=args.w2v_epochs,
            texts=tuple(str(Path(text).resolve()) for text in args.pretrain_text),
        ),
        run_dir=plan.run_dir,
        resume=args.resume,
        version=plan.version,
        baseline=args.baseline,
        quantize=args.quantize,
        command=command,
        progress=args.progress and sys.stderr.isatty() and context.is_main,
        pos_weight=args.pos_weight,
        calibrated=args.calibration,
        context=context,
        seeds=ensemble_seeds(args),
        promoted=None if args.promoted else False,
        promote_int8=args.promote,
        refuse_weak=not args.allow_weak,
        ensemble=bool(args.ensemble),
    )


def _export(args: argparse.Namespace, data: DataSpec | None, command: str) -> int:
    _refuse_both_promotions(args)
    if args.bundle is not None:
        if not args.quantize:
            raise ValueError("--bundle exports nothing new without --quantize (a bundle is already exported)")
        folder = bundle_folder(args.bundle, _store(args))
        splits = data.load() if data else recorded_splits(load_bundle(folder))
        result = quantize_bundle(folder, splits, args.version, promote=args.promote)
        _print_summary(result.manifest, result.path)
        _print_how_to_serve(result.path.parent.parent, result.manifest.name, result.manifest)
        return 0
    checkpoint = args.checkpoint
    folder = (checkpoint if checkpoint.is_dir() else checkpoint.parent).resolve()
    # runs/<name>/<version> (a run folder per version) or the older runs/<name>
    name = args.name or (folder.parent.name if folder.name.isdigit() else folder.name)
    store = _store(args)
    result = export_checkpoint(
        checkpoint,
        store,
        name,
        data,
        version=args.version,
        baseline=args.baseline,
        quantize=args.quantize,
        command=command,
        promoted=None if args.promoted else False,
        promote_int8=args.promote,
        refuse_weak=not args.allow_weak,
    )
    _print_summary(result.manifest, result.path, result.int8_path)
    _print_how_to_serve(store, name, result.manifest)
    return 0


def bundle_folder(path: Path, store: Path) -> Path:
    """A bundle folder from what a user types: ``store/NAME/VERSION``, a model folder ``store/NAME`` (its
    served version: the highest promoted one), or a bare model NAME in the store."""
    path = Path(path)
    if not path.exists() and len(path.parts) == 1 and (store / path).is_dir():
        path = store / path
    if path.is_dir() and not (path / MANIFEST_FILE).is_file():
        versions = promoted_versions(path.parent, path.name) if NAME_PATTERN.match(path.name) else []
        if not versions:
            raise ValueError(f"{path} is neither a bundle folder nor a model folder holding versions")
        logger.info("%s: version %d (the version the service serves)", path, versions[0])
        return path / str(versions[0])
    return path


def _part(args: argparse.Namespace, data: DataSpec | None) -> str:
    """``--part``, else: every row of a ``--data`` file given here, the test split otherwise."""
    if args.part is not None:
        return str(args.part)
    return "all" if data is not None and data.data is not None else "test"


def _examples(
    args: argparse.Namespace, data: DataSpec | None, trained: Bundle | CheckpointModel
) -> tuple[list[Example], str]:
    """The examples to score and what they are, in words."""
    part = _part(args, data)
    if data is not None and data.data is not None and part == "all":
        separator = data.label_separator or "|"
        examples = read_file(
            Path(data.data),
            data.text_column,
            data.label_column,
            data.format,
            data.task,
            separator,
            delimiter=data.delimiter,
            encoding=data.encoding,
        )
        return examples, f"every row of {data.data}"
    splits = data.load() if data is not None else recorded_splits(trained)
    fallback = trained.manifest.data_source if isinstance(trained, Bundle) else trained.data_source
    source = (data or fallback or DataSpec(dataset="?")).describe()
    if part == "all":
        return splits.train + splits.dev + splits.test, f"every row of {source} (train, dev and test)"
    return getattr(splits, part), f"the {part} split of {source} (--part all: every row)"


def _evaluate(args: argparse.Namespace, data: DataSpec | None, command: str) -> int:
    thresholds = None
    if args.bundle is not None:
        folder = bundle_folder(args.bundle, _store(args))
        bundle = load_bundle(folder)
        labels, tokenizer, thresholds = bundle.labels, bundle.tokenizer, bundle.manifest.thresholds
        examples, scored = _examples(args, data, bundle)
        logits = ort_logits(bundle.model_path, encode_texts(tokenizer, [e.text for e in examples]))
        source = str(folder)
    else:
        loaded = load_checkpoint_model(args.checkpoint)
        labels, tokenizer = loaded.labels, loaded.tokenizer
        examples, scored = _examples(args, data, loaded)
        logits = predict_logits(loaded.model, encode_texts(tokenizer, [e.text for e in examples]))
        source = str(loaded.path)
    logger.info("scoring %d texts: %s", len(examples), scored)
    multi = any(not e.label for e in examples)  # multi-label examples carry label sets instead
    given = {label for e in examples for label in (e.labels if multi else (e.label,))}
    unknown = sorted(given - set(labels))
    if unknown:
        raise ValueError(f"the data has labels the model does not know: {unknown} (model labels: {labels})")
    if multi:
        # a checkpoint has no tuned thresholds (they are tuned when the bundle is written): 0.5 each
        decided = thresholds or dict.fromkeys(labels, DEFAULT_THRESHOLD)
        report = multilabel_metrics(
            label_matrix([e.labels for e in examples], labels),
            predict(sigmoid(logits), decided, labels),
            labels,
        )
        report["thresholds"] = decided
    else:
        index = {label: position for position, label in enumerate(labels)}
        report = classification_metrics([index[e.label] for e in examples], logits.argmax(1), labels)
    report.update(
        {
            "model": source,
            "part": _part(args, data),
            "scored": scored,
            "texts": len(examples),
            "command": command,
        }
    )
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
    if manifest.training.labels:
        print(f"labels, as the service answers them: {', '.join(manifest.training.labels)}")
    if int8_path is not None:
        print(f"int8 bundle {int8_path}")


def _print_how_to_serve(store: Path, name: str, manifest: Manifest) -> None:
    """The absolute bundle folder and the command that serves it."""
    store = Path(store).resolve()
    serve = "lstm-service serve" + ("" if store == default_store() else f" --model-store {store}")
    print(f"bundle folder: {store / name / str(manifest.version)}")
    if manifest.promoted is False:
        print(f"serve it (not promoted, so by version): {serve} --pinned {name}={manifest.version}")
    else:
        print(f'serve it: {serve}  (then ask for it by name: {{"model": "{name}", "text": ...}})')
