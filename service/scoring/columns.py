"""What a scorer is asked and what it answers, as plain data (no engine, no onnxruntime): the command's
own process needs only this, so only its workers load a model."""

from __future__ import annotations

from dataclasses import dataclass

# The column every output carries: None where the row was scored, the reason where it was not.
ERROR = "error"


class ScoringError(Exception):
    """Scoring cannot start (no such model, a bundle that fails verification...); the message says why."""


@dataclass(frozen=True)
class ScoreOptions:
    """What to score with and what to write. ``version`` None: the version the service would serve.
    ``top_k``: only the k best labels (``top_labels``/``top_scores`` lists) instead of one column per
    label; ``logits``: also each label's raw logit; ``unk_ratio``: also each text's share of ``<unk>``."""

    model: str | None = None
    version: int | None = None
    top_k: int | None = None
    logits: bool = False
    unk_ratio: bool = False
    batch_size: int = 16  # the ceiling's best batch on the project's CPUs; 64 needed 80 MB more at its peak


@dataclass(frozen=True)
class ModelIdentity:
    """Which bundle scored: recorded in the output's metadata."""

    name: str
    version: int
    labels: tuple[str, ...]
    multi_label: bool
    checksum: str  # sha256 of the bundle's manifest.json, which holds the sha256 of every other file

    def metadata(self) -> dict[str, str]:
        return {
            "lstm_service.model": self.name,
            "lstm_service.version": str(self.version),
            "lstm_service.manifest_sha256": self.checksum,
            "lstm_service.labels": ",".join(self.labels),
        }


def output_columns(identity: ModelIdentity, options: ScoreOptions) -> list[tuple[str, str]]:
    """The answer columns, in order, with their kinds (``str``, ``float``, ``bool``, ``list[str]``,
    ``list[float]``): the same for every format and engine."""
    columns = [("label", "str"), ("score", "float")]
    if identity.multi_label:
        columns.append(("labels", "list[str]"))
    if options.top_k is None:
        columns += [(f"score_{label}", "float") for label in identity.labels]
    else:
        columns += [("top_labels", "list[str]"), ("top_scores", "list[float]")]
    if options.logits:
        columns += [(f"logit_{label}", "float") for label in identity.labels]
    columns.append(("truncated", "bool"))
    if options.unk_ratio:
        columns.append(("unk_ratio", "float"))
    columns.append((ERROR, "str"))
    return columns


@dataclass(frozen=True)
class Unreadable:
    """A value the reader could not read (a line that is not JSON): its reason travels where its text
    would."""

    reason: str
