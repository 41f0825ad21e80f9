"""Which collapse statistic tracks generalisation across runs: rank correlations of a results table.

Wu & Papyan 2024 ("Linguistic Collapse", arXiv 2405.17767) trained 230 causal language models and
asked which collapse statistic of the last-layer token embeddings goes with validation loss. A
study table has one row per trained model; for every numeric column this module reports, against
a target column (e.g. ``val_loss``):

* ``rho`` — Spearman's rank correlation (scipy.stats.spearmanr, ties averaged),
* ``rho_low``, ``rho_high`` — a percentile bootstrap 95% interval of ρ (rows resampled with
  replacement, 2,000 resamples, fixed seed),
* ``pearson`` — Pearson's r of the raw values, and ``n`` — rows where both are finite.

Tables are CSV or Parquet: a wide table (the authors' results, one row per model), or ncviz's own
tidy metrics tables (``ncviz analyze`` output, one row per run × step × layer × split × metric),
which :func:`runs_table` turns into one row per run. ``derive("agreement=hits/(hits+misses)")``
adds columns from arithmetic on others, evaluated without ``eval`` (only numbers, column names,
+ − × ÷ ** and log/log10/exp/sqrt/abs are accepted). Model names such as ``02x0256_05L@1`` are
split into depth, width, epochs, variant and seed by an editable regular expression.
"""

from __future__ import annotations

import ast
import io
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ncviz.errors import InputError

#: ``<depth>x<width>_<epochs><variant>@<seed>``, the Linguistic Collapse model names.
DEFAULT_NAME_PATTERN = (
    r"(?P<depth>\d+)x(?P<width>\d+)_(?P<epochs>\d+)(?P<variant>[A-Za-z]*)@(?P<seed>\d+)"
)
CORRELATION_COLUMNS = ("metric", "rho", "rho_low", "rho_high", "pearson", "n")
PAPER = "Wu & Papyan 2024, Linguistic Collapse (arXiv 2405.17767)"
#: The authors' results table (230 TinyStories models), shipped: see ncviz/data/README.md.
LINGUISTIC_COLLAPSE_TABLE = Path(__file__).parent / "data" / "linguistic-collapse-2024_10_24.csv"
TIDY_COLUMNS = {"run", "layer", "metric", "value"}

_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "log": np.log,
    "log10": np.log10,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "abs": np.abs,
}
_OPERATORS: dict[type, Callable] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV or Parquet table; ncviz tidy metrics tables are returned as they are (see
    :func:`runs_table`)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; give a .csv or .parquet table.")
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except Exception as error:  # a parser's own message names the line or column
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(
            f"{path.name}: not a readable table ({first}); give a .csv or .parquet file."
        ) from None


#: Largest uploaded study table parsed in the dashboard (a results table is kilobytes).
MAX_TABLE_ROWS = 1_000_000
MAX_TABLE_UNPACKED = 200 * 2**20
MAX_TABLE_BYTES = 50 * 2**20


def _check_parquet_size(name: str, data: bytes) -> None:
    """Refuse a Parquet file whose footer declares more than ``MAX_TABLE_ROWS`` rows or more
    than ``MAX_TABLE_UNPACKED`` bytes once decoded — before decoding it: run-length encoding
    packs a billion zeros into kilobytes (a bomb for the server that reads study tables)."""
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(io.BytesIO(data)).metadata
    unpacked = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    if metadata.num_rows > MAX_TABLE_ROWS or unpacked > MAX_TABLE_UNPACKED:
        raise InputError(
            f"{name}: declares {metadata.num_rows:,} rows ({unpacked / 2**20:,.0f} MB decoded); "
            f"study tables are limited to {MAX_TABLE_ROWS:,} rows and "
            f"{MAX_TABLE_UNPACKED // 2**20} MB (one row per run)."
        )


def read_table_bytes(name: str, data: bytes) -> pd.DataFrame:
    """An uploaded CSV or Parquet table (``name`` gives the format), at most 50 MB."""
    if len(data) > MAX_TABLE_BYTES:
        raise InputError(
            f"{name}: {len(data) / 2**20:.0f} MB; study tables are limited to "
            f"{MAX_TABLE_BYTES // 2**20} MB (one row per run)."
        )
    try:
        if name.lower().endswith(".parquet"):
            _check_parquet_size(name, data)
            return pd.read_parquet(io.BytesIO(data))
        return pd.read_csv(io.BytesIO(data))
    except InputError:
        raise
    except Exception as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(
            f"{name}: not a readable table ({first}); upload a .csv or .parquet file."
        ) from None


