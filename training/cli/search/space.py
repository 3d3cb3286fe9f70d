"""The search space of ``lstm-train tune``: which settings a trial may change, and over which values.

Each parameter is one ``lstm-train train`` option (:data:`PARAMETERS`). A space maps names to either a list
of choices (one choice: the value is fixed) or a range ``{"low", "high", "log"}`` for numbers. The user
narrows or widens the default space (:func:`default_space`) with ``--space NAME=SPEC`` (repeatable) or
``--space-file FILE`` (JSON of the same shape); SPEC is ``a,b,c`` (choices) or ``LOW..HIGH`` with an
optional ``:log`` (a range). Everything is checked before any trial runs (:func:`check`): an unknown name,
an empty or reversed range, a value of the wrong type or outside what ``train`` accepts is refused with the
fix. No torch here: the parser uses it.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Value = int | float | str | bool


@dataclass(frozen=True)
class Parameter:
    """One searchable option: its type, the ``train`` flag that sets it and the values ``train`` accepts."""

    kind: type  # int, float, str or bool
    flag: str
    choices: tuple[str, ...] = ()  # str parameters: every accepted value
    minimum: float | None = None  # numbers: the smallest accepted value
    below: float | None = None  # numbers: values must stay below this (exclusive)
    above: float | None = None  # numbers: values must be above this (exclusive)


PARAMETERS: dict[str, Parameter] = {
    "cell": Parameter(str, "--cell", ("lstm", "gru", "rnn")),
    "pooling": Parameter(str, "--pooling", ("max", "mean", "last")),
    # none: random; train: word2vec on the training split; text: on it plus --pretrain-text files
    "w2v": Parameter(str, "--w2v", ("none", "train", "text")),
    "w2v_mode": Parameter(str, "--w2v-mode", ("finetune", "frozen")),
    "w2v_epochs": Parameter(int, "--w2v-epochs", minimum=1),
    "tokenizer": Parameter(str, "--tokenizer", ("word", "char", "char-bigram")),
    "max_length": Parameter(int, "--max-length", minimum=1),
    "min_freq": Parameter(int, "--min-freq", minimum=1),
    "max_vocab": Parameter(int, "--max-vocab", minimum=3),
    "embedding_dim": Parameter(int, "--embedding-dim", minimum=1),
    "hidden_dim": Parameter(int, "--hidden-dim", minimum=1),
    "num_layers": Parameter(int, "--num-layers", minimum=1),
    "bidirectional": Parameter(bool, "--bidirectional"),
    "dropout": Parameter(float, "--dropout", minimum=0.0, below=1.0),
    "embedding_dropout": Parameter(float, "--embedding-dropout", minimum=0.0, below=1.0),
    "lr": Parameter(float, "--lr", above=0.0),
    "lr_decay": Parameter(float, "--lr-decay", above=0.0, below=1.000001),
    "clip": Parameter(float, "--clip", above=0.0),
    "batch_size": Parameter(int, "--batch-size", minimum=1),
    "length_pool": Parameter(int, "--length-pool", minimum=1),
    "patience": Parameter(int, "--patience", minimum=1),
    "label_smoothing": Parameter(float, "--label-smoothing", minimum=0.0, below=1.0),
    "ema_decay": Parameter(float, "--ema-decay", minimum=0.0, below=1.0),
}


def default_space(max_length: int, pretrain_text: bool, w2v_file: bool) -> dict[str, Any]:
    """The space searched unless the user changes it: the recipe's known levers on this model (pooling,
    word2vec initialisation, sizes, regularisation, step size) around the ``train`` defaults.
    ``max_length`` is the ``--max-length`` given (half of it is tried too); a ``--w2v FILE`` fixes the
    initialisation and the embedding size (the vectors' own)."""
    space: dict[str, Any] = {
        "cell": ["lstm", "gru"],
        "pooling": ["max", "mean"],
        "w2v": ["none", "train", "text"] if pretrain_text else ["none", "train"],
        "w2v_mode": ["finetune", "frozen"],
        "embedding_dim": [64, 128, 200],
        "hidden_dim": [64, 128, 256],
        "num_layers": [1, 2],
        "bidirectional": [True, False],
        "dropout": {"low": 0.1, "high": 0.6},
        "embedding_dropout": {"low": 0.0, "high": 0.3},
        "lr": {"low": 3e-4, "high": 5e-3, "log": True},
        "lr_decay": [1.0, 0.5],
        "max_length": sorted({max(1, max_length // 2), max_length}),
        "batch_size": [32, 64, 128],
        "length_pool": [1, 50],
        "label_smoothing": [0.0, 0.1],
        "ema_decay": [0.0, 0.99, 0.998],
    }
    if w2v_file:
        for name in ("w2v", "w2v_mode", "embedding_dim"):
            space.pop(name)
    return space


class SpaceError(ValueError):
    """A search space that cannot run; the message says what to change."""


def _unknown(name: str) -> SpaceError:
    close = difflib.get_close_matches(name, PARAMETERS, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return SpaceError(
        f"unknown search parameter {name!r}{hint}; the parameters are: {', '.join(sorted(PARAMETERS))}"
    )


def _convert(name: str, value: Any) -> Value:
    parameter = PARAMETERS[name]
    if parameter.kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "1", "on"):
            return True
        if text in ("false", "no", "0", "off"):
            return False
        raise SpaceError(f"{name}: {value!r} is not true or false; write {name}=true,false")
    if parameter.kind is str:
        if str(value) not in parameter.choices:
            raise SpaceError(f"{name}: {value!r} is not one of {', '.join(parameter.choices)}")
        return str(value)
    try:
        number = float(value)
        if parameter.kind is int and number != int(number):
            raise ValueError
    except (TypeError, ValueError):
        kind = "an integer" if parameter.kind is int else "a number"
        raise SpaceError(f"{name}: {value!r} is not {kind}") from None
    converted: int | float = int(number) if parameter.kind is int else number
    if parameter.minimum is not None and converted < parameter.minimum:
        raise SpaceError(f"{name}: {value!r} is below {parameter.minimum:g}, the smallest train accepts")
    if parameter.above is not None and converted <= parameter.above:
        raise SpaceError(f"{name}: {value!r} must be above {parameter.above:g}")
    if parameter.below is not None and converted >= parameter.below:
        raise SpaceError(f"{name}: {value!r} must stay below {parameter.below:g}")
    return converted


def check_entry(name: str, spec: Any) -> list[Value] | dict[str, Any]:
    """One parameter's spec, converted to its type and checked: choices, or a numeric range."""
    if name not in PARAMETERS:
        raise _unknown(name)
    parameter = PARAMETERS[name]
    if isinstance(spec, Mapping):
        if parameter.kind not in (int, float):
            raise SpaceError(f"{name} takes choices, not a range: write {name}=a,b")
        extra = set(spec) - {"low", "high", "log"}
        if extra or not {"low", "high"} <= set(spec):
            raise SpaceError(f"{name}: a range is {{'low': L, 'high': H, 'log': false}}, got {dict(spec)}")
        low, high = _convert(name, spec["low"]), _convert(name, spec["high"])
        if float(low) > float(high):
            raise SpaceError(
                f"{name}: empty range {low}..{high} (low above high); write {name}={high}..{low}"
            )
        log = bool(spec.get("log", False))
        if log and float(low) <= 0:
            raise SpaceError(f"{name}: a log range needs low > 0, got {low}; drop :log or raise the low end")
        return {"low": low, "high": high, "log": log}
    values = list(spec) if isinstance(spec, list | tuple) else [spec]
    if not values:
        raise SpaceError(f"{name}: no values to choose from; give at least one, e.g. {name}=<value>")
    converted = [_convert(name, value) for value in values]
    return list(dict.fromkeys(converted))  # repeated choices would weigh the sampler


def parse_option(text: str) -> tuple[str, Any]:
    """``--space NAME=SPEC``: ``a,b,c`` (choices), ``LOW..HIGH`` or ``LOW..HIGH:log`` (a range)."""
    name, equals, spec = text.partition("=")
    name = name.strip().replace("-", "_")
    if not equals or not name:
        raise SpaceError(
            f"--space {text!r}: write NAME=a,b,c or NAME=LOW..HIGH[:log], e.g. lr=1e-4..1e-2:log"
        )
    spec = spec.strip()
    if ".." in spec:
        bounds, _, scale = spec.partition(":")
        low, _, high = bounds.partition("..")
        if scale not in ("", "log"):
            raise SpaceError(f"--space {text!r}: the only range suffix is :log")
        return name, {"low": low.strip(), "high": high.strip(), "log": scale == "log"}
    values = [part.strip() for part in spec.split(",") if part.strip()]
    return name, values


def build_space(
    base: Mapping[str, Any], options: list[str] | None = None, file: Path | None = None
) -> dict[str, list[Value] | dict[str, Any]]:
    """``base`` (the default space), then the file's entries, then each ``--space`` option, every entry
    replacing the parameter's spec; all checked."""
    entries: dict[str, Any] = dict(base)
    if file is not None:
        try:
            loaded = json.loads(Path(file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            example = '{"lr": [0.001, 0.002]}'
            raise SpaceError(f"--space-file {file}: {error}; it holds JSON like {example}") from error
        if not isinstance(loaded, dict):
            raise SpaceError(f"--space-file {file}: expected a JSON object of NAME: SPEC")
        entries.update(loaded)
    for option in options or []:
        name, spec = parse_option(option)
        entries[name] = spec
    return {name: check_entry(name, spec) for name, spec in entries.items()}


def searched(space: Mapping[str, Any]) -> list[str]:
    """The parameters whose value a trial chooses (a single choice is fixed, not searched)."""
    return [name for name, spec in space.items() if isinstance(spec, dict) or len(spec) > 1]


def suggest(trial: Any, space: Mapping[str, Any]) -> dict[str, Value]:
    """One value per parameter from an Optuna trial (fixed parameters are not shown to the sampler)."""
    values: dict[str, Value] = {}
    for name, spec in space.items():
        kind = PARAMETERS[name].kind
        if isinstance(spec, dict):
            if kind is int:
                values[name] = trial.suggest_int(name, spec["low"], spec["high"], log=spec["log"])
            else:
                values[name] = trial.suggest_float(name, spec["low"], spec["high"], log=spec["log"])
        elif len(spec) == 1:
            values[name] = spec[0]
        else:
            values[name] = trial.suggest_categorical(name, spec)
    return values


def flags(values: Mapping[str, Value], pretrain_text: tuple[str, ...]) -> list[str]:
    """The ``lstm-train train`` arguments that set ``values`` (``w2v=text`` adds ``--pretrain-text``)."""
    arguments: list[str] = []
    for name, value in values.items():
        flag = PARAMETERS[name].flag
        if name == "w2v":
            arguments += ["--w2v", "train" if value == "text" else str(value)]
            if value == "text":
                arguments += ["--pretrain-text", *pretrain_text]
        elif isinstance(value, bool):
            arguments.append(flag if value else "--no-" + flag[2:])
        else:
            arguments += [flag, repr(value) if isinstance(value, float) else str(value)]  # exact
    return arguments
