"""word2vec on the training split plus the user's unlabelled text (``--pretrain-text FILE...``).

The files are streamed, one line a text, on every word2vec pass (the vocabulary scan and each epoch), so
their size is bounded by time, not memory. The tokenizer's rules stay in charge: every line is split into
the same keys the tokenizer makes (case folding, jieba or characters), and only keys of the vocabulary,
which comes from the training split alone, get vectors; the others are dropped before word2vec counts
them (``trim_rule``), so unlabelled text shapes the vectors of known tokens and adds no tokens.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from service.tokenizer import Tokenizer
from training.model.pretrained import _stable_hash

if TYPE_CHECKING:
    from gensim.models import KeyedVectors  # type: ignore[import-untyped]


class Corpus:
    """Restartable: each iteration yields the training split's token lists, then every non-empty line of
    every file as the tokenizer's keys. ``lines`` counts the unlabelled lines of the last full pass."""

    def __init__(self, tokenizer: Tokenizer, train_tokens: Sequence[Sequence[str]], files: Sequence[str]):
        missing = [name for name in files if not Path(name).is_file()]
        if missing:
            raise FileNotFoundError(f"--pretrain-text: no such file: {', '.join(missing)}")
        self.tokenizer = tokenizer
        self.train_tokens = train_tokens
        self.files = [Path(name) for name in files]
        self.lines = 0

    def __iter__(self) -> Iterator[list[str]]:
        yield from (list(tokens) for tokens in self.train_tokens)
        lines = 0
        for path in self.files:
            with path.open(encoding="utf-8", errors="replace") as stream:
                for line in stream:
                    keys = self.tokenizer.keys(line.strip())
                    if keys:
                        lines += 1
                        yield keys
        self.lines = lines


def train_vectors(corpus: Corpus, dim: int, seed: int, epochs: int = 10, window: int = 5) -> KeyedVectors:
    """Skip-gram word2vec on ``corpus``, one worker (seeded), vocabulary limited to the tokenizer's."""
    from gensim import utils  # type: ignore[import-untyped]
    from gensim.models import Word2Vec

    known = set(corpus.tokenizer.vocabulary)

    def keep_known(word: str, count: int, min_count: int) -> int:
        return utils.RULE_KEEP if word in known else utils.RULE_DISCARD

    model = Word2Vec(
        vector_size=dim, window=window, min_count=1, sg=1, workers=1, seed=seed, hashfxn=_stable_hash
    )
    model.build_vocab(corpus_iterable=corpus, trim_rule=keep_known)
    model.train(corpus_iterable=corpus, total_examples=model.corpus_count, epochs=epochs)
    return model.wv
