"""The full-batch training loop shared by the theory models.

These models are small (a few matrices of tens to hundreds of rows), so every step is many tiny
operations. On more than one thread each waits for its slowest thread, and on a busy machine a
descheduled thread arrives a time slice late: the dashboard's default deep UFM took 30 s for
1,500 steps on two threads with two busy processes on two cores, and 4 s on one. The loop counts
one step's floating-point operations and, below :data:`~ncviz.metrics.threads.SMALL_WORK_FLOPS`,
runs on one thread (:func:`~ncviz.metrics.threads.threads_for`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from ncviz.errors import OptionError
from ncviz.metrics.threads import threads_for

ProgressFn = Callable[[int, int, str], None]


def full_batch_descent(
    objective: Callable[[], tuple[torch.Tensor, Any]],
    optimizer: torch.optim.Optimizer,
    steps: int,
    record_every: int,
    record: Callable[[int, torch.Tensor, Any], None],
    progress: ProgressFn | None = None,
) -> None:
    """``steps`` optimiser steps on ``objective() -> (loss, extras)``; ``record(step, loss,
    extras)`` at step 0, every ``record_every`` steps and at the end. A non-finite loss stops
    training with a one-line error."""
    with FlopCounterMode(display=False) as counter:
        first = objective()
    # a step is the forward pass and a backward pass of about twice its work
    with threads_for(3 * counter.get_total_flops()):
        _descend(objective, first, optimizer, steps, record_every, record, progress)


def _descend(
    objective: Callable[[], tuple[torch.Tensor, Any]],
    first: tuple[torch.Tensor, Any],
    optimizer: torch.optim.Optimizer,
    steps: int,
    record_every: int,
    record: Callable[[int, torch.Tensor, Any], None],
    progress: ProgressFn | None,
) -> None:
    for step in range(steps + 1):
        loss, extras = first if step == 0 else objective()
        if not math.isfinite(loss.item()):
            raise OptionError("training diverged (loss is not finite); lower the learning rate.")
        if step % record_every == 0 or step == steps:
            record(step, loss, extras)
            if progress is not None:
                progress(step, steps, f"loss {loss.item():.4g}")
        if step == steps:
            return
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
