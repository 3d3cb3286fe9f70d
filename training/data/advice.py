"""Warnings about the training texts that help before a run, not after: texts mostly longer than
``--max-length`` (the model reads only their start) and texts that look like HTML (the markup becomes
tokens). Both are measured on a seeded sample of the training split, so a large file costs no more.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable, Sequence

logger = logging.getLogger(__name__)

SAMPLE = 2000
HTML_SHARE = 0.2  # a larger share of texts with markup is warned about
_MARKUP = re.compile(
    r"</?(?:p|br|div|span|a|b|i|em|strong|html|body|head|table|tr|td|li|ul|ol|h[1-6]|img)\b[^>]*>"
    r"|&(?:amp|lt|gt|nbsp|quot|apos|#\d+);",
    re.IGNORECASE,
)


def _sample(texts: Sequence[str]) -> list[str]:
    if len(texts) <= SAMPLE:
        return list(texts)
    return [texts[index] for index in sorted(random.Random(13).sample(range(len(texts)), SAMPLE))]


def warn_about_texts(texts: Sequence[str], keys: Callable[[str], list[str]], max_length: int) -> list[str]:
    """The warnings for ``texts`` (also logged): ``keys`` splits a text into its tokens."""
    sample = _sample(texts)
    if not sample:
        return []
    warnings = []
    lengths = sorted(len(keys(text)) for text in sample)
    median = lengths[len(lengths) // 2]
    cut = sum(length > max_length for length in lengths) / len(lengths)
    if median > max_length:
        keeps_most = lengths[min(len(lengths) - 1, int(0.9 * len(lengths)))]
        warnings.append(
            f"most training texts are longer than --max-length {max_length}: the median is {median} tokens "
            f"and {cut:.0%} are cut to their first {max_length} (a sample of {len(sample)} texts); "
            f"--max-length {keeps_most} would keep 90% whole, at the cost of slower training"
        )
    markup = sum(bool(_MARKUP.search(text)) for text in sample) / len(sample)
    if markup > HTML_SHARE:
        warnings.append(
            f"{markup:.0%} of the training texts look like HTML (tags such as <p> or entities such as "
            "&amp;): the markup becomes tokens the model learns from; strip it from the data (the served "
            "texts must be stripped the same way)"
        )
    for warning in warnings:
        logger.warning("%s", warning)
    return warnings
