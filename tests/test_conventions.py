"""Conventions: each paper's preset gives the numbers the authors' code gives on the same features.

Every reference below restates the authors' formulas directly in numpy, full matrices and loops,
independent of ncviz's tiled float64 engine:

* Linguistic Collapse (rhubarbwu/neural-collapse ``measure.py``/``kernels.py``/``util.py`` as used
  by rhubarbwu/linguistic-collapse): classes seen ≥ 1 time; μ_G the mean of the class means;
  σ²_c the mean squared distance to μ_c; pair grids reduced over i < j (``symm_reduce``: mean,
  and variance with divisor the number of pairs); per-class vectors with ``Tensor.mean`` and
  ``Tensor.var`` (divisor C − 1); ``hits`` = samples where argmax W h equals the nearest class mean.
* Deep RFM (the authors' script): Σ_B = (1/C) Σ m_c m_cᵀ, Σ_W = (1/(C·N)) Σ_i r_i r_iᵀ,
  NC2 = mean((ÛÛᵀ − S)²).
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ncviz.errors import OptionError
from ncviz.metrics import CollapseOptions, collapse_metrics
from ncviz.metrics.conventions import CONVENTIONS, describe_conventions
from ncviz.study import LINGUISTIC_COLLAPSE_TABLE, load_study, run_study


def _features(seed: int = 0):
    """Unbalanced classes, one of them seen once (kept by LC's min 1 per class), a classifier."""
    rng = np.random.default_rng(seed)
    labels = np.r_[np.repeat(np.arange(6), [30, 20, 12, 8, 5, 2]), [6]]
    rng.shuffle(labels)
    centres = 2.0 * rng.standard_normal((7, 9))
    features = centres[labels] + rng.standard_normal((len(labels), 9))
    weight = centres + 0.7 * rng.standard_normal((7, 9))
    return features, labels, weight


def _upper(grid: np.ndarray) -> np.ndarray:
    return grid[np.triu_indices(len(grid), k=1)]


def lc_reference(h: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict[str, float]:
    classes = np.unique(y)  # every class seen at least once
    k = len(classes)
    means = np.stack([h[y == c].mean(axis=0) for c in classes])
    var_norms = np.array(
        [((h[y == c] - means[i]) ** 2).sum(axis=1).mean() for i, c in enumerate(classes)]
    )
    mean_g = means.mean(axis=0)
    centred = means - mean_g

    cdnv = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            if i != j:
                dist_sq = ((means[i] - means[j]) ** 2).sum()
                cdnv[i, j] = (var_norms[i] + var_norms[j]) / 2 / dist_sq**2  # exponent 2
    norms = np.linalg.norm(centred, axis=1)

    def etf_error(a: np.ndarray, b: np.ndarray) -> float:
        struct = b @ a.T
        struct = struct / np.linalg.norm(struct)
        ideal = (np.eye(k) - np.ones((k, k)) / k) / math.sqrt(k - 1)
        return float(np.linalg.norm(struct - ideal))

    interference = _upper(centred @ centred.T)
    unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    log_kernel = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            if i != j:
                log_kernel[i, j] = np.log(np.linalg.norm(unit[i] - unit[j]) ** -1.0)
    log_kernel = _upper(log_kernel)
    unit_w = w / np.linalg.norm(w, axis=1, keepdims=True)
    dots = (w * centred).sum(axis=1)
    cosines = (unit_w * unit).sum(axis=1)
    dists = np.linalg.norm(unit_w - unit, axis=1)

    ncc = np.argmin(((h[:, None, :] - means[None]) ** 2).sum(axis=2), axis=1)
    linear = np.argmax(h @ w.T, axis=1)
    hits = int((ncc == linear).sum())
    return {
        "cdnv": float(_upper(cdnv).mean()),
        "norms_mean": norms.mean(),
        "norms_var": norms.var(ddof=1),
        "norms_log_mean": np.log(norms).mean(),
        "norms_log_var": np.log(norms).var(ddof=1),
        "etf_error": etf_error(centred, centred),
        "interfere_mean": interference.mean(),
        "interfere_var": interference.var(ddof=0),
        "log_kern_mean": log_kernel.mean(),
        "log_kern_var": log_kernel.var(ddof=0),
        "dual_error": etf_error(centred, w),
        "simdot_mean": dots.mean(),
        "simdot_var": dots.var(ddof=1),
        "simcos_mean": cosines.mean(),
        "simcos_var": cosines.var(ddof=1),
        "dists_mean": dists.mean(),
        "dists_var": dists.var(ddof=1),
        "hits": float(hits),
        "misses": float(len(y) - hits),
    }


def test_lc2024_rows_equal_the_authors_formulas_on_the_same_features():
    h, y, w = _features()
    ours = collapse_metrics(h, y, w, convention="lc2024")
    expected = lc_reference(h, y, w)
    assert list(ours) == list(expected)  # exactly their table's columns, in their order
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, rel=1e-6, abs=1e-12), key
    # LC's table holds the hits and misses of every sample analysed
    assert ours["hits"] + ours["misses"] == len(y)


def test_lc2024_keeps_a_class_seen_once_where_ncviz_refuses_it():
    h, y, w = _features()
    with pytest.raises(Exception, match="class 6 has 1 sample"):
        collapse_metrics(h, y, w)
    # ncviz with min_count=2 drops it: its cdnv (exponent 2) differs from LC's
    dropped = collapse_metrics(h, y, w, min_count=2, dist_exp=2.0)
    assert dropped["classes_kept"] == 6
    assert dropped["cdnv"] != pytest.approx(lc_reference(h, y, w)["cdnv"], rel=1e-3)


def test_ncviz_peer_rows_are_the_same_statistics_with_unbiased_variances():
    h, y, w = _features()
    keep = y != 6
    h, y, w = h[keep], y[keep], w[:6]
    ours = collapse_metrics(h, y, w)
    ref = lc_reference(h, y, w)
    pairs = 6 * 5 / 2
    assert ours["interference_mean"] == pytest.approx(ref["interfere_mean"], rel=1e-9)
    assert ours["interference_var"] == pytest.approx(ref["interfere_var"] * pairs / (pairs - 1))
    assert ours["means_norm_mean"] == pytest.approx(ref["norms_mean"], rel=1e-9)
    assert ours["means_log_norm_var"] == pytest.approx(ref["norms_log_var"], rel=1e-9)
    assert ours["unc3_dot_var"] == pytest.approx(ref["simdot_var"], rel=1e-9)
    assert ours["dual_distance_mean"] == pytest.approx(ref["dists_mean"], rel=1e-9)
    assert ours["gnc2_log_var"] == pytest.approx(ref["log_kern_var"] * pairs / (pairs - 1))


def test_riesz_kernel_is_the_s_energy_with_s_the_dimension_minus_two():
    # d = 4: s = 2, kernel ‖u_i − u_j‖^(−2); checked against a direct double loop
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(5), 6)
    h = rng.standard_normal((5, 4))[y] * 3 + rng.standard_normal((30, 4))
    means = np.stack([h[y == c].mean(axis=0) for c in range(5)])
    unit = means - means.mean(axis=0)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    values = [np.linalg.norm(unit[i] - unit[j]) ** -2.0 for i in range(5) for j in range(i + 1, 5)]
    ours = collapse_metrics(h, y)
    assert ours["gnc2_riesz_mean"] == pytest.approx(np.mean(values), rel=1e-9)
    assert ours["gnc2_riesz_var"] == pytest.approx(np.var(values, ddof=1), rel=1e-9)
    # on a simplex ETF every pair is equidistant: the energy has no spread
    etf = np.eye(5) - 1 / 5
    simplex = collapse_metrics(np.repeat(etf, 2, axis=0) + 0.0, np.repeat(np.arange(5), 2))
    assert simplex["gnc2_riesz_var"] == pytest.approx(0.0, abs=1e-12)


