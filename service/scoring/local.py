"""``lstm-service score`` on this machine: chunks scored by worker processes, checkpointed, committed once.

Each chunk of the input (:meth:`Corpus.chunks`) is scored by one of ``processes`` worker processes, each with
its own :class:`Scorer` (the model opened once per process, one onnxruntime thread), and written to the
run's parts folder (``.<output>.parts/``) as two Parquet files, renamed into place when whole: the rejected
rows first, then the scored ones, whose presence marks the chunk done. The folder's ``run.json`` records
what the run is (input, model, options); a run of the same command finds it, skips the chunks already done
and scores the rest, whatever killed the previous one. When every chunk is done, the parts are copied in
order into the output (and the rejects file) under temporary names, renamed into place, and the parts
folder removed: the output appears whole or not at all, each row in it once.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from service.scoring.columns import ERROR, ModelIdentity, ScoreOptions
from service.scoring.pool import WorkerPool

if TYPE_CHECKING:
    from service.scoring.scorer import Scorer
from service.scoring.tables import (
    OUTPUT_FORMATS,
    Chunk,
    Corpus,
    InputError,
    OutputWriter,
    answers_table,
    format_of,
    write_atomically,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One ``score`` command, checked: what to read, with which model, where to write."""

    corpus: Corpus
    store: Path
    options: ScoreOptions
    output: Path
    rejects: Path
    processes: int
    chunk_rows: int = 4096

    @property
    def parts(self) -> Path:
        return self.output.with_name(f".{self.output.name}.parts")


@dataclass
class Summary:
    read: int = 0
    scored: int = 0
    rejected: int = 0
    resumed: int = 0  # rows found done by an earlier run
    seconds: float = 0.0
    identity: dict[str, Any] = field(default_factory=dict)


def rejects_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}.rejects{output.suffix}")


def check_destination(job: Job, overwrite: bool) -> None:
    """Refuse, before any work, an output that cannot be written or would be lost."""
    format_of(job.output, OUTPUT_FORMATS, "output")
    if not job.output.parent.is_dir():
        raise InputError(f"output {job.output}: the folder {job.output.parent} does not exist")
    if job.output.resolve() == job.corpus.path.resolve():
        raise InputError(f"output {job.output} is the input; choose another file")
    if job.output.exists() and not job.parts.exists() and not overwrite:
        raise InputError(
            f"output {job.output} exists already; remove it, choose another, or pass --overwrite"
        )


# -- the parts -----------------------------------------------------------------------------------------------


def score_chunk(scorer: Scorer, parts: Path, chunk: Chunk) -> tuple[int, int, int]:
    """Score one chunk here and write its two part files; (its index, rows scored, rows rejected)."""
    return write_chunk(parts, chunk, scorer.score(chunk.texts), scorer.columns)


def write_chunk(
    parts: Path, chunk: Chunk, answers: dict[str, Any], columns: list[tuple[str, str]]
) -> tuple[int, int, int]:
    """A chunk's answers (from this process or a worker) written as its two part files, rejects first:
    the scored part is what says the chunk is done."""
    table = answers_table(chunk.passthrough, answers, columns)
    failed = pa.array([error is not None for error in answers[ERROR]])
    id_name = chunk.passthrough.column_names[0]
    rejects = table.filter(failed).select([id_name, ERROR]).rename_columns([id_name, "reason"])
    scored = table.filter(pc.invert(failed)).drop_columns([ERROR])
    write_atomically(rejects, parts / f"{chunk.index:08d}.rejects.parquet")
    write_atomically(scored, parts / f"{chunk.index:08d}.parquet")  # last: the chunk is done
    return chunk.index, scored.num_rows, rejects.num_rows


# -- the run -----------------------------------------------------------------------------------------------


def _fingerprint(job: Job, identity: ModelIdentity) -> dict[str, Any]:
    stat = job.corpus.path.stat()
    return {
        "input": str(job.corpus.path.resolve()),
        "input_size": stat.st_size,
        "input_mtime_ns": stat.st_mtime_ns,
        "text_column": job.corpus.text_column,
        "id_column": job.corpus.id_column,
        "keep": job.corpus.keep,
        "model": identity.name,
        "version": identity.version,
        "manifest_sha256": identity.checksum,
        "options": {k: v for k, v in asdict(job.options).items() if k not in ("model", "version")},
        "chunk_rows": job.chunk_rows,
    }


def _prepare_parts(job: Job, fingerprint: dict[str, Any]) -> set[int]:
    """The parts folder for this run (created, or found from an interrupted one): the chunks done."""
    record = job.parts / "run.json"
    if record.exists():
        earlier = json.loads(record.read_text())
        differs = sorted(
            key for key in fingerprint.keys() | earlier.keys() if earlier.get(key) != fingerprint.get(key)
        )
        if differs:
            raise InputError(
                f"{job.parts} holds an interrupted run of another command ({', '.join(differs)} differ); "
                "re-run that command to finish it, or remove the folder to start over"
            )
        for stale in job.parts.glob(".*.tmp"):  # a part being written when the run was killed
            stale.unlink()
        return {
            int(path.name.split(".")[0])
            for path in job.parts.glob("[0-9]*.parquet")
            if "rejects" not in path.name
        }
    job.parts.mkdir()
    temporary = job.parts / ".run.json.tmp"
    temporary.write_text(json.dumps(fingerprint, indent=1))
    temporary.replace(record)
    return set()


