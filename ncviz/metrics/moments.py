"""Numerically stable running mean and variance over chunks of values.

Pairwise statistics (C(C−1)/2 cosines at vocabulary scale) are reduced tile by tile. Summing squares
and subtracting the squared mean loses every digit when the values are nearly equal, which is
exactly the collapsed regime (all cosines ≈ −1/(C−1)); Chan et al.'s pairwise update keeps them:

    n = n_a + n_b,  δ = mean_b − mean_a,
    mean = mean_a + δ·n_b/n,  M2 = M2_a + M2_b + δ²·n_a·n_b/n

(Chan, Golub & LeVeque 1979).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class RunningMoments:
    """Count, mean and sum of squared deviations (M2) of all values added so far."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, values: torch.Tensor) -> None:
        """Add a chunk of values (any shape; float64 recommended)."""
        n_b = values.numel()
        if n_b == 0:
            return
        mean_b = float(values.mean())
        m2_b = float(((values - mean_b) ** 2).sum())
        self.merge(RunningMoments(n_b, mean_b, m2_b))

    def merge(self, other: RunningMoments) -> RunningMoments:
        """Combine with another set of moments in place and return self."""
        if other.count == 0:
            return self
        if self.count == 0:
            self.count, self.mean, self.m2 = other.count, other.mean, other.m2
            return self
        total = self.count + other.count
        delta = other.mean - self.mean
        self.mean += delta * other.count / total
        self.m2 += other.m2 + delta * delta * self.count * other.count / total
        self.count = total
        return self

    def repeated(self, times: int) -> RunningMoments:
        """Moments of the same values each taken ``times`` times (e.g. ordered pairs)."""
        return RunningMoments(self.count * times, self.mean, self.m2 * times)

    def variance(self, ddof: int = 1) -> float:
        """Variance with ``ddof`` (1 = unbiased, as in the Papyan reference code)."""
        if self.count - ddof <= 0:
            return math.nan
        return max(self.m2, 0.0) / (self.count - ddof)

    def std(self, ddof: int = 1) -> float:
        """Standard deviation with ``ddof``."""
        return math.sqrt(self.variance(ddof))


def mean_and_variance(name: str, values: torch.Tensor) -> dict[str, float]:
    """``<name>_mean`` and ``<name>_var`` (unbiased, divisor n − 1; NaN for one value) of one
    value per class, as ``Tensor.mean`` and ``Tensor.var`` give them.

    >>> import torch
    >>> mean_and_variance("norms", torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    {'norms_mean': 2.0, 'norms_var': 1.0}
    """
    variance = float(values.var()) if len(values) > 1 else math.nan
    return {f"{name}_mean": float(values.mean()), f"{name}_var": variance}
