"""The shared tokenizer as training uses it: modes, offsets into the original text, vocabulary."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.tokenizer import MODES, PAD, PAD_ID, UNK, UNK_ID, Tokenizer, build_vocabulary
from training.cli.pipeline import build_tokenizer
from training.loop.config import TokenizerSettings


def _tokenizer(mode: str, lowercase: bool = True, max_length: int = 256) -> Tokenizer:
    return Tokenizer(mode, [PAD, UNK, "hello", "world", "好", "好评", "质量"], lowercase, max_length)


def test_word_mode_splits_words_and_punctuation():
    spans = _tokenizer("word").split("Hello, world! don't")
    assert [span.text for span in spans] == ["Hello", ",", "world", "!", "don't"]


def test_word_mode_segments_chinese_with_jieba():
    texts = [span.text for span in _tokenizer("word").split("质量很好，物流快")]
    assert "".join(texts) == "质量很好，物流快" and "质量" in texts


def test_char_and_bigram_modes():
    assert [s.text for s in _tokenizer("char").split("好 评!")] == ["好", "评", "!"]
    assert [s.text for s in _tokenizer("char-bigram").split("好评啊 x")] == ["好评", "评啊", "x"]


def test_lowercase_applies_to_lookup_only():
    text = "HELLO World"
    encoding = _tokenizer("word").encode(text)
    assert encoding.ids == [2, 3]
    assert [text[s.start : s.stop] for s in encoding.spans] == ["HELLO", "World"]
    assert _tokenizer("word", lowercase=False).encode(text).ids == [UNK_ID, UNK_ID]


def test_truncation_is_reported():
    encoding = _tokenizer("char", max_length=3).encode("abcdef")
    assert len(encoding.ids) == 3 and encoding.truncated and encoding.num_tokens_before_truncation == 6


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=60), mode=st.sampled_from(MODES), lowercase=st.booleans())
def test_any_unicode_string_tokenizes_and_every_span_slices_back(text, mode, lowercase):
    encoding = _tokenizer(mode, lowercase).encode(text)
    assert len(encoding.ids) == len(encoding.spans)
    for span in encoding.spans:
        assert text[span.start : span.stop] == span.text
    assert all(token_id != PAD_ID for token_id in encoding.ids)


def test_vocabulary_by_frequency_min_freq_and_max_size():
    lists = [["b", "a", "a"], ["c", "a", "b"], ["d"]]
    assert build_vocabulary(lists) == [PAD, UNK, "a", "b", "c", "d"]  # ties alphabetical
    assert build_vocabulary(lists, min_freq=2) == [PAD, UNK, "a", "b"]
    assert build_vocabulary(lists, max_size=3) == [PAD, UNK, "a"]
    with pytest.raises(ValueError):
        build_vocabulary(lists, min_freq=0)


def test_training_vocabulary_comes_from_the_training_texts_only():
    tokenizer = build_tokenizer(
        TokenizerSettings(mode="word", max_length=16, max_vocab=None), ["The cat", "the dog"]
    )
    assert tokenizer.vocabulary[:3] == [PAD, UNK, "the"]
    assert tokenizer.encode("the bird").ids == [2, UNK_ID]
    assert Tokenizer.from_dict(tokenizer.to_dict()) == tokenizer
