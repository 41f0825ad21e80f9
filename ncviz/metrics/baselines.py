"""Chance baselines: NC2/NC3 values of random class means and a random classifier.

Equiangularity and alignment depend on C and d even without any learning (the std of cosines of
random vectors is ≈ 1/√d), so every NC2/NC3 value is shown beside the same metric on Gaussian
class means (centred by their mean, as the data are) and a Gaussian W of the same C and d, drawn
with a fixed seed.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from ncviz.errors import InputError
from ncviz.metrics.geometry import geometry_metrics


@lru_cache(maxsize=64)
def _chance(num_classes: int, dim: int, seed: int) -> tuple[tuple[str, float], ...]:
    generator = torch.Generator().manual_seed(seed)
    means = torch.randn(num_classes, dim, generator=generator, dtype=torch.float64)
    weight = torch.randn(num_classes, dim, generator=generator, dtype=torch.float64)
    scalars, _, _ = geometry_metrics(means - means.mean(dim=0), weight, max_matrix_classes=0)
    return tuple(sorted(scalars.items()))


def chance_baselines(num_classes: int, dim: int, seed: int = 0) -> dict[str, float]:
    """NC2/NC3/GNC2 keys of docs/metrics.md on N(0, I) class means and weights (C×d, fixed seed)."""
    if num_classes < 2 or dim < 1:
        raise InputError(f"chance baselines need C ≥ 2 and d ≥ 1, got C={num_classes}, d={dim}.")
    return dict(_chance(int(num_classes), int(dim), int(seed)))
