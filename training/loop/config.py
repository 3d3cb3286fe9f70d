"""Every setting of a training run but the model's own (:class:`training.model.ModelConfig`), by step.

The settings are frozen and keyword-only: ``TrainSettings(epochs=3, seed=4)``, never positional, so a
new field can be added anywhere without shifting the others. Defaults are the CLI's defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

VECTOR_MODES = ("finetune", "frozen")


@dataclass(frozen=True, kw_only=True)
class TokenizerSettings:
    """How texts become tokens and which tokens get an id (the vocabulary comes from the training split)."""

    mode: str = "word"
    lowercase: bool = True
    max_length: int = 256  # tokens kept per text
    min_freq: int = 1
    max_vocab: int | None = 30000  # including <pad> and <unk>; None = every token seen min_freq times


@dataclass(frozen=True, kw_only=True)
class PretrainedSettings:
    """``source``: ``None`` (random init), ``"train"`` (word2vec on the training split) or a vectors file."""

    source: str | None = None
    mode: str = "finetune"
    binary: bool | None = None  # None: binary unless the file ends in .txt or .vec
    epochs: int = 10  # word2vec epochs for source="train"
    # unlabelled text files streamed into word2vec beside the training split (source="train" only)
    texts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in VECTOR_MODES:
            raise ValueError(f"pretrained mode must be one of {', '.join(VECTOR_MODES)}, got {self.mode!r}")
        if self.texts and self.source != "train":
            raise ValueError("--pretrain-text trains word2vec on that text: it needs --w2v train")


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """The training loop: Adam with gradient clipping, early stopping on dev accuracy."""

    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 2e-3
    clip: float = 5.0
    patience: int = 3
    seed: int = 13
    length_pool: int = 50  # batches per length-sorted pool; 1 = plain random batches (see batch_indices)
    lr_decay: float = 1.0  # learning rate x this after an epoch without dev gain (1 = constant)
    label_smoothing: float = 0.0  # share of each target spread over the other labels (0 = hard targets)
    ema_decay: float = 0.0  # dev is scored on an exponential moving average of the weights (0 = off)

    def __post_init__(self) -> None:
        if min(self.epochs, self.batch_size, self.patience, self.length_pool) < 1:
            raise ValueError("epochs, batch_size, patience and length_pool must be >= 1")
        if self.learning_rate <= 0 or self.clip <= 0:
            raise ValueError("learning_rate and clip must be > 0")
        if not 0 < self.lr_decay <= 1:
            raise ValueError("lr_decay must be in (0, 1]")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError("label_smoothing must be in [0, 1)")
        if not 0 <= self.ema_decay < 1:
            raise ValueError("ema_decay must be in [0, 1) (0 turns the moving average off)")
