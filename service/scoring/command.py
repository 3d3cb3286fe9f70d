"""``lstm-service score INPUT --output OUT``: the command's flags, its checks, and its summary.

Everything that can be checked before scoring is (the input's format and columns, the output's format and
folder, the model, an interrupted run of another command in the way): a refusal says how to fix the command
and leaves nothing behind. Exit status: 0 every row scored, 1 some rows rejected (listed in the rejects
file), 2 refused, 130 interrupted (re-run the same command to resume).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

EXIT_REJECTED = 1
EXIT_REFUSED = 2
EXIT_INTERRUPTED = 130


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    score = commands.add_parser(
        "score",
        help="score a whole file of texts (CSV, TSV, JSON lines, Parquet) on every core",
        description="Score every row of INPUT with one model and write the answers to --output "
        "(.parquet, .jsonl or .csv). An interrupted run resumes when the same command is run again.",
    )
    score.add_argument("input", type=Path, help="the texts: .csv, .tsv, .jsonl or .parquet")
    score.add_argument(
        "--output", "-o", type=Path, required=True, help="where to write: .parquet, .jsonl, .csv"
    )
    score.add_argument("--model", help="the model's name (default: the store's only model)")
    score.add_argument(
        "--version", type=int, help="the model's version (default: the one the service serves)"
    )
    score.add_argument("--model-store", type=Path, help="the store (default: LSTM_SERVICE_MODEL_STORE)")
    score.add_argument("--text-column", help="the column holding the texts (default: text)")
    score.add_argument("--id-column", help="a column that names each row (default: the row's number, 'row')")
    score.add_argument("--keep", nargs="+", default=[], metavar="COLUMN", help="columns copied to the output")
    score.add_argument("--top-k", type=int, help="only the k best labels and their scores, best first")
    score.add_argument("--logits", action="store_true", help="also each label's raw logit")
    score.add_argument("--unk-ratio", action="store_true", help="also each text's share of <unk> tokens")
    score.add_argument(
        "--processes", type=int, default=os.cpu_count() or 1, help="worker processes (default: every core)"
    )
    score.add_argument("--batch-size", type=int, default=16, help="texts per model call (sorted by length)")
    score.add_argument("--chunk-rows", type=int, default=4096, help="rows per checkpointed chunk")
    score.add_argument(
        "--rejects", type=Path, help="where rows that cannot be scored go (default: OUTPUT's name.rejects)"
    )
    score.add_argument("--overwrite", action="store_true", help="replace an existing output")
    score.add_argument("--quiet", "-q", action="store_true", help="no progress line")
    score.add_argument(
        "--engine", choices=("local", "ray"), default="local", help="worker processes here, or Ray"
    )
    score.add_argument("--address", help="--engine ray: the cluster's address (default: a local Ray)")


def _say(message: str) -> None:
    print(message, file=sys.stderr)  # the CLI's user messages


def _positive(name: str, value: int | None) -> None:
    from service.scoring.tables import InputError

    if value is not None and value < 1:
        raise InputError(f"--{name} must be at least 1 (got {value})")


def main(arguments: argparse.Namespace) -> int:
    try:
        import pyarrow as pa

        from service.scoring import local
        from service.scoring.columns import ScoreOptions, ScoringError
        from service.scoring.tables import Corpus, InputError
    except ImportError as error:
        _say(f"lstm-service score needs pyarrow ({error}): pip install 'lstm-service[score]'")
        return EXIT_REFUSED
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        for name in ("processes", "batch_size", "chunk_rows", "top_k"):
            _positive(name.replace("_", "-"), getattr(arguments, name))
        corpus = Corpus(arguments.input, arguments.text_column, arguments.id_column, arguments.keep)
        options = ScoreOptions(
            model=arguments.model,
            version=arguments.version,
            top_k=arguments.top_k,
            logits=arguments.logits,
            unk_ratio=arguments.unk_ratio,
            batch_size=arguments.batch_size,
        )
        job = local.Job(
            corpus,
            arguments.model_store,
            options,
            arguments.output,
            arguments.rejects or local.rejects_path(arguments.output),
            arguments.processes,
            arguments.chunk_rows,
        )
        local.check_destination(job, arguments.overwrite)
        if arguments.engine == "ray":
            from service.scoring.ray_data import run_on_ray

            summary = run_on_ray(job, arguments.address)
        else:
            if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
                # The C library's allocator gives freed pages back; mimalloc, Arrow's default here,
                # kept about 20 MB more of this process resident while it read and wrote the parts.
                pa.set_memory_pool(pa.system_memory_pool())
            summary = local.run(job, local.progress_stream(arguments.quiet))
    except (InputError, ScoringError) as error:
        _say(f"lstm-service score: {error}")
        return EXIT_REFUSED
    except KeyboardInterrupt:
        _say("lstm-service score: interrupted; run the same command again to carry on where it stopped")
        return EXIT_INTERRUPTED
    model = summary.identity
    _say(
        f"read {summary.read:,} rows, scored {summary.scored:,}, rejected {summary.rejected:,}"
        + (f" (listed in {job.rejects})" if summary.rejected else "")
        + (f"; {summary.resumed:,} were done by an earlier run" if summary.resumed else "")
        + f"; model {model['name']} version {model['version']}; {summary.seconds:.1f} s; wrote {job.output}"
    )
    return EXIT_REJECTED if summary.rejected else 0
