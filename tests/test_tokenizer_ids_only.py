"""The ids-only tokenizer path (/classify) gives exactly the ids, truncation and counts of the full one."""

from __future__ import annotations

import importlib.util

from hypothesis import given, settings
from hypothesis import strategies as st

from service.tokenizer import MODES, Tokenizer, build_vocabulary

SAMPLE = "Apple's iPhone 好的 质量很好，物流也快 x\u00a0y\u2028z İstanbul don't 😀 \u0301a \x00 שלום"
# Vocabularies that know some of the sample's tokens, so ids other than <unk> are compared too.
# A word vocabulary learnt from the sample holds Chinese words, which only jieba (the zh-words extra) splits:
# without it (a serving-only install) the word mode is left out here; tests/service/test_jieba_optional.py
# covers word models without jieba.
HAS_JIEBA = importlib.util.find_spec("jieba") is not None
TOKENIZERS = [
    Tokenizer(mode, build_vocabulary([Tokenizer(mode, ["<pad>", "<unk>"]).keys(SAMPLE)]), lowercase, 7)
    for mode in MODES
    if mode != "word" or HAS_JIEBA
    for lowercase in (True, False)
]


def _same(tokenizer: Tokenizer, text: str) -> None:
    full, fast = tokenizer.encode(text), tokenizer.encode_ids(text)
    assert fast.ids == full.ids
    assert (fast.truncated, fast.num_tokens_before_truncation) == (
        full.truncated,
        full.num_tokens_before_truncation,
    )


def test_the_sample_gives_the_same_ids_in_every_mode() -> None:
    for tokenizer in TOKENIZERS:
        _same(tokenizer, SAMPLE)
        _same(tokenizer, SAMPLE * 3)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=60))
def test_any_text_gives_the_same_ids(text: str) -> None:
    for tokenizer in TOKENIZERS:
        _same(tokenizer, text)
