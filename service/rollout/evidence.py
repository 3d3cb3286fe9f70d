"""Two versions of a model compared on what the prediction log saw: how often they agree, how their labels
cross, their live accuracy on feedback, their latency; and the test a promotion must pass.

Texts are matched by their SHA-256 (the log keeps it whatever it keeps of the text), so a text answered by
the stable version and by a canary or a shadow counts once for each, and feedback given on either answer,
or on the text itself, judges both. When a version answered a text more than once, its latest answer
counts.

**The promotion test.** A candidate is refused when its live accuracy is significantly below the current
version's, one-sided at :data:`ALPHA`:

- on the texts both versions answered that have feedback (at least :data:`MIN_JUDGED`), McNemar's exact
  test: of the texts exactly one version got right, the current version got right more often than a fair
  coin would give;
- otherwise, when each version has at least :data:`MIN_JUDGED` judged answers of its own, a two-proportion
  z-test (pooled) on those;
- with less feedback than that, nothing refuses: the promotion goes ahead and says it had no evidence.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.predictions.quality import wilson

ALPHA = 0.05
MIN_JUDGED = 10


@dataclass(frozen=True)
class Answer:
    """One logged answer: which version gave it, for which text, the label(s), how long it took."""

    version: int
    text_sha256: str
    labels: tuple[str, ...]
    latency_ms: float


@dataclass(frozen=True)
class VersionFigures:
    version: int
    answers: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    judged: int  # texts with feedback this version answered
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.judged if self.judged else None

    def to_dict(self) -> dict[str, Any]:
        low, high = wilson(self.correct, self.judged)
        return {
            "version": self.version,
            "answers": self.answers,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p99_ms": self.latency_p99_ms,
            "judged": self.judged,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "accuracy_interval": [low, high] if self.judged else None,
        }


@dataclass(frozen=True)
class Comparison:
    model: str
    a: VersionFigures
    b: VersionFigures
    both: int  # distinct texts both versions answered
    agreed: int
    confusion: Mapping[str, Mapping[str, int]]  # a's label -> b's label -> texts
    paired_judged: int  # texts both answered that have feedback
    only_a_right: int
    only_b_right: int
    both_right: int
    window_hours: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.both if self.both else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "window_hours": self.window_hours,
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "texts_both_answered": self.both,
            "agreement": self.agreement,
            "confusion": {label: dict(row) for label, row in self.confusion.items()},
            "paired": {
                "judged": self.paired_judged,
                "only_a_right": self.only_a_right,
                "only_b_right": self.only_b_right,
                "both_right": self.both_right,
                "mcnemar_p_a_better": mcnemar_p(self.only_a_right, self.only_b_right),
                "mcnemar_p_b_better": mcnemar_p(self.only_b_right, self.only_a_right),
            },
        }


def _latest(answers: Iterable[Answer], version: int) -> dict[str, Answer]:
    """The version's latest answer per text (``answers`` come oldest first)."""
    return {answer.text_sha256: answer for answer in answers if answer.version == version}


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, math.ceil(q / 100 * len(ordered)) - 1)  # nearest rank
    return round(ordered[rank], 3)


def _figures(version: int, answers: Sequence[Answer], truths: Mapping[str, Sequence[str]]) -> VersionFigures:
    own = [answer for answer in answers if answer.version == version]
    latest = _latest(own, version)
    judged = [sha for sha in latest if sha in truths]
    correct = sum(1 for sha in judged if set(latest[sha].labels) == set(truths[sha]))
    latencies = [answer.latency_ms for answer in own]
    return VersionFigures(
        version, len(own), _percentile(latencies, 50), _percentile(latencies, 99), len(judged), correct
    )


