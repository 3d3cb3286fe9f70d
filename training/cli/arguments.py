"""The ``lstm-train`` parser: every option of ``train``, ``export`` and ``evaluate``, and the data source
they name (:func:`data_spec`). Imports no torch: ``--help`` and argument errors answer on any install."""

from __future__ import annotations

import argparse
from pathlib import Path

from service.bundle import STORE_VARIABLE
from service.tokenizer import MODES
from training.cli.search.arguments import add_tune_parser
from training.data.builtin import BUILTIN_DATASETS
from training.data.reading import FORMATS, DataError
from training.data.source import DataSpec

PROG = "lstm-train"
DESCRIPTION = (
    "``lstm-train train | export | evaluate``: the training command, apart from the service's "
    "``lstm-service``."
)
# training.model.cells.CELL_NAMES, spelled out: importing it would import torch
CELLS = ("lstm", "gru", "rnn")

EXAMPLES = """examples:
  lstm-train train --data reviews.csv --text-column review --label-column stars --name my-reviews
  lstm-train train --dataset bbc-news --name news-topic --tokenizer word --max-length 600 --w2v train
  lstm-train train --name my-model --train train.jsonl --dev dev.jsonl --test test.jsonl --resume
  lstm-train export --checkpoint runs/my-model/1 --name my-model --quantize
  lstm-train export --bundle model_store/my-model/1 --quantize
  lstm-train evaluate --bundle model_store/my-model/1 --data held_out.csv
"""


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" only where the help does not say its default already, and never for flags that
    are off unless given (a default of None, False, or True for a --no-... switch)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        off = action.default is None or action.default is False or action.default is argparse.SUPPRESS
        if "default" in text or off or action.default == () or not action.option_strings:
            return text
        if isinstance(action, argparse._StoreFalseAction):
            return text
        return super()._get_help_string(action) or text


