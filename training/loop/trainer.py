"""The training loop: Adam, gradient clipping, early stopping on dev, atomic resumable checkpoints.

Reproducible: shuffling and dropout of epoch ``e`` are seeded from ``seed + e``, so a run resumed from
its checkpoint after epoch ``e`` continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from service.tokenizer import Tokenizer
from training.data.progress import track
from training.data.source import DataSpec
from training.loop.averaging import WeightAverage
from training.loop.batches import batch_indices, pad
from training.loop.config import TrainSettings
from training.loop.distributed import (
    SINGLE,
    Distributed,
    broadcast,
    epoch_batches,
    mean_across_ranks,
    wrap_for_training,
)
from training.loop.objectives import Objective
from training.model.classifier import LSTMClassifier, ModelConfig

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
LAST, BEST = "last.pt", "best.pt"


@dataclass
class TrainResult:
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_dev_score: float  # the objective's selection metric (dev accuracy; dev micro-F1 for multi-label)
    epochs_run: int
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    selected_by: str = "dev_accuracy"
    texts_seen: int = (
        0  # training texts this process trained on in its last epoch (its shard, if distributed)
    )

    @property
    def best_dev_accuracy(self) -> float | None:
        return self.best_dev_score if self.selected_by == "dev_accuracy" else None


def seed_everything(seed: int) -> None:
    # No torch.use_deterministic_algorithms(True): the CPU kernels used here (embedding, LSTM, linear) are
    # deterministic already, and the call costs ~2 s because it imports torch._inductor.
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file, then ``os.replace``: a crash leaves the old checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Tensors and plain data only (``weights_only=True``): loading never runs pickled code."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a checkpoint written by this trainer (format {CHECKPOINT_FORMAT})")
    return payload


@dataclass(frozen=True)
class CheckpointModel:
    """A checkpoint's weights in their model, with the tokenizer and labels they were trained with."""

    path: Path
    model: LSTMClassifier
    tokenizer: Tokenizer
    labels: list[str]
    data_source: DataSpec | None  # the split it was trained on, if recorded
    payload: dict[str, Any]  # the whole checkpoint (settings, epoch, history, config)


def load_checkpoint_model(path: Path) -> CheckpointModel:
    """Rebuild the model of a checkpoint (``best.pt`` or ``last.pt``; a run folder means its ``best.pt``),
    holding its best weights, in eval mode."""
    path = Path(path)
    if path.is_dir():
        path = path / BEST
    payload = load_checkpoint(path)
    config = payload["config"]
    model = LSTMClassifier(ModelConfig.from_dict(config["model"]))
    model.load_state_dict(payload.get("best_state") or payload["model_state"])
    source = config.get("data")
    return CheckpointModel(
        path=path,
        model=model.eval(),
        tokenizer=Tokenizer.from_dict(config["tokenizer"]),
        labels=list(config["labels"]),
        data_source=DataSpec.from_dict(source) if source else None,
        payload=payload,
    )


@torch.no_grad()
def predict_logits(model: nn.Module, sequences: Sequence[Sequence[int]], batch_size: int = 256) -> np.ndarray:
    """Logits (texts, labels) in input order."""
    model.eval()
    outputs = []
    batches = batch_indices([len(s) for s in sequences], batch_size, shuffle=False)
    steps = -(-len(sequences) // batch_size)
    for index in track(batches, "predicting", total=steps, unit="batches"):
        ids, lengths = pad([sequences[i] for i in index])
        outputs.append(model(ids, lengths)[0].numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), dtype=np.float32)


def _train_epoch(
    model: nn.Module,
    runner: nn.Module,
    optimizer: torch.optim.Optimizer,
    sequences: Sequence[Sequence[int]],
    targets: np.ndarray,
    settings: TrainSettings,
    epoch: int,
    progress: bool,
    loss_function: nn.Module,
    context: Distributed,
    average: WeightAverage | None = None,
) -> tuple[float, int]:
    """One pass over this process's batches; ``runner`` computes ``model.forward_train`` (inside DDP when
    distributed, which averages the gradients across processes). Returns the mean loss (over every
    process) and the texts this process trained on."""
    model.train()
    torch.manual_seed(settings.seed + epoch)  # dropout masks of this epoch
    total, count = 0.0, 0
    lengths = [len(s) for s in sequences]
    batches = epoch_batches(lengths, settings.batch_size, settings.seed, epoch, settings.length_pool, context)
    steps = -(-len(lengths) // settings.batch_size) if not context.enabled else None
    for index in track(batches, f"epoch {epoch}", total=steps, unit="batches", bar=progress):
        ids, lengths_tensor = pad([sequences[i] for i in index])
        optimizer.zero_grad()
        loss = loss_function(runner(ids, lengths_tensor), torch.as_tensor(targets[index]))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), settings.clip)
        optimizer.step()
        if average is not None:
            average.update(model)
        total += float(loss.detach()) * len(index)
        count += len(index)
    return mean_across_ranks(total / max(count, 1), context), count