def test_rfm2024_rows_equal_their_scripts_normalisation():
    h, y, _ = _features()
    keep = y != 6
    h, y = h[keep], y[keep]
    classes = np.unique(y)
    k, n = len(classes), len(y)
    means = np.stack([h[y == c].mean(axis=0) for c in classes])
    centred = means - means.mean(axis=0)
    sigma_b = centred.T @ centred / k
    sigma_w = sum((h[y == c] - means[i]).T @ (h[y == c] - means[i]) for i, c in enumerate(classes))
    sigma_w = sigma_w / (k * n)
    unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    simplex = np.eye(k) * (1 + 1 / (k - 1)) - np.ones((k, k)) / (k - 1)
    ours = collapse_metrics(h, y, convention="rfm2024")
    assert list(ours) == ["nc1", "nc2"]
    assert ours["nc1"] == pytest.approx(np.trace(sigma_w) / np.trace(sigma_b), rel=1e-9)
    assert ours["nc2"] == pytest.approx(((unit @ unit.T - simplex) ** 2).mean(), rel=1e-9)
    # the finding: ncviz's trace ratio is C times their NC1
    ncviz = collapse_metrics(h, y)
    assert ncviz["nc1_trace_ratio"] == pytest.approx(k * ours["nc1"], rel=1e-9)


