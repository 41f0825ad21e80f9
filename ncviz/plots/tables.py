"""Frames the pages show as tables (per-class values, multi-centre centres)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ncviz.metrics import CollapseResult
from ncviz.metrics.summaries import decay_rate

#: The column of the per-class table with the counts a run was trained on (its run.json's
#: ``train_data``), beside the analysed ones: an imbalanced run is often measured on balanced data.
TRAINED_ON = "n_c (trained on)"


def per_class_table(
    result: CollapseResult,
    split: str = "data",
    training_counts: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """n_c (on the analysed ``split``; the training counts beside it when known), ‖μ_c − μ_G‖,
    ‖w_c‖, σ_c²/‖μ_c − μ_G‖², cos(w_c, μ_c − μ_G), recall (docs/metrics.md)."""
    a = result.arrays
    minority = set(np.asarray(result.minority_classes).astype(str))
    frame = pd.DataFrame(
        {
            "class": [str(c) for c in result.classes],
            "minority": [str(c) in minority for c in result.classes],
            f"n_c (analysed: {split})": a["class_counts"],
            "‖μ_c − μ_G‖": a["mean_norms"],
            "‖w_c‖": a.get("weight_norms", np.full(len(result.classes), np.nan)),
            "σ_c²/‖μ_c − μ_G‖²": a["variability"],
            "cos(w_c, μ_c − μ_G)": a.get("alignment", np.full(len(result.classes), np.nan)),
            "recall": a.get("recall", a["ncc_recall"]),
        }
    )
    if training_counts:
        counts = [training_counts.get(str(c)) for c in result.classes]
        frame.insert(3, TRAINED_ON, pd.array(counts, dtype="Int64"))
    return frame


def _class_columns(result: Any, minority: Sequence[str]) -> dict[str, Any]:
    """The leading columns of a per-class table: class, whether it is a minority, n_c."""
    rare = set(map(str, minority))
    return {
        "class": [str(c) for c in result.classes],
        "minority": [str(c) in rare for c in result.classes],
        "n_c": result.counts,
    }


def multicentre_table(result: Any, minority: Sequence[str] = ()) -> pd.DataFrame:
    """The per-class rows of a MultiCentreResult, minority classes marked."""
    return pd.DataFrame(
        {
            **_class_columns(result, minority),
            "centres": result.centres,
            "nc (to nearest sub-cluster)": result.nc,
            "silhouette": result.silhouette,
            "cos to centre": result.alignment,
        }
    )


def ncmc_table(result: Any, minority: Sequence[str] = ()) -> pd.DataFrame:
    """The per-class rows of an NCMCResult (collapse to each class's centre-mean), minority
    classes marked."""
    return pd.DataFrame(
        {
            **_class_columns(result, minority),
            "centres f_k": result.centres,
            "nc (to centre-mean)": result.nc,
            "cos to centre-mean": result.alignment,
        }
    )


def side_by_side(
    first: Mapping[str, float],
    second: Mapping[str, float],
    labels: tuple[str, str],
    headline: Sequence[str] = (),
) -> pd.DataFrame:
    """The metrics both mappings hold, one row each, ``headline`` keys first (in that order),
    with one column per side (Compare: two checkpoints or two runs).

    >>> side_by_side({"nc1": 1.0, "nc3": 2.0}, {"nc3": 3.0, "nc1": 4.0}, ("a", "b"), ["nc3"])
      metric    a    b
    0    nc3  2.0  3.0
    1    nc1  1.0  4.0
    """
    keys = [k for k in first if k in second]
    order = {key: index for index, key in enumerate(headline)}
    keys.sort(key=lambda k: order.get(k, len(order)))  # stable: the rest keep their order
    left, right = labels if labels[0] != labels[1] else (labels[0], f"{labels[1]} (other)")
    return pd.DataFrame(
        {"metric": keys, left: [first[k] for k in keys], right: [second[k] for k in keys]}
    )


def decay_table(table: pd.DataFrame, metric: str, checkpoints: Mapping[str, str]) -> pd.DataFrame:
    """Per checkpoint (name → label), the per-layer factor of ``metric`` over the layers in the
    table's order: exp(slope of log metric against layer index) (He & Su 2023)."""
    rows = []
    for name, label in checkpoints.items():
        values = table[(table["checkpoint"] == name) & (table["metric"] == metric)]["value"]
        rows.append({"checkpoint": label, "per-layer factor": decay_rate(values.tolist())})
    return pd.DataFrame(rows)


def group_metrics_table(
    table: pd.DataFrame, checkpoint: str, layer: str, grouped: Any, metrics: Sequence[str]
) -> pd.DataFrame:
    """One row per group at ``checkpoint`` and ``layer``: ``metrics`` (and classes_dropped),
    with etf_alignment taken from ``grouped`` when it was measured against a given ETF (W)."""
    rows = table[(table["checkpoint"] == checkpoint) & (table["layer"] == layer)]
    wide = rows.pivot_table(index="group", columns="metric", values="value", sort=False)
    if grouped.etf_source == "given":  # measured against W here, not the table's best fit
        wide["etf_alignment"] = wide.index.map(grouped.etf_alignment)
    return wide[[m for m in [*metrics, "classes_dropped"] if m in wide]]
