"""The bundled demo runs show what they are meant to show; `ncviz demo` recreates them."""

from __future__ import annotations

from pathlib import Path

import pytest

import ncviz.sources.checkpoints
from ncviz.analysis import analyze
from ncviz.cli import main
from ncviz.demos.classification import MINORITY, checkpoint_epochs, demo_runs
from ncviz.load import read_checkpoint
from ncviz.load.runs import open_run, write_run_json

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
NC_LAYER = ["classifier:input"]


def _series(run: str, metric: str, **options) -> dict[int, float]:
    analysis = analyze(CHECKPOINTS / run, layers=NC_LAYER, **options)
    rows = analysis.table[analysis.table["metric"] == metric]
    return dict(zip(rows["epoch"].astype(int), rows["value"]))


@pytest.fixture(scope="module")
def mlp():
    return analyze(CHECKPOINTS / "digits-mlp", layers=NC_LAYER)


def test_every_shipped_run_has_its_checkpoints_and_log():
    from ncviz.demos.language import LANGUAGE_RUN, LanguageDemoSettings

    names = {settings.name for settings in demo_runs()}
    from ncviz.demos.environments import ENV_RUNS
    from ncviz.transfer import SWEEP_FILE, TRANSFER_SWEEP, default_sweep

    folders = {p.name for p in CHECKPOINTS.iterdir() if p.is_dir()}
    assert names | {LANGUAGE_RUN, TRANSFER_SWEEP, *ENV_RUNS} == folders
    sweep = CHECKPOINTS / TRANSFER_SWEEP
    assert len(list(sweep.glob("*.safetensors"))) == len(default_sweep())
    assert (sweep / SWEEP_FILE).is_file()
    language = open_run(CHECKPOINTS / LANGUAGE_RUN)
    assert language.task == "language"
    assert len(language.checkpoints) == len(LanguageDemoSettings().checkpoints)
    assert language.log["step"] == list(LanguageDemoSettings().checkpoints)
    for name in names:
        run = open_run(CHECKPOINTS / name)
        settings = next(s for s in demo_runs() if s.name == name)
        assert len(run.checkpoints) == (1 if settings.final_only else settings.checkpoints), name
        assert run.model is not None and run.data is not None and run.raw["optimizer"]["lr"] > 0
        assert len(run.log["train_loss"]) == run.raw["optimizer"]["epochs"] + 1

    def size(folders):
        return sum(f.stat().st_size for d in folders for f in d.rglob("*") if f.is_file())

    # the first release's runs stay under 25 MB, the runs of the environment/NCMC/DEQ
    # comparisons under 15 MB together
    second = ("digits-deq-", "digits-mlp-tanh-", "digits-longtail-")
    newer = [CHECKPOINTS / n for n in [*ENV_RUNS, *names] if n in ENV_RUNS or n.startswith(second)]
    assert len(newer) == 9
    older = [d for d in CHECKPOINTS.iterdir() if d.is_dir() and d not in newer]
    assert size(older) < 25 * 2**20
    assert size(newer) < 15 * 2**20


def test_digits_mlp_collapses_in_the_terminal_phase(mlp):
    table = mlp.table
    series = {m: dict(zip(g["epoch"].astype(int), g["value"])) for m, g in table.groupby("metric")}
    epochs = mlp.epochs()
    assert epochs[0] == 0 and epochs[-1] == 600
    onset = mlp.terminal_phase_onset()
    assert onset is not None and 0 < onset < 600
    onset_checkpoint = min(e for e in epochs if e >= onset)
    last = epochs[-1]
    assert series["accuracy"][last] == 1.0
    assert series["nc1"][last] <= series["nc1"][0] / 100
    assert series["nc1"][last] < series["nc1"][onset_checkpoint]
    assert series["nc4"][last] <= 0.01
    assert series["nc2_equiangle_means"][last] < series["nc2_equiangle_means"][onset_checkpoint]


def test_imbalance_produces_minority_collapse():
    final = {}
    for ratio in (1, 10, 50, 100):
        run = "digits-mlp-imbalanced" + ("" if ratio == 50 else f"-R{ratio}")
        final[ratio] = list(_series(run, "minority_cos").values())[-1]
    balanced = list(_series("digits-mlp", "minority_cos", minority_classes=MINORITY).values())[-1]
    assert final[50] > 0.1 and final[50] > balanced
    assert final[1] < final[10] < final[50] < final[100]