def stack_runs(
    tables: Sequence[pd.DataFrame], *, layer: str | None = None, split: str | None = None
) -> pd.DataFrame:
    """One row per run from wide result tables and/or ncviz metrics tables (stacked)."""
    frames = [runs_table(t, layer, split) if is_tidy(t) else t for t in tables]
    if not frames:
        raise InputError("no table given; upload or name at least one.")
    # ncviz's runs sit under the name column of the other tables (the authors' "model")
    names = {name_column_of(t) for t, f in zip(tables, frames) if f is t} - {None, "run"}
    if len(names) == 1:
        name = names.pop()
        frames = [
            f.rename(columns={"run": name}) if f is not t and name not in f else f
            for t, f in zip(tables, frames)
        ]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def runs_frame(
    tables: Mapping[str, pd.DataFrame],
    logs: Mapping[str, Mapping[str, Sequence[object]]] | None = None,
    *,
    layer: str | None = None,
    split: str | None = None,
) -> pd.DataFrame:
    """One row per analysed run (name → its tidy metrics table): the metrics of its last
    checkpoint (:func:`runs_table`), then the last value of every numeric column of its training
    log (``val_loss`` as ``Recorder.log`` wrote it; ``log_<name>`` where a metric has that name),
    so that a study can correlate collapse with what the runs logged.

    >>> table = pd.DataFrame({"run": "r", "layer": "fc", "metric": ["nc1"], "value": [0.5]})
    >>> runs_frame({"lr0.1": table}, {"lr0.1": {"epoch": [0, 1], "val_loss": [2.0, 1.5]}})
         run  nc1  val_loss
    0  lr0.1  0.5       1.5
    """
    if not tables:
        raise InputError("no run given; pick at least one.")
    frames = [runs_table(table.assign(run=name), layer, split) for name, table in tables.items()]
    frame = pd.concat(frames, ignore_index=True)
    finals: dict[str, dict[str, float]] = {}
    for name, log in (logs or {}).items():
        for column, values in log.items():
            numbers = [
                float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)
            ]
            if column not in ("epoch", "step") and numbers:
                key = f"log_{column}" if column in frame.columns else column
                finals.setdefault(key, {})[name] = numbers[-1]
    for key, by_run in finals.items():
        frame[key] = frame["run"].map(by_run)
    return frame


def is_tidy(frame: pd.DataFrame) -> bool:
    """True for ncviz's own metrics tables (one row per run × step × layer × split × metric)."""
    return TIDY_COLUMNS <= set(frame.columns)


def runs_table(
    tidy: pd.DataFrame, layer: str | None = None, split: str | None = None
) -> pd.DataFrame:
    """One row per run from a tidy metrics table: each run's last checkpoint, at ``layer`` (default:
    the last layer of the table's order), metrics of ``split`` (default the first split) as
    columns, and the other splits' metrics as ``<split>_<metric>`` columns."""
    if tidy.empty:
        raise InputError("the metrics table is empty; analyse some runs first.")
    layers = list(dict.fromkeys(tidy["layer"]))
    layer = layers[-1] if layer is None else layer
    if layer not in layers:
        raise InputError(f"layer {layer!r} is not in the table; its layers: {', '.join(layers)}.")
    rows = tidy[tidy["layer"] == layer]
    splits = list(dict.fromkeys(rows["split"])) if "split" in rows else [None]
    split = splits[0] if split is None else split
    if "checkpoint" in rows:  # tables list checkpoints in training order: keep each run's last
        last = rows.groupby("run")["checkpoint"].transform("last")
        rows = rows[rows["checkpoint"] == last]
    elif "step" in rows:
        last = rows.groupby("run")["step"].transform("max")
        rows = rows[rows["step"] == last]
    if "split" in rows:
        names = np.where(
            rows["split"] == split, rows["metric"], rows["split"] + "_" + rows["metric"]
        )
    else:
        names = rows["metric"]
    wide = rows.assign(column=names).pivot_table(
        index="run", columns="column", values="value", aggfunc="last"
    )
    wide.columns.name = None
    wide = wide.reset_index()
    if "convention" in rows:  # whose definitions the columns follow, one per run
        wide["convention"] = wide["run"].map(rows.groupby("run")["convention"].last())
    return wide


