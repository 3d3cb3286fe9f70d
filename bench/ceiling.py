"""The ceiling: in-process onnxruntime on the benchmark's texts, no HTTP, the service's session settings.

Every measured call does what a server must do per text (tokenize to ids, pad, run, softmax); only HTTP,
JSON and scheduling are missing. The texts are taken the way the best possible batcher would see them
at concurrency 64: in windows of 64 (the texts in flight), each window sorted by length and cut into
batches of the size measured (1, 4, 16, 32, 64). The best of those sizes is the ceiling, an upper bound
for any server on the same CPU at that concurrency.

Run as ``python -m bench.ceiling --model-store S --model M --texts FILE``; prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from bench.texts import latest_bundle
from service.engine.runtime import create_session, pad_batch, softmax
from service.tokenizer import UNK_ID

_WINDOW = 64  # the concurrency the ceiling stands for: the texts a batcher can choose from


def _rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def _batches(texts: list[str], lengths: list[int], batch_size: int, window_size: int) -> list[list[str]]:
    if batch_size == 1:
        return [[text] for text in texts]
    batches = []
    for start in range(0, len(texts), window_size):
        window = sorted(range(start, min(start + window_size, len(texts))), key=lengths.__getitem__)
        batches += [
            [texts[index] for index in window[cut : cut + batch_size]]
            for cut in range(0, len(window), batch_size)
        ]
    return batches


def measure(
    session, tokenizer, texts: list[str], batch_size: int, duration: float, window: int = _WINDOW
) -> dict:
    lengths = [len(tokenizer.encode_ids(text).ids) for text in texts]
    batches = _batches(texts, lengths, batch_size, window)
    timings, done, index = [], 0, 0
    deadline = time.perf_counter() + duration
    cpu_started = time.process_time()
    while time.perf_counter() < deadline:
        batch = batches[index % len(batches)]
        index += 1
        started = time.perf_counter()
        ids, lengths_array = pad_batch([tokenizer.encode_ids(text).ids or [UNK_ID] for text in batch])
        (logits,) = session.run(["logits"], {"ids": ids, "lengths": lengths_array})
        softmax(logits).tolist()
        timings.append(time.perf_counter() - started)
        done += len(batch)
    cpu_seconds = time.process_time() - cpu_started
    timings.sort()
    return {
        "batch_size": batch_size,
        "texts_per_s": done / sum(timings),
        "texts_per_cpu_s": done / cpu_seconds if cpu_seconds > 0 else None,
        "call_p50_ms": timings[len(timings) // 2] * 1000,
        "calls": len(timings),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-store", type=Path, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--texts", type=Path, required=True, help="JSON list of texts")
    parser.add_argument("--batch-sizes", default="1,4,16,32,64")
    parser.add_argument("--duration", type=float, default=1.5, help="seconds per batch size")
    parser.add_argument("--intra-op-threads", type=int, default=1)
    parser.add_argument("--window", type=int, default=_WINDOW, help="texts sorted together (the concurrency)")
    args = parser.parse_args(argv)
    bundle = latest_bundle(args.model_store, args.model)
    session = create_session(str(bundle.model_path), args.intra_op_threads)
    texts = json.loads(args.texts.read_text(encoding="utf-8"))
    measure(session, bundle.tokenizer, texts, 8, 0.3)  # warm up allocations and the tokenizer
    rows = [
        measure(session, bundle.tokenizer, texts, int(size), args.duration, args.window)
        for size in args.batch_sizes.split(",")
    ]
    json.dump({"model": args.model, "window": args.window, "rss_mb": _rss_mb(), "rows": rows}, sys.stdout)


if __name__ == "__main__":
    main()
