"""Data-parallel training under PyTorch's launcher: ``torchrun --nproc-per-node N lstm-train train ...``.

torchrun starts N copies of the same command and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the
rendezvous address in each one's environment. Here every copy:

- joins one process group over ``gloo``: the trainer runs on the CPU (``nccl`` would need every tensor on
  a GPU), so a machine's cores, or several machines, are what the processes share out;
- builds the same model from the same seed; ``DistributedDataParallel`` also broadcasts rank 0's
  parameters at the start, so every rank starts from identical weights (word2vec included);
- trains on its own shard of every epoch's shuffled training texts (``DistributedSampler``: equal shard
  sizes, so every rank runs the same number of batches and no all-reduce waits forever) with gradients
  averaged across ranks after each backward pass, so the parameters stay identical;
- takes the dev score that rank 0 computed (early stopping decides the same everywhere);
- leaves checkpoints, test evaluation, export and the bundle to rank 0.

Resume: every rank reads ``last.pt`` from the run folder, so on several machines that folder must be on
storage they share.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from training.loop.batches import batch_indices

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Distributed:
    """Where this process stands in the run. ``world_size`` 1: a plain single-process run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = Distributed()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(timeout_minutes: float = 30.0) -> Distributed:
    """Join the process group torchrun's environment describes (a no-op outside torchrun)."""
    if not launched_by_torchrun():
        return SINGLE
    if dist.is_initialized():
        return Distributed(dist.get_rank(), dist.get_world_size(), _local_rank(), dist.get_backend())
    local_rank = _local_rank()
    dist.init_process_group(backend="gloo", timeout=timedelta(minutes=timeout_minutes))
    context = Distributed(dist.get_rank(), dist.get_world_size(), local_rank, "gloo")
    logger.info("rank %d of %d (gloo)", context.rank, context.world_size)
    return context


def stop(context: Distributed) -> None:
    """Leave the process group together: every rank waits at a barrier (the others while rank 0 evaluates,
    exports and writes the bundle) before the group is destroyed. A rank that destroyed its end while
    rank 0 still held the group open sometimes died in gloo's teardown ("terminate called without an
    active exception", SIGABRT), failing the run after the bundle was written."""
    if not (context.enabled and dist.is_initialized()):
        return
    try:
        dist.barrier()
    except RuntimeError as error:  # a rank that failed hard: tear down regardless
        logger.warning("rank %d: the closing barrier failed (%s)", context.rank, error)
    dist.destroy_process_group()


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def check_size(context: Distributed, training_texts: int) -> None:
    """Refuse more processes than training texts: some rank would train on nothing but padding repeats."""
    if context.world_size > training_texts:
        raise ValueError(
            f"{context.world_size} processes but only {training_texts} training texts: "
            f"use --nproc-per-node (× --nnodes) of at most {training_texts}, or more data"
        )


def wrap_for_training(model: nn.Module, context: Distributed) -> nn.Module:
    """A module whose ``forward`` is ``model.forward_train``, inside DDP when the run is distributed.

    DDP synchronises gradients only for calls through its own ``forward``; the classifier trains through
    ``forward_train`` (padded tensors), so that is what the wrapper's ``forward`` runs."""
    trainer = _TrainingForward(model)
    if not context.enabled:
        return trainer
    return DistributedDataParallel(trainer)  # broadcasts rank 0's parameters and buffers now


class _TrainingForward(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model.forward_train(ids, lengths)


def epoch_batches(
    lengths: Sequence[int],
    batch_size: int,
    seed: int,
    epoch: int,
    length_pool: int,
    context: Distributed,
) -> list[np.ndarray]:
    """This rank's training batches for ``epoch`` (indices into the training texts).

    Single process: the trainer's usual shuffled, length-pooled batches. Distributed: the
    ``DistributedSampler`` shard of the epoch's permutation, batched the same way within the shard."""
    if not context.enabled:
        return list(batch_indices(lengths, batch_size, True, seed + epoch, length_pool))
    sampler = DistributedSampler(
        range(len(lengths)),
        num_replicas=context.world_size,
        rank=context.rank,
        shuffle=True,
        seed=seed,
        drop_last=False,
    )
    sampler.set_epoch(epoch)
    shard = np.fromiter(iter(sampler), dtype=np.int64)
    local = list(batch_indices([lengths[i] for i in shard], batch_size, True, seed + epoch, length_pool))
    return [shard[batch] for batch in local]


def broadcast(value: Any, context: Distributed) -> Any:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if not context.enabled:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def mean_across_ranks(value: float, context: Distributed) -> float:
    if not context.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor)
    return float(tensor.item()) / context.world_size


def barrier(context: Distributed) -> None:
    if context.enabled:
        dist.barrier()


def parameters_digest(model: nn.Module) -> str:
    """sha256 over every parameter's bytes in name order: equal digests mean identical parameters."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
