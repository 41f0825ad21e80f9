"""What every demo trainer shares."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

ProgressFn = Callable[[str, int, int], None]


def fresh_run_folder(out_dir: str | Path, name: str, seed: int) -> Path:
    """``out_dir/name`` created and emptied of old checkpoints, torch seeded: where every demo
    trainer starts."""
    folder = Path(out_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.safetensors"):
        old.unlink()
    torch.manual_seed(seed)
    return folder


def simplex_etf_head(num_classes: int, dim: int, scale: float, seed: int) -> torch.Tensor:
    """C×d rows of a simplex ETF in a random C-dimensional subspace, each of norm ``scale``.

    >>> w = simplex_etf_head(4, 8, 1.0, 0)
    >>> torch.allclose(w @ w.T, torch.eye(4) * 4 / 3 - torch.ones(4, 4) / 3, atol=1e-6)
    True
    """
    generator = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(dim, num_classes, generator=generator))
    centred = torch.eye(num_classes) - 1.0 / num_classes
    return centred @ basis.T * (num_classes / (num_classes - 1)) ** 0.5 * scale