def test_papyan2020_centres_on_the_sample_mean():
    h, y, w = _features()
    keep = y != 6
    h, y, w = h[keep], y[keep], w[:6]
    ours = collapse_metrics(h, y, w, convention="papyan2020")
    sample_mean = collapse_metrics(h, y, w, global_mean="sample")
    assert set(ours) <= set(sample_mean)
    assert all(ours[key] == sample_mean[key] for key in ours)
    assert ours["nc1"] != pytest.approx(collapse_metrics(h, y, w)["nc1"], rel=1e-6)  # unbalanced


def test_dufm2024_names_the_uncentred_rank():
    # an offset simplex: centred rank C − 1, uncentred rank C
    etf = np.eye(4) - 1 / 4 + 5.0
    y = np.repeat(np.arange(4), 3)
    h = np.repeat(etf, 3, axis=0) + 1e-3 * np.random.default_rng(0).standard_normal((12, 4))
    dufm = collapse_metrics(h, y, convention="dufm2024")
    assert "rank_means" not in dufm and dufm["rank_means_uncentred"] == 4
    assert collapse_metrics(h, y)["rank_means"] == 3


def test_options_name_the_valid_presets_and_explicit_options_win():
    with pytest.raises(OptionError, match="unknown convention 'lc2025'; choose one of ncviz, "):
        CollapseOptions.preset("lc2025")
    options = CollapseOptions.preset("lc2024", dist_exp=1.0)
    assert (options.min_count, options.dist_exp, options.convention) == (1, 1.0, "lc2024")
    assert CollapseOptions(tau=0.05).updated(convention="lc2024").min_count == 1
    text = describe_conventions()
    assert all(name in text for name in CONVENTIONS)


def test_cli_lc2024_table_opens_beside_the_authors_230_runs(tmp_path):
    h, y, w = _features()
    np.savez(tmp_path / "mine.npz", **{"features.last": h, "labels": y, "classifier.weight": w})
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "ncviz", "analyze", str(tmp_path / "mine.npz"),
         "--convention", "lc2024", "--out", str(out), "--no-cache"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out / "metrics.csv")
    assert set(table["convention"]) == {"lc2024"}
    frame = load_study([out / "metrics.csv", LINGUISTIC_COLLAPSE_TABLE])
    authors = pd.read_csv(LINGUISTIC_COLLAPSE_TABLE)
    assert len(frame) == len(authors) + 1
    mine = frame[frame["model"] == "mine"].iloc[0]
    expected = lc_reference(h, y, w)
    statistics = [c for c in authors.columns if c in expected]
    assert len(statistics) == len(expected)  # every column of their table, none missing
    for column in statistics:
        assert mine[column] == pytest.approx(expected[column], rel=1e-6), column
    study = run_study(frame, "val_loss", resamples=50)
    # ranked over the runs that have a validation loss (the 230; ours logged none)
    assert study.correlations.set_index("metric").loc["etf_error", "n"] == len(authors)


