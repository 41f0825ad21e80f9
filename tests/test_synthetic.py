from __future__ import annotations

import numpy as np
import pytest

from ncviz.errors import InputError
from ncviz.metrics import collapse_metrics
from ncviz.synthetic import noisy_etf, simplex_etf


def test_simplex_etf_has_unit_norms_and_equal_negative_cosines():
    etf = simplex_etf(6, 9)
    gram = etf @ etf.T
    np.testing.assert_allclose(np.diag(gram), 1.0)
    np.testing.assert_allclose(gram[~np.eye(6, dtype=bool)], -1 / 5)


def test_noisy_etf_reproduces_population_nc1():
    data = noisy_etf(num_classes=5, dim=32, per_class=2000, noise=0.1)
    assert collapse_metrics(data.features, data.labels)["nc1"] == pytest.approx(
        0.01 * 16 / 5, rel=0.05
    )


def test_etf_needs_enough_dimensions():
    with pytest.raises(InputError, match="needs d ≥ C−1"):
        simplex_etf(10, 5)