def test_regression_collapses_only_with_weight_decay():
    with_wd = {m: _series("digits-regression", m) for m in ("nrc1", "nrc2")}
    without = {m: _series("digits-regression-wd0", m) for m in ("nrc1", "nrc2")}
    for metric in ("nrc1", "nrc2"):
        start, end = with_wd[metric][0], with_wd[metric][600]
        assert end <= start / 10, metric
        assert without[metric][600] >= 3 * end, metric


def test_cnn_run_has_per_layer_metrics():
    analysis = analyze(CHECKPOINTS / "digits-cnn")
    # fc's output *is* the classifier input, so it is analysed once, under that name
    assert analysis.layers == ["features.0", "features.1", "classifier:input"]
    last = analysis.table[analysis.table["epoch"] == 300]
    accuracy = last[(last["metric"] == "accuracy")]["value"].item()
    assert accuracy == 1.0


def test_reanalysis_reuses_cached_results(monkeypatch):
    first = analyze(CHECKPOINTS / "digits-mlp-imbalanced", layers=NC_LAYER)

    def no_extraction(*args, **kwargs):
        raise AssertionError("a cached analysis must not extract again")

    monkeypatch.setattr(ncviz.sources.checkpoints, "extract", no_extraction)
    again = analyze(CHECKPOINTS / "digits-mlp-imbalanced", layers=NC_LAYER)
    assert again.table.equals(first.table)
    key = (first.checkpoints[-1], "classifier:input")
    assert again.results[key].metrics == first.results[key].metrics
    assert list(again.results[key].minority_classes) == [str(c) for c in MINORITY]
    for name, array in first.results[key].arrays.items():
        assert (again.results[key].arrays[name] == array).all(), name


def test_terminal_phase_onset_from_the_table_when_there_is_no_log(mlp):
    table = mlp.table
    onset = ncviz.analysis.terminal_phase_onset(None, table)
    accuracy = table[table["metric"] == "accuracy"]
    first = int(accuracy[accuracy["value"] >= 1.0]["epoch"].min())
    assert onset == first and ncviz.analysis.terminal_phase_onset({}, table.iloc[:0]) is None


def test_checkpoint_epochs_are_log_spaced_from_zero():
    epochs = checkpoint_epochs(600, 25)
    assert len(epochs) == 25 and epochs[0] == 0 and epochs[-1] == 600
    assert epochs == sorted(set(epochs))
    assert checkpoint_epochs(600, 2) == [0, 600]


def test_ncviz_demo_with_a_tiny_budget_writes_loadable_runs(tmp_path):
    assert main(["demo", "--out", str(tmp_path), "--epochs", "2", "--checkpoints", "3"]) == 0
    for settings in demo_runs():
        run = open_run(tmp_path / settings.name)
        assert len(run.checkpoints) == (1 if settings.final_only else 3)
        read_checkpoint(run.checkpoints[-1])
    analysis = analyze(tmp_path / "digits-cnn", layers=NC_LAYER, cache=False)
    assert set(analysis.epochs()) == {0, 1, 2}
    ncmc = tmp_path / "digits-longtail-ncmc"  # its fixed targets sit beside the checkpoints
    assert (ncmc / "centres.npy").is_file()
    assert analyze(ncmc, layers=NC_LAYER, cache=False).checkpoints[-1] == "epoch_0002.safetensors"


def test_the_catalog_lists_the_trained_runs_in_training_order():
    from ncviz.demos.catalog import RUN_ORDER

    assert [s.name for s in demo_runs()] == list(RUN_ORDER)


def test_relations_between_bundled_runs_come_from_their_run_json(tmp_path, monkeypatch):
    from ncviz.demos.catalog import comparison_partner, sweep_family

    assert comparison_partner("digits-deq-R50") == "digits-mlp-tanh-R50"
    assert comparison_partner("digits-env-aligned") == "digits-env-erm"
    assert comparison_partner("digits-mlp") is None
    assert sweep_family("digits-mlp-imbalanced-R10") == [
        "digits-mlp-imbalanced",
        "digits-mlp-imbalanced-R1",
        "digits-mlp-imbalanced-R10",
        "digits-mlp-imbalanced-R100",
    ]
    assert sweep_family("digits-mlp") == []
    # a name that looks like a sweep member but whose run.json says nothing is in no sweep
    monkeypatch.setenv("NCVIZ_DEMO_DIR", str(tmp_path))
    for name in ("m", "m-R10"):
        write_run_json(tmp_path / name, name=name)
    assert sweep_family("m-R10") == [] and comparison_partner("m") is None
    write_run_json(tmp_path / "m", name="m", sweep="s", partner="m-R10")
    write_run_json(tmp_path / "m-R10", name="m-R10", sweep="s")
    assert sweep_family("m-R10") == ["m", "m-R10"] and comparison_partner("m") == "m-R10"
