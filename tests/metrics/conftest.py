from __future__ import annotations

import numpy as np
import pytest


def make_imbalanced(seed: int = 0, num_classes: int = 7, dim: int = 12, spread: float = 0.6):
    """Random imbalanced classification data with a random classifier (W, b)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(3, 40, size=num_classes)
    counts[:2] = [60, 55]
    means = rng.standard_normal((num_classes, dim)) * 2.0
    labels = np.repeat(np.arange(num_classes), counts)
    features = means[labels] + spread * rng.standard_normal((len(labels), dim))
    weight = means + 0.5 * rng.standard_normal(means.shape)
    bias = 0.3 * rng.standard_normal(num_classes)
    order = rng.permutation(len(labels))
    return features[order], labels[order], weight, bias


@pytest.fixture
def imbalanced():
    return make_imbalanced()
