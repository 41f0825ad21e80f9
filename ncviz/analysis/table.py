"""The tidy metrics table and :class:`Analysis`, the one object every reader of a run returns.

A row is keyed by :class:`RowKey` (run, checkpoint, epoch, step, split) plus layer, group and
metric; :func:`metric_rows` is the one place rows are written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ncviz.analysis.groups import GroupParts, ResultKey
from ncviz.errors import OptionError
from ncviz.load.runs import Task
from ncviz.metrics import CollapseResult, RegressionResult
from ncviz.metrics.conventions import DEFAULT_CONVENTION
from ncviz.metrics.groups import GroupResult

if TYPE_CHECKING:
    from ncviz.sources.base import Source

TABLE_COLUMNS = ["run", "checkpoint", "epoch", "step", "layer", "split", "metric", "value"]
GROUP_COLUMNS = [*TABLE_COLUMNS[:6], "group", *TABLE_COLUMNS[6:]]
Result = CollapseResult | RegressionResult


@dataclass
class Analysis:
    """Tidy metrics (``table``) and ``results[(checkpoint, layer)]`` with the per-class arrays."""

    run: str
    table: pd.DataFrame
    results: dict[tuple[str, str], Result] = field(default_factory=dict)
    layers: list[str] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    task: Task = "classification"
    log: dict[str, list[Any]] = field(default_factory=dict)
    source: str = ""
    data: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    split: str | None = None
    split_results: dict[str, dict[tuple[str, str], Result]] = field(default_factory=dict)
    entry_files: dict[tuple[str, str], str] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    # per-group collapse (data with groups: environments, domains): rows with a "group" column
    # and, per (checkpoint, layer), the groups' results and cross-group geometry
    group_table: pd.DataFrame = field(default_factory=lambda: make_group_table([]))
    group_results: dict[tuple[str, str], GroupResult] = field(default_factory=dict)
    split_group_results: dict[str, dict[tuple[str, str], GroupResult]] = field(default_factory=dict)
    # where the analysis came from, to read more of it later (a layer's features, the model):
    # a small picklable object that a worker process can take (see ncviz.sources)
    origin: Source | None = field(default=None, compare=False)
    # whose conventions the rows follow (ncviz.metrics.conventions), set by analyze
    convention: str = DEFAULT_CONVENTION

    @property
    def groups(self) -> list[str]:
        """The groups of the data (environments, domains), in their order; [] without groups."""
        for result in self.group_results.values():
            return list(result.groups)
        return []

    @property
    def splits(self) -> list[str]:
        """The data splits in the table (a recorded run may hold "train" and "test")."""
        splits = dict.fromkeys(self.table["split"].dropna())
        return sorted(splits, key=lambda s: (s != "train", s != "test"))

    def for_split(self, split: str) -> Analysis:
        """The same analysis restricted to one split: its table rows, results and checkpoints."""
        if split not in self.split_results:
            raise OptionError(f"split {split!r} is not in this analysis ({self.splits}).")
        table = self.table[self.table["split"] == split].reset_index(drop=True)
        groups = self.group_table[self.group_table["split"] == split].reset_index(drop=True)
        present = set(table["checkpoint"])
        return replace(
            self,
            table=table,
            results=self.split_results[split],
            checkpoints=[c for c in self.checkpoints if c in present],
            split=split,
            group_table=groups,
            group_results=self.split_group_results.get(split, {}),
        )

    def layer_results(self, checkpoint: str) -> dict[str, CollapseResult]:
        """The classification result of every layer at ``checkpoint``, in layer order."""
        return {
            layer: result
            for layer in self.layers
            if isinstance(result := self.results.get((checkpoint, layer)), CollapseResult)
        }

    def metrics_at(self, checkpoint: str, layer: str) -> dict[str, float]:
        """Every metric of one checkpoint and layer."""
        t = self.table
        rows = t[(t["checkpoint"] == checkpoint) & (t["layer"] == layer)]
        if self.split is not None:
            rows = rows[rows["split"] == self.split]
        return dict(zip(rows["metric"], rows["value"]))

    def epochs(self) -> list[int | None]:
        """Epoch of each checkpoint, in order (None where unknown)."""
        by_checkpoint = self.table.drop_duplicates("checkpoint").set_index("checkpoint")["epoch"]
        return [
            None if pd.isna(by_checkpoint[c]) else int(by_checkpoint[c]) for c in self.checkpoints
        ]

    def terminal_phase_onset(self) -> int | None:
        """First epoch with zero training error: from the run's per-epoch log when it has one,
        else the first checkpoint whose classifier reaches training accuracy 1."""
        return terminal_phase_onset(self.log, self.table)

    def group_summary(self) -> str:
        """A compact text table of each group's headline metrics (last checkpoint, last
        layer); empty without groups."""
        return group_summary_text(self) if self.groups else ""

    def tidy(self) -> pd.DataFrame:
        """Every row, the per-group ones included, as exported: the table with a ``group``
        column (empty for rows over all samples) when the data have groups, and a
        ``convention`` column naming whose definitions the rows follow."""
        if self.group_table.empty:
            rows = self.table
        else:
            pooled = self.table.assign(group=pd.NA)[GROUP_COLUMNS]
            rows = pd.concat([pooled, self.group_table], ignore_index=True)
        return rows.assign(convention=self.convention)

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write ``metrics.parquet`` and ``metrics.csv`` (:meth:`tidy`) into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "metrics.parquet", out / "metrics.csv"]
        table = self.tidy()
        table.to_parquet(paths[0], index=False)
        table.to_csv(paths[1], index=False)
        return paths

    def summary(self, keys: tuple[str, ...] | None = None) -> str:
        """A compact text table: the last checkpoint's headline metrics per layer."""
        if self.table.empty:
            return "no metrics"
        keys = keys or (
            ("nc1", "nc1_trace_ratio", "nc2_etf_distance", "nc3", "nc4", "accuracy")
            if self.task != "regression"
            else ("nrc1", "nrc2", "nrc3")
        )
        last = self.table[self.table["checkpoint"] == self.checkpoints[-1]]
        if self.layers:  # rows of other layers (e.g. --agop's linear inputs) are left out
            last = last[last["layer"].isin(self.layers)]
        if self.split is not None:
            last = last[last["split"] == self.split]
        wide = last.pivot_table(index="layer", columns="metric", values="value", sort=False)
        shown = wide[[k for k in keys if k in wide.columns] or list(wide.columns[:8])]
        split = f" ({self.split})" if self.split is not None and len(self.splits) > 1 else ""
        title = f"{self.run} — {self.checkpoints[-1]}{split}"
        return title + "\n" + str(shown.to_string(float_format="%.4g"))


