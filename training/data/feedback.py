"""Corrections from the service's prediction log, merged into a training run (``lstm-train train
--feedback``).

The feedback comes from the log itself (a ``sqlite:///`` or ``postgresql://`` URL: its ``feedback``
table, the latest label per text) or from a file exported by ``GET /labelling/export`` (CSV or JSONL,
``text,label``). :func:`merge_feedback` keeps the base data's test split untouched (feedback on a test text
is left out, so the test score stays comparable with the version being replaced), holds out a seeded share
of the feedback to score separately, and puts the rest into the training split, where a corrected text
replaces the base example with the same text (feedback wins over a conflicting base label).
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

from training.data import multilabel
from training.data.reading import DataError, Example, read_file
from training.data.splits import Splits

logger = logging.getLogger(__name__)

HOLDOUT_SHARE = 0.2


def read_feedback(source: str, model: str, task: str) -> list[Example]:
    """The corrected examples of ``model`` in ``source`` (a log URL or an exported file), the latest per
    text, in the data's task (single- or multi-label)."""
    if source.startswith(("sqlite:///", "postgresql://", "postgresql+")):
        pairs = _from_log(source, model)
    else:
        path = Path(source)
        if not path.is_file():
            raise DataError(
                f"--feedback {source}: no such file; give a sqlite:/// or postgresql:// URL of the "
                "prediction log, or a file exported by GET /labelling/export"
            )
        examples = read_file(path, task=task, separator=multilabel.DEFAULT_SEPARATOR)
        pairs = [(e.text, list(e.labels) if task == "multi-label" else [e.label]) for e in examples]
    latest = dict(pairs)  # the latest label of each text
    if task == "multi-label":
        return [Example(text, labels=tuple(labels)) for text, labels in latest.items()]
    return [Example(text, label=labels[0]) for text, labels in latest.items() if len(labels) == 1]


def _from_log(url: str, model: str) -> list[tuple[str, list[str]]]:
    import sqlalchemy as sa  # the log extra; only for a log URL

    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    engine = sa.create_engine(url)
    query = sa.text(
        "SELECT text, labels FROM feedback WHERE model = :model AND text IS NOT NULL ORDER BY created, id"
    )
    try:
        with engine.connect() as connection:
            rows = connection.execute(query, {"model": model}).all()
    except sa.exc.DBAPIError as error:
        raise DataError(f"--feedback: cannot read the prediction log's feedback ({error.orig})") from error
    finally:
        engine.dispose()
    return [(text, json.loads(labels) if isinstance(labels, str) else list(labels)) for text, labels in rows]


def merge_feedback(
    splits: Splits, feedback: list[Example], seed: int, holdout_share: float = HOLDOUT_SHARE
) -> tuple[Splits, list[Example]]:
    """(the splits with feedback merged into train, the held-out feedback)."""
    known = set(splits.labels)
    unknown = sorted({label for e in feedback for label in (e.labels or (e.label,))} - known)
    if unknown:
        raise DataError(f"--feedback has labels the data does not: {unknown} (the data's: {splits.labels})")
    test_texts = {e.text for e in splits.test}
    usable = [e for e in feedback if e.text not in test_texts]
    shuffled = sorted(usable, key=lambda e: e.text)
    random.Random(seed).shuffle(shuffled)
    held = max(1, round(len(shuffled) * holdout_share)) if len(shuffled) >= 5 else 0
    held_out, learned = shuffled[:held], shuffled[held:]
    corrected = {e.text for e in learned} | {e.text for e in held_out}
    train = [e for e in splits.train if e.text not in corrected] + learned
    dev = [e for e in splits.dev if e.text not in corrected]
    report: dict[str, Any] = {
        "feedback": len(feedback),
        "on_test_texts_left_out": len(feedback) - len(usable),
        "merged_into_train": len(learned),
        "held_out": len(held_out),
        "replaced_base_examples": len(splits.train)
        + len(splits.dev)
        - (len(train) - len(learned))
        - len(dev),
    }
    logger.info("feedback: %s", report)
    merged = replace(splits, train=train, dev=dev, report={**splits.report, "feedback": report})
    merged.report["counts"] = merged.counts()
    return merged, held_out
