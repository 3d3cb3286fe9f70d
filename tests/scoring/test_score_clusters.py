"""The same scorer inside a real local Ray cluster (``map_batches``, 2 actors) and Spark ``local[2]``
(``mapInPandas``): the answers equal the command's, row for row. Slow to start: ``make test-cluster``."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.corpora import make_texts, write_parquet

from service.cli import main

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]
REPO = Path(__file__).resolve().parents[2]
ROWS = 3_000
ANSWERS = ["label", "score", "score_food", "score_sport", "score_tech", "truncated", "error"]


@pytest.fixture(scope="module")
def corpus(
    tmp_path_factory: pytest.TempPathFactory, tiny_store: Path
) -> tuple[Path, list[dict[str, object]]]:
    """A Parquet corpus with a few bad rows, and what the command answers for it, by row."""
    folder = tmp_path_factory.mktemp("corpus")
    texts: list[object] = list(make_texts(ROWS, seed=11))
    texts[10], texts[2_000] = None, "  "
    source = write_parquet(folder / "in.parquet", texts, row=list(range(ROWS)))
    status = main(["score", str(source), "-o", str(folder / "out.parquet"), "--model-store", str(tiny_store),
                   "--model", "tiny-en", "--processes", "1", "--id-column", "row", "--quiet"])  # fmt: skip
    assert status == 1
    answers = {
        row["row"]: {**row, "error": None} for row in pq.read_table(folder / "out.parquet").to_pylist()
    }
    for row in pq.read_table(folder / "out.rejects.parquet").to_pylist():
        answers[row["row"]] = {"row": row["row"], "error": row["reason"]}
    return source, [answers[i] for i in range(ROWS)]


def same_answers(got: list[dict[str, object]], expected: list[dict[str, object]]) -> None:
    assert [row["row"] for row in got] == list(range(ROWS))
    for mine, theirs in zip(got, expected, strict=True):
        for column in ANSWERS:
            value, wanted = mine.get(column), theirs.get(column)
            if isinstance(wanted, float):
                assert value == pytest.approx(wanted, abs=1e-6), (mine, theirs)
            elif wanted is None:
                assert value is None or value != value, (column, mine)  # None, or pandas' NaN for a float
            else:
                assert value == wanted, (column, mine, theirs)


@pytest.fixture
def worker_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Worker processes (Ray's, Spark's) import the project from the repository, as the tests do."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    yield


def test_ray_map_batches_with_two_actors_answers_as_the_command(
    corpus: tuple[Path, list[dict[str, object]]], tiny_store: Path, worker_path: None
) -> None:
    import ray

    from service.scoring.ray_data import RayScorer

    source, expected = corpus
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        # read first: with both CPUs held by the actors, Ray Data's read tasks would wait for ever
        dataset = ray.data.read_parquet(str(source), override_num_blocks=4).materialize()
        scored = dataset.map_batches(
            RayScorer,
            fn_constructor_kwargs={"model_store": str(tiny_store), "model": "tiny-en"},
            concurrency=2,
            num_cpus=1,
            batch_size=500,
            batch_format="pandas",
        )
        table = scored.to_arrow_refs()
        rows = pa.concat_tables(ray.get(table)).sort_by("row").to_pylist()
    finally:
        ray.shutdown()
    same_answers(rows, expected)


@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java 17 (openjdk-17-jre-headless)")
def test_spark_map_in_pandas_local_2_answers_as_the_command(
    corpus: tuple[Path, list[dict[str, object]]], tiny_store: Path, worker_path: None
) -> None:
    from pyspark.sql import SparkSession

    from service.scoring.spark import output_schema, score_partitions

    source, expected = corpus
    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("lstm-service-score-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    try:
        frame = spark.createDataFrame(pq.read_table(source).to_pandas()).repartition(2)
        options = {"model_store": str(tiny_store), "model": "tiny-en"}
        scored = frame.mapInPandas(score_partitions(**options), schema=output_schema(frame.schema, **options))
        rows = [row.asDict() for row in scored.orderBy("row").collect()]
    finally:
        spark.stop()
    same_answers(rows, expected)
