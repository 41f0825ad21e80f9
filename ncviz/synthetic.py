"""Synthetic collapse data with known answers: simplex-ETF class means plus Gaussian noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ncviz.errors import InputError


def simplex_etf(num_classes: int, dim: int, seed: int = 0) -> np.ndarray:
    """C×d unit-norm vectors forming a simplex ETF: pairwise cosines all −1/(C−1)."""
    if num_classes < 2 or dim < num_classes - 1:
        raise InputError(f"a simplex ETF of C={num_classes} classes needs d ≥ C−1, got d={dim}.")
    centering = np.eye(num_classes) - 1.0 / num_classes
    u, _, _ = np.linalg.svd(centering)
    etf = u[:, : num_classes - 1] * np.sqrt(num_classes / (num_classes - 1))
    basis, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, num_classes - 1)))
    return etf @ basis.T


@dataclass(frozen=True)
class SyntheticCollapse:
    """Features around ETF means; ``weight`` is the ideal self-dual classifier (rows = means)."""

    features: np.ndarray
    labels: np.ndarray
    weight: np.ndarray


def noisy_etf(
    num_classes: int = 10, dim: int = 64, per_class: int = 100, noise: float = 0.1, seed: int = 0
) -> SyntheticCollapse:
    """Class means on a unit simplex ETF, isotropic Gaussian within-class noise of std ``noise``.

    Population values (docs/metrics.md): nc1 = σ²(C−1)²/C, Tr Σ_W/Tr Σ_B = dσ²,
    cdnv = dσ²(C−1)/(2C).
    """
    means = simplex_etf(num_classes, dim, seed)
    rng = np.random.default_rng(seed + 1)
    labels = np.repeat(np.arange(num_classes), per_class)
    features = means[labels] + noise * rng.standard_normal((len(labels), dim))
    return SyntheticCollapse(features=features, labels=labels, weight=means)
