"""The full-batch training loop shared by the theory models."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ncviz.errors import OptionError

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
    for step in range(steps + 1):
        loss, extras = objective()
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
