"""``python -m bench.prediction_log``: the service's C=64 throughput with the prediction log off, on
SQLite and on PostgreSQL (100 % sampling), interleaved over rounds so that the machine's load falls on
every variant alike. Prints one JSON line per run and a table of the medians with the ratio to "off".

PostgreSQL: ``--postgres URL`` names a server where the script may create and drop a database of its own
(default: the project machines' ``postgresql://postgres@127.0.0.1:5432/test`` server).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from bench.servers import ServerSpec, free_port, pinned, python_command, running
from bench.texts import latest_bundle, sample_texts

REPO = Path(__file__).resolve().parent.parent


def _bodies(store: Path, model: str, count: int, folder: Path) -> Path:
    sample = sample_texts(latest_bundle(store, model), count)
    path = folder / "bodies.jsonl"
    path.write_text("".join(json.dumps({"text": t, "model": model}) + "\n" for t in sample.texts), "utf-8")
    return path


def _drive(port: int, bodies: Path, args: argparse.Namespace) -> dict:
    command = python_command(
        "-m", "bench.loadgen", "--port", str(port), "--requests", str(bodies), "--concurrency",
        str(args.concurrency), "--duration", str(args.duration), "--warmup", str(args.warmup),
    )  # fmt: skip
    cpus = {int(c) for c in args.client_cpus.split(",")} if args.client_cpus else None
    done = subprocess.run(
        command, capture_output=True, timeout=600, preexec_fn=pinned(cpus), check=True, cwd=REPO
    )
    return json.loads(done.stdout)


def _database(server: str, name: str, create: bool) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as connection:
        if create:
            connection.execute(f'CREATE DATABASE "{name}"')
        else:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.prediction_log", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model-store", type=Path, default=REPO / "model_store")
    parser.add_argument("--model", default="review-sentiment-zh")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--server-cpus", default=None, help="CPUs for the server, e.g. 0 (default: all)")
    parser.add_argument("--client-cpus", default=None, help="CPUs for the load generator (default: all)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="bench-prediction-log-"))
    bodies = _bodies(args.model_store, args.model, 2000, folder)
    database = f"bench_predlog_{uuid.uuid4().hex[:8]}"
    pg_base = args.postgres.rsplit("/", 1)[0]
    _database(args.postgres, database, create=True)
    results: dict[str, list[float]] = {"off": [], "sqlite": [], "postgresql": []}
    try:
        for round_number in range(args.rounds):
            for variant in results:
                env = {
                    "off": {},
                    "sqlite": {
                        "LSTM_SERVICE_PREDICTION_LOG": f"sqlite:///{folder / f'log-{round_number}.db'}"
                    },
                    "postgresql": {"LSTM_SERVICE_PREDICTION_LOG": f"{pg_base}/{database}"},
                }[variant]
                port = free_port()
                command = python_command(
                    "-m", "service", "serve", "--model-store", str(args.model_store), "--port", str(port),
                    "--workers", str(args.workers), "--log-level", "warning",
                )  # fmt: skip
                cpus = {int(c) for c in args.server_cpus.split(",")} if args.server_cpus else None
                with running(ServerSpec(variant, command, port, env), cpus, folder) as server:
                    assert server
                    result = _drive(port, bodies, args)
                results[variant].append(result["texts_per_s"])
                line = {"round": round_number, "variant": variant, **result, "load": os.getloadavg()}
                print(json.dumps(line), flush=True)
    finally:
        _database(args.postgres, database, create=False)
    off = statistics.median(results["off"])
    print(f"\n{args.model}, C={args.concurrency}, {args.rounds} interleaved rounds of {args.duration:g} s")
    print("| prediction log | texts/s (median) | runs | vs off |\n|---|---:|---|---:|")
    for variant, values in results.items():
        runs = ", ".join(f"{v:.0f}" for v in values)
        median = statistics.median(values)
        print(f"| {variant} | {median:.0f} | {runs} | {median / off:.2f}x |")


if __name__ == "__main__":
    sys.exit(main())
