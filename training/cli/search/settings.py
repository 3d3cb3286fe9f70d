"""From ``tune``'s arguments and a trial's values to the settings ``fit`` and ``train_bundle`` take.

Every parameter of :data:`~training.cli.search.space.PARAMETERS` starts at the value its ``train`` option has
on the command line (the default unless given); a trial's values replace the searched ones.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from training.cli.search.space import PARAMETERS, Value
from training.loop.config import PretrainedSettings, TokenizerSettings, TrainSettings
from training.model.classifier import ModelConfig


def pretrain_files(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(str(Path(text).resolve()) for text in (args.pretrain_text or ()))


def base_values(args: argparse.Namespace) -> dict[str, Value]:
    """The command line's value of every searchable parameter (``w2v``: none, train, text or a FILE)."""
    values: dict[str, Value] = {name: getattr(args, name) for name in PARAMETERS if name != "w2v"}
    w2v = "none" if args.w2v in ("none", "") else args.w2v
    values["w2v"] = "text" if w2v == "train" and args.pretrain_text else w2v
    return values


def settings_for(args: argparse.Namespace, values: Mapping[str, Value]) -> dict[str, Any]:
    """``tokenizer``, ``model``, ``training`` and ``pretrained`` keyword arguments of ``fit``."""
    chosen: dict[str, Any] = {**base_values(args), **values}
    w2v = str(chosen["w2v"])
    return {
        "tokenizer": TokenizerSettings(
            mode=chosen["tokenizer"],
            lowercase=args.lowercase,
            max_length=chosen["max_length"],
            min_freq=chosen["min_freq"],
            max_vocab=chosen["max_vocab"],
        ),
        "model": ModelConfig(
            cell=chosen["cell"],
            embedding_dim=chosen["embedding_dim"],
            hidden_dim=chosen["hidden_dim"],
            num_layers=chosen["num_layers"],
            bidirectional=chosen["bidirectional"],
            pooling=chosen["pooling"],
            dropout=chosen["dropout"],
            embedding_dropout=chosen["embedding_dropout"],
        ),
        "training": TrainSettings(
            epochs=args.epochs,
            batch_size=chosen["batch_size"],
            learning_rate=chosen["lr"],
            clip=chosen["clip"],
            patience=chosen["patience"],
            seed=args.seed,
            length_pool=chosen["length_pool"],
            lr_decay=chosen["lr_decay"],
            label_smoothing=chosen["label_smoothing"],
            ema_decay=chosen["ema_decay"],
        ),
        "pretrained": PretrainedSettings(
            source=None if w2v == "none" else ("train" if w2v in ("train", "text") else w2v),
            mode=chosen["w2v_mode"],
            binary=args.w2v_binary,
            epochs=chosen["w2v_epochs"],
            texts=pretrain_files(args) if w2v == "text" else (),
        ),
    }
