"""The one-call metrics for data in memory: :func:`collapse_result` (every metric with its
per-class arrays) and :func:`collapse_metrics` (the scalars), over the streaming statistics of
:mod:`ncviz.metrics.classification` and, with ``groups=``, :mod:`ncviz.metrics.groups`."""

from __future__ import annotations

from typing import Any

import torch

from ncviz.metrics.classification import (
    CollapseResult,
    CollapseStatistics,
    finalize,
    weight_class_rows,
)
from ncviz.metrics.groups import group_result
from ncviz.metrics.inputs import ArrayLike, encode_labels, features_matrix
from ncviz.metrics.ood import ood_mean, orthogonality_deviation
from ncviz.metrics.options import CollapseOptions


def collapse_result(
    features: ArrayLike,
    labels: ArrayLike,
    weight: ArrayLike | None = None,
    bias: ArrayLike | None = None,
    *,
    device: torch.device | str | None = None,
    groups: ArrayLike | None = None,
    ood: ArrayLike | None = None,
    options: CollapseOptions | None = None,
    **kwargs: Any,
) -> CollapseResult:
    """Every classification metric of docs/metrics.md, with per-class arrays, for data in memory.

    Args:
        features: N×d array or tensor (any float dtype; accumulated in float64). CUDA tensors are
            processed on their device unless ``device`` says otherwise.
        labels: N class labels (ints, possibly with gaps, or strings); mapped to 0..C−1 in sorted
            order, and ``result.classes`` gives the mapping.
        weight, bias: the classifier reading these features, W (C×d, or K×d with integer labels
            indexing its rows) and b (K); enables NC2-weights, NC3, NC4, accuracy.
        groups: one group per sample (environment, domain): ``result.groups`` then holds each
            group's metrics and the cross-group prototype distance and ETF alignment
            (:func:`ncviz.metrics.groups.group_result`).
        ood: features of out-of-distribution data at the same layer (M×d): adds ``nc5``, the
            mean |cos| between the class means and their mean (:mod:`ncviz.metrics.ood`).
        options, kwargs: the metric options, as one
            :class:`~ncviz.metrics.options.CollapseOptions` or as keywords.
    """
    opts = CollapseOptions.of(options, **kwargs)
    if device is None:
        device = features.device if isinstance(features, torch.Tensor) else "cpu"
    # kept in its dtype: the statistics upcast one chunk at a time; NaN/Inf checked per chunk
    h = features_matrix(features, device=device, check_finite=False, keep_dtype=True)
    encoded = encode_labels(labels, h.shape[0])
    class_rows = weight_class_rows(weight, encoded.classes)
    stats = CollapseStatistics(
        len(encoded.classes),
        h.shape[1],
        weight,
        bias,
        class_rows=class_rows,
        min_count=opts.min_count,
        device=device,
    )
    codes = encoded.codes.to(device)
    stats.update(h, codes)
    stats.start_second_pass(encoded.classes)
    stats.update(h, codes)
    assert stats.second is not None  # started above
    result = finalize(stats.first, stats.second, opts, encoded.classes)
    if groups is not None:
        result.groups = group_result(h, labels, groups, weight, bias, options=opts)
    if ood is not None:
        result.metrics["nc5"] = orthogonality_deviation(
            result.arrays["class_means"], ood_mean(ood, h.shape[1])
        )
    return result


def collapse_metrics(
    features: ArrayLike,
    labels: ArrayLike,
    weight: ArrayLike | None = None,
    bias: ArrayLike | None = None,
    **options: Any,
) -> dict[str, float]:
    """Every scalar classification metric of docs/metrics.md that the inputs allow, keyed as there.

    ``features`` N×d, ``labels`` N; ``weight``/``bias`` the classifier (optional). Options are
    those of :class:`~ncviz.metrics.options.CollapseOptions` (``global_mean``, ``dist_exp``,
    ``tau``, ``minority_classes``, ``min_count``, ``convention``) plus ``device``, ``ood`` (OOD
    features of the same layer: adds ``nc5``), and ``groups`` (one group per
    sample): every group's metrics are then added as ``"<key>/<group>"`` (``"nc1/env1"``,
    ``"etf_alignment/env1"``, ``"prototype_distance/env1"``). Spectra and per-class values come
    from :func:`collapse_result`.

    >>> import numpy as np
    >>> y = np.tile(np.arange(3), 20)
    >>> h = np.eye(3)[y] + 0.1 * np.random.default_rng(0).standard_normal((60, 3))
    >>> m = collapse_metrics(h, y, groups=np.repeat(["a", "b"], 30))
    >>> sorted(k for k in m if k.startswith("nc1/"))
    ['nc1/a', 'nc1/b']
    """
    result = collapse_result(features, labels, weight, bias, **options)
    if result.groups is None:
        return result.metrics
    per_group = {
        f"{key}/{group}": value
        for group in result.groups.groups
        for key, value in result.groups.group_metrics(group).items()
    }
    return {**result.metrics, **per_group}