def test_conventions_command_lists_every_preset():
    done = subprocess.run(
        [sys.executable, "-m", "ncviz", "conventions"], capture_output=True, text=True, check=True
    )
    for name in CONVENTIONS:
        assert f"{name} — " in done.stdout


def _regression(seed: int = 0, dim: int = 12, targets: int = 3, n: int = 200):
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((n, dim)) @ rng.standard_normal((dim, dim)) + 2.0
    w = rng.standard_normal((targets, dim))
    b = rng.standard_normal(targets)
    y = h @ w.T + b + 0.3 * rng.standard_normal((n, targets))
    return h, y, w + 0.1 * rng.standard_normal((targets, dim)), b


def nrc_reference(h, y, w, b, gamma=None):
    """The NRC authors' metric script restated in numpy (their compute_NRC1/compute_metrics and
    the γ grid of their training script)."""
    n, targets = len(h), y.shape[1]
    centred = h - h.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    evr = s**2 / (s**2).sum()
    normed = h / np.linalg.norm(h, axis=1, keepdims=True)
    normed_centred = centred / np.linalg.norm(centred, axis=1, keepdims=True)

    def off(x, projector):
        return np.linalg.norm(x @ projector - x) ** 2 / n

    out = {}
    for k in range(1, max(targets, 10) + 1):
        out[f"evr{k}"] = evr[k - 1]
        out[f"nrc1_pca{k}"] = off(h, vt[:k].T @ vt[:k])
    top = vt[:targets].T @ vt[:targets]
    out.update(nrc1=off(h, top), nrc1n=off(normed, top), nrc1nc=off(normed_centred, top))
    q, _ = np.linalg.qr(w.T)
    out.update(nrc2=off(h, q @ q.T), nrc2n=off(normed, q @ q.T))
    predicted = h @ w.T + b
    out["r2"] = 1 - ((y - predicted) ** 2).sum() / ((y - y.mean(axis=0)) ** 2).sum()
    out["mse"] = ((y - predicted) ** 2).mean()
    yc = y - y.mean(axis=0)
    values, vectors = np.linalg.eigh(yc.T @ yc / n)
    root = vectors @ np.diag(np.sqrt(values)) @ vectors.T
    wwt = w @ w.T
    wwt = wwt / np.linalg.norm(wwt)

    def nrc3(c):
        a = root - np.sqrt(c) * np.eye(targets)
        return np.linalg.norm(wwt - a / np.linalg.norm(a)) ** 2

    grid = np.linspace(0, values[0], 1000)
    curve = [nrc3(c) for c in grid]
    best = grid[int(np.argmin(curve))] if gamma is None else gamma
    out.update(nrc3=nrc3(best), nrc3_gamma=best)
    return out


def test_nrc2024_rows_equal_the_authors_script_on_the_same_features():
    from ncviz.metrics import regression_result

    h, y, w, b = _regression()
    ours = regression_result(h, y, w, bias=b, convention="nrc2024").metrics
    expected = nrc_reference(h, y, w, b)
    assert set(ours) == set(expected)
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, rel=1e-6, abs=1e-12), key
    # the finding: ncviz's nrc1 (normalised centred rows on their own PCs) is none of
    # the authors' three
    ncviz = regression_result(h, y, w)
    assert all(
        ncviz.metrics["nrc1"] != pytest.approx(ours[k], rel=1e-3)
        for k in ("nrc1", "nrc1n", "nrc1nc")
    )


def test_nrc2024_over_a_run_fixes_gamma_at_the_final_checkpoint(tmp_path):
    from ncviz.analysis import analyze

    h, y, w, b = _regression(seed=1)
    heads = {"epoch_001": w + 0.8, "epoch_002": w}  # an early head, then the final one
    folder = tmp_path / "run"
    folder.mkdir()
    for name, head in heads.items():
        arrays = {"features.last": h, "targets": y, "classifier.weight": head, "classifier.bias": b}
        np.savez(folder / f"{name}.npz", **arrays)
    analysis = analyze(folder, convention="nrc2024", cache=False)
    assert analysis.convention == "nrc2024"
    final = nrc_reference(h, y, heads["epoch_002"], b)
    early = nrc_reference(h, y, heads["epoch_001"], b, gamma=final["nrc3_gamma"])
    own_minimum = nrc_reference(h, y, heads["epoch_001"], b)["nrc3"]
    got = analysis.metrics_at("epoch_001.npz", "last")
    assert got["nrc3_gamma"] == pytest.approx(final["nrc3_gamma"], rel=1e-9, abs=1e-15)
    assert got["nrc3"] == pytest.approx(early["nrc3"], rel=1e-6)
    assert got["nrc3"] >= own_minimum - 1e-12  # not that checkpoint's own minimum
    for key in ("nrc1", "nrc2n", "r2", "mse"):
        assert got[key] == pytest.approx(early[key], rel=1e-6), key


