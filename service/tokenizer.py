"""The one tokenizer shared by training and serving (stdlib only, jieba loaded lazily).

Training imports this module, so a text is split and looked up the same way on both sides.
Only a ``word`` tokenizer whose vocabulary holds Chinese words (or one still building its vocabulary)
segments Chinese with jieba, an optional dependency (the ``zh-words`` extra); any other tokenizer splits
runs of Chinese characters one character per token and never imports jieba.
Every token keeps ``start``/``stop`` character offsets into the *original* input:
``text[token.start:token.stop] == token.text`` always holds, whatever the mode or lower-casing
(lower-casing is applied to the lookup key only, because ``str.lower`` may change a string's length).
"""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
MODES = ("word", "char", "char-bigram")

# CJK ideographs (unified, extension A, compatibility): runs of these go to jieba in ``word`` mode.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A word is a run of letters/digits (apostrophes inside: "don't"); any other visible char is its own token.
_WORD_PATTERN = re.compile(rf"(?P<cjk>[{_CJK}]+)|(?P<word>[^\W_{_CJK}]+(?:['’][^\W_{_CJK}]+)*)|(?P<other>\S)")
_NON_SPACE_RUN = re.compile(r"\S+")
CJK_PATTERN = re.compile(f"[{_CJK}]")
JIEBA_EXTRA = "zh-words"


@dataclass(frozen=True, slots=True)
class Span:
    """One token: its text and where it stands in the input (``stop`` is exclusive)."""

    text: str
    start: int
    stop: int


@dataclass(frozen=True, slots=True)
class Encoding:
    """A text turned into vocabulary ids; ``spans[i]`` produced ``ids[i]``."""

    ids: list[int]
    spans: list[Span]
    truncated: bool
    num_tokens_before_truncation: int

    @property
    def unknown_share(self) -> float:
        """The share of this text's tokens that are ``<unk>`` (0 for no tokens): input drift."""
        return unknown_share(self.ids)


def unknown_share(ids: Sequence[int]) -> float:
    """The share of ``ids`` that are ``<unk>`` (0 for none)."""
    return ids.count(UNK_ID) / len(ids) if ids else 0.0


def jieba_missing_message(what: str) -> str | None:
    """Why ``what`` cannot work without jieba, or None if jieba is installed (found, not imported)."""
    if importlib.util.find_spec("jieba") is not None:
        return None
    return (
        f"{what} segments Chinese words with jieba, which is not installed; "
        f"install it with: pip install 'lstm-service[{JIEBA_EXTRA}]'"
    )


def _jieba_spans(run: str, offset: int) -> Iterator[Span]:
    try:
        import jieba  # lazy: ~1 s to load its dictionary, and only ``word`` mode on Chinese needs it
    except ImportError as error:
        raise ImportError(jieba_missing_message("this word tokenizer") or str(error)) from error

    for word, start, stop in jieba.tokenize(run):
        if not word.isspace():
            yield Span(word, offset + start, offset + stop)


def _char_spans(run: str, offset: int) -> Iterator[Span]:
    for index, char in enumerate(run):
        yield Span(char, offset + index, offset + index + 1)


def split_words(text: str, segment_chinese: bool = True) -> Iterator[Span]:
    """Regex words for Latin-like scripts; runs of CJK ideographs segmented by jieba, or one token per
    character if ``segment_chinese`` is False."""
    split_cjk = _jieba_spans if segment_chinese else _char_spans
    for match in _WORD_PATTERN.finditer(text):
        if match.lastgroup == "cjk":
            yield from split_cjk(match.group(), match.start())
        else:
            yield Span(match.group(), match.start(), match.end())


def _split_words_per_char(text: str) -> Iterator[Span]:
    return split_words(text, segment_chinese=False)


def split_chars(text: str) -> Iterator[Span]:
    """Every non-whitespace code point is a token."""
    for index, char in enumerate(text):
        if not char.isspace():
            yield Span(char, index, index + 1)


def split_char_bigrams(text: str) -> Iterator[Span]:
    """Overlapping pairs of adjacent characters in each whitespace-free run; a 1-char run stays as is."""
    for match in _NON_SPACE_RUN.finditer(text):
        run, offset = match.group(), match.start()
        if len(run) == 1:
            yield Span(run, offset, offset + 1)
            continue
        for index in range(len(run) - 1):
            yield Span(run[index : index + 2], offset + index, offset + index + 2)


_SPLITTERS = {"word": split_words, "char": split_chars, "char-bigram": split_char_bigrams}


def _char_texts(text: str) -> list[str]:
    return [char for char in text if not char.isspace()]


def _char_bigram_texts(text: str) -> list[str]:
    texts = []
    for run in text.split():
        texts.extend([run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)])
    return texts


# Token texts without offsets, for callers that need only ids (/classify): the same tokens as the
# splitters above (a test checks it), without building a Span per token (4x faster on Chinese chars).
def _word_texts(text: str) -> list[str]:
    return [span.text for span in split_words(text)]


