"""The Recorder: exact statistics from the user's own loop, written as a run every reader opens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import ncviz
from ncviz.analysis import analyze, layer_features
from ncviz.cli import main
from ncviz.errors import DataError, OptionError
from ncviz.load.recorded import open_recorded
from tests.metrics.naive_reference import naive_metrics
from tests.record.conftest import OddNet, train_epoch

KEYS = ("nc1", "nc2_etf_distance", "nc3", "nc4", "cdnv", "accuracy")
LAYERS = ["stem", "neck.act", "penult"]


def loader_of(x, y, batch_size=37, shuffle=True):
    dataset = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle)


def full_features(model: nn.Module, module: nn.Module, x: torch.Tensor, wants_input: bool):
    """The layer's features on all of x at once, from a hook written here (not ncviz's)."""
    kept = []
    if wants_input:
        handle = module.register_forward_pre_hook(lambda _m, args: kept.append(args[0]))
    else:
        handle = module.register_forward_hook(lambda _m, _a, out: kept.append(out))
    model.eval()
    with torch.no_grad():
        model(x)
    handle.remove()
    return kept[0].reshape(len(x), -1).double().numpy()


@pytest.fixture(scope="module")
def recorded(digits, tmp_path_factory):
    """OddNet trained 4 epochs; captured after epochs 0, 1 and 3 on train, 3 on a test split.
    Returns the folder and the independent reference metrics per (step, layer)."""
    x, y = digits
    folder = tmp_path_factory.mktemp("runs") / "odd"
    torch.manual_seed(1)
    model = OddNet()
    rec = ncviz.Recorder(folder, layers=LAYERS, classifier="tail")
    reference = {}
    for epoch in range(4):
        train_epoch(model, x, y, seed=epoch)
        rec.log(epoch, loss=1.0 / (epoch + 1), train_acc=0.5 + epoch / 10)
        if epoch in (0, 1, 3):
            rec.capture(model, loader_of(x, y), step=epoch)
            modules = dict(model.named_modules())
            for layer in [*LAYERS, "tail:input"]:
                name, _, part = layer.partition(":")
                h = full_features(model, modules[name], x, part == "input")
                w = b = None
                if layer == "tail:input":
                    w, b = model.tail.weight.detach().numpy(), model.tail.bias.detach().numpy()
                reference[(epoch, layer)] = naive_metrics(h, y.numpy(), w, b)
    rec.capture(model, loader_of(x[:300], y[:300], shuffle=False), step=3, split="test")
    rec.event(2, "lr drop")
    rec.close()
    return folder, reference, model


def test_cli_table_equals_an_independent_hook_computation(recorded, tmp_path, capsys):
    folder, reference, _ = recorded
    assert main(["analyze", str(folder), "--out", str(tmp_path / "out")]) == 0
    table = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    train = table[table["split"] == "train"]
    # one row per (step, layer, metric), steps as captured, layers in the order recorded
    assert sorted(set(train["step"])) == [0, 1, 3]
    assert list(dict.fromkeys(train["layer"])) == [*LAYERS, "tail:input"]
    assert not train.duplicated(["step", "layer", "metric"]).any()
    for (step, layer), expected in reference.items():
        rows = train[(train["step"] == step) & (train["layer"] == layer)]
        got = dict(zip(rows["metric"], rows["value"]))
        for key in KEYS:
            if key in expected:
                assert got[key] == pytest.approx(expected[key], rel=1e-6, abs=1e-9), (step, layer)
    assert set(table[table["split"] == "test"]["step"]) == {3}
    assert "odd" in capsys.readouterr().out


def test_entry_metrics_equal_collapse_metrics_on_the_full_features(recorded, digits):
    folder, _, model = recorded
    x, y = digits
    analysis = analyze(folder)
    h = full_features(model, model.tail, x, wants_input=True)
    expected = ncviz.collapse_metrics(
        h, y, model.tail.weight.detach(), model.tail.bias.detach(), global_mean="sample"
    )
    got = analyze(folder, global_mean="sample").metrics_at("step 3", "tail:input")
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert analysis.checkpoints == ["step 0", "step 1", "step 3"]
    assert analysis.epochs() == [0, 1, 3]


def test_a_recorded_run_reads_in_any_convention(recorded, digits, tmp_path):
    folder, _, model = recorded
    x, y = digits
    h = full_features(model, model.tail, x, wants_input=True)
    w, b = model.tail.weight.detach(), model.tail.bias.detach()
    for name in ("lc2024", "rfm2024"):
        expected = ncviz.collapse_metrics(h, y, w, b, convention=name)
        analysis = analyze(folder, convention=name)
        got = analysis.metrics_at("step 3", "tail:input")
        assert list(got) == list(expected) and analysis.convention == name
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (name, key)
    # a Recorder asked for a convention returns that paper's rows from capture()
    rec = ncviz.Recorder(tmp_path / "lc", layers=["penult"], classifier="tail", convention="lc2024")
    rows = rec.capture(model, loader_of(x, y), step=0)["tail:input"]
    assert rows["hits"] + rows["misses"] == len(y)
    assert rows["cdnv"] == pytest.approx(
        ncviz.collapse_metrics(h, y, w, b, convention="lc2024")["cdnv"], rel=1e-9
    )
    rec.close()


def test_test_split_is_its_own_view(recorded, digits):
    folder, _, model = recorded
    x, y = digits
    test = analyze(folder).for_split("test")
    assert test.checkpoints == ["step 3"] and set(test.table["split"]) == {"test"}
    h = full_features(model, model.tail, x[:300], wants_input=True)
    expected = ncviz.collapse_metrics(h, y[:300], model.tail.weight.detach(), model.tail.bias)
    assert test.metrics_at("step 3", "tail:input")["nc1"] == pytest.approx(expected["nc1"])


def test_run_json_keeps_log_events_layers_and_classes(recorded):
    folder, _, _ = recorded
    raw = json.loads((folder / "run.json").read_text())
    assert raw["layers"] == [*LAYERS, "tail:input"]
    assert raw["classes"] == list(range(10))
    assert raw["log"]["step"] == [0, 1, 2, 3] and raw["log"]["loss"][3] == pytest.approx(0.25)
    assert raw["events"] == [{"step": 2, "text": "lr drop"}]
    analysis = analyze(folder)
    assert analysis.log["epoch"] == [0, 1, 2, 3]
    assert analysis.events[0]["text"] == "lr drop"


def test_sample_rows_are_real_rows_with_their_labels(recorded, digits):
    folder, _, model = recorded
    x, y = digits
    features, labels = layer_features(analyze(folder), "step 3", "penult")
    full = full_features(model, model.penult, x, wants_input=False)
    assert features.shape == (len(x), 24)  # fewer samples than the cap: every row, once
    nearest = np.argmin(((full[None] - features[:, None]) ** 2).sum(-1), axis=1)
    assert len(set(nearest)) == len(x)
    np.testing.assert_array_equal(labels, y.numpy()[nearest])


def test_sample_is_capped_and_uniform(tmp_path):
    x = torch.arange(4000, dtype=torch.float32)[:, None].repeat(1, 3)
    y = torch.arange(4000) % 4
    rec = ncviz.Recorder(  # raw rows (no principal-direction storage): exact row numbers
        tmp_path / "r",
        layers=["0"],
        classifier=None,
        num_classes=4,
        sample_size=500,
        sample_components=None,
    )
    rec.capture(nn.Sequential(nn.Identity()), loader_of(x, y, 64, shuffle=True), step=0)
    features, labels = layer_features(analyze(tmp_path / "r"), "step 0", "0")
    assert features.shape == (500, 3) and len(np.unique(features[:, 0])) == 500
    np.testing.assert_array_equal(labels, features[:, 0].astype(int) % 4)
    # uniform over the stream: the sampled indices spread over all of it (mean ≈ 2000 ± 3 s.e.)
    assert abs(features[:, 0].mean() - 2000) < 3 * 4000 / np.sqrt(12 * 500)


def test_dict_batches_batch_fn_and_forward_fn(tmp_path, digits):
    x, y = digits
    torch.manual_seed(0)
    model = OddNet()
    expected = analyze_once(tmp_path / "plain", model, [(x, y)])

    class Keyword(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, pixels):
            return self.inner(pixels)

    dict_batches = [
        {"pixels": x[k : k + 100], "labels": y[k : k + 100]} for k in range(0, 600, 100)
    ]
    assert analyze_once(
        tmp_path / "dict", Keyword(model), dict_batches, prefix="inner."
    ) == pytest.approx(expected, rel=1e-9)
    odd_batches = [{"img": x[k : k + 77], "cls": y[k : k + 77]} for k in range(0, 600, 77)]
    got = analyze_once(
        tmp_path / "fn",
        model,
        odd_batches,
        batch_fn=lambda b: (b["img"], b["cls"]),
        forward_fn=lambda m, inp: m(inp * 1.0),
    )
    assert got == pytest.approx(expected, rel=1e-9)


def analyze_once(folder, model, batches, prefix="", **kwargs):
    rec = ncviz.Recorder(folder, layers=[prefix + "penult"], classifier=prefix + "tail", **kwargs)
    rec.capture(model, batches, step=0)
    return analyze(folder).metrics_at("step 0", prefix + "tail:input")


def test_model_mode_grad_and_device_are_restored(tmp_path, digits):
    x, y = digits
    model = OddNet().train()
    model.penult.weight.requires_grad_(False)
    rec = ncviz.Recorder(tmp_path / "r", layers=["penult"], classifier="tail")
    rec.capture(model, [(x[:200], y[:200])], step=0)
    assert model.training and all(m.training for m in model.modules())
    assert not model.penult.weight.requires_grad and model.tail.weight.requires_grad
    assert model.tail.weight.device.type == "cpu" and model.tail.weight.grad is None
    # training continues normally after a capture
    train_epoch(model, x, y, seed=0)
    assert model.tail.weight.grad is not None


def test_auto_layers_list_each_feature_once(tmp_path, digits):
    x, y = digits
    mlp = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    rec = ncviz.Recorder(tmp_path / "r")  # layers="auto", classifier = last Linear
    rec.capture(mlp, [(x.float(), y)], step=0)
    assert rec.layers == ["0", "2:input"]  # "1" (ReLU) has no parameters; its output is 2:input
    assert open_recorded(tmp_path / "r").classifier == "2"


def test_regression_entries_equal_regression_metrics(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(500, 6)
    targets = torch.tanh(x[:, :2] @ torch.randn(2, 2))
    net = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 2))
    rec = ncviz.Recorder(tmp_path / "reg", layers=["1"], classifier="2")
    rec.capture(net, loader_of(x, targets, 64), step=5)
    assert open_recorded(tmp_path / "reg").task == "regression"
    with torch.no_grad():
        h = net[1](net[0](x)).double()
    expected = ncviz.regression_metrics(h, targets, net[2].weight.detach())
    got = analyze(tmp_path / "reg").metrics_at("step 5", "2:input")
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_the_second_pass_replays_the_first_from_memory(tmp_path, digits):
    """The loader runs once: an augmenting loader gives the exact statistics of what it gave."""
    x, y = digits
    model = OddNet()

    class Augmented:
        def __init__(self):
            self.given = []

        def __iter__(self):
            noisy = x + 0.1 * torch.randn_like(x)
            self.given.append(noisy)
            return iter([(noisy[:250], y[:250]), (noisy[250:], y[250:])])

    loader = Augmented()
    ncviz.Recorder(tmp_path / "r", layers=["penult"], classifier="tail").capture(
        model, loader, step=0
    )
    assert len(loader.given) == 1  # one pass of the model over the data
    entry = open_recorded(tmp_path / "r").entries[0]
    assert not entry.warnings
    h = full_features(model, model.penult, loader.given[0], wants_input=False)
    expected = naive_metrics(h, y.numpy())
    got = analyze(tmp_path / "r").metrics_at("step 0", "penult")
    for key in ("nc1", "nc2_etf_distance", "cdnv"):
        assert got[key] == pytest.approx(expected[key], rel=1e-9), key


def test_a_loader_that_changes_between_two_runs_is_refused_or_flagged(
    tmp_path, digits, monkeypatch
):
    """Past the replay budget the model runs twice, and the passes are compared."""
    monkeypatch.setattr("ncviz.extract.passes.REPLAY_MAX_BYTES", 0)
    x, y = digits
    model = OddNet()

    class Shrinking:
        calls = 0

        def __iter__(self):
            Shrinking.calls += 1
            n = 600 if Shrinking.calls == 1 else 500
            return iter([(x[:n], y[:n])])

    rec = ncviz.Recorder(tmp_path / "r", layers=["penult"], classifier="tail")
    with pytest.raises(DataError, match="same data each time"):
        rec.capture(model, Shrinking(), step=0)

    class Augmented:
        def __iter__(self):
            return iter([(x + 0.1 * torch.randn_like(x), y)])

    rec.capture(model, Augmented(), step=1)
    entry = open_recorded(tmp_path / "r").entries[0]
    assert entry.step == 1 and "augmentation" in entry.warnings[0]


def test_bad_use_gives_one_line_errors(tmp_path, digits):
    x, y = digits
    model = OddNet()
    rec = ncviz.Recorder(tmp_path / "r", layers=["penult"], classifier="tail")
    with pytest.raises(OptionError, match="no layer 'nope'"):
        ncviz.Recorder(tmp_path / "s", layers=["nope"]).capture(model, [(x, y)], step=0)
    with pytest.raises(DataError, match="one integer class per sample"):
        ncviz.Recorder(tmp_path / "t", layers=["penult"], task="classification").capture(
            model, [(x, y.float())], step=0
        )
    # float labels on a classification head: say why it became a regression and what to pass
    with pytest.raises(
        DataError, match=r"float32 numbers, so the run was taken for a regression.*labels\.long\(\)"
    ):
        ncviz.Recorder(tmp_path / "f", layers=["penult"], classifier="tail").capture(
            model, [(x, y.float())], step=0
        )
    with pytest.raises(OptionError, match="split must be"):
        rec.capture(model, [(x, y)], step=0, split="../up")
    with pytest.raises(OptionError, match="non-negative integer"):
        rec.capture(model, [(x, y)], step=-1)
    with pytest.raises(DataError, match="no batches"):
        rec.capture(model, [], step=0)
    with pytest.raises(OptionError, match="number of classes"):
        ncviz.Recorder(tmp_path / "u", layers=["penult"], classifier=None).capture(
            model, [(x, y)], step=0
        )
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "run.json").write_text('{"model": "mlp"}')
    with pytest.raises(OptionError, match="did not write"):
        ncviz.Recorder(tmp_path / "other")
    rec.close()
    with pytest.raises(OptionError, match="closed"):
        rec.capture(model, [(x, y)], step=0)
    for error in (OptionError, DataError):
        assert issubclass(error, ncviz.NcvizError)


def test_resume_appends_and_replaces_same_step(tmp_path, digits):
    x, y = digits
    model = OddNet()
    with ncviz.Recorder(tmp_path / "r", layers=["penult"]) as rec:
        rec.capture(model, [(x, y)], step=0)
        rec.log(0, loss=2.0)
    with ncviz.Recorder(tmp_path / "r", layers=["penult"]) as rec:
        rec.capture(model, [(x, y)], step=1)
        rec.capture(model, [(x[:300], y[:300])], step=1)  # same (step, split): replaced
        rec.log(1, loss=1.0)
    run = open_recorded(tmp_path / "r")
    assert [(e.step, e.num_samples) for e in run.entries] == [(0, 600), (1, 300)]
    assert run.log == {"step": [0, 1], "loss": [2.0, 1.0]}


def test_killed_training_leaves_a_readable_run(tmp_path):
    """A process killed in the middle of its third capture: two complete entries remain."""
    folder = tmp_path / "killed"
    script = textwrap.dedent(
        f"""
        import os, torch, ncviz
        from torch import nn
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
        x, y = torch.randn(90, 5), torch.arange(90) % 3
        def forward(model, inputs, calls=[0]):
            calls[0] += 1
            if calls[0] == 3:  # third capture (one forward each): die without any cleanup
                os._exit(9)
            return model(inputs)
        rec = ncviz.Recorder({str(folder)!r}, layers=["1"], forward_fn=forward)
        for step in range(3):
            rec.capture(net, [(x, y)], step=step)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert done.returncode == 9, done.stderr.decode()[-500:]
    analysis = analyze(folder)
    assert analysis.checkpoints == ["step 0", "step 1"]
    assert not [p for p in os.listdir(folder) if "step-00000002" in p]