def run(job: Job, progress: TextIO | None) -> Summary:
    """Score the whole input (resuming an interrupted run of the same job), then commit the output."""
    started = time.perf_counter()
    if job.processes == 1:
        from service.scoring.scorer import Scorer

        with Scorer(job.store, job.options) as scorer:
            summary, identity, columns = _score_all(job, progress, scorer.identity, scorer.columns, scorer)
    else:
        # Workers start from a fresh interpreter (no threads of this process inherited); only they load
        # onnxruntime and the model.
        with WorkerPool(job.processes, job.store, job.options) as pool:
            identity, columns = pool.submit("identity").result()  # a model that cannot load stops here
            summary, identity, columns = _score_all(job, progress, identity, columns, pool)
    if summary.read == 0:
        shutil.rmtree(job.parts)
        raise InputError(f"input {job.corpus.path} holds no rows")
    _commit(job, identity, columns)
    summary.scored, summary.rejected = _counted(job)
    shutil.rmtree(job.parts)
    summary.seconds = time.perf_counter() - started
    return summary


def _score_all(
    job: Job,
    progress: TextIO | None,
    identity: ModelIdentity,
    columns: list[tuple[str, str]],
    worker: Scorer | WorkerPool,
) -> tuple[Summary, ModelIdentity, list[tuple[str, str]]]:
    """Every chunk not done yet, scored here (``worker`` a :class:`Scorer`) or in the pool."""
    done = _prepare_parts(job, _fingerprint(job, identity))
    summary = Summary(identity=asdict(identity))
    meter = _Progress(progress, job.corpus.rows)
    in_flight: deque[tuple[Chunk, Future[dict[str, Any]]]] = deque()
    finished = 0

    def settle(limit: int) -> None:
        nonlocal finished
        while len(in_flight) > limit:
            chunk, future = in_flight.popleft()
            # a worker's failure stops the run here; finished parts stay for a re-run
            write_chunk(job.parts, chunk, future.result(), columns)
            finished += len(chunk.texts)
            meter.show(finished + summary.resumed, summary.resumed)

    for chunk in job.corpus.chunks(job.chunk_rows):
        summary.read += len(chunk.texts)
        if chunk.index in done:
            summary.resumed += len(chunk.texts)
        elif not isinstance(worker, WorkerPool):
            score_chunk(worker, job.parts, chunk)
            finished += len(chunk.texts)
            meter.show(finished + summary.resumed, summary.resumed)
        else:
            in_flight.append((chunk, worker.submit("score_texts", chunk.texts)))
            settle(2 * job.processes)  # bounded memory: a few chunks per worker in flight
    settle(0)
    meter.end(summary.read)
    return summary, identity, columns


def _part_files(job: Job, rejects: bool) -> list[Path]:
    pattern = "[0-9]*.rejects.parquet" if rejects else "[0-9]*[0-9].parquet"
    return sorted(job.parts.glob(pattern))


def _commit(job: Job, identity: ModelIdentity, columns: list[tuple[str, str]]) -> None:
    for rejects, path in ((True, job.rejects), (False, job.output)):  # the output last: it says "finished"
        files = _part_files(job, rejects)
        schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
        schema = schema.remove_metadata()
        writer = OutputWriter(path, schema, {} if rejects else identity.metadata())
        try:
            for part in files:
                writer.write(pq.read_table(part))
            writer.commit()
        except BaseException:
            writer.abandon()
            raise


def _counted(job: Job) -> tuple[int, int]:
    scored = sum(pq.read_metadata(f).num_rows for f in _part_files(job, False))
    rejected = sum(pq.read_metadata(f).num_rows for f in _part_files(job, True))
    return scored, rejected


class _Progress:
    """Texts done, texts per second and the time left, on one rewritten line of a terminal."""

    def __init__(self, stream: TextIO | None, total: int | None) -> None:
        self.stream = stream
        self.total = total
        self.started = time.perf_counter()
        self.shown = 0.0

    def show(self, done: int, resumed: int) -> None:
        now = time.perf_counter()
        if self.stream is None or now - self.shown < 0.5:
            return
        self.shown = now
        rate = (done - resumed) / max(now - self.started, 1e-9)
        line = f"{done:,} texts"
        if self.total:
            left = (self.total - done) / rate if rate > 0 else float("inf")
            line += f" of {self.total:,} ({done / self.total:.0%}), ETA {_duration(left)}"
        line += f", {rate:,.0f} texts/s"
        self.stream.write("\r" + line.ljust(70))
        self.stream.flush()

    def end(self, done: int) -> None:
        if self.stream is not None:
            self.stream.write("\r" + f"{done:,} texts read".ljust(70) + "\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def progress_stream(quiet: bool) -> TextIO | None:
    """stderr when it is a terminal and not ``--quiet``; nothing in a pipe."""
    return None if quiet or not sys.stderr.isatty() else sys.stderr
