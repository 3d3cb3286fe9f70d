"""Request checks that depend on the settings or the model, and the texts turned into token ids.

Everything here raises :class:`service.errors.InvalidRequest` (422) with the location of the offending text
(``text`` or ``texts.3``), so a client can see which input to fix.
"""

from __future__ import annotations

from collections.abc import Sequence

from service.engine.runtime import ModelRuntime
from service.errors import InvalidRequest
from service.observability import metrics
from service.tokenizer import UNK_ID, Encoding


def check_texts(texts: Sequence[str], locations: Sequence[str], max_texts: int, max_chars: int) -> None:
    """Refuse more than ``max_texts`` texts or a text longer than ``max_chars`` characters."""
    if len(texts) > max_texts:
        raise InvalidRequest(f"too many texts: {len(texts)} (at most {max_texts} per request)")
    for location, text in zip(locations, texts, strict=True):
        if len(text) > max_chars:
            raise InvalidRequest(f"{location}: {len(text)} characters (at most {max_chars} per text)")


def encode_texts(
    runtime: ModelRuntime,
    texts: Sequence[str],
    locations: Sequence[str],
    truncate: bool,
    require_tokens: bool,
    spans: bool = True,
    observe: bool = True,
) -> list[Encoding]:
    """Tokenize every text for ``runtime``; refuse over-long texts unless ``truncate``.

    ``require_tokens``: the model itself will run, and it needs at least one token per text.
    ``spans=False``: ids only (no offsets), for /classify, where building a span per token cost more
    than the lookup. ``observe=False``: no tokens-per-text and unknown-share histograms (a process with
    no ``/metrics``, the corpus scorer: two observations per text were 3 % of its CPU).
    """
    tokenizer = runtime.tokenizer
    encode = tokenizer.encode if spans else tokenizer.encode_ids
    encodings = []
    for location, text in zip(locations, texts, strict=True):
        encoding = encode(text)
        if encoding.truncated and not truncate:
            raise InvalidRequest(
                f"{location}: {encoding.num_tokens_before_truncation} tokens, but model {runtime.name} reads "
                f'at most {tokenizer.max_length}; send "truncate": true to cut it'
            )
        if require_tokens and not encoding.ids:
            raise InvalidRequest(f"{location}: no tokens (the text is empty or only whitespace)")
        encodings.append(encoding)
    if observe:
        metrics.observe_encodings(runtime.name, runtime.version, encodings)
    return encodings


def lookup_tokens(runtime: ModelRuntime, tokens: Sequence[str]) -> list[int]:
    """Vocabulary ids of tokens sent as they are (the tokenizer's lower-casing applies); unknown → <unk>."""
    return [runtime.tokenizer.token_id(token) for token in tokens]


def is_unknown(token_id: int) -> bool:
    return token_id == UNK_ID
