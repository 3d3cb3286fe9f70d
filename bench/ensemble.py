"""``python -m bench.ensemble``: what an ensemble of K seeds in one graph costs per text, beside one model.

The cost of a text depends on the graph (its recurrent stacks and their sizes) and on the text's length,
not on how well the weights were trained; so both models here are trained briefly (one epoch on a few
hundred news articles, no baseline) with the default news model's architecture (word tokens up to 600,
embedding 100, a bidirectional LSTM of 128 units, mean pooling), once as one model and once with
``--ensemble K``. Both are then measured as :mod:`bench.ceiling` measures the ceiling (in process, one
onnxruntime thread, sorted windows of 64, the best batch size) on the same articles: texts per second and
per CPU-second. Needs the train extra (torch). Prints a Markdown table; ``--out`` also writes JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.ceiling import measure
from bench.texts import latest_bundle
from service.engine.runtime import create_session

ARCHITECTURE = [
    "--tokenizer", "word", "--max-length", "600", "--max-vocab", "14000", "--embedding-dim", "100",
    "--hidden-dim", "128", "--pooling", "mean",
]  # fmt: skip
BRIEF = ["--epochs", "1", "--no-baseline", "--allow-weak", "--threads", "1", "--no-progress", "--w2v", "none"]


def _train(data: Path, store: Path, name: str, extra: list[str]) -> None:
    command = [
        sys.executable, "-m", "training.cli", "train", "--data", str(data), "--name", name,
        "--store", str(store), "--run-dir", str(store.parent / "runs" / name), *ARCHITECTURE, *BRIEF, *extra,
    ]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def _measured(store: Path, name: str, texts: list[str], duration: float) -> dict:
    bundle = latest_bundle(store, name)
    session = create_session(str(bundle.model_path), 1)
    measure(session, bundle.tokenizer, texts, 8, 0.5)  # warm up allocations and the tokenizer
    rows = [measure(session, bundle.tokenizer, texts, size, duration) for size in (1, 16, 32, 64)]
    best = max(rows, key=lambda row: row["texts_per_s"])
    return {"model": name, "graph_mb": bundle.model_path.stat().st_size / 2**20, **best}


def run(members: int = 3, train_texts: int = 400, texts: int = 300, duration: float = 3.0) -> list[dict]:
    """One model and an ensemble of ``members``, trained briefly and measured on the same articles."""
    from training.data.builtin import load_builtin

    articles = load_builtin("bbc-news")
    random.Random(13).shuffle(articles)  # the file is grouped by label
    with tempfile.TemporaryDirectory(prefix="bench-ensemble-") as folder:
        data = Path(folder) / "news.csv"
        with data.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows([example.text, example.label] for example in articles[:train_texts])
        store = Path(folder) / "store"
        _train(data, store, "single", [])
        _train(data, store, "ensemble", ["--ensemble", str(members)])
        measured = [example.text for example in articles[-texts:]]
        results = [_measured(store, name, measured, duration) for name in ("single", "ensemble")]
    for row in results:
        row["members"] = members if row["model"] == "ensemble" else 1
        row["texts"] = texts
    return results


def table(results: list[dict]) -> str:
    single = results[0]
    lines = [
        f"{single['texts']} news articles, in process, one onnxruntime thread, the best batch size",
        "",
        "| model | graph (MB) | batch | texts/s | texts per CPU-second | CPU per text vs one model |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results:
        label = "one model" if row["members"] == 1 else f"ensemble of {row['members']}"
        ratio = single["texts_per_cpu_s"] / row["texts_per_cpu_s"]
        lines.append(
            f"| {label} | {row['graph_mb']:.1f} | {row['batch_size']} | {row['texts_per_s']:,.0f} | "
            f"{row['texts_per_cpu_s']:,.0f} | {ratio:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ensemble", description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--train-texts", type=int, default=400)
    parser.add_argument("--texts", type=int, default=300, help="articles measured")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per batch size")
    parser.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    results = run(args.members, args.train_texts, args.texts, args.duration)
    print("\n" + table(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
