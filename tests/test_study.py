"""The study view: rank correlations across runs, checked against independent computations.

The authors' table (Wu & Papyan 2024) is checked against pandas' own Spearman and Pearson
correlations, the bootstrap against a plain loop over scipy.stats.spearmanr, and the expression
evaluator against hostile input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ncviz.cli import main
from ncviz.errors import InputError
from ncviz.study import (
    CORRELATION_COLUMNS,
    LINGUISTIC_COLLAPSE_TABLE,
    correlations,
    derive,
    evaluate,
    load_study,
    name_attributes,
    read_table_bytes,
    run_study,
    runs_frame,
    runs_table,
)

SHARED_TABLE = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / LINGUISTIC_COLLAPSE_TABLE.name
)


@pytest.mark.skipif(not SHARED_TABLE.is_file(), reason="no shared data beside this checkout")
def test_the_bundled_table_is_the_authors_table():
    assert LINGUISTIC_COLLAPSE_TABLE.read_bytes() == SHARED_TABLE.read_bytes()


def test_authors_table_correlations_equal_pandas_spearman_and_pearson(tmp_path):
    code = main(
        [
            "study",
            str(LINGUISTIC_COLLAPSE_TABLE),
            "--against",
            "val_loss",
            "--derive",
            "agreement=hits/(hits+misses)",
            "--bootstrap",
            "200",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    written = pd.read_csv(tmp_path / "correlations.csv")
    assert tuple(written.columns) == (*CORRELATION_COLUMNS, "kind")
    kinds = dict(zip(written["metric"], written["kind"]))
    assert {kinds[c] for c in ("val_acc", "hits", "misses")} == {"outcome"}
    assert {kinds[c] for c in ("cdnv", "etf_error", "agreement")} == {"statistic"}
    table = pd.read_csv(LINGUISTIC_COLLAPSE_TABLE)
    table["agreement"] = table["hits"] / (table["hits"] + table["misses"])
    numeric = table.drop(columns=["model"])
    spearman = numeric.corr(method="spearman")["val_loss"]
    pearson = numeric.corr()["val_loss"]
    assert len(written) == 23  # 22 numeric columns besides val_loss, and agreement
    for row in written.itertuples():
        assert row.rho == pytest.approx(spearman[row.metric], abs=1e-12), row.metric
        assert row.pearson == pytest.approx(pearson[row.metric], abs=1e-12), row.metric
        assert row.rho_low <= row.rho <= row.rho_high and row.n == 230
    by_metric = written.set_index("metric")["rho"]
    # the study's headline, read off the table itself: NC4 agreement and CDNV track loss
    assert round(by_metric["agreement"], 2) == -0.96 and round(by_metric["cdnv"], 2) == 0.94
    assert "width" not in by_metric  # name attributes colour the plots, they are not metrics


def test_bootstrap_interval_equals_a_plain_resampling_loop():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(40)
    y = x + rng.standard_normal(40)
    y[::7] = y[0]  # ties, re-ranked in every resample
    table = pd.DataFrame({"metric": x, "target": y})
    got = correlations(table, "target", resamples=300, seed=11).iloc[0]
    draws = np.random.default_rng(11).integers(0, 40, size=(300, 40))
    boot = [stats.spearmanr(x[index], y[index]).statistic for index in draws]
    low, high = np.nanquantile(boot, [0.025, 0.975])
    assert got["rho_low"] == pytest.approx(low, abs=1e-12)
    assert got["rho_high"] == pytest.approx(high, abs=1e-12)
    assert got["rho"] == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_monotone_relations_give_rho_plus_and_minus_one_and_nan_rows_are_skipped():
    table = pd.DataFrame(
        {
            "loss": [1.0, 2.0, 3.0, 4.0, np.nan],
            "up": [1.0, 10.0, 100.0, 1000.0, 5.0],
            "down": [4.0, 3.0, 2.0, 1.0, 0.0],
            "constant": [1.0] * 5,
        }
    )
    result = correlations(table, "loss").set_index("metric")
    assert result.loc["up", "rho"] == 1.0 and result.loc["down", "rho"] == -1.0
    assert result.loc["up", "n"] == 4
    assert "constant" not in result.index  # nothing to rank


def test_expressions_are_arithmetic_only():
    columns = {"a": np.array([1.0, 4.0]), "b": np.array([1.0, 2.0])}
    np.testing.assert_allclose(evaluate("log(a) - 2*log(b) + sqrt(a)**2", columns), [1.0, 4.0])
    for hostile in (
        "__import__('os').system('true')",
        "a.__class__",
        "open('x')",
        "[a for a in b]",
        "a if b else a",
        "'text'",
    ):
        with pytest.raises(InputError, match=r"only numbers|cannot read"):
            evaluate(hostile, columns)
    with pytest.raises(InputError, match="no column 'c'"):
        evaluate("a / c", columns)
    with pytest.raises(InputError, match="name=expression"):
        derive(pd.DataFrame(columns), ["a/b"])


def test_model_names_split_into_attributes_with_an_editable_pattern():
    names = pd.Series(["12x0768_10d@3", "01x0064_01L@0", "odd-name"])
    parts = name_attributes(names)
    assert parts["depth"].tolist()[:2] == [12, 1] and parts["width"].tolist()[:2] == [768, 64]
    assert parts["variant"].tolist()[:2] == ["d", "L"] and parts.iloc[2].isna().all()
    custom = name_attributes(pd.Series(["resnet-w4-lr0.1"]), r"w(?P<width>\d+)-lr(?P<lr>[\d.]+)")
    assert custom.iloc[0].tolist() == [4, 0.1]
    with pytest.raises(InputError, match="regular expression"):
        name_attributes(names, "(unclosed")
    with pytest.raises(InputError, match="named groups"):
        name_attributes(names, r"\d+")


def test_ncviz_metrics_tables_become_one_row_per_run(tmp_path):
    rows = []
    for run, accuracy in (("a", 0.5), ("b", 0.9)):
        for checkpoint, scale in (("epoch_1", 2.0), ("epoch_9", 1.0)):
            for split, shift in (("train", 0.0), ("test", 0.1)):
                for layer in ("blocks.0", "classifier:input"):
                    rows += [
                        (run, checkpoint, layer, split, "nc1", scale * accuracy + shift),
                        (run, checkpoint, layer, split, "accuracy", accuracy - shift),
                    ]
    tidy = pd.DataFrame(rows, columns=["run", "checkpoint", "layer", "split", "metric", "value"])
    wide = runs_table(tidy).set_index("run")
    assert wide.loc["a", "nc1"] == 0.5 and wide.loc["b", "test_accuracy"] == pytest.approx(0.8)
    assert runs_table(tidy, split="test").set_index("run").loc["a", "train_nc1"] == 0.5
    with pytest.raises(InputError, match="layer 'fc'"):
        runs_table(tidy, layer="fc")
    tidy.to_parquet(tmp_path / "metrics.parquet")
    study = run_study(load_study([tmp_path / "metrics.parquet"]), "test_accuracy", resamples=50)
    assert study.name_column == "run" and set(study.correlations["metric"]) >= {"nc1"}


def test_analysed_runs_become_rows_with_their_logs_final_values():
    """Study's "Runs of this server": each run named as picked (not as its table says), the last
    checkpoint's metrics, the last logged number of each column (None and bools skipped), a log
    column named like a metric kept apart as log_<name>, NaN where a run did not log it."""

    def tidy(nc1_by_epoch):
        return pd.DataFrame(
            [("same-name", f"epoch_{e}", "fc", "nc1", v) for e, v in nc1_by_epoch.items()],
            columns=["run", "checkpoint", "layer", "metric", "value"],
        )

    frame = runs_frame(
        {"sweep/lr0.1": tidy({1: 3.0, 9: 0.5}), "sweep/lr0.01": tidy({1: 4.0, 9: 2.0})},
        {
            "sweep/lr0.1": {"epoch": [1, 9], "val_loss": [2.0, 1.25], "nc1": [7.0, 8.0]},
            "sweep/lr0.01": {"epoch": [1, 9], "val_loss": [2.5, None], "flag": [True, False]},
        },
    ).set_index("run")
    assert list(frame.index) == ["sweep/lr0.1", "sweep/lr0.01"]
    assert frame["nc1"].tolist() == [0.5, 2.0]
    assert frame["val_loss"].tolist() == [1.25, 2.5]
    assert frame.loc["sweep/lr0.1", "log_nc1"] == 8.0 and np.isnan(
        frame.loc["sweep/lr0.01", "log_nc1"]
    )
    assert "flag" not in frame and "epoch" not in frame
    with pytest.raises(InputError, match="no run"):
        runs_frame({})


def test_outcomes_are_kept_apart_from_the_collapse_statistics():
    from ncviz import plots
    from ncviz.study import run_study

    frame = pd.DataFrame(
        {
            "run": ["a", "b", "c", "d"],
            "val_loss": [3.0, 2.5, 2.0, 1.5],
            "perplex": [20.0, 12.0, 7.0, 4.5],
            "cdnv": [0.4, 0.3, 0.35, 0.1],
            "etf_error": [0.9, 0.8, 0.7, 0.5],
        }
    )
    study = run_study(frame, "val_loss", pattern=None, resamples=100)
    kinds = dict(zip(study.correlations["metric"], study.correlations["kind"]))
    assert kinds == {"perplex": "outcome", "cdnv": "statistic", "etf_error": "statistic"}
    figure = plots.correlation_figure(study.correlations, "val_loss")
    assert set(figure.data[0].y) == {"cdnv", "etf_error"}  # perplexity is not ranked
    assert "perplex" not in study.summary()


def test_a_parquet_bomb_is_refused_from_its_footer():
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 30_000_000  # zeros: run-length encoded into a few kilobytes
    buffer = io.BytesIO()
    pq.write_table(pa.table({"nc1": pa.array(np.zeros(rows, np.int8))}), buffer)
    data = buffer.getvalue()
    assert len(data) < 1_000_000
    with pytest.raises(InputError, match=r"declares 30,000,000 rows .* limited to 1,000,000 rows"):
        read_table_bytes("runs.parquet", data)
    small = io.BytesIO()
    pq.write_table(pa.table({"run": ["a", "b"], "nc1": [0.5, 0.1]}), small)
    assert read_table_bytes("runs.parquet", small.getvalue())["nc1"].tolist() == [0.5, 0.1]
    with pytest.raises(InputError, match="not a readable table"):
        read_table_bytes("runs.parquet", data[:200])  # a cut file: its footer is gone
