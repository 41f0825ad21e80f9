"""Singular-value spectra, numerical rank and effective rank (low-rank bias of class means)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from ncviz.errors import OptionError
from ncviz.metrics.inputs import ArrayLike

#: How the class-mean matrix is taken before its rank is counted. The literature uses both:
#: Papyan et al. 2020 (and ``rank_means``) the centred means M = [μ_c − μ_G] (rank ≤ C − 1 at
#: collapse), the deep-UFM low-rank-bias paper (Súkeník et al. 2024) the uncentred class-mean
#: matrices [μ_1 … μ_C] (deep neural collapse has rank C there).
MEANS_CENTRING = {
    "centred": "centred means μ_c − μ_G",
    "uncentred": "uncentred means μ_c",
}
#: How each convention's class-mean matrix is named beside its rank or spectrum.
MEANS_MATRIX = {"centred": "M (centred)", "uncentred": "[μ_c] (uncentred)"}


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


def check_centring(centring: str) -> str:
    """``centring`` if it is one of :data:`MEANS_CENTRING`, else one line naming them."""
    if centring not in MEANS_CENTRING:
        raise OptionError(
            f"the class means are taken {' or '.join(MEANS_CENTRING)}, got {centring!r}."
        )
    return centring


def rank_metric(centring: str) -> str:
    """The metric name of the class means' rank in a convention: ``rank_means`` (centred) or
    ``rank_means_uncentred`` — never one labelled as the other."""
    return "rank_means" if check_centring(centring) == "centred" else "rank_means_uncentred"


def collapse_rank(num_classes: int, centring: str) -> int:
    """The class means' rank at full collapse: C − 1 centred (a simplex ETF), C uncentred (deep
    neural collapse's orthogonal frame, or an ETF off the origin).

    >>> collapse_rank(10, "centred"), collapse_rank(10, "uncentred")
    (9, 10)
    """
    return num_classes - 1 if check_centring(centring) == "centred" else num_classes


def means_spectrum(arrays: Mapping[str, np.ndarray], centring: str = "centred") -> np.ndarray:
    """Singular values of a result's class-mean matrix, descending: ``"centred"`` — M's
    (``sv_means``, centred on the result's global mean); ``"uncentred"`` — those of the class
    means themselves (``class_means``, one row per class).

    >>> arrays = {"class_means": np.array([[1.0, 0.0], [0.0, 1.0]]),
    ...           "sv_means": np.array([1.0, 0.0])}
    >>> means_spectrum(arrays, "uncentred").round(6).tolist(), means_spectrum(arrays).tolist()
    ([1.0, 1.0], [1.0, 0.0])
    """
    if check_centring(centring) == "centred":
        return np.asarray(arrays["sv_means"], dtype=np.float64)
    means = np.asarray(arrays["class_means"], dtype=np.float64)
    return np.linalg.svd(means, compute_uv=False) if means.size else np.zeros(0)


def ranks(values: ArrayLike, tau: float = 1e-2) -> tuple[int, float]:
    """(numerical rank at τ, effective rank) of singular values given as any array.

    >>> numerical, effective = ranks([4.0, 2.0, 1e-9], tau=1e-2)
    >>> numerical, round(effective, 4)
    (2, 1.8899)
    """
    s = torch.as_tensor(np.asarray(values, dtype=np.float64))
    return numerical_rank(s, tau), effective_rank(s)
