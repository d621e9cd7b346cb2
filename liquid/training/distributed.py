"""torchrun support: process group set-up, rank-0 helpers and the per-rank slice of global batches.

`torchrun --nproc_per_node N main.py ...` sets RANK / WORLD_SIZE / LOCAL_RANK. Each optimizer step
consumes one GLOBAL batch of ``batch_size`` rows (drawn by a length-grouped sampler with one replica);
rank r trains on the contiguous slice ``[r * b, (r + 1) * b)`` of it, b = batch_size / world_size.
DDP averages gradients over ranks, so with equal per-rank token counts a step equals the
single-process step on the whole global batch.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

logger = logging.getLogger(__name__)

MAIN_RANK = 0


@dataclass
class DistributedContext:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == MAIN_RANK


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``; anything else as given."""
    if device == "auto":
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    resolved = torch.device(device)
    if resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", local_rank)
    return resolved


def init_distributed(device: str = "auto") -> DistributedContext:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on CUDA, gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo")
        logger.info("rank %d/%d joined the process group on %s", rank, world_size, resolved)
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=resolved)


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistributedContext) -> None:
    if ctx.is_distributed:
        dist.barrier()


def broadcast_object(ctx: DistributedContext, value):
    """Rank 0's `value` on every rank."""
    if not ctx.is_distributed:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=MAIN_RANK)
    return holder[0]


def all_reduce_sum(ctx: DistributedContext, tensor: torch.Tensor) -> torch.Tensor:
    """Sum of `tensor` over ranks (in place; returned for chaining)."""
    if ctx.is_distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


class RankSliceBatchSampler(Sampler[list[int]]):
    """Rank `rank`'s contiguous slice of every global batch of `global_sampler`.

    A global batch of n rows gives rank r the rows ``[r * n // W, (r + 1) * n // W)`` (W = world size).
    ``set_epoch`` / ``set_start_batch`` pass through to the global sampler.
    """

    def __init__(self, global_sampler, rank: int, world_size: int):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.global_sampler = global_sampler
        self.rank = rank
        self.world_size = world_size

    def set_epoch(self, epoch: int) -> None:
        self.global_sampler.set_epoch(epoch)

    def set_start_batch(self, k: int) -> None:
        self.global_sampler.set_start_batch(k)

    def __len__(self) -> int:
        return len(self.global_sampler)

    def batches_in_epoch(self, epoch: int) -> int:
        return self.global_sampler.batches_in_epoch(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_sampler:
            n = len(batch)
            if n < self.world_size:
                raise ValueError(f"a global batch of {n} rows cannot feed {self.world_size} ranks")
            yield list(batch[self.rank * n // self.world_size:(self.rank + 1) * n // self.world_size])


__all__ = [
    "DistributedContext", "RankSliceBatchSampler", "all_reduce_sum", "barrier", "broadcast_object",
    "cleanup_distributed", "init_distributed", "resolve_device",
]