def test_capture_of_50k_samples_d512_c100_stays_under_5_mb(tmp_path):
    torch.manual_seed(0)
    n, d, c = 50_000, 512, 100
    y = torch.arange(n) % c
    means = torch.randn(c, d)
    batches = [
        (means[y[k : k + 4096]] + torch.randn(len(y[k : k + 4096]), d), y[k : k + 4096])
        for k in range(0, n, 4096)
    ]
    head = nn.Sequential(nn.Identity(), nn.Linear(d, c))
    rec = ncviz.Recorder(tmp_path / "big", layers=["0"], classifier="1")
    rec.capture(head, batches, step=0)
    size = sum(p.stat().st_size for p in (tmp_path / "big").iterdir())
    assert size < 5 * 2**20, size / 2**20  # O(C·d) statistics and a 50-direction sample
    run = open_recorded(tmp_path / "big")
    assert run.layers == ["0", "1:input"] and run.entries[0].num_samples == n


def test_folder_of_features_files_is_a_run(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    for epoch in (2, 10, 5):
        features = rng.normal(size=(60, 4)) + 3 * np.eye(3, 4)[y] * epoch
        np.savez(tmp_path / f"feats_epoch_{epoch}.npz", **{"features.fc": features, "labels": y})
    analysis = analyze(tmp_path)
    assert analysis.checkpoints == ["feats_epoch_2.npz", "feats_epoch_5.npz", "feats_epoch_10.npz"]
    assert analysis.epochs() == [2, 5, 10]
    nc1 = [analysis.metrics_at(c, "fc")["nc1"] for c in analysis.checkpoints]
    assert nc1[0] > nc1[1] > nc1[2]
    features, labels = layer_features(analysis, "feats_epoch_5.npz", "fc")
    assert features.shape == (60, 4) and list(labels) == list(y)


def test_a_layer_the_forward_pass_skips_is_named(tmp_path, digits):
    x, y = digits

    class Skips(OddNet):
        def __init__(self):
            super().__init__()
            self.unused = nn.Linear(24, 24).double()

    with pytest.raises(OptionError, match=r"\['unused'\] did not run"):
        rec = ncviz.Recorder(tmp_path / "r", layers=["penult", "unused"], classifier="tail")
        rec.capture(Skips(), [(x, y)], step=0)


def test_cli_summary_shows_one_split(recorded, capsys):
    folder, _, _ = recorded
    assert main(["analyze", str(folder), "--out", str(folder.parent / "out2")]) == 0
    out = capsys.readouterr().out
    assert "step 3 (train)" in out
    analysis = analyze(folder)
    expected = analysis.metrics_at("step 3", "tail:input")["nc1"]
    assert f"{expected:.4g}" in out


def test_nan_features_name_the_layer(tmp_path, digits):
    x, y = digits
    x = x.clone()
    x[5, 0] = float("nan")
    rec = ncviz.Recorder(tmp_path / "r", layers=["penult"], classifier="tail")
    with pytest.raises(ncviz.InputError, match="layer 'penult': the features contain NaN"):
        rec.capture(OddNet(), loader_of(x, y), step=0)
    assert not list((tmp_path / "r").glob("*.safetensors"))


def test_past_the_replay_budget_the_model_runs_again_with_the_same_results(digits, monkeypatch):
    """Held within the budget, spilled half-way, or not held at all: the same statistics to
    rounding and the very same embedding sample; the loader runs once, twice, twice."""
    from ncviz.extract.loader import capture

    x, y = digits
    model = OddNet()

    class Counted:
        def __init__(self):
            self.runs = 0

        def __iter__(self):
            self.runs += 1
            return iter([(x[k : k + 100], y[k : k + 100]) for k in range(0, 600, 100)])

    one_batch = 2 * 100 * 24 * 8  # two float64 layers of width 24
    # the loader has no length: each layer's rows are held in blocks of one batch here
    monkeypatch.setattr("ncviz.extract.passes._BLOCK_BYTES", one_batch // 2)
    results = {}
    for budget in (2**30, int(2.5 * one_batch), 0):  # all held; two held, then spilled; none
        monkeypatch.setattr("ncviz.extract.passes.REPLAY_MAX_BYTES", budget)
        loader = Counted()
        result = capture(
            model, loader, ["penult"], classifier=("tail", model.tail), sample_size=150
        )
        results[budget] = (loader.runs, result)
    assert [runs for runs, _ in results.values()] == [1, 2, 2]
    held = results[2**30][1]
    for _, other in list(results.values())[1:]:
        assert np.array_equal(other.sample_labels, held.sample_labels)
        for name, layer in held.layers.items():
            assert np.array_equal(other.layers[name].sample, layer.sample)
            got = other.layers[name].measured.compute().metrics
            want = layer.measured.compute().metrics
            assert set(got) == set(want) and "nc1" in got
            for key, value in want.items():
                assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-15, nan_ok=True), key
