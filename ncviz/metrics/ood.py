"""NC5: in-distribution class means orthogonal to the mean of out-of-distribution features.

Ammar et al. (2024, "NECO: NEural Collapse Based Out-of-distribution detection", arXiv
2310.06823) add to NC1–NC4 that, at collapse, the class means of the training (ID) data become
orthogonal to the mean of OOD data's features at the same layer. Their orthogonality deviation,
as the Linguistic Collapse authors' ``neural_collapse`` library computes it
(``orthogonality_deviation``), is

    nc5 = (1/C) Σ_c |cos(μ_c, μ_G^OOD)|

with μ_c the (uncentred) ID class means and μ_G^OOD the mean of the OOD features: 0 when every
class mean is orthogonal to it, 1 when all are parallel.

>>> import numpy as np
>>> round(orthogonality_deviation(np.eye(3, 4), np.array([0.0, 0.0, 0.0, 2.0])), 12)
0.0
>>> round(orthogonality_deviation(np.eye(2), np.array([1.0, 1.0])), 6)   # cos 45° = 0.707107
0.707107
"""

from __future__ import annotations

import numpy as np

from ncviz.errors import InputError
from ncviz.metrics.inputs import ArrayLike, features_matrix


def orthogonality_deviation(class_means: ArrayLike, ood_mean: ArrayLike) -> float:
    """(1/C) Σ_c |cos(μ_c, μ_ood)| over the rows μ_c of ``class_means`` (C×d)."""
    means = np.asarray(class_means, dtype=np.float64)
    ood = np.asarray(ood_mean, dtype=np.float64).reshape(-1)
    if means.ndim != 2 or means.shape[1] != ood.shape[0]:
        raise InputError(
            f"the OOD mean has {ood.shape[0]} entries but the class means are {means.shape}; "
            "give OOD features of the same layer."
        )
    norms = np.linalg.norm(means, axis=1) * np.linalg.norm(ood)
    if float(np.linalg.norm(ood)) == 0.0 or (norms == 0).any():
        raise InputError(
            "nc5 is undefined: the OOD features' mean (or a class mean) is zero and has no "
            "direction."
        )
    return float(np.abs(means @ ood / norms).mean())


def ood_mean(features: ArrayLike, dim: int, name: str = "OOD features") -> np.ndarray:
    """The mean of OOD features (N×d, any float dtype; d must match the ID layer's)."""
    h = features_matrix(features, name=name)
    if h.shape[1] != dim:
        raise InputError(
            f"{name} have dimension {h.shape[1]} but the layer's features {dim}; give OOD "
            "features of the same layer."
        )
    if h.shape[0] == 0:
        raise InputError(f"{name} hold no rows; give at least one OOD sample.")
    return h.double().mean(dim=0).cpu().numpy()