def test_a_convention_of_the_other_task_is_one_line():
    from ncviz.metrics import regression_result

    h, y, w, _ = _regression()
    with pytest.raises(Exception, match="'lc2024' convention is for classification; a regression"):
        regression_result(h, y, w, convention="lc2024")
    hc, yc, wc = _features()
    with pytest.raises(Exception, match="'nrc2024' convention is for regression"):
        collapse_metrics(hc[yc != 6], yc[yc != 6], wc[:6], convention="nrc2024")


def test_ncmc2024_adds_the_centre_mean_collapse_of_a_run_trained_to_centres():
    from pathlib import Path

    from ncviz.analysis import analyze, ncmc_at

    root = Path(__file__).resolve().parents[1] / "checkpoints"
    layer = "classifier:input"
    analysis = analyze(root / "digits-longtail-ncmc", layers=[layer], convention="ncmc2024")
    last = analysis.metrics_at(analysis.checkpoints[-1], layer)
    expected = ncmc_at(analysis, analysis.checkpoints[-1], layer).metrics
    assert {k: last[k] for k in expected} == pytest.approx(expected, rel=1e-12)
    assert {"accuracy", "accuracy_minority", "accuracy_majority"} <= set(last)
    assert "nc1" not in last
    # a run without centres: the rows are left out, and its results say why
    plain = analyze(root / "digits-longtail-learned", layers=[layer], convention="ncmc2024")
    rows = plain.metrics_at(plain.checkpoints[-1], layer)
    assert not any(key.startswith("ncmc_") for key in rows)
    result = plain.results[(plain.checkpoints[-1], layer)]
    assert any("ncmc_* are left out" in warning for warning in result.warnings)


def test_nc5_is_the_mean_absolute_cosine_of_class_means_to_the_ood_mean(tmp_path):
    from ncviz.analysis import analyze

    h, y, _ = _features()
    keep = y != 6
    h, y = h[keep], y[keep]
    rng = np.random.default_rng(5)
    ood = rng.standard_normal((40, h.shape[1])) + 1.5
    means = np.stack([h[y == c].mean(axis=0) for c in np.unique(y)])
    centre = ood.mean(axis=0)
    expected = np.mean(
        [abs(m @ centre) / (np.linalg.norm(m) * np.linalg.norm(centre)) for m in means]
    )
    assert collapse_metrics(h, y, ood=ood)["nc5"] == pytest.approx(expected, rel=1e-12)
    # orthogonal OOD mean: 0 (class means in the first 3 axes, OOD data along the 4th)
    mine = np.eye(3, 4)[np.repeat(np.arange(3), 4)] + 0.01 * rng.standard_normal((12, 4)) * [
        1,
        1,
        1,
        0,
    ]
    assert collapse_metrics(mine, np.repeat(np.arange(3), 4), ood=np.eye(4)[[3, 3]])[
        "nc5"
    ] == pytest.approx(0.0, abs=1e-12)
    # from a features file: ood.<layer> beside features.<layer>
    np.savez(tmp_path / "f.npz", **{"features.last": h, "labels": y, "ood.last": ood})
    analysis = analyze(tmp_path / "f.npz", cache=False)
    assert analysis.metrics_at("f.npz", "last")["nc5"] == pytest.approx(expected, rel=1e-12)
    np.savez(tmp_path / "bad.npz", **{"features.last": h, "labels": y, "ood.last": ood[:, :3]})
    with pytest.raises(Exception, match=r"ood\.last has dimension 3 but features\.last 9"):
        analyze(tmp_path / "bad.npz", cache=False)


