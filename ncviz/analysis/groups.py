"""Per-group results (environments, domains) beside the pooled ones: a source measures every
group's own result of a (checkpoint, layer) (:data:`GroupParts`, the group a field of the key,
never a string inside the layer name); these helpers assemble each (checkpoint, layer)'s
:class:`~ncviz.metrics.groups.GroupResult` and add the cross-group rows."""

from __future__ import annotations

from typing import Any

import numpy as np

from ncviz.metrics import CollapseResult
from ncviz.metrics.groups import GroupResult, assemble_groups

CROSS_GROUP_KEYS = ("etf_alignment", "prototype_distance")

#: Where a result belongs: (checkpoint, layer).
ResultKey = tuple[str, str]
#: Every group's own result of a (checkpoint, layer), by group name.
GroupParts = dict[ResultKey, dict[str, CollapseResult]]


def split_groups(
    rows: list[dict[str, Any]], results: dict[ResultKey, Any], parts: GroupParts
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[ResultKey, GroupResult]]:
    """(plain rows, group rows, group results) of one split: the per-group rows (those with a
    ``group``) apart from the plain ones, each (checkpoint, layer)'s :class:`GroupResult`
    assembled from its groups' ``parts``, and its cross-group rows added."""
    plain_rows = [r for r in rows if "group" not in r]
    assembled = assemble_group_results(results, parts)
    group_rows = [r for r in rows if "group" in r] + cross_group_rows(assembled, plain_rows)
    return plain_rows, group_rows, assembled


def assemble_group_results(
    results: dict[ResultKey, Any], parts: GroupParts
) -> dict[ResultKey, GroupResult]:
    """Per (checkpoint, layer), the groups' own results (``parts``) assembled into a
    :class:`GroupResult` (cross-group distances and ETF from their class means) against the
    pooled result in ``results``."""
    assembled = {}
    for where, per_group in parts.items():
        pooled = results.get(where)
        if pooled is None or not per_group:
            continue
        assembled[where] = assemble_groups(
            per_group,
            sorted(per_group),
            np.asarray(pooled.classes),
            pooled_means=pooled.arrays["class_means"],
        )
    return assembled


def cross_group_rows(
    assembled: dict[tuple[str, str], GroupResult], plain_rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``etf_alignment`` and ``prototype_distance`` rows of every group (computed from the
    assembled results: a cache holds only the groups' own results)."""
    rows = []
    for (checkpoint, layer), result in assembled.items():
        template = next((r for r in plain_rows if r["checkpoint"] == checkpoint), None)
        if template is None:
            continue
        for group in result.groups:
            metrics = result.group_metrics(group)
            rows += [
                {**template, "layer": layer, "group": group, "metric": key, "value": metrics[key]}
                for key in CROSS_GROUP_KEYS
                if key in metrics
            ]
    return rows
