"""Plot builders on small inputs with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from ncviz import plots
from ncviz.embedding import embed, stratified_subsample
from ncviz.errors import OptionError
from ncviz.metrics import collapse_result
from ncviz.metrics.summaries import decay_rate, fitted_simplex_etf
from ncviz.plots.spectra import _spectra_figure
from ncviz.report import html_report
from ncviz.synthetic import noisy_etf, simplex_etf


@pytest.fixture(scope="module")
def etf_result():
    means = 2.0 * simplex_etf(5, 8, seed=3)
    labels = np.repeat(np.arange(5), 3)
    return collapse_result(means[labels], labels, means)


def test_fitted_etf_of_an_exact_etf_is_the_etf_itself(etf_result):
    means = etf_result.arrays["class_means"]
    centred = means - means.mean(axis=0)
    np.testing.assert_allclose(fitted_simplex_etf(centred), centred, atol=1e-12)


def _naive_fitted_etf(means: np.ndarray) -> np.ndarray:
    """The Procrustes fit written out: an ETF basis from the C × C centring matrix."""
    num = len(means)
    basis, _, _ = np.linalg.svd(np.eye(num) - 1.0 / num)
    etf = basis[:, : num - 1] * np.sqrt(num / (num - 1)) * np.linalg.norm(means, axis=1).mean()
    u, _, vt = np.linalg.svd(etf.T @ means, full_matrices=False)
    return etf @ (u @ vt)


@pytest.mark.parametrize("num_classes,dim", [(5, 8), (10, 3), (30, 29), (30, 30), (200, 16)])
def test_fitted_etf_equals_the_naive_procrustes_fit(num_classes, dim):
    means = np.random.default_rng(num_classes + dim).standard_normal((num_classes, dim))
    means -= 0.7 * means.mean(axis=0)  # centred at a weighted global mean: not exactly centred
    np.testing.assert_allclose(fitted_simplex_etf(means), _naive_fitted_etf(means), atol=1e-12)


def test_fitted_etf_of_degenerate_means_is_still_an_etf():
    rng = np.random.default_rng(4)
    means = rng.standard_normal((6, 2)) @ rng.standard_normal((2, 8))  # rank 2 of a possible 5
    fit = fitted_simplex_etf(means)
    gram = fit @ fit.T / (fit[0] @ fit[0])
    np.testing.assert_allclose(gram, (6 * np.eye(6) - 1) / 5, atol=1e-12)  # 1 on, −1/(C−1) off


def test_fitted_etf_of_a_vocabulary_needs_no_class_by_class_matrix():
    import tracemalloc

    means = np.random.default_rng(5).standard_normal((32_000, 64))  # 16 MB
    tracemalloc.start()
    try:
        fitted_simplex_etf(means)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20  # a C × C float64 matrix alone would be 8 GB


def test_geometry_overlay_coincides_with_etf_means(etf_result):
    fig = plots.geometry_figure(etf_result)
    means = [t for t in fig.data if t.legendgroup == "means"]
    etf = next(t for t in fig.data if "simplex ETF" in (t.name or ""))
    tips = {(round(t.x[1], 9), round(t.y[1], 9), round(t.z[1], 9)) for t in means}
    vertices = {
        (round(x, 9), round(y, 9), round(z, 9))
        for x, y, z in zip(etf.x, etf.y, etf.z)
        if x is not None
    }
    assert tips == vertices and len(tips) == 5
    w = next(t for t in fig.data if t.name and "classifier" in t.name)
    np.testing.assert_allclose(sorted(w.x), sorted(t.x[1] for t in means), atol=1e-9)


def test_cosine_heatmap_has_unit_diagonal_and_the_etf_tick(etf_result):
    labels = [str(c) for c in etf_result.classes]
    fig = plots.cosine_heatmap(etf_result.arrays["cos_means"], labels, "cos", np.arange(5))
    z = np.asarray(fig.data[0].z)
    np.testing.assert_allclose(np.diag(z), 1.0)
    np.testing.assert_allclose(z[~np.eye(5, dtype=bool)], -0.25)
    assert -0.25 in fig.data[0].colorbar.tickvals
    scale = fig.data[0].colorscale  # white (the RdBu centre) at the ETF value
    middle = next(c for p, c in scale if abs(p - (1 - 0.25) / 2) < 1e-12)
    assert middle == plots.etf_colorscale(0.0)[10][1]
    deviation = plots.cosine_heatmap(etf_result.arrays["cos_means"], labels, "d", deviation=True)
    dz = np.asarray(deviation.data[0].z, dtype=float)
    assert np.isnan(np.diag(dz)).all() and np.allclose(dz[~np.eye(5, dtype=bool)], 0.0)
    histogram = plots.cosine_histogram(etf_result.arrays["cos_means"], "h")
    bars = histogram.data[0]  # the 10 pairs all in the bar holding −1/(C−1)
    (full,) = np.flatnonzero(np.asarray(bars.y))
    assert bars.y[full] == 10 and abs(bars.x[full] + 0.25) <= bars.width[full] / 2
    cosines = np.random.default_rng(2).uniform(-1, 1, (2048, 2048))
    wide = plots.cosine_histogram(cosines, "h", pairs_only=False)  # rows vs means: C² − C values
    assert sum(wide.data[0].y) == 2048 * 2047 and len(wide.data[0].y) == plots.HISTOGRAM_BINS
    assert len(wide.to_json()) < 50_000
    big = plots.cosine_heatmap(np.eye(500), [str(i) for i in range(500)], "big")
    assert isinstance(big.data[0], go.Image) and big.data[0].source.startswith("data:image/png")
    assert big.data[1].marker.cmin == -1 and len(big.to_json()) < 1_000_000


def test_class_orders(etf_result):
    assert list(plots.class_order(etf_result, "label")) == [0, 1, 2, 3, 4]
    data = noisy_etf(4, 6, 5, 0.1)
    labels = np.concatenate([data.labels, [3, 3, 3]])
    features = np.concatenate([data.features, data.features[-3:]])
    result = collapse_result(features, labels, data.weight)
    assert plots.class_order(result, "frequency")[0] == 3
    assert sorted(plots.class_order(result, "clustered")) == [0, 1, 2, 3]


def test_spectrum_is_normalised_and_floored(etf_result):
    fig = plots.spectrum_figure(etf_result, tau=0.01)
    means = fig.data[0]
    assert means.y[0] == pytest.approx(1.0) and min(means.y) >= 1e-17
    assert fig.layout.yaxis.type == "log"


def _table():
    rows = []
    for epoch, value in ((0, 1.0), (10, 0.1), (100, 0.01)):
        for layer, scale in (("a", 1.0), ("b", 0.5)):
            rows.append(
                {
                    "run": "r",
                    "checkpoint": f"e{epoch}",
                    "epoch": epoch,
                    "step": None,
                    "layer": layer,
                    "split": "train",
                    "metric": "nc1",
                    "value": value * scale,
                }
            )
    return pd.DataFrame(rows)


def test_training_and_depth_figures():
    table = _table()
    fig = plots.training_figure(table, "nc1", ["a", "b"], onset=10)
    assert [list(t.x) for t in fig.data] == [[1, 11, 101]] * 2
    assert fig.layout.yaxis.type == "log" and fig.layout.xaxis.type == "log"
    assert fig.layout.annotations[0].x == pytest.approx(np.log10(11))  # log-axis coordinates
    depth = plots.depth_figure(table, "nc1", ["e0", "e100"])
    assert list(depth.data[0].y) == [1.0, 0.5] and depth.data[1].name == "epoch 100"
    assert decay_rate([1.0, 0.5, 0.25]) == pytest.approx(0.5)
    compare = plots.compare_figure({"x": table, "y": table}, "nc1", "a")
    assert len(compare.data) == 2


def test_per_class_table_columns(etf_result):
    frame = plots.per_class_table(etf_result)
    assert list(frame["n_c (analysed: data)"]) == [3] * 5
    counts = plots.per_class_table(etf_result, "test", {"0": 7, "3": 1})["n_c (trained on)"]
    assert list(counts.fillna(-1)) == [7, -1, -1, 1, -1]
    np.testing.assert_allclose(frame["cos(w_c, μ_c − μ_G)"], 1.0)


def test_embedding_subsamples_and_marks_centres():
    data = noisy_etf(3, 10, 100, 0.05)
    emb = embed(data.features, data.labels, "pca", max_points=60)
    assert emb.n_total == 300 and emb.n_shown == 60 and emb.centres.shape == (3, 2)
    idx = stratified_subsample(np.repeat(["a", "b"], [90, 10]), 20)
    assert len(idx) == 20
    fig = plots.embedding_figure(emb.coords, emb.labels, "t", emb.centres, axes=("PC1", "PC2"))
    assert len(fig.data) == 4
    assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == ("PC1", "PC2")
    many = np.random.default_rng(0).standard_normal((plots.DENSITY_THRESHOLD + 1, 2))
    dense = plots.embedding_figure(many, np.zeros(len(many), int), "d", np.zeros((1, 2)))
    assert [type(t).__name__ for t in dense.data] == ["Histogram2d", "Scatter"]
    targets = np.linspace(-1.0, 1.0, 300)  # a continuous target: a colour scale, not 300 classes
    reg = embed(data.features, targets, "pca", max_points=50)
    assert reg.n_shown == 50 and set(reg.values) <= set(targets) and len(reg.classes) == 0
    colour = plots.embedding_figure(reg.coords, reg.labels, "r", reg.centres, reg.values)
    assert len(colour.data) == 1 and list(colour.data[0].marker.color) == list(reg.values)


def test_subsample_keeps_each_class_share_or_samples_a_vocabulary_uniformly():
    labels = np.repeat(np.arange(7), [500, 300, 120, 50, 20, 8, 2])
    index = stratified_subsample(labels, 100)
    fraction = 100 / len(labels)
    expected = [max(1, round(n * fraction)) for n in [500, 300, 120, 50, 20, 8, 2]]
    assert np.bincount(labels[index]).tolist() == expected  # each class its rounded share
    assert len(set(index.tolist())) == len(index) and np.all(np.diff(index) > 0)
    vocabulary = np.repeat(np.arange(32_000), 2)  # more classes than points: exactly the cap
    sample = stratified_subsample(vocabulary, 5000)
    assert len(sample) == 5000 and len(np.unique(sample)) == 5000


def test_embedding_of_a_vocabulary_colours_the_most_frequent_classes():
    rng = np.random.default_rng(0)
    labels = np.concatenate([np.repeat(np.arange(32_000), 2), np.repeat([7, 8, 9], 300)])
    features = rng.standard_normal((len(labels), 16)).astype(np.float32)
    emb = embed(features, labels, "pca", max_points=5000)
    assert emb.n_shown == 5000 and emb.centres.shape == (len(emb.classes), 2)
    first = emb.classes[0]  # centres are the means of each class's points
    np.testing.assert_allclose(emb.centres[0], emb.coords[emb.labels == first].mean(axis=0))
    fig = plots.embedding_figure(emb.coords, emb.labels, "t", emb.centres)
    names = [t.name for t in fig.data]
    assert len(fig.data) == plots.VIEW_CLASSES + 2  # the rest in one trace, and the centres
    assert names[0].endswith("other classes") and {"7", "8", "9"} <= set(names)
    assert len(fig.data[-1].x) == plots.VIEW_CLASSES
    assert "20 most frequent of" in fig.layout.title.text
    assert sum(len(t.x) for t in fig.data[:-1]) == 5000  # every point drawn once
    assert len(fig.to_json()) < 1_000_000


def test_html_report_is_self_contained(etf_result):
    text = html_report(
        "R",
        [("g", plots.norms_figure(etf_result)), ("s", plots.spectrum_figure(etf_result))],
        [("t", pd.DataFrame({"metric": ["nc1"], "value": [0.5]}))],
    )
    assert "<script src=" not in text and "nc1" in text  # no external script
    assert (
        text.count("Plotly.newPlot") == 2 and 3_000_000 < len(text) < 6_000_000
    )  # js inlined once


def test_single_figure_html_opens_offline():
    from ncviz.report import figure_html

    text = figure_html(go.Figure(go.Scatter(x=[1, 2], y=[3, 4])))
    assert "<script src=" not in text  # nothing is fetched from a CDN
    assert "Plotly.newPlot" in text and len(text) > 1_000_000  # the library itself is inside


def test_spectra_floor_numerical_zeros_and_overlay_layers(etf_result):
    spectrum = _spectra_figure({"M": np.array([2.0, 1.0, 1e-17])}, 0.01, "s")
    trace = spectrum.data[0]
    assert list(trace.y) == [1.0, 0.5, plots.SPECTRUM_FLOOR]  # not 1e-17: the axis keeps scale
    assert list(trace.marker.symbol) == ["circle", "circle", "triangle-down"]
    overlay = plots.layers_spectrum_figure({"a": etf_result, "b": etf_result}, "sv_means")
    assert [t.name for t in overlay.data] == ["a", "b"]


def test_ranks_at_the_analysis_tau_equal_the_table():
    from pathlib import Path

    from ncviz.analysis import analyze, ranks_at

    run = Path(__file__).resolve().parents[1] / "checkpoints" / "digits-mlp"
    ends = ("epoch_0000.safetensors", "epoch_0600.safetensors")
    analysis = analyze(run, checkpoint_filter=lambda p: p.name in ends)
    ours = ranks_at(analysis, 1e-2).set_index(["checkpoint", "layer"])["value"]
    table = analysis.table[analysis.table["metric"] == "rank_means"]
    assert ours.to_dict() == table.set_index(["checkpoint", "layer"])["value"].to_dict()
    assert (ranks_at(analysis, 0.3)["value"] <= ranks_at(analysis, 1e-4)["value"]).all()

    # the other convention: ranks of the uncentred class means, counted here with numpy
    uncentred = ranks_at(analysis, 1e-2, "uncentred")
    assert set(uncentred["metric"]) == {"rank_means_uncentred"}  # never labelled rank_means
    for row in uncentred.itertuples():
        means = analysis.results[(row.checkpoint, row.layer)].arrays["class_means"]
        s = np.linalg.svd(means, compute_uv=False)
        assert row.value == (s > 1e-2 * s[0]).sum()
    with pytest.raises(OptionError, match="centred or uncentred"):
        ranks_at(analysis, 1e-2, "centered")


def test_means_centring_on_an_offset_simplex():
    """Features on a simplex ETF shifted off the origin: the centred means span C − 1
    dimensions, the uncentred ones C; the centred spectrum is the result's own sv_means."""
    from ncviz.metrics.spectra import means_spectrum

    classes, dim = 4, 6
    simplex = np.eye(classes) - 1.0 / classes  # rows: a simplex ETF in R^4 (rank 3)
    means = np.zeros((classes, dim))
    means[:, :classes] = simplex
    means[:, classes] = 2.0  # an offset orthogonal to the simplex
    labels = np.repeat(np.arange(classes), 3)
    result = collapse_result(means[labels], labels)
    centred, uncentred = (means_spectrum(result.arrays, c) for c in ("centred", "uncentred"))
    assert (centred > 1e-9 * centred[0]).sum() == classes - 1
    assert (uncentred > 1e-9 * uncentred[0]).sum() == classes
    np.testing.assert_allclose(
        centred[: classes - 1], np.linalg.svd(simplex, compute_uv=False)[: classes - 1]
    )
    figure = plots.spectrum_figure(result, centring="uncentred")
    assert figure.data[0].name == "class means [μ_c] (uncentred)"


