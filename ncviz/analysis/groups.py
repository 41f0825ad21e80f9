"""Per-group results (environments, domains) beside the pooled ones: a source measures every
group's statistics under a group key; these helpers separate them, assemble each (checkpoint,
layer)'s :class:`~ncviz.metrics.groups.GroupResult` and add the cross-group rows."""

from __future__ import annotations

from typing import Any

import numpy as np

from ncviz.metrics import CollapseResult
from ncviz.metrics.groups import GroupResult, assemble_groups, split_group_key

CROSS_GROUP_KEYS = ("etf_alignment", "prototype_distance")


def split_groups(
    rows: list[dict[str, Any]], results: dict[tuple[str, str], Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict, dict[tuple[str, str], GroupResult]]:
    """(plain rows, group rows, plain results, group results) of one split: per-group rows and
    results (keyed by :func:`group_key`) apart from the plain ones, each (checkpoint, layer)'s
    :class:`GroupResult` assembled, and its cross-group rows added."""
    plain_rows = [r for r in rows if "group" not in r]
    plain, assembled = assemble_group_results(results)
    group_rows = [r for r in rows if "group" in r] + cross_group_rows(assembled, plain_rows)
    return plain_rows, group_rows, plain, assembled


def assemble_group_results(
    results: dict[tuple[str, str], Any],
) -> tuple[dict[tuple[str, str], Any], dict[tuple[str, str], GroupResult]]:
    """The plain results, and per (checkpoint, layer) the groups' results assembled into a
    :class:`GroupResult` (cross-group distances and ETF from their class means)."""
    plain: dict[tuple[str, str], Any] = {}
    parts: dict[tuple[str, str], dict[str, CollapseResult]] = {}
    for (checkpoint, key), result in results.items():
        layer, group = split_group_key(key)
        if group is None:
            plain[(checkpoint, layer)] = result
        else:
            parts.setdefault((checkpoint, layer), {})[group] = result
    assembled = {}
    for where, per_group in parts.items():
        pooled = plain.get(where)
        if pooled is None:
            continue
        assembled[where] = assemble_groups(
            per_group, sorted(per_group), np.asarray(pooled.classes),
            pooled_means=pooled.arrays["class_means"],
        )  # fmt: skip
    return plain, assembled


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
