"""Generate a small multi-label text data set: ``python -m training.data.datasets.make_multilabel out.csv``.

Synthetic, seeded and reproducible: each text gets 0–3 topic labels and is written with 2–4 keywords of
each of its topics among neutral filler words; one text in ten also carries a stray keyword of a topic it
does not have, so the task is learnable but not trivially separable. One topic (``travel``) is rare, which
exercises the per-label threshold floor. About 15 % of texts have no label at all (all-negative).

Formats: ``.csv`` / ``.tsv`` (the label column joins labels with ``--separator``, default ``|``; an empty
cell means no label) or ``.jsonl`` (a list of labels per line).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path

TOPICS: dict[str, tuple[str, ...]] = {
    "sports": ("match", "goal", "team", "coach", "league", "score", "player", "season"),
    "politics": ("vote", "minister", "election", "party", "senate", "policy", "campaign", "law"),
    "tech": ("software", "chip", "robot", "server", "laptop", "code", "network", "startup"),
    "health": ("doctor", "vaccine", "hospital", "diet", "patient", "therapy", "clinic", "virus"),
    "music": ("guitar", "album", "concert", "band", "singer", "melody", "drummer", "lyrics"),
    "travel": ("flight", "hotel", "passport", "beach", "luggage", "airport", "tourist", "cruise"),
}
# chance that a text carries each topic (travel is rare on purpose)
TOPIC_RATES = {"sports": 0.35, "politics": 0.3, "tech": 0.3, "health": 0.25, "music": 0.2, "travel": 0.06}
FILLER = (
    "the a this that today people said new week report many some after before while around about "
    "again still also very more most year city local world news story time day night morning"
).split()


def generate(count: int = 600, seed: int = 7) -> list[tuple[str, tuple[str, ...]]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        labels = tuple(topic for topic in TOPICS if rng.random() < TOPIC_RATES[topic])[:3]
        words = [rng.choice(FILLER) for _ in range(rng.randint(4, 9))]
        for topic in labels:
            words += rng.sample(TOPICS[topic], rng.randint(2, 4))
        if rng.random() < 0.1:
            stray = rng.choice([topic for topic in TOPICS if topic not in labels])
            words.append(rng.choice(TOPICS[stray]))
        rng.shuffle(words)
        rows.append((" ".join(words), labels))
    return rows


def write(rows: Sequence[tuple[str, tuple[str, ...]]], path: Path, separator: str = "|") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as handle:
            for text, labels in rows:
                handle.write(json.dumps({"text": text, "labels": list(labels)}) + "\n")
        return path
    if suffix not in (".csv", ".tsv"):
        raise ValueError(f"write .csv, .tsv or .jsonl, not {path.name}")
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t" if suffix == ".tsv" else ",")
        writer.writerow(["text", "labels"])
        for text, labels in rows:
            writer.writerow([text, separator.join(labels)])
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="file to write (.csv, .tsv or .jsonl)")
    parser.add_argument("--count", type=int, default=600, help="texts (default: 600)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--separator", default="|", help="label separator in CSV/TSV (default: |)")
    args = parser.parse_args(argv)
    rows = generate(args.count, args.seed)
    write(rows, args.output, args.separator)
    empty = sum(1 for _, labels in rows if not labels)
    print(f"{args.output}: {len(rows)} texts, {empty} without a label")
    return 0


if __name__ == "__main__":
    sys.exit(main())
