"""Singular-value spectra, numerical rank and effective rank (low-rank bias of class means)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ncviz.metrics.inputs import ArrayLike


def singular_values(matrix: torch.Tensor) -> torch.Tensor:
    """Singular values of ``matrix`` in float64, descending."""
    return torch.linalg.svdvals(matrix.to(torch.float64))


def numerical_rank(values: torch.Tensor, tau: float = 1e-2) -> int:
    """``rank_means``: #{s_k > τ·s_1} for singular values s (Súkeník et al. 2024), τ = 1e-2."""
    if values.numel() == 0 or float(values.max()) <= 0.0:
        return 0
    return int((values > tau * values.max()).sum())


def effective_rank(values: torch.Tensor) -> float:
    """``effective_rank_means``: exp(−Σ p_k log p_k), p = s/Σs (Roy & Vetterli 2007)."""
    total = float(values.sum())
    if total <= 0.0:
        return 0.0
    p = values[values > 0] / total
    return math.exp(float(-(p * p.log()).sum()))


def covariance_singular_values(covariance: torch.Tensor, top: int = 256) -> torch.Tensor:
    """``sv_features``: square roots of the ``top`` largest eigenvalues of a covariance matrix."""
    eigenvalues = torch.linalg.eigvalsh(covariance.to(torch.float64)).flip(0)[:top]
    return eigenvalues.clamp(min=0.0).sqrt()


def ranks(values: ArrayLike, tau: float = 1e-2) -> tuple[int, float]:
    """(numerical rank at τ, effective rank) of singular values given as any array.

    >>> numerical, effective = ranks([4.0, 2.0, 1e-9], tau=1e-2)
    >>> numerical, round(effective, 4)
    (2, 1.8899)
    """
    s = torch.as_tensor(np.asarray(values, dtype=np.float64))
    return numerical_rank(s, tau), effective_rank(s)