def test_geometry_states_its_variance_share_and_plays_over_checkpoints(etf_result):
    fig = plots.geometry_figure(etf_result)
    # a 5-class ETF spreads its variance equally over C − 1 = 4 directions: 3 of them hold 3/4
    assert "(75% of their variance)" in fig.layout.title.text
    w = next(t for t in fig.data if t.name and "classifier" in t.name)
    assert list(w.text) == [f"w{c}" for c in etf_result.classes] and len(set(w.marker.color)) == 5
    scene = fig.layout.scene
    for axis, coordinate in ((scene.xaxis, "x"), (scene.yaxis, "y"), (scene.zaxis, "z")):
        values = [v for t in fig.data for v in getattr(t, coordinate) if v is not None]
        assert axis.range[0] < min(values) and max(values) < axis.range[1]
    shrunk = collapse_result(
        etf_result.arrays["class_means"][np.repeat(np.arange(5), 3)] * 0.5,
        np.repeat(np.arange(5), 3),
    )
    animation = plots.geometry_animation({"early": shrunk, "late": etf_result})
    assert [f.name for f in animation.frames] == ["early", "late"]
    assert animation.layout.updatemenus[0].buttons[0].label == "▶ play"


def test_a_short_run_is_drawn_on_a_linear_epoch_axis_and_any_run_on_the_asked_one():
    short = _table()
    short["epoch"] = short["epoch"].map({0: 0, 10: 7, 100: 14})
    events = [{"step": 10, "text": "lr ×0.1"}]
    fig = plots.training_figure(short, "nc1", ["a"], onset=7, events=events)
    assert fig.layout.xaxis.type == "linear" and list(fig.data[0].x) == [0, 7, 14]
    assert {a.x for a in fig.layout.annotations} == {7, 10}  # data coordinates on a linear axis
    forced = plots.training_figure(short, "nc1", ["a"], scale="log")
    assert forced.layout.xaxis.type == "log" and list(forced.data[0].x) == [1, 8, 15]
    long = plots.training_figure(_table(), "nc1", ["a"], scale="linear")
    assert long.layout.xaxis.type == "linear" and list(long.data[0].x) == [0, 10, 100]
    with pytest.raises(ValueError, match="epoch axis must be one of"):
        plots.training_figure(short, "nc1", ["a"], scale="square")


