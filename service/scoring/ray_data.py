"""The scorer inside Ray Data (the ``ray`` extra): a callable class for ``Dataset.map_batches``.

Each actor opens the bundle once, from the model store's path: the store must be on storage every node
reads (a shared volume, the same image), which is how bundles reach the workers; nothing is shipped
through the object store. Batches come in as pandas DataFrames, numpy dicts or Arrow tables and go out
with the input's columns and the answer columns of :func:`service.scoring.scorer.output_columns`::

    import ray
    from service.scoring.ray_data import RayScorer

    scored = ray.data.read_parquet("corpus.parquet").map_batches(
        RayScorer,
        fn_constructor_kwargs={"model_store": "/models", "model": "news-topic"},
        concurrency=2, num_cpus=1, batch_size=4096,
    )

:func:`run_on_ray` is ``lstm-service score --engine ray``: the same, read and written by the command.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from service.scoring.columns import ERROR, ScoreOptions
from service.scoring.scorer import Scorer
from service.scoring.tables import ROW, OutputWriter, answers_table


class RayScorer:
    """``map_batches`` callable: ``text_column`` scored with one model of ``model_store`` per actor."""

    def __init__(
        self,
        model_store: str | Path,
        model: str | None = None,
        version: int | None = None,
        text_column: str = "text",
        **options: Any,
    ) -> None:
        self.scorer = Scorer(model_store, ScoreOptions(model=model, version=version, **options))
        self.text_column = text_column

    def __call__(self, batch: Any) -> Any:
        if isinstance(batch, pa.Table):
            return self._answered(batch)
        if isinstance(batch, dict):
            return self._answered(pa.table({name: pa.array(list(values)) for name, values in batch.items()}))
        # a pandas DataFrame, answered as one (not through ``self(...)``: Ray Data runs the calls of an actor
        # on one thread, and a call made from inside another would wait for it for ever)
        return self._answered(pa.Table.from_pandas(batch, preserve_index=False)).to_pandas()

    def _answered(self, table: pa.Table) -> pa.Table:
        answers = self.scorer.score(table.column(self.text_column).to_pylist())
        return answers_table(table, answers, self.scorer.columns)


def run_on_ray(job: Any, address: str | None) -> Any:
    """``lstm-service score --engine ray``: read with Ray Data, score in ``job.processes`` actors, write the
    output here, in the input's order. A run that stops starts over (Ray retries failed tasks itself)."""
    import ray

    from service.scoring.local import Summary

    started = time.perf_counter()
    if not ray.is_initialized():
        # A local cluster gets one CPU beyond the actors' for Ray Data's own tasks (listing and reading
        # the files): with every CPU held by an actor they would never be scheduled.
        cpus = None if address else job.processes + 1
        ray.init(address=address, num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    corpus = job.corpus
    read = {"parquet": ray.data.read_parquet, "csv": ray.data.read_csv, "jsonl": ray.data.read_json}
    if corpus.format not in read:
        from service.scoring.tables import InputError

        raise InputError(
            f"--engine ray reads .parquet, .csv and .jsonl; convert {corpus.path} or use --engine local"
        )
    dataset = read[corpus.format](str(corpus.path.resolve()), override_num_blocks=2 * job.processes)
    options = {k: v for k, v in asdict(job.options).items() if k not in ("model", "version")}
    scored = dataset.map_batches(
        RayScorer,
        fn_constructor_kwargs={
            "model_store": str(Path(job.store).resolve()) if job.store else None,
            "model": job.options.model,
            "version": job.options.version,
            "text_column": corpus.text_column,
            **options,
        },
        concurrency=job.processes,
        num_cpus=1,
        batch_size=job.chunk_rows,
        batch_format="pyarrow",
    )
    with Scorer(job.store, job.options) as scorer:
        identity = scorer.identity
    summary = Summary(identity=asdict(identity))
    id_name = corpus.id_column or ROW
    answers = [name for name, _ in scorer.columns]
    writers: dict[bool, OutputWriter] = {}
    try:
        for batch in scored.iter_batches(batch_size=None, batch_format="pyarrow"):
            table: Any = batch
            if corpus.id_column is None:
                numbers = pa.array(range(summary.read, summary.read + table.num_rows), pa.int64())
                table = table.append_column(ROW, numbers)
            table = table.select([id_name, *corpus.keep, *answers])
            summary.read += table.num_rows
            failed = pc.is_valid(table.column(ERROR))
            rejects = table.filter(failed).select([id_name, ERROR]).rename_columns([id_name, "reason"])
            for is_reject, part in (
                (True, rejects),
                (False, table.filter(pc.invert(failed)).drop_columns([ERROR])),
            ):
                if is_reject not in writers:
                    path = job.rejects if is_reject else job.output
                    metadata = {} if is_reject else identity.metadata()
                    writers[is_reject] = OutputWriter(path, part.schema, metadata)
                writers[is_reject].write(part)
                if is_reject:
                    summary.rejected += part.num_rows
                else:
                    summary.scored += part.num_rows
    except BaseException:
        for writer in writers.values():
            writer.abandon()
        raise
    for is_reject in (True, False):  # the output last
        if is_reject in writers:
            writers[is_reject].commit()
    summary.seconds = time.perf_counter() - started
    return summary