GROUP_SUMMARY = ("accuracy", "nc1", "nc2_etf_distance", "etf_alignment", "prototype_distance")


def group_summary_text(analysis: Analysis, keys: tuple[str, ...] = GROUP_SUMMARY) -> str:
    """Per group, the headline metrics at the last checkpoint and last layer."""
    table = analysis.group_table
    rows = table[
        (table["checkpoint"] == analysis.checkpoints[-1]) & (table["layer"] == analysis.layers[-1])
    ]
    wide = rows.pivot_table(index="group", columns="metric", values="value", sort=False)
    shown = wide[[k for k in keys if k in wide.columns]]
    title = f"per group at {analysis.layers[-1]}"
    return title + "\n" + str(shown.to_string(float_format="%.4g"))


def terminal_phase_onset(log: Mapping[str, list[Any]] | None, table: pd.DataFrame) -> int | None:
    """First epoch with training accuracy 1 (zero training error; Papyan et al. 2020's TPT)."""
    if log and log.get("train_acc") and log.get("epoch"):
        for epoch, accuracy in zip(log["epoch"], log["train_acc"]):
            if accuracy is not None and accuracy >= 1.0:
                return int(epoch)
        return None
    train = table[(table["metric"] == "accuracy") & (table["split"] == "train")]
    reached = train[train["value"] >= 1.0].dropna(subset=["epoch"])
    return None if reached.empty else int(reached["epoch"].min())


@dataclass(frozen=True)
class RowKey:
    """Where a row of the table belongs: the run, checkpoint, its epoch and step, the split."""

    run: str
    checkpoint: str
    epoch: int | None
    step: int | None
    split: str | None


def metric_rows(
    key: RowKey, layer: str, values: Mapping[str, Any], group: str | None = None
) -> list[dict[str, Any]]:
    """One tidy row per metric of ``values`` at ``key`` and ``layer`` (and ``group``, for the
    per-group rows): the one place the table's rows are written.

    >>> metric_rows(RowKey("r", "c", 1, 1, "train"), "fc", {"nc1": 0.5})[0]["value"]
    0.5
    """
    base = {
        "run": key.run,
        "checkpoint": key.checkpoint,
        "epoch": key.epoch,
        "step": key.step,
        "layer": layer,
        "split": key.split,
    }
    extra = {} if group is None else {"group": group}
    return [{**base, **extra, "metric": k, "value": float(v)} for k, v in values.items()]


def result_rows(
    key: RowKey, layer: str, result: Result, group: str | None = None
) -> list[dict[str, Any]]:
    """The rows of one layer's result (every metric it holds)."""
    return metric_rows(key, layer, result.metrics, group)


@dataclass
class Measured:
    """One checkpoint (or entry, or file) measured: its table rows, each layer's result, and
    each layer's groups' own results (``groups[layer][group]``) — what every source collects
    per checkpoint before :meth:`fold_into` adds it to the run's."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, Result] = field(default_factory=dict)
    groups: dict[str, dict[str, CollapseResult]] = field(default_factory=dict)

    def add(self, key: RowKey, layer: str, result: Result) -> None:
        """A layer's result and its rows."""
        self.results[layer] = result
        self.rows += result_rows(key, layer, result)

    def add_group(self, key: RowKey, layer: str, group: str, result: CollapseResult) -> None:
        """One group's own result of a layer and its rows."""
        self.groups.setdefault(layer, {})[group] = result
        self.rows += result_rows(key, layer, result, group)

    def fold_into(
        self,
        checkpoint: str,
        rows: list[dict[str, Any]],
        results: dict[ResultKey, Result],
        parts: GroupParts,
    ) -> None:
        """Add these rows, results (keyed (checkpoint, layer)) and groups' results to a run's."""
        rows += self.rows
        results.update({(checkpoint, layer): r for layer, r in self.results.items()})
        for layer, per_group in self.groups.items():
            parts.setdefault((checkpoint, layer), {}).update(per_group)


def make_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The tidy table of ``rows`` (pooled rows: no group column)."""
    return _typed(pd.DataFrame(rows, columns=TABLE_COLUMNS))


def make_group_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The per-group table of ``rows`` (the table's columns and ``group``)."""
    return _typed(pd.DataFrame(rows, columns=GROUP_COLUMNS))


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    for column in ("epoch", "step"):
        table[column] = pd.array(table[column], dtype="Int64")
    return table