def test_logged_losses_are_drawn_beside_accuracies():
    log = {"epoch": [0, 1, 2], "train_acc": [0.5, 0.8, 0.9], "loss": [2.0, 1.0, 0.5]}
    log["lr"] = [0.1, 0.1, 0.01]
    fig = plots.accuracy_figure(log)
    drawn = {trace.name: trace for trace in fig.data}
    assert set(drawn) == {"train acc", "loss"}  # the learning rate is a setting, not a curve
    assert drawn["loss"].yaxis == "y2" and fig.layout.yaxis2.type == "log"
    assert list(drawn["loss"].y) == [2.0, 1.0, 0.5] and list(drawn["loss"].x) == [0, 1, 2]
    only_losses = plots.accuracy_figure({"epoch": [0, 1], "loss": [2.0, 1.0]})
    assert only_losses.layout.yaxis.type == "log" and only_losses.data[0].yaxis in (None, "y")


def test_reference_levels_are_named_in_the_legend_and_never_written_over_the_curves():
    fig = plots.training_figure(
        _table(), "nc1", ["a"], onset=10, references={"total collapse 1": 1.0, "ETF": -0.1}
    )
    named = [(s.name, s.y0) for s in fig.layout.shapes if s.showlegend]
    assert named == [("total collapse 1", 1.0), ("ETF", -0.1)]
    texts = [a.text for a in fig.layout.annotations]
    assert not any("collapse" in t or "ETF" in t for t in texts)  # only the onset is written