def evaluate(expression: str, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Value of an arithmetic ``expression`` over named columns, parsed with ``ast`` (no eval).

    >>> import numpy as np
    >>> columns = {"hits": np.array([1.0, 3.0]), "misses": np.array([3.0, 1.0])}
    >>> evaluate("hits / (hits + misses)", columns)
    array([0.25, 0.75])
    """
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        raise InputError(f"cannot read the expression {expression!r}; use e.g. a/(a+b).") from None

    def value(node: ast.AST) -> np.ndarray | float:
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in columns:
                raise InputError(
                    f"{expression!r}: no column {node.id!r}; columns: "
                    f"{', '.join(sorted(columns)[:12])}{'…' if len(columns) > 12 else ''}."
                )
            return np.asarray(columns[node.id], dtype=np.float64)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.operand))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _FUNCTIONS
            and len(node.args) == 1
            and not node.keywords
        ):
            return _FUNCTIONS[node.func.id](value(node.args[0]))
        raise InputError(
            f"{expression!r}: only numbers, column names, + - * / ** and "
            f"{', '.join(_FUNCTIONS)} are allowed."
        )

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.asarray(value(tree), dtype=np.float64)


def derive(frame: pd.DataFrame, expressions: Sequence[str]) -> pd.DataFrame:
    """A copy of ``frame`` with a column per ``"name=expression"`` (later ones may use earlier)."""
    out = frame.copy()
    for text in expressions:
        name, sep, expression = text.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier() or not expression.strip():
            raise InputError(
                f"--derive {text!r}: write name=expression, e.g. agreement=hits/(hits+misses)."
            )
        numeric = {
            column: out[column].to_numpy(dtype=np.float64)
            for column in out.columns
            if isinstance(column, str) and pd.api.types.is_numeric_dtype(out[column])
        }
        out[name] = np.broadcast_to(evaluate(expression.strip(), numeric), (len(out),))
    return out


def name_attributes(names: pd.Series, pattern: str = DEFAULT_NAME_PATTERN) -> pd.DataFrame:
    """The named groups of ``pattern`` matched in each name (numbers where they parse); rows whose
    name does not match are NaN.

    >>> import pandas as pd
    >>> parts = name_attributes(pd.Series(["02x0256_05L@1", "not a model"]))
    >>> [str(value) for value in parts.iloc[0]], int(parts["width"].isna().sum())
    (['2', '256', '5', 'L', '1'], 1)
    """
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise InputError(f"the name pattern is not a regular expression ({error}).") from None
    if not compiled.groupindex:
        raise InputError(
            "the name pattern has no named groups; write e.g. (?P<width>\\d+) for each attribute."
        )
    parts = names.astype(str).str.extract(compiled)
    for column in parts.columns:
        numbers = pd.to_numeric(parts[column], errors="coerce")
        if numbers.notna().sum() == parts[column].notna().sum() and parts[column].notna().any():
            parts[column] = (
                numbers.astype("Int64") if (numbers.dropna() % 1 == 0).all() else numbers
            )
    return parts


def numeric_columns(frame: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """Numeric columns with at least two distinct finite values, in table order."""
    out = []
    for column in frame.columns:
        if column in exclude or not pd.api.types.is_numeric_dtype(frame[column]):
            continue
        values = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
        finite = values[np.isfinite(values)]
        if len(np.unique(finite)) >= 2:
            out.append(str(column))
    return out


def _bootstrap_spearman(
    x: np.ndarray, y: np.ndarray, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Spearman ρ of ``resamples`` row resamples (ranks recomputed in each, ties averaged)."""
    index = rng.integers(0, len(x), size=(resamples, len(x)))
    rx = stats.rankdata(x[index], axis=1)
    ry = stats.rankdata(y[index], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denominator = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (rx * ry).sum(axis=1) / denominator


def correlations(
    frame: pd.DataFrame,
    against: str,
    metrics: Sequence[str] | None = None,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Spearman ρ (with a bootstrap interval), Pearson r and n of every metric column against
    ``against``; columns :data:`CORRELATION_COLUMNS`, rows in the order of ``metrics``.

    >>> import pandas as pd
    >>> table = pd.DataFrame({"loss": [3.0, 2.5, 2.0, 1.5], "cdnv": [0.4, 0.3, 0.35, 0.1]})
    >>> row = correlations(table, "loss", resamples=200).iloc[0]
    >>> row["metric"], round(float(row["rho"]), 3), int(row["n"])
    ('cdnv', 0.8, 4)
    """
    if against not in frame.columns:
        raise InputError(
            f"no column {against!r} to correlate against; columns: "
            f"{', '.join(map(str, frame.columns[:15]))}."
        )
    if not pd.api.types.is_numeric_dtype(frame[against]):
        raise InputError(f"column {against!r} is not numeric; pick a numeric target.")
    if metrics is None:
        metrics = [column for column in numeric_columns(frame) if column != against]
    target = frame[against].to_numpy(dtype=np.float64, na_value=np.nan)
    rng = np.random.default_rng(seed)
    tail = (1.0 - confidence) / 2.0
    rows = []
    for metric in metrics:
        values = frame[metric].to_numpy(dtype=np.float64, na_value=np.nan)
        both = np.isfinite(values) & np.isfinite(target)
        x, y = values[both], target[both]
        n = int(both.sum())
        if n < 3 or len(np.unique(x)) < 2 or len(np.unique(y)) < 2:
            rows.append((metric, math.nan, math.nan, math.nan, math.nan, n))
            continue
        rho = float(stats.spearmanr(x, y).statistic)
        pearson = float(stats.pearsonr(x, y).statistic)
        boot = _bootstrap_spearman(x, y, resamples, rng)
        low, high = np.nanquantile(boot, [tail, 1.0 - tail])
        rows.append((metric, rho, float(low), float(high), pearson, n))
    return pd.DataFrame(rows, columns=list(CORRELATION_COLUMNS))


def spans_decades(values: pd.Series, decades: float = 2.0) -> bool:
    """True when all values are positive and max/min exceeds 10**decades (use a log axis)."""
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    return bool(
        len(numbers) and (numbers > 0).all() and numbers.max() / numbers.min() > 10**decades
    )


@dataclass
class Study:
    """A study table (one row per run, derived and name-attribute columns added) and its
    correlations with the target."""

    frame: pd.DataFrame
    against: str
    correlations: pd.DataFrame
    name_column: str | None = None
    attributes: list[str] = field(default_factory=list)

    def save(self, out: str | Path) -> list[Path]:
        """``correlations.csv`` (columns metric, rho, rho_low, rho_high, pearson, n, kind:
        "statistic" or "outcome") and ``study.csv`` (the table the correlations were computed
        from) in ``out``."""
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / "correlations.csv", folder / "study.csv"]
        self.correlations.to_csv(paths[0], index=False)
        self.frame.to_csv(paths[1], index=False)
        return paths

    def summary(self, top: int = 10) -> str:
        rows = self.correlations.dropna(subset=["rho"])
        if "kind" in rows:  # outcomes (other losses, accuracies) are not ranked as statistics
            rows = rows[rows["kind"] != "outcome"]
        rows = rows.reindex(rows["rho"].abs().sort_values(ascending=False).index).head(top)
        lines = [f"Spearman ρ with {self.against} ({len(self.frame)} runs; {PAPER}):"]
        width = max((len(m) for m in rows["metric"]), default=6)
        for row in rows.itertuples():
            lines.append(
                f"  {row.metric:<{width}}  ρ = {row.rho:+.3f}  [{row.rho_low:+.3f}, "
                f"{row.rho_high:+.3f}]  r = {row.pearson:+.3f}  n = {row.n}"
            )
        return "\n".join(lines)


def load_study(
    paths: Sequence[str | Path], *, layer: str | None = None, split: str | None = None
) -> pd.DataFrame:
    """One row per run from table files (see :func:`stack_runs`)."""
    return stack_runs([read_table(path) for path in paths], layer=layer, split=split)


def name_column_of(frame: pd.DataFrame) -> str | None:
    """The column naming each run: ``model`` or ``run`` if present, else the first text column."""
    for name in ("model", "run", "name"):
        if name in frame.columns:
            return name
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    return str(text[0]) if text else None


def run_study(
    frame: pd.DataFrame,
    against: str,
    *,
    derived: Sequence[str] = (),
    pattern: str | None = DEFAULT_NAME_PATTERN,
    resamples: int = 2000,
) -> Study:
    """Derive columns, split run names into attributes, and correlate every metric column with
    ``against`` (attributes parsed from the names are not correlated, only used for colour)."""
    frame = derive(frame, derived)
    name = name_column_of(frame)
    attributes: list[str] = []
    if name is not None and pattern:
        parts = name_attributes(frame[name], pattern)
        if parts.notna().any().any():
            attributes = [c for c in parts.columns if c not in frame.columns]
            frame = pd.concat([frame, parts[attributes]], axis=1)
    metrics = numeric_columns(frame, exclude=[against, *attributes])
    table = correlations(frame, against, metrics, resamples=resamples)
    table["kind"] = ["outcome" if is_outcome(m) else "statistic" for m in table["metric"]]
    return Study(frame, against, table, name, attributes)


#: Parts of a column name that mark a training outcome (what a statistic may predict), not a
#: collapse statistic: losses, accuracies, perplexities, NC4's raw hit and miss counts (not the
#: ETF or dual "errors", which are statistics).
OUTCOME_MARKERS = ("loss", "acc", "perplex", "ppl")
OUTCOME_COLUMNS = ("hits", "misses")


def is_outcome(column: str) -> bool:
    """Whether ``column`` is a training outcome rather than a collapse statistic.

    >>> [is_outcome(c) for c in ("val_loss", "train_acc", "perplexity", "hits", "cdnv", "nc1")]
    [True, True, True, True, False, False]
    """
    name = str(column).lower()
    return name in OUTCOME_COLUMNS or any(marker in name for marker in OUTCOME_MARKERS)


def imbalance_ratio(train_data: Mapping | str | None) -> float:
    """The imbalance ratio R of a run's training data spec (``step:K:R`` or ``longtail:R``),
    1 for balanced data.

    >>> imbalance_ratio({"source": "builtin:digits", "imbalance": "step:5:100"})
    100.0
    """
    from ncviz.load.datasets import DataSpec, _parse_imbalance

    if not train_data:
        return 1.0
    profile = DataSpec.parse(train_data).imbalance
    return float(_parse_imbalance(profile)[1][-1]) if profile else 1.0


def imbalance_sweep(
    folder: Path, runs: Sequence[str], layer: str, metrics: Sequence[str]
) -> pd.DataFrame:
    """One row per run of a sweep: its imbalance ratio R (from run.json ``train_data``) and
    ``metrics`` at ``layer`` of its last checkpoint (Fang et al. 2021, Fig. 3: minority collapse
    against R), sorted by R. Analyses come from the result cache after the first time."""
    from ncviz.analysis import analyze
    from ncviz.load.runs import open_run

    rows = []
    for name in runs:
        analysis = analyze(folder / name)
        values = analysis.metrics_at(analysis.checkpoints[-1], layer)
        ratio = imbalance_ratio(open_run(folder / name).raw.get("train_data"))
        rows.append({"run": name, "R": ratio, **{m: values.get(m, math.nan) for m in metrics}})
    return pd.DataFrame(rows).sort_values("R", kind="stable").reset_index(drop=True)


def train_vs_test(
    tables: Mapping[str, pd.DataFrame], checkpoint: str, layer: str, metrics: Sequence[str]
) -> pd.DataFrame:
    """``metrics`` (rows) of one checkpoint and layer on each split (columns, e.g. train and
    test), from tidy tables (split name → table).

    >>> row = {"checkpoint": "c", "layer": "l", "metric": "nc1"}
    >>> tables = {"train": pd.DataFrame([{**row, "value": 0.1}]),
    ...           "test": pd.DataFrame([{**row, "value": 0.4}])}
    >>> train_vs_test(tables, "c", "l", ["nc1"]).loc["nc1"].tolist()
    [0.1, 0.4]
    """
    columns = {}
    for split, table in tables.items():
        rows = table[(table["checkpoint"] == checkpoint) & (table["layer"] == layer)]
        values = dict(zip(rows["metric"], rows["value"]))
        columns[split] = [values.get(m, math.nan) for m in metrics]
    frame = pd.DataFrame(columns, index=pd.Index(list(metrics), name="metric"))
    return frame.dropna(how="all")