def test_a_paper_row_the_input_cannot_give_is_left_out_with_a_warning():
    from ncviz.metrics import collapse_result

    h, y, _ = _features()
    result = collapse_result(h, y, convention="lc2024")  # no classifier W
    assert "dual_error" not in result.metrics and "hits" not in result.metrics
    assert result.metrics["cdnv"] == pytest.approx(lc_reference(h, y, _features()[2])["cdnv"])
    assert any(
        w.startswith("lc2024: dual_error, simdot_mean, simdot_var, simcos_mean")
        for w in result.warnings
    )


@pytest.mark.parametrize("name", ["rfm2024", "nrc2024"])
def test_cli_convention_on_a_features_file_equals_the_reference(name, tmp_path):
    from ncviz.cli import main

    if name == "rfm2024":
        h, y, w = _features()
        keep = y != 6
        arrays = {"features.last": h[keep], "labels": y[keep], "classifier.weight": w[:6]}
        classes = np.unique(y[keep])
        means = np.stack([h[keep][y[keep] == c].mean(axis=0) for c in classes])
        centred = means - means.mean(axis=0)
        within = sum(((h[keep][y[keep] == c] - means[i]) ** 2).sum() for i, c in enumerate(classes))
        unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
        k = len(classes)
        simplex = np.eye(k) * (1 + 1 / (k - 1)) - np.ones((k, k)) / (k - 1)
        expected = {
            "nc1": within / (k * keep.sum()) / ((centred**2).sum() / k),
            "nc2": ((unit @ unit.T - simplex) ** 2).mean(),
        }
    else:
        h, targets, w, b = _regression(seed=2)
        arrays = {
            "features.last": h,
            "targets": targets,
            "classifier.weight": w,
            "classifier.bias": b,
        }
        expected = nrc_reference(h, targets, w, b)
    np.savez(tmp_path / "run.npz", **arrays)
    out = tmp_path / "out"
    assert (
        main(["analyze", str(tmp_path / "run.npz"), "--convention", name, "--out", str(out)]) == 0
    )
    table = pd.read_csv(out / "metrics.csv")
    assert set(table["convention"]) == {name}
    got = dict(zip(table["metric"], table["value"]))
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-12), key


def test_nc5_of_a_checkpoint_run_against_hooks_written_here(tmp_path):
    from pathlib import Path

    import torch

    from ncviz.analysis import analyze, origin_of
    from ncviz.extract import ActivationCache
    from ncviz.load import load_dataset

    run = Path(__file__).resolve().parents[1] / "checkpoints" / "digits-mlp"
    ood_spec = "builtin:gaussian?dim=64&classes=2"
    last = "epoch_0600.safetensors"

    def measured(**options):
        return analyze(
            run,
            layers=["classifier:input"],
            cache=ActivationCache(tmp_path),
            checkpoint_filter=lambda path: path.name == last,
            **options,
        )

    analysis = measured(ood=ood_spec)
    got = analysis.metrics_at(last, "classifier:input")["nc5"]
    net, _ = origin_of(analysis).trained_model(last)
    seen = []
    net.classifier.register_forward_pre_hook(lambda _m, a: seen.append(a[0].double()))
    data, ood = load_dataset("builtin:digits"), load_dataset(ood_spec)
    with torch.no_grad():
        net.eval()
        net(data.inputs)
        net(ood.inputs)
    h, h_ood = seen[0].numpy(), seen[1].numpy()
    labels = data.labels.numpy()
    means = np.stack([h[labels == c].mean(axis=0) for c in range(10)])
    centre = h_ood.mean(axis=0)
    cosines = means @ centre / (np.linalg.norm(means, axis=1) * np.linalg.norm(centre))
    assert got == pytest.approx(np.mean(np.abs(cosines)), rel=1e-6)
    # the same run without OOD data (same cache): no nc5 — the cached result is not reused
    assert "nc5" not in measured().metrics_at(last, "classifier:input")
