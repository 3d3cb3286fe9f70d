"""The scorer inside Spark (the ``spark`` extra): a function for ``DataFrame.mapInPandas``.

Each Python worker process opens the bundle once (kept for the worker's life; Spark reuses its Python
workers by default) from the model store's path, which every executor must read (a shared volume, the same
image). Rows come in as pandas DataFrames and go out with the input's columns and the answer columns of
:func:`service.scoring.scorer.output_columns`::

    from service.scoring.spark import output_schema, score_partitions

    options = {"model_store": "/models", "model": "news-topic"}
    scored = frame.mapInPandas(score_partitions(**options), schema=output_schema(frame.schema, **options))
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from service.scoring.scorer import ScoreOptions, Scorer
from service.scoring.tables import answers_table

# One scorer per Python worker process and model: what ``score_partitions`` opened before.
_scorers: dict[tuple[str, tuple[tuple[str, Any], ...]], Scorer] = {}


def _scorer(model_store: str | Path, options: dict[str, Any]) -> Scorer:
    key = (str(model_store), tuple(sorted(options.items())))
    if key not in _scorers:
        _scorers[key] = Scorer(model_store, ScoreOptions(**options))
    return _scorers[key]


def score_partitions(
    model_store: str | Path, text_column: str = "text", **options: Any
) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """The function for ``mapInPandas``: ``options`` are :class:`ScoreOptions`' (model, version, top_k...)."""

    def score(frames: Iterator[Any]) -> Iterator[Any]:
        scorer = _scorer(model_store, options)
        for frame in frames:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            answers = scorer.score(frame[text_column].tolist())
            yield answers_table(table, answers, scorer.columns).to_pandas()

    return score


def output_schema(
    input_schema: Any, model_store: str | Path, text_column: str = "text", **options: Any
) -> Any:
    """The input's schema with the answer columns added (the model's labels name some of them)."""
    from pyspark.sql import types

    kinds = {
        "str": types.StringType(),
        "float": types.DoubleType(),
        "bool": types.BooleanType(),
        "list[str]": types.ArrayType(types.StringType()),
        "list[float]": types.ArrayType(types.DoubleType()),
    }
    columns = _scorer(model_store, options).columns  # the driver opens the bundle once, for its labels
    fields = list(input_schema.fields) + [
        types.StructField(name, kinds[kind], True) for name, kind in columns
    ]
    return types.StructType(fields)