def train(
    model: nn.Module,
    train_data: tuple[Sequence[Sequence[int]], Sequence[Any]],
    dev_data: tuple[Sequence[Sequence[int]], Sequence[Any]],
    settings: TrainSettings,
    run_dir: Path | None = None,
    config: dict[str, Any] | None = None,
    resume: bool = False,
    progress: bool = True,
    *,
    objective: Objective | None = None,
    context: Distributed = SINGLE,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place; return the best state by the objective's dev metric (the model is left
    holding it). Targets are class indices (single-label) or 0/1 rows (multi-label), see ``objective``.

    With ``run_dir``, ``last.pt`` (everything needed to resume) and ``best.pt`` (best weights + ``config``)
    are written after every epoch (by rank 0 when distributed). ``resume`` continues from ``last.pt``.
    ``on_epoch(epoch, record)`` is called after each epoch with its history record (a search's pruner
    stops a trial from there by raising). With ``settings.ema_decay`` dev scores, and the kept weights
    are, the moving average of the weights (:mod:`training.loop.averaging`).
    """
    objective = objective or Objective()
    seed_everything(settings.seed)
    train_sequences, train_targets = train_data[0], objective.targets(train_data[1])
    dev_sequences, dev_targets = dev_data[0], objective.targets(dev_data[1])
    optimizer = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad], lr=settings.learning_rate
    )
    state = {"epoch": 0, "best_epoch": 0, "best_score": -1.0, "bad_epochs": 0, "history": []}
    best_state = {key: value.clone() for key, value in model.state_dict().items()}
    average = WeightAverage.create(model, settings.ema_decay)
    if resume:
        best_state = _resume(run_dir, model, optimizer, state, settings, average)
    runner = wrap_for_training(model, context)  # distributed: rank 0's weights on every rank from here
    loss_function = objective.loss()
    key = objective.selection_metric
    stopped_early = state["bad_epochs"] >= settings.patience
    seen = 0
    for epoch in range(state["epoch"] + 1, settings.epochs + 1):
        if stopped_early:
            break
        started = time.perf_counter()
        loss, seen = _train_epoch(
            model,
            runner,
            optimizer,
            train_sequences,
            train_targets,
            settings,
            epoch,
            progress,
            loss_function,
            context,
            average,
        )
        # with a moving average, dev scores the averaged weights, and they are the ones kept
        own = average.swap_in(model) if average is not None else None
        # rank 0 scores dev and tells the others, so every rank takes the same early-stopping decision
        dev = broadcast(
            objective.dev_metrics(predict_logits(model, dev_sequences), dev_targets)
            if context.is_main
            else None,
            context,
        )
        record = {
            "epoch": epoch,
            "train_loss": round(loss, 5),
            **dev,
            "seconds": round(time.perf_counter() - started, 1),
        }
        state["history"].append(record)
        if dev[key] > state["best_score"]:
            state.update(best_score=dev[key], best_epoch=epoch, bad_epochs=0)
            best_state = {key: value.clone() for key, value in model.state_dict().items()}
        else:
            state["bad_epochs"] += 1
            for group in optimizer.param_groups:  # saved with the optimizer state, so resume keeps it
                group["lr"] *= settings.lr_decay
        if own is not None:
            model.load_state_dict(own)
        record["learning_rate"] = optimizer.param_groups[0]["lr"]
        state["epoch"] = epoch
        logger.info(
            "epoch %d: loss %.4f, %s (%.1fs)%s",
            epoch,
            loss,
            ", ".join(f"{name.replace('_', ' ')} {value:.4f}" for name, value in dev.items()),
            record["seconds"],
            " *best*" if state["best_epoch"] == epoch else "",
        )
        if run_dir is not None and context.is_main:
            _write_checkpoints(
                Path(run_dir), model, optimizer, state, best_state, settings, config or {}, average
            )
        stopped_early = state["bad_epochs"] >= settings.patience
        if on_epoch is not None:
            on_epoch(epoch, record)
    if stopped_early:
        logger.info("early stop: no dev improvement for %d epochs", settings.patience)
    model.load_state_dict(best_state)
    return TrainResult(
        best_state,
        state["best_epoch"],
        state["best_score"],
        state["epoch"],
        state["history"],
        stopped_early,
        key,
        seen,
    )


def _write_checkpoints(run_dir, model, optimizer, state, best_state, settings, config, average=None) -> None:
    common = {"format": CHECKPOINT_FORMAT, "config": config, "settings": asdict(settings)}
    save_checkpoint(
        run_dir / LAST,
        {
            **common,
            **state,
            "model_state": model.state_dict(),
            "optimizer_state": optimizer.state_dict(),
            "best_state": best_state,
            **({"average_state": average.state_dict()} if average is not None else {}),
        },
    )
    if state["best_epoch"] == state["epoch"]:
        save_checkpoint(
            run_dir / BEST,
            {
                **common,
                "epoch": state["epoch"],
                "best_score": state["best_score"],
                "history": state["history"],
                "model_state": best_state,
            },
        )


def _resume(run_dir, model, optimizer, state, settings, average=None) -> dict[str, torch.Tensor]:
    if run_dir is None or not (Path(run_dir) / LAST).is_file():
        raise FileNotFoundError(f"--resume: no {LAST} in {run_dir}; start the run without --resume")
    payload = load_checkpoint(Path(run_dir) / LAST)
    # settings added since the checkpoint was written take their defaults, which are what it ran with
    saved = {**asdict(TrainSettings()), **payload["settings"]}
    saved.pop("epochs")
    current = {key: value for key, value in asdict(settings).items() if key != "epochs"}
    if saved != current:
        raise ValueError(f"--resume: training settings differ from the checkpoint's ({saved} vs {current})")
    model.load_state_dict(payload["model_state"])
    optimizer.load_state_dict(payload["optimizer_state"])
    if average is not None:
        average.load_state_dict(payload["average_state"])
    for key in state:
        state[key] = payload[key]
    logger.info(
        "resumed from %s after epoch %d (best dev score %.4f at epoch %d)",
        Path(run_dir) / LAST,
        state["epoch"],
        state["best_score"],
        state["best_epoch"],
    )
    return payload["best_state"]
