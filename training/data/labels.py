"""Label hygiene before training: labels that differ only by Unicode form or by case.

- Unicode normalisation (NFKC: full-width letters, ligatures, composed and decomposed accents): spellings
  that look the same are one label; each label is served in its NFKC form, and the change is said.
- Case: "Billing" and "billing" would silently train as two classes (six classes instead of five, test
  accuracy 0.41 in one report). By default such data is refused with the groups and their counts;
  ``--fold-label-case`` merges each group into its most frequent spelling, ``--keep-label-case`` keeps
  them apart. The choice is recorded in the data source (``extra.label_case``), so a later ``export`` or
  ``evaluate`` rebuilds the same labels.
"""

from __future__ import annotations

import logging
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from training.data.reading import DataError, Example

logger = logging.getLogger(__name__)

CASE_CHOICES = ("fold", "keep")


def _labels_of(example: Example) -> tuple[str, ...]:
    return example.labels if not example.label else (example.label,)


def _relabel(example: Example, mapping: dict[str, str]) -> Example:
    if example.label:
        return replace(example, label=mapping.get(example.label, example.label))
    renamed: list[str] = []
    for label in example.labels:
        target = mapping.get(label, label)
        if target not in renamed:
            renamed.append(target)
    return replace(example, labels=tuple(renamed))


def _shown(counts: Counter[str], spellings: Sequence[str]) -> str:
    return " / ".join(f"{spelling!r} ({counts[spelling]})" for spelling in spellings)


def tidy_labels(examples: list[Example], case: str | None = None, where: str = "the data") -> list[Example]:
    """``examples`` with NFKC labels and, per ``case``, case variants folded ("fold"), kept ("keep"), or
    refused (None, when there are any)."""
    counts: Counter[str] = Counter(label for example in examples for label in _labels_of(example))
    mapping = {label: unicodedata.normalize("NFKC", label) for label in counts}
    changed = {label: form for label, form in mapping.items() if label != form}
    if changed:
        shown = ", ".join(f"{label!r} → {form!r}" for label, form in list(changed.items())[:10])
        logger.warning(
            "%s: %d label(s) normalised to their Unicode NFKC form: %s", where, len(changed), shown
        )
    normal: Counter[str] = Counter()
    for label, count in counts.items():
        normal[mapping[label]] += count
    groups: dict[str, list[str]] = {}
    for label in sorted(normal, key=lambda label: (-normal[label], label)):
        groups.setdefault(label.casefold(), []).append(label)
    variants = [spellings for spellings in groups.values() if len(spellings) > 1]
    if variants and case is None:
        shown = "; ".join(_shown(normal, spellings) for spellings in variants[:10])
        raise DataError(
            f"{where}: labels that differ only by case would train as separate classes: {shown}. Pass "
            "--fold-label-case to merge each group into its most frequent spelling (the first above), or "
            "--keep-label-case to keep them apart"
        )
    if variants and case == "fold":
        for spellings in variants:
            for spelling in spellings[1:]:
                mapping.update({label: spellings[0] for label, form in mapping.items() if form == spelling})
        shown = "; ".join(f"{_shown(normal, spellings)} → {spellings[0]!r}" for spellings in variants[:10])
        logger.warning("%s: --fold-label-case merged labels that differ only by case: %s", where, shown)
    elif variants:
        logger.warning(
            "%s: --keep-label-case: %d group(s) of labels that differ only by case stay separate classes",
            where,
            len(variants),
        )
    if all(label == target for label, target in mapping.items()):
        return examples
    return [_relabel(example, mapping) for example in examples]
