"""The training split's input distribution, kept in the manifest (``drift``) to compare served inputs with.

A fixed-vocabulary model fails silently when its inputs drift away from its training data: more words it
never saw (each read as ``<unk>``) or texts of another length. Training measures both on the training split
with the bundle's own tokenizer; the service exposes the same two figures per served text as histograms
(``lstm_service_unknown_token_ratio``, ``lstm_service_tokens_per_text``) next to these quantiles.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from service.bundle.manifest import Distribution, InputDrift
from service.tokenizer import Tokenizer


def quantile(ordered: Sequence[float], share: float) -> float:
    """The ``share`` quantile of sorted values, interpolated linearly between the two nearest ranks."""
    if not ordered:
        raise ValueError("no values")
    position = share * (len(ordered) - 1)
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def distribution(values: Iterable[float]) -> Distribution:
    ordered = sorted(values)
    return Distribution(
        p10=quantile(ordered, 0.1),
        p50=quantile(ordered, 0.5),
        p90=quantile(ordered, 0.9),
        p99=quantile(ordered, 0.99),
        mean=sum(ordered) / len(ordered),
        max=ordered[-1],
    )


def measure_inputs(tokenizer: Tokenizer, texts: Sequence[str], split: str = "train") -> InputDrift:
    """Unknown-token ratio (of the tokens the model reads) and tokens before truncation, per text."""
    ratios, lengths = [], []
    for text in texts:
        encoding = tokenizer.encode_ids(text)
        if encoding.ids:
            ratios.append(encoding.unknown_share)
        lengths.append(float(encoding.num_tokens_before_truncation))
    if not ratios:
        raise ValueError(f"the {split} split has no text with a token")
    return InputDrift(
        split=split,
        texts=len(texts),
        unknown_token_ratio=distribution(ratios),
        tokens_per_text=distribution(lengths),
    )
