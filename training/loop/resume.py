"""What ``--resume`` checks before a checkpoint's weights go into a model: the same model, tokenizer and
training settings, and the same data (a fingerprint of the split). A difference is refused with each
setting's two values and the way out, instead of a torch ``size mismatch`` traceback deep in loading.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from training.data.splits import Splits
from training.loop.config import TokenizerSettings, TrainSettings
from training.model.classifier import ModelConfig

# Taken from the data, not from an option: compared through the data fingerprint instead.
SIZED_BY_DATA = ("vocab_size", "num_labels")


def data_fingerprint(splits: Splits) -> str:
    """sha256 of the task, the labels and every train and dev text with its label(s), in order."""
    digest = hashlib.sha256(json.dumps([splits.task, list(splits.labels)]).encode())
    for part in ("train", "dev"):
        digest.update(f"\x00{part}\x00".encode())
        for example in getattr(splits, part):
            digest.update(example.text.encode("utf-8", "surrogatepass"))
            digest.update(b"\x1f" + "\x1e".join(example.labels or (example.label,)).encode() + b"\x1d")
    return digest.hexdigest()


def differences(
    payload: dict[str, Any],
    model: ModelConfig,
    tokenizer: TokenizerSettings,
    training: TrainSettings,
    fingerprint: str,
) -> list[str]:
    """Each setting where this run differs from the checkpoint ``payload``, as "name: then → now"."""
    config = payload.get("config", {})
    found: list[str] = []
    saved_model = config.get("model") or {}
    for key, value in model.to_dict().items():
        if key not in SIZED_BY_DATA and key in saved_model and saved_model[key] != value:
            found.append(f"model {key}: {saved_model[key]} → {value}")
    saved_tokenizer = config.get("tokenizer_settings") or {}
    for key, value in asdict(tokenizer).items():
        if key in saved_tokenizer and saved_tokenizer[key] != value:
            found.append(f"tokenizer {key}: {saved_tokenizer[key]} → {value}")
    # settings added since the checkpoint was written take their defaults, which are what it ran with
    saved_training = {**asdict(TrainSettings()), **payload.get("settings", {})}
    for key, value in asdict(training).items():
        if key != "epochs" and saved_training.get(key) != value:
            found.append(f"training {key}: {saved_training.get(key)} → {value}")
    saved_data = config.get("data_fingerprint")
    if saved_data is not None and saved_data != fingerprint:
        found.append("data: the texts or labels of the train/dev split differ from the checkpoint's")
    return found


def refusal(path: Path, found: list[str], command: str | None) -> str:
    again = f" (it was started with: {command})" if command else ""
    return (
        f"--resume: {path} was trained with other settings or data: {'; '.join(found)}. Resume with the "
        f"checkpoint's settings and data{again}, or train afresh without --resume"
    )
