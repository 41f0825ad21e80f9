"""Recorded entries small enough to share: O(C·d) statistics and a principal-direction sample,
with metrics still equal to a hook reference on the full features."""

from __future__ import annotations

import warnings
from collections import defaultdict

import numpy as np
import pytest
import torch
from safetensors import safe_open
from torch import nn

import ncviz
from ncviz.analysis import analyze, layer_features
from ncviz.embedding import embed
from ncviz.errors import DataError
from ncviz.load import load_dataset
from ncviz.load.recorded import compress_sample, read_entry, write_entry
from tests.metrics.naive_reference import naive_metrics
from tests.record.conftest import train_epoch

KEYS = ("nc1", "nc1_trace_ratio", "nc2_etf_distance", "nc3", "nc4", "cdnv", "accuracy")


class WideConv(nn.Module):
    """A digits CNN whose conv block is 1,024 wide (16 maps of 8×8), float64 throughout."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU())
        self.hidden = nn.Sequential(nn.Linear(1024, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)
        self.double()

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(self.conv(pixels.reshape(-1, 1, 8, 8)).flatten(1)))


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory):
    data = load_dataset("builtin:digits?split=all")
    x, y = data.inputs.double(), data.labels
    assert len(x) == 1797
    torch.manual_seed(0)
    model = WideConv()
    train_epoch(model, x, y, seed=0)
    folder = tmp_path_factory.mktemp("wide") / "run"
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=128)
    with ncviz.Recorder(folder, layers=["conv", "hidden"], classifier="head") as rec:
        rec.capture(model, loader, step=0)
    return folder, model, x, y


def hooked(model: WideConv, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Every recorded layer's features on all of x, from hooks written here."""
    kept: dict[str, torch.Tensor] = {}
    handles = [
        model.conv.register_forward_hook(lambda _m, _a, out: kept.update(conv=out)),
        model.hidden.register_forward_hook(lambda _m, _a, out: kept.update(hidden=out)),
        model.head.register_forward_pre_hook(lambda _m, args: kept.update({"head:input": args[0]})),
    ]
    model.eval()
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return {name: h.reshape(len(x), -1).numpy() for name, h in kept.items()}


def test_a_conv_capture_with_a_1024_wide_layer_is_under_3_mb_and_exact(wide_run):
    folder, model, x, y = wide_run
    total = sum(p.stat().st_size for p in folder.iterdir())
    assert total <= 3 * 2**20, total / 2**20
    per_layer: dict[str, int] = defaultdict(int)
    with safe_open(str(folder / "step-00000000.train.safetensors"), "pt") as handle:
        keys = list(handle.keys())
        for key in keys:
            tensor = handle.get_tensor(key)
            per_layer[key.partition("/")[0]] += tensor.numel() * tensor.element_size()
    assert "conv/scatter" not in keys and "conv/sample" not in keys  # the compact format
    assert per_layer["conv"] <= 2**20, per_layer  # ≤ 1 MB for the 1,024-wide layer
    features = hooked(model, x)
    assert features["conv"].shape == (1797, 1024)
    analysis = analyze(folder)
    for layer, h in features.items():
        w = b = None
        if layer == "head:input":
            w, b = model.head.weight.detach().numpy(), model.head.bias.detach().numpy()
        expected = naive_metrics(h, y.numpy(), w, b)
        got = analysis.metrics_at("step 0", layer)
        for key in KEYS:
            if key in expected:
                assert got[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-12), (layer, key)


def test_the_stored_sample_draws_the_pca_view_of_the_true_rows(wide_run):
    """The sample is kept on its top 50 principal directions (float16): the PCA view drawn
    from it equals the one drawn from the true rows (up to each axis's sign)."""
    folder, model, x, y = wide_run
    stored, labels = layer_features(analyze(folder), "step 0", "conv")
    true = hooked(model, x)["conv"]
    assert stored.shape == true.shape and list(labels) == y.tolist()  # every row, in order
    view, reference = embed(stored, labels, "pca"), embed(true, y.numpy().astype(str), "pca")
    for axis in range(2):
        a, b = view.coords[:, axis], reference.coords[:, axis]
        sign = np.sign(a @ b)
        assert np.abs(sign * a - b).max() < 1e-2 * np.abs(b).max(), axis


