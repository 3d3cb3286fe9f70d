"""``python -m bench.labelling_queue``: does the labelling queue pick labels worth more than random ones?

On the built-in zh reviews (the project's split, seed 13): a small char model is trained on a seeded 20 % of
the training split; the rest of the training split is the pool of unlabelled texts. The base model scores the
pool, and the service's own queue ordering (:func:`service.predictions.sql.rank`, least margin, duplicates
folded) picks the first N; a seeded random draw picks N too. Each pick joins the 20 % and a model is
trained from scratch the same way; its test accuracy is compared with the base model's. N = 100, 200, 300,
for each seed; the table shows the means over the seeds. Needs the train extra (torch).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import statistics
import time

import numpy as np

from service.predictions.sql import rank
from training.cli.pipeline import fit
from training.data.builtin import load_builtin
from training.data.reading import Example
from training.data.splits import Splits, make_splits
from training.loop.batches import encode_texts
from training.loop.config import PretrainedSettings, TokenizerSettings, TrainSettings
from training.loop.trainer import predict_logits
from training.model.classifier import ModelConfig

SIZES = (100, 200, 300)


def _train_and_score(
    train: list[Example], splits: Splits, seed: int, args: argparse.Namespace
) -> tuple[float, object]:
    """Test accuracy of models trained on ``train``, averaged over ``--repeats`` training seeds (one
    training run's own noise, from its initialisation and batch order, is larger than what a few hundred
    labels change); and the first of those models."""
    data = Splits(train, splits.dev, splits.test, splits.labels, {}, splits.task)
    truth = np.asarray([splits.labels.index(e.label) for e in splits.test])
    accuracies, first = [], None
    for repeat in range(args.repeats):
        result = fit(
            data,
            tokenizer=TokenizerSettings(mode="char", max_length=args.max_length, max_vocab=None),
            model=ModelConfig(embedding_dim=args.dim, hidden_dim=args.dim),
            training=TrainSettings(
                epochs=args.epochs, batch_size=64, patience=args.patience, seed=seed * 1000 + repeat
            ),
            pretrained=PretrainedSettings(source=None),
        )
        texts = encode_texts(result.tokenizer, [e.text for e in splits.test])
        accuracies.append(float((predict_logits(result.model, texts).argmax(1) == truth).mean()))
        first = first or result
    return statistics.mean(accuracies), first


def _queue_order(result: object, pool: list[Example], labels: list[str]) -> list[Example]:
    logits = predict_logits(result.model, encode_texts(result.tokenizer, [e.text for e in pool]))  # type: ignore[attr-defined]
    scores = np.exp(logits - logits.max(1, keepdims=True))
    scores /= scores.sum(1, keepdims=True)
    top2 = -np.sort(-scores, axis=1)[:, :2]
    candidates = [
        {
            "request_id": str(index), "item": 0, "text_sha256": hashlib.sha256(e.text.encode()).hexdigest(),
            "top_label": labels[int(row.argmax())], "version": 1, "margin": float(m[0] - m[1]),
            "entropy": float(-(row * np.log(np.clip(row, 1e-12, None))).sum()), "scores": {}, "labels": [],
        }
        for index, (e, row, m) in enumerate(zip(pool, scores, top2, strict=True))
    ]  # fmt: skip
    return [pool[int(group["request_id"])] for group in rank(candidates, "margin")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.labelling_queue", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--share", type=float, default=0.2, help="of the training split labelled at first")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--dim", type=int, default=64, help="embedding and hidden size")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--patience", type=int, default=3, help="epochs without a better dev score")
    parser.add_argument("--repeats", type=int, default=3, help="training seeds averaged per data set")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    splits = make_splits(load_builtin("zh-sentiment"), (0.8, 0.1, 0.1), 13)
    gains: dict[str, dict[int, list[float]]] = {arm: {n: [] for n in SIZES} for arm in ("queue", "random")}
    for seed in map(int, args.seeds.split(",")):
        started = time.perf_counter()
        shuffled = list(splits.train)
        random.Random(seed).shuffle(shuffled)
        cut = int(len(shuffled) * args.share)
        labelled, pool = shuffled[:cut], shuffled[cut:]
        base, model = _train_and_score(labelled, splits, seed, args)
        picks = {
            "queue": _queue_order(model, pool, splits.labels),
            "random": random.Random(seed + 100).sample(pool, max(SIZES)),
        }
        for arm, ordered in picks.items():
            for n in SIZES:
                accuracy, _ = _train_and_score(labelled + ordered[:n], splits, seed, args)
                gains[arm][n].append(accuracy - base)
                line = {"seed": seed, "arm": arm, "labels": n, "base": base, "accuracy": accuracy}
                print(json.dumps(line), flush=True)
        seconds = round(time.perf_counter() - started)
        print(json.dumps({"seed": seed, "seconds": seconds}), flush=True)
    print(
        f"\nzh reviews, {args.share:.0%} of train ({cut} texts) labelled, pool {len(pool)}; "
        f"test {len(splits.test)}"
    )
    print("| labels added | queue: test accuracy gain | random: gain |\n|---:|---:|---:|")
    for n in SIZES:
        queue, rand = statistics.mean(gains["queue"][n]), statistics.mean(gains["random"][n])
        print(f"| {n} | {queue * 100:+.2f} points | {rand * 100:+.2f} points |")


if __name__ == "__main__":
    main()
