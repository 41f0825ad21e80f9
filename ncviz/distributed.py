"""Multi-process (multi-GPU, multi-node) statistics: disjoint shards and exact all-reduce.

Under ``torchrun`` every rank takes the samples ``rank, rank + W, rank + 2W, …`` (disjoint, no
padding duplicates), accumulates its statistics, and the sums are all-reduced after each pass, so
every rank ends with the statistics of the whole dataset — the same metrics as one process.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

from ncviz.metrics import CollapseStatistics, RegressionStatistics


def world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_indices(num_samples: int, rank: int, world_size: int) -> np.ndarray:
    """This rank's samples: every ``world_size``-th index from ``rank`` (disjoint, no padding)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside a world of {world_size}")
    return np.arange(rank, num_samples, world_size)


def on_every_rank(flag: bool, device: torch.device | str = "cpu") -> bool:
    """Whether ``flag`` holds on every rank (one all-reduce of a number on ``device``, the
    backend's; ``flag`` itself in one process) — so that every rank takes the same branch."""
    if world()[1] == 1:
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def all_reduce_statistics(
    stats: CollapseStatistics | RegressionStatistics,
) -> CollapseStatistics | RegressionStatistics:
    """Sum the current pass's statistics over all ranks, in place (a no-op in one process)."""
    _, size = world()
    if size == 1:
        return stats
    for tensor in stats.pass_tensors():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return stats