def test_sample_kept_on_principal_directions_with_its_variance():
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(300, 80)) @ np.diag(np.linspace(3.0, 0.01, 80)) + 100.0
    stored = compress_sample(rows, components=10)
    kept, total = stored["sample_variance"].tolist()
    centred = rows - rows.mean(axis=0)
    top = np.linalg.svd(centred, compute_uv=False)[:10]
    assert kept == pytest.approx((top**2).sum(), rel=1e-10)  # the top-10 variance, exactly
    assert total == pytest.approx((centred**2).sum(), rel=1e-10)
    assert stored["sample_coords"].dtype == torch.float16
    assert float(stored["sample_coords"].abs().max()) == 1.0  # scaled: float16 cannot overflow


def test_old_entries_with_the_whole_scatter_and_raw_rows_still_read(tmp_path):
    """An entry written before the compact format (d×d ``scatter``, raw ``sample``) gives the
    same metrics and rows."""
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(4), 30)
    h = rng.normal(size=(120, 40)) + 4 * rng.normal(size=(4, 40))[y]
    stats = ncviz.CollapseStatistics(4, 40)
    stats.update(h, y)
    stats.start_second_pass()
    stats.update(h, y)
    sample = h[:20].astype(np.float32)
    old, new = tmp_path / "old.safetensors", tmp_path / "new.safetensors"
    meta = {"step": "0", "split": "train", "task": "classification"}
    write_entry(old, {"f": stats.state_dict()}, {"f": sample}, y[:20], meta, sample_components=None)
    write_entry(new, {"f": stats.state_dict(compact=True)}, {"f": sample}, y[:20], meta)
    assert new.stat().st_size < old.stat().st_size
    read_old, read_new = read_entry(old), read_entry(new)
    assert "scatter" in read_old.layers["f"] and "scatter" not in read_new.layers["f"]
    np.testing.assert_array_equal(read_old.samples["f"], sample)
    np.testing.assert_allclose(read_new.samples["f"], sample, atol=2e-3 * np.abs(h).max())
    metrics = [
        ncviz.CollapseStatistics.from_state_dict(read.layers["f"]).compute().metrics
        for read in (read_old, read_new)
    ]
    for key, value in metrics[0].items():
        assert metrics[1][key] == pytest.approx(value, rel=1e-10), key


def test_a_compact_entry_whose_pieces_disagree_is_refused(wide_run, tmp_path):
    from ncviz.load.recorded import check_state

    folder, *_ = wide_run
    data = read_entry(folder / "step-00000000.train.safetensors")
    state = dict(data.layers["conv"])
    state["scatter_projected"] = state["scatter_projected"][:3, :3]
    with pytest.raises(DataError, match="scatter_projected"):
        check_state(state, "conv", "classification", 10)
    state = dict(data.layers["conv"])
    del state["feature_spectrum"]
    with pytest.raises(DataError, match="feature_spectrum"):
        check_state(state, "conv", "classification", 10)


def test_the_recorder_warns_once_when_the_run_outgrows_the_upload_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("NCVIZ_MAX_UPLOAD_MB", "0.001")  # 1 kB
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(60, 4), torch.arange(60) % 3
    rec = ncviz.Recorder(tmp_path / "r", layers=["1"], classifier="2")
    with pytest.warns(UserWarning, match="over the dashboard's 0 MB upload limit") as caught:
        rec.capture(net, [(x, y)], step=0)
    assert len([w for w in caught if "upload limit" in str(w.message)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second capture says nothing more
        rec.capture(net, [(x, y)], step=1)