@pytest.fixture(scope="module")
def many_classes():
    """60 classes with distinct counts (class c has 2 + c samples): the most frequent are the
    highest labels."""
    counts = 2 + np.arange(60)
    labels = np.repeat(np.arange(60), counts)
    means = 3.0 * simplex_etf(60, 80, seed=1)
    rng = np.random.default_rng(0)
    features = means[labels] + 0.1 * rng.standard_normal((len(labels), 80))
    return collapse_result(features, labels, means)


def test_geometry_of_many_classes_draws_the_most_frequent_and_says_so(many_classes):
    fig = plots.geometry_figure(many_classes)
    spokes = [t for t in fig.data if t.legendgroup == "means"]
    shown = sorted(int(t.text[1]) for t in spokes)
    assert shown == list(range(40, 60))  # the 20 most frequent, each labelled on the plot
    assert all("text" in t.mode for t in spokes)
    assert "20 most frequent of 60 classes" in fig.layout.title.text
    etf = next(t for t in fig.data if "simplex ETF" in (t.name or ""))
    assert sum(x is None for x in etf.x) == 20 * 19 // 2  # edges among the shown vertices only
    rows = next(t for t in fig.data if t.name == "classifier rows (scaled)")
    assert len(rows.x) == 20
    # a chosen larger set: names move to hover (they would collide on the plot)
    wide = plots.geometry_figure(many_classes, classes=plots.shown_classes(many_classes, count=35))
    assert all("text" not in t.mode for t in wide.data if t.legendgroup == "means")
    assert "35 most frequent" in wide.layout.title.text
    norms = plots.norms_figure(many_classes)
    assert list(norms.data[0].x) == [str(c) for c in range(40, 60)]


