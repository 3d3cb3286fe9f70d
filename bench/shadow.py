"""``python -m bench.shadow``: the primary's latency at C=64 with a shadow version classifying 100 % of its
traffic, against the same server without one, interleaved over rounds so that the machine's load falls on
both alike. Both log every answer to SQLite; the shadow's answers are counted in the log after each run.

The candidate is a copy of the model's newest version published as the next version (the same graph: the
shadow does the primary's work again, the worst case for the primary's latency); the primary is pinned to
the original.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

from bench.prediction_log import _bodies, _drive
from bench.servers import ServerSpec, free_port, python_command, running
from service.bundle import list_versions, load_bundle, write_bundle
from service.rollout import changes

REPO = Path(__file__).resolve().parent.parent


def _store(source: Path, model: str, folder: Path) -> tuple[Path, int, int]:
    store = folder / "store"
    shutil.copytree(source / model, store / model)
    primary = list_versions(store, model)[-1]
    bundle = load_bundle(store / model / str(primary))
    write_bundle(
        store, model, bundle.model_path, bundle.tokenizer, bundle.labels, bundle.manifest, primary + 1
    )
    return store, primary, primary + 1


def _shadow_rows(log: Path) -> tuple[int, int]:
    with sqlite3.connect(log) as connection:
        rows = connection.execute(
            "SELECT COALESCE(alias, '') = 'shadow', COUNT(*) FROM predictions GROUP BY 1"
        ).fetchall()
    counts = dict(rows)
    return int(counts.get(0, 0)), int(counts.get(1, 0))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.shadow", description=__doc__.splitlines()[0])
    parser.add_argument("--model-store", type=Path, default=REPO / "model_store")
    parser.add_argument("--model", default="review-sentiment-zh")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--client-cpus", default=None, help="CPUs for the load generator (default: all)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="bench-shadow-"))
    store, primary, candidate = _store(args.model_store, args.model, folder)
    bodies = _bodies(store, args.model, 2000, folder)
    results: dict[str, list[dict]] = {"no shadow": [], "shadow 100 %": []}
    for round_number in range(args.rounds):
        for variant in results:
            rollout = store / args.model / "rollout.json"
            rollout.unlink(missing_ok=True)
            if variant != "no shadow":
                changes.set_shadow(store, args.model, candidate, 100.0, changes.Actor("bench.shadow"))
            log = folder / f"log-{round_number}-{len(results[variant])}-{variant[:2]}.db"
            port = free_port()
            command = python_command(
                "-m", "service", "serve", "--model-store", str(store), "--port", str(port),
                "--workers", str(args.workers), "--log-level", "warning", "--default-model", args.model,
            )  # fmt: skip
            env = {
                "LSTM_SERVICE_PINNED": f"{args.model}={primary}",
                "LSTM_SERVICE_PREDICTION_LOG": f"sqlite:///{log}",
            }
            with running(ServerSpec(variant, command, port, env), None, folder) as server:
                assert server
                result = _drive(port, bodies, args)
            primary_rows, shadow_rows = _shadow_rows(log)
            result = {**result, "logged_primary": primary_rows, "logged_shadow": shadow_rows}
            results[variant].append(result)
            line = {"round": round_number, "variant": variant, **result, "load": os.getloadavg()}
            print(json.dumps(line), flush=True)
    base = statistics.median(r["p99_ms"] for r in results["no shadow"])
    print(f"\n{args.model}, C={args.concurrency}, {args.rounds} interleaved rounds of {args.duration:g} s")
    print("| variant | p99 ms (median) | p50 ms | texts/s | shadow answers logged | p99 vs no shadow |")
    print("|---|---:|---:|---:|---:|---:|")
    for variant, runs in results.items():
        p99 = statistics.median(r["p99_ms"] for r in runs)
        p50 = statistics.median(r["p50_ms"] for r in runs)
        rate = statistics.median(r["texts_per_s"] for r in runs)
        shadow = sum(r["logged_shadow"] for r in runs)
        print(f"| {variant} | {p99:.1f} | {p50:.1f} | {rate:.0f} | {shadow} | {p99 / base:.2f}x |")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