def _ratios(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected three numbers like 0.8,0.1,0.1, got {text!r}") from error
    if len(values) != 3 or any(v < 0 for v in values) or abs(sum(values) - 1) > 1e-6:
        raise argparse.ArgumentTypeError(f"expected three non-negative shares summing to 1, got {text!r}")
    return values  # type: ignore[return-value]


def _delimiter(text: str) -> str:
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
    value = named.get(text.lower(), text)
    if len(value) != 1:
        raise argparse.ArgumentTypeError(f"expected one character (or tab), got {text!r}")
    return value


def _seed_list(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(part) for part in text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected seeds like 13,14,15, got {text!r}") from error
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds repeat in {text!r}")
    return seeds


def _add_data_options(parser: argparse.ArgumentParser, required: bool) -> None:
    group = parser.add_argument_group("data (one of --dataset, --data, or --train/--dev[/--test])")
    group.add_argument(
        "--dataset", choices=BUILTIN_DATASETS, help="a built-in data set (read from its package)"
    )
    group.add_argument("--data", metavar="FILE", help="one CSV/TSV/JSONL file, split into train/dev/test")
    group.add_argument("--train", metavar="FILE", help="training file (with --dev, optionally --test)")
    group.add_argument("--dev", metavar="FILE", help="dev file: early stopping and model selection")
    group.add_argument("--test", metavar="FILE", help="test file: the reported metrics")
    group.add_argument("--text-column", default="text", help="text column/field name (default: text)")
    group.add_argument("--label-column", default="label", help="label column/field name (default: label)")
    group.add_argument("--format", choices=FORMATS, help="file format (default: from the file suffix)")
    group.add_argument(
        "--delimiter",
        type=_delimiter,
        metavar="CHAR",
        help="CSV/TSV field delimiter, e.g. ';' or tab (default: the one of , ; tab | that splits the header "
        "into the text and label columns, else the suffix's)",
    )
    group.add_argument(
        "--encoding",
        metavar="NAME",
        help="text encoding of the data files, e.g. latin-1, cp1252, utf-16 (default: UTF-8, or UTF-16 "
        "with a byte-order mark)",
    )
    group.add_argument(
        "--task",
        choices=("auto", "single-label", "multi-label"),
        default="auto",
        help="auto: multi-label when a label cell holds a list (JSONL) or the separator, said in the log; "
        "multi-label on data with one label per text trains sigmoid outputs anyway (with a warning)",
    )
    group.add_argument(
        "--label-separator",
        default="|",
        help="separator of several labels in one CSV/TSV cell (an empty cell: no label, all-negative)",
    )
    case = group.add_mutually_exclusive_group()
    case.add_argument(
        "--fold-label-case",
        dest="label_case",
        action="store_const",
        const="fold",
        help="labels that differ only by case (Billing, billing) become one label, spelled as most of "
        "the data spells it (default: such data is refused, naming the labels)",
    )
    case.add_argument(
        "--keep-label-case",
        dest="label_case",
        action="store_const",
        const="keep",
        help="labels that differ only by case stay separate classes",
    )
    group.add_argument(
        "--split",
        type=_ratios,
        default=(0.8, 0.1, 0.1),
        metavar="TRAIN,DEV,TEST",
        help="shares for --data/--dataset (default: 0.8,0.1,0.1), stratified by label",
    )
    group.add_argument(
        "--split-seed",
        type=int,
        default=13,
        help="seed of the split; kept apart from --seed so the split stays put (default: 13)",
    )
    parser.set_defaults(_data_required=required)


def data_spec(args: argparse.Namespace) -> DataSpec | None:
    if not any((args.dataset, args.data, args.train)):
        if args._data_required:
            raise DataError(
                "no data: give --dataset NAME, --data FILE, or --train FILE --dev FILE [--test FILE]"
            )
        return None
    absolute = {
        key: str(Path(getattr(args, key)).resolve()) if getattr(args, key) else None
        for key in ("data", "train", "dev", "test")
    }
    return DataSpec(
        dataset=args.dataset,
        **absolute,
        text_column=args.text_column,
        label_column=args.label_column,
        format=args.format,
        split=tuple(args.split),
        seed=args.split_seed,
        task=None if args.task == "auto" else args.task,
        label_separator=None if args.label_separator == "|" else args.label_separator,
        delimiter=args.delimiter,
        encoding=args.encoding,
        extra={"label_case": args.label_case} if getattr(args, "label_case", None) else {},
    )


def _add_output_options(parser: argparse.ArgumentParser, name_required: bool = True) -> None:
    group = parser.add_argument_group("output")
    group.add_argument(
        "--name",
        required=name_required,
        help="model name in the store (letters, digits, . _ -)"
        + ("" if name_required else "; default: the checkpoint's run folder name, or the bundle's own name"),
    )
    group.add_argument(
        "--store",
        type=Path,
        help=f"model store (default: ${STORE_VARIABLE} if set, else the repository's model_store: the store "
        "lstm-service serves by default)",
    )
    group.add_argument("--version", type=int, help="bundle version (default: one above the highest present)")
    group.add_argument(
        "--sign-key",
        type=Path,
        help="sign the bundle's manifest with this Ed25519 private key (PEM; lstm-service keygen makes one) "
        "for a service that checks signatures (LSTM_SERVICE_BUNDLE_PUBLIC_KEY)",
    )
    group.add_argument(
        "--quantize",
        action="store_true",
        help="also write an int8 (dynamic quantization) variant as the next version, not served unless "
        "--promote",
    )
    group.add_argument(
        "--promote",
        action="store_true",
        help="with --quantize: mark the int8 variant as the version to serve (default: the fp32 one serves)",
    )
    group.add_argument(
        "--no-promote",
        dest="promoted",
        action="store_false",
        help="write the new version without serving it: the service keeps serving the highest promoted "
        "version until this one is pinned or loaded by version",
    )
    group.add_argument(
        "--allow-weak",
        action="store_true",
        help="publish a model below the floor (not better than answering the most frequent label, or the "
        "most frequent label set, by a margin): refused otherwise, with the figures and the fixes",
    )
    group.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="skip the TF-IDF + logistic-regression baseline",
    )


def _add_feedback_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("feedback (corrections logged by the service, docs/learning.md)")
    group.add_argument(
        "--feedback",
        metavar="URL_OR_FILE",
        help="merge corrected texts: the prediction log (sqlite:///... or postgresql://...) or a file from "
        "GET /labelling/export; feedback wins over a base label, the base test split stays as it is, and a "
        "held-out share of the feedback is scored separately",
    )
    group.add_argument(
        "--feedback-model", metavar="NAME", help="whose feedback to read from a log (default: --name)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{train,tune,export,evaluate}")
    defaults = DefaultsFormatter
    train = commands.add_parser(
        "train", formatter_class=defaults, help="data → tokenizer → model → train → evaluate → ONNX → bundle"
    )
    _add_data_options(train, required=True)
    _add_output_options(train)
    train.add_argument(
        "--force",
        action="store_true",
        help="write a new version even though its labels differ from the served version's",
    )
    _add_feedback_options(train)
    tokens = train.add_argument_group("tokenizer")
    tokens.add_argument(
        "--tokenizer",
        choices=MODES,
        default="word",
        help="word: regex words (jieba for Chinese); char; char-bigram",
    )
    tokens.add_argument("--max-length", type=int, default=256, help="tokens kept per text")
    tokens.add_argument(
        "--lowercase", action=argparse.BooleanOptionalAction, default=True, help="lower-case keys"
    )
    tokens.add_argument("--min-freq", type=int, default=1, help="minimum count for the vocabulary")
    tokens.add_argument("--max-vocab", type=int, default=30000, help="vocabulary size incl. <pad>, <unk>")
    model = train.add_argument_group("model")
    model.add_argument(
        "--cell",
        choices=CELLS,
        default="lstm",
        help="recurrent cell: lstm, gru, or rnn (tanh); exported as the native ONNX node of that name",
    )
    model.add_argument("--embedding-dim", type=int, default=128, help="size of each token's vector")
    model.add_argument("--hidden-dim", type=int, default=128, help="recurrent units per direction")
    model.add_argument("--num-layers", type=int, default=1, help="stacked recurrent layers")
    model.add_argument(
        "--proj-size",
        type=int,
        default=0,
        help="LSTM projection size: refused, since torch 2.13 cannot export it to ONNX faithfully",
    )
    model.add_argument(
        "--bidirectional",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="read each text in both directions",
    )
    model.add_argument("--pooling", choices=("max", "mean", "last"), default="max", help="pooling over time")
    model.add_argument("--dropout", type=float, default=0.3, help="before the classifier and between layers")
    model.add_argument(
        "--embedding-dropout", type=float, default=0.1, help="dropout on the token vectors, in training only"
    )
    vectors = train.add_argument_group("pretrained embeddings")
    vectors.add_argument(
        "--w2v",
        default="none",
        metavar="none|train|FILE",
        help="none, train (word2vec on the training split), or a word2vec file",
    )
    vectors.add_argument(
        "--w2v-mode",
        choices=("finetune", "frozen"),
        default="finetune",
        help="finetune: the pretrained vectors keep learning; frozen: they stay as loaded",
    )
    vectors.add_argument(
        "--w2v-binary",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="word2vec file format (default: binary unless .txt/.vec)",
    )
    vectors.add_argument("--w2v-epochs", type=int, default=10, help="epochs for --w2v train")
    vectors.add_argument(
        "--pretrain-text",
        nargs="+",
        metavar="FILE",
        default=(),
        help="with --w2v train: also train word2vec on these unlabelled text files (one text a line, "
        "streamed); the vocabulary still comes from the training split",
    )
    loop = train.add_argument_group("training")
    loop.add_argument("--epochs", type=int, default=10, help="maximum epochs")
    loop.add_argument("--batch-size", type=int, default=64, help="texts per training step")
    loop.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    loop.add_argument("--clip", type=float, default=5.0, help="gradient norm clipping")
    loop.add_argument(
        "--lr-decay",
        type=float,
        default=1.0,
        help="multiply the learning rate by this after an epoch without dev gain",
    )
    loop.add_argument("--patience", type=int, default=3, help="early stopping: epochs without dev gain")
    loop.add_argument(
        "--label-smoothing",
        type=float,
        default=0.0,
        help="share of each training target spread over the other labels (0: hard targets)",
    )
    loop.add_argument(
        "--ema-decay",
        type=float,
        default=0.0,
        help="score dev on, and keep, an exponential moving average of the weights with this decay per "
        "step, e.g. 0.999 (0: off)",
    )
    loop.add_argument("--seed", type=int, default=13, help="weights, shuffling, dropout, word2vec")
    loop.add_argument(
        "--seeds",
        type=_seed_list,
        default=(),
        metavar="S1,S2,...",
        help="train once per seed, bundle the best by dev score, record each seed's test figures with "
        "their mean and standard deviation (replaces --seed)",
    )
    loop.add_argument(
        "--ensemble",
        type=int,
        metavar="K",
        help="train K seeds (--seeds, else --seed and the K-1 after it) and bundle all K as one graph that "
        "averages their probabilities",
    )
    loop.add_argument(
        "--length-pool",
        type=int,
        default=50,
        help="batch texts of similar length, sorted within pools of this many batches (less padding); "
        "1 = plain random batches, better where text length differs by label",
    )
    loop.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch CPU threads; on a CPU shared with other work use 1 (measured here: 2 threads under load "
        "cost 10x the CPU time per batch, spinning while they wait for each other)",
    )
    loop.add_argument(
        "--pos-weight",
        action="store_true",
        help="multi-label: weigh each label's positives by its negatives/positives in the binary "
        "cross-entropy (helps rare labels)",
    )
    loop.add_argument(
        "--calibration",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="single-label: fit a temperature on dev, applied to the served probabilities",
    )
    loop.add_argument(
        "--run-dir",
        type=Path,
        help="checkpoints, report.json and the PNG plots (default: runs/<name>/<version>, a folder per run)",
    )
    loop.add_argument(
        "--resume",
        action="store_true",
        help="continue from <run-dir>/last.pt (default: the newest interrupted run of --name), after "
        "checking "
        "that the settings and the data are the checkpoint's",
    )
    loop.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")

    export = commands.add_parser(
        "export", formatter_class=defaults, help="bundle a checkpoint, or quantize an existing bundle to int8"
    )
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="a checkpoint file or run folder (uses its best.pt)")
    source.add_argument(
        "--bundle",
        type=Path,
        help="an fp32 bundle folder to quantize (with --quantize); a model folder means its served version",
    )
    add_tune_parser(commands, train)

    _add_data_options(export, required=False)
    _add_output_options(export, name_required=False)

    evaluate = commands.add_parser(
        "evaluate", formatter_class=defaults, help="metrics of a checkpoint or bundle on a data file or split"
    )
    target = evaluate.add_mutually_exclusive_group(required=True)
    target.add_argument("--checkpoint", type=Path, help="a checkpoint file or run folder")
    target.add_argument(
        "--bundle",
        type=Path,
        help="a bundle folder, or a model folder or name (its served version), run through onnxruntime",
    )
    _add_data_options(evaluate, required=False)
    evaluate.add_argument(
        "--part",
        choices=("all", "train", "dev", "test"),
        help="what to score (default: every row of a --data FILE given here; else the test split of the "
        "data given or recorded in the model); the report says which",
    )
    evaluate.add_argument(
        "--store",
        type=Path,
        help=f"store for a bare model NAME in --bundle (default: ${STORE_VARIABLE} or the repository's)",
    )
    evaluate.add_argument("--output", type=Path, help="write the JSON report here (default: stdout)")
    return parser