def test_class_heatmaps_name_every_class_or_none(many_classes):
    cos = many_classes.arrays["cos_means"]
    names = [str(c) for c in many_classes.classes]
    fig = plots.cosine_heatmap(cos[:45, :45], names[:45], "t")
    assert fig.layout.xaxis.dtick == 1 and fig.layout.yaxis.dtick == 1  # never every other one
    assert fig.layout.yaxis.tickfont.size * 45 <= 440  # rows of type fit the axis
    wide = plots.cosine_heatmap(cos, names, "t")
    assert wide.layout.xaxis.showticklabels is False
    assert "60 classes" in wide.layout.xaxis.title.text
    assert wide.data[0].y is not None  # the names stay on hover


def test_geometry_legend_sits_above_the_scene_so_no_axis_is_cut(etf_result):
    """Beside the scene the legend squeezed it until the PC3 axis left the frame; below it, it
    covered the animation's play button (both seen in dashboard screenshots); above it, under
    the title in a taller top margin, with the camera further out, nothing collides."""
    for fig in (
        plots.geometry_figure(etf_result),
        plots.geometry_animation({"a": etf_result, "b": etf_result}),
    ):
        assert fig.layout.legend.orientation == "h" and fig.layout.legend.y >= 1.0
        assert fig.layout.margin.t >= 100  # room for the title above the legend
        eye = fig.layout.scene.camera.eye
        assert min(eye.x, eye.y) > 1.25  # plotly's default eye is 1.25
        assert fig.layout.scene.zaxis.title.text == "PC3"


def test_agop_eigenvector_titles_fit_their_narrow_columns():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((64, 64))
    fig = plots.agop_figure(a @ a.T, "fc")
    titles = [annotation.text for annotation in fig.layout.annotations]
    assert len(titles) == 5
    # each eigenvector column is 15% of the width (~110 px): lines of at most 14 characters
    assert all(len(line) <= 14 for title in titles for line in title.split("<br>")), titles


def test_the_full_matrix_downloads_as_csv_with_class_names():
    import io

    import pandas as pd

    matrix = np.random.default_rng(3).uniform(-1, 1, (500, 500))  # above the image threshold
    names = [f"tok{i}" for i in range(500)]
    frame = pd.read_csv(io.StringIO(plots.matrix_csv(matrix, names)), index_col="class")
    assert list(frame.index) == names and list(frame.columns) == names
    np.testing.assert_allclose(frame.to_numpy(), matrix, rtol=1e-7, atol=1e-8)