# The tokens of ``_split_words_per_char`` in one regex pass: a CJK ideograph alone, a word, or any other
# visible char (a third of the cost of building the spans, on news paragraphs).
_WORD_PER_CHAR_PATTERN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+(?:['’][^\W_{_CJK}]+)*|\S")


def _word_texts_per_char(text: str) -> list[str]:
    return _WORD_PER_CHAR_PATTERN.findall(text)


_TEXT_SPLITTERS = {"word": _word_texts, "char": _char_texts, "char-bigram": _char_bigram_texts}
# A word tokenizer whose vocabulary has no Chinese word: every CJK token would be <unk> anyway.
_WORDS_PER_CHAR = (_split_words_per_char, _word_texts_per_char)


def build_vocabulary(
    token_lists: Iterable[Iterable[str]], min_freq: int = 1, max_size: int | None = None
) -> list[str]:
    """``[<pad>, <unk>, *tokens]`` by descending frequency (ties alphabetical: deterministic)."""
    if min_freq < 1:
        raise ValueError(f"min_freq must be >= 1, got {min_freq}")
    counts: Counter[str] = Counter()
    for tokens in token_lists:
        counts.update(tokens)
    ranked = sorted((item for item in counts.items() if item[1] >= min_freq), key=lambda kv: (-kv[1], kv[0]))
    if max_size is not None:
        ranked = ranked[: max(0, max_size - 2)]
    return [PAD, UNK, *(token for token, _ in ranked if token not in (PAD, UNK))]


@dataclass
class Tokenizer:
    """Splits text into spans and maps them to ids. ``max_length`` caps the tokens fed to the model."""

    mode: str
    vocabulary: list[str]
    lowercase: bool = True
    max_length: int = 256
    _index: dict[str, int] = field(init=False, repr=False, compare=False)
    _split: Any = field(init=False, repr=False, compare=False)
    _split_texts: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown tokenizer mode {self.mode!r}; expected one of {', '.join(MODES)}")
        if self.max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {self.max_length}")
        if self.vocabulary[:2] != [PAD, UNK]:
            raise ValueError(f"vocabulary must start with {PAD!r}, {UNK!r}")
        self._index = {token: index for index, token in enumerate(self.vocabulary)}
        if len(self._index) != len(self.vocabulary):
            raise ValueError("vocabulary has duplicate entries")
        self._split, self._split_texts = _SPLITTERS[self.mode], _TEXT_SPLITTERS[self.mode]
        if self.mode == "word" and not self.segments_chinese:
            self._split, self._split_texts = _WORDS_PER_CHAR

    @property
    def segments_chinese(self) -> bool:
        """Does this tokenizer need jieba? A ``word`` tokenizer with Chinese words in its vocabulary, or
        one still building it (only ``<pad>``, ``<unk>``: the words it finds must be jieba's)."""
        return self.mode == "word" and (
            len(self.vocabulary) == 2 or any(CJK_PATTERN.search(token) for token in self.vocabulary)
        )

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def split(self, text: str) -> list[Span]:
        """All spans of ``text``, before truncation."""
        return list(self._split(text))

    def key(self, token_text: str) -> str:
        """The vocabulary key of a token's text."""
        return token_text.lower() if self.lowercase else token_text

    def keys(self, text: str) -> list[str]:
        """Vocabulary keys of every token (for building a vocabulary; not truncated)."""
        return [self.key(span.text) for span in self.split(text)]

    def token_id(self, token_text: str) -> int:
        return self._index.get(self.key(token_text), UNK_ID)

    def encode(self, text: str, max_length: int | None = None) -> Encoding:
        limit = self.max_length if max_length is None else max_length
        spans = self.split(text)
        kept = spans[:limit]
        ids = [self._index.get(self.key(span.text), UNK_ID) for span in kept]
        return Encoding(ids, kept, len(spans) > limit, len(spans))

    def encode_ids(self, text: str, max_length: int | None = None) -> Encoding:
        """Like :meth:`encode` but without spans (``spans`` is empty): for callers that need only ids."""
        limit = self.max_length if max_length is None else max_length
        texts = self._split_texts(text)
        index, lowercase = self._index, self.lowercase
        ids = [index.get(token.lower() if lowercase else token, UNK_ID) for token in texts[:limit]]
        return Encoding(ids, [], len(texts) > limit, len(texts))

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "lowercase": self.lowercase,
            "max_length": self.max_length,
            "vocabulary": self.vocabulary,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tokenizer:
        try:
            tokenizer = cls(
                mode=data["mode"],
                vocabulary=list(data["vocabulary"]),
                lowercase=bool(data["lowercase"]),
                max_length=int(data["max_length"]),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"malformed tokenizer definition: {error}") from error
        missing = tokenizer.segments_chinese and jieba_missing_message("this model's word tokenizer")
        if missing:
            raise ValueError(missing)
        return tokenizer