def compare(
    model: str,
    a: int,
    b: int,
    answers: Sequence[Answer],
    truths: Mapping[str, Sequence[str]],
    window_hours: float | None = None,
) -> Comparison:
    """Versions ``a`` and ``b`` of ``model`` on the logged ``answers`` (oldest first) and the true labels
    of the texts that have feedback (``truths``: SHA-256 -> labels)."""
    latest_a, latest_b = _latest(answers, a), _latest(answers, b)
    shared = latest_a.keys() & latest_b.keys()
    confusion: dict[str, Counter[str]] = defaultdict(Counter)
    agreed = 0
    for sha in shared:
        left, right = latest_a[sha].labels, latest_b[sha].labels
        agreed += set(left) == set(right)
        confusion["|".join(left) or "-"]["|".join(right) or "-"] += 1
    paired = [sha for sha in shared if sha in truths]
    only_a = only_b = both_right = 0
    for sha in paired:
        right_a = set(latest_a[sha].labels) == set(truths[sha])
        right_b = set(latest_b[sha].labels) == set(truths[sha])
        only_a += right_a and not right_b
        only_b += right_b and not right_a
        both_right += right_a and right_b
    return Comparison(
        model,
        _figures(a, answers, truths),
        _figures(b, answers, truths),
        len(shared),
        agreed,
        {label: dict(sorted(row.items())) for label, row in sorted(confusion.items())},
        len(paired),
        only_a,
        only_b,
        both_right,
        window_hours,
    )


def mcnemar_p(wins: int, losses: int) -> float:
    """One-sided exact McNemar: the chance of ``wins`` or more of ``wins + losses`` discordant texts
    going one way if both versions were equally accurate (a fair coin per text)."""
    n = wins + losses
    if n == 0:
        return 1.0
    return min(1.0, sum(math.comb(n, k) for k in range(wins, n + 1)) / 2**n)


def two_proportion_p(correct_a: int, judged_a: int, correct_b: int, judged_b: int) -> float:
    """One-sided pooled z-test that A's accuracy is above B's."""
    pooled = (correct_a + correct_b) / (judged_a + judged_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / judged_a + 1 / judged_b))
    if spread == 0:
        return 1.0
    z = (correct_a / judged_a - correct_b / judged_b) / spread
    return 0.5 * math.erfc(z / math.sqrt(2))


@dataclass(frozen=True)
class Verdict:
    refused: bool
    statement: str  # the figures and the test, quoted to the operator and kept in the history


def _share(correct: int, judged: int) -> str:
    return f"{100 * correct / judged:.1f} % ({correct}/{judged})"


def promotion_verdict(comparison: Comparison) -> Verdict:
    """Whether candidate ``comparison.b`` may replace current ``comparison.a`` (see the module's test)."""
    current, candidate = comparison.a, comparison.b
    if comparison.paired_judged >= MIN_JUDGED:
        p = mcnemar_p(comparison.only_a_right, comparison.only_b_right)
        right_a = comparison.only_a_right + comparison.both_right
        right_b = comparison.only_b_right + comparison.both_right
        statement = (
            f"on the {comparison.paired_judged} texts with feedback that both answered, version "
            f"{candidate.version} was right on {_share(right_b, comparison.paired_judged)} and version "
            f"{current.version} on {_share(right_a, comparison.paired_judged)}; only {current.version} was "
            f"right on {comparison.only_a_right}, only {candidate.version} on {comparison.only_b_right} "
            f"(McNemar's exact test, one-sided p = {p:.3g})"
        )
        return Verdict(p < ALPHA, statement)
    if current.judged >= MIN_JUDGED and candidate.judged >= MIN_JUDGED:
        p = two_proportion_p(current.correct, current.judged, candidate.correct, candidate.judged)
        statement = (
            f"on feedback, version {candidate.version} was right on "
            f"{_share(candidate.correct, candidate.judged)} of its answers and version {current.version} on "
            f"{_share(current.correct, current.judged)} (two-proportion z-test, one-sided p = {p:.3g})"
        )
        return Verdict(p < ALPHA, statement)
    return Verdict(
        False,
        f"no evidence either way: {candidate.judged} judged answer(s) of version {candidate.version}, "
        f"{current.judged} of version {current.version}, {comparison.paired_judged} text(s) judged for both "
        f"(the test needs {MIN_JUDGED})",
    )
