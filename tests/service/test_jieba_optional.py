"""jieba is an optional extra: only a word tokenizer with Chinese words in its vocabulary needs it.

Without jieba (``sys.modules["jieba"] = None`` makes every import of it fail, as if not installed), a
character model and an English word model load and tokenize Chinese text; a Chinese word model is refused
at load with a message that names the extra to install.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from service.tokenizer import JIEBA_EXTRA, PAD, UNK, Tokenizer

ENGLISH_WORDS = [PAD, UNK, "the", "cup", "final"]
CHINESE_WORDS = [PAD, UNK, "质量", "很", "好"]


def _definition(mode: str, vocabulary: list[str]) -> dict[str, object]:
    return {"mode": mode, "vocabulary": vocabulary, "lowercase": True, "max_length": 64}


@pytest.fixture
def without_jieba(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jieba", None)


@pytest.mark.usefixtures("without_jieba")
def test_an_english_word_model_splits_chinese_per_character_without_jieba() -> None:
    tokenizer = Tokenizer.from_dict(_definition("word", ENGLISH_WORDS))
    text = "The cup 质量好 final"

    encoding = tokenizer.encode(text)

    assert not tokenizer.segments_chinese
    pieces = [text[span.start : span.stop] for span in encoding.spans]
    assert pieces == ["The", "cup", "质", "量", "好", "final"]
    assert encoding.ids == [2, 3, 1, 1, 1, 4]
    assert tokenizer.encode_ids(text).ids == encoding.ids


@pytest.mark.usefixtures("without_jieba")
def test_a_chinese_word_model_is_refused_with_the_extra_to_install() -> None:
    with pytest.raises(ValueError, match=rf"jieba, which is not installed.*lstm-service\[{JIEBA_EXTRA}\]"):
        Tokenizer.from_dict(_definition("word", CHINESE_WORDS))


@pytest.mark.usefixtures("without_jieba")
def test_a_character_model_never_needs_jieba() -> None:
    tokenizer = Tokenizer.from_dict(_definition("char", [PAD, UNK, "质", "好"]))

    assert tokenizer.encode("质量好").ids == [2, 1, 3]


def test_a_chinese_word_model_segments_with_jieba_when_installed() -> None:
    pytest.importorskip("jieba")
    tokenizer = Tokenizer.from_dict(_definition("word", CHINESE_WORDS))

    texts = [span.text for span in tokenizer.split("质量很好")]

    assert tokenizer.segments_chinese and "质量" in texts and "".join(texts) == "质量很好"


def test_a_vocabulary_being_built_segments_with_jieba() -> None:
    """Training builds the vocabulary with an empty tokenizer: its Chinese words must be jieba's."""
    assert Tokenizer("word", [PAD, UNK]).segments_chinese
    assert not Tokenizer("char", [PAD, UNK]).segments_chinese


def test_importing_the_service_tokenizer_on_english_text_does_not_import_jieba() -> None:
    code = (
        "import sys\n"
        "from service.tokenizer import Tokenizer\n"
        f"t = Tokenizer.from_dict({_definition('word', ENGLISH_WORDS)!r})\n"
        "t.encode('the cup 好 final'); t.encode_ids('质量 final')\n"
        "assert 'jieba' not in sys.modules, 'jieba was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
