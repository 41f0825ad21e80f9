"""The streaming path equals the one-shot path; the metrics have the invariances they should."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncviz.errors import InputError
from ncviz.metrics import CollapseStatistics, collapse_result
from tests.metrics.conftest import make_imbalanced


def _stream(features, labels, weight, bias, splits, order=None, **options):
    """Two passes over batches cut at ``splits``, batches visited in ``order``."""
    batches = list(zip(np.split(features, splits), np.split(labels, splits)))
    if order is not None:
        batches = [batches[i] for i in order]
    stats = CollapseStatistics(weight.shape[0], features.shape[1], weight, bias)
    for h, y in batches:
        stats.update(h, y)
    stats.start_second_pass()
    for h, y in reversed(batches):
        stats.update(torch.from_numpy(h), torch.from_numpy(y))
    return stats.compute(**options)


def _assert_same(a: dict, b: dict, rel: float = 1e-9) -> None:
    assert set(a) == set(b)
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=rel, abs=1e-12), key


@pytest.mark.parametrize("seed", range(4))
def test_any_batch_split_and_order_gives_the_one_shot_metrics(seed):
    features, labels, weight, bias = make_imbalanced(seed)
    rng = np.random.default_rng(100 + seed)
    splits = np.sort(rng.choice(np.arange(1, len(labels)), size=rng.integers(1, 12), replace=False))
    order = rng.permutation(len(splits) + 1)
    expected = collapse_result(features, labels, weight, bias)
    got = _stream(features, labels, weight, bias, splits, order)
    _assert_same(got.metrics, expected.metrics)
    for key, value in expected.arrays.items():
        np.testing.assert_allclose(got.arrays[key], value, rtol=1e-9, atol=1e-12, err_msg=key)


def test_merged_shards_equal_one_process():
    features, labels, weight, bias = make_imbalanced(7)
    shards = np.array_split(np.arange(len(labels)), 3)

    def shard_stats():
        return [CollapseStatistics(len(weight), features.shape[1], weight, bias) for _ in shards]

    ranks = shard_stats()
    for stats, idx in zip(ranks, shards):
        stats.update(features[idx], labels[idx])
    merged_first = ranks[2].merge(ranks[0]).merge(ranks[1])
    merged_first.start_second_pass()
    second = shard_stats()
    for stats, idx in zip(second, shards):
        stats.first = merged_first.first  # every rank holds the all-reduced means
        stats.start_second_pass()
        stats.update(features[idx], labels[idx])
    total = second[1].merge(second[0]).merge(second[2])
    _assert_same(total.compute().metrics, collapse_result(features, labels, weight, bias).metrics)


def test_second_pass_statistics_around_other_means_refuse_to_merge():
    features, labels, weight, _bias = make_imbalanced(1)
    a = CollapseStatistics(len(weight), features.shape[1])
    b = CollapseStatistics(len(weight), features.shape[1])
    a.update(features, labels)
    b.update(features[::2], labels[::2])
    a.start_second_pass()
    b.start_second_pass()
    with pytest.raises(ValueError, match="different class means"):
        a.merge(b)


def test_sample_permutation_changes_nothing(imbalanced):
    features, labels, weight, bias = imbalanced
    perm = np.random.default_rng(9).permutation(len(labels))
    _assert_same(
        collapse_result(features[perm], labels[perm], weight, bias).metrics,
        collapse_result(features, labels, weight, bias).metrics,
    )


def test_relabelling_classes_changes_nothing(imbalanced):
    features, labels, weight, bias = imbalanced
    relabel = np.random.default_rng(4).permutation(len(weight))
    new_labels = relabel[labels]
    new_weight = np.empty_like(weight)
    new_weight[relabel] = weight
    new_bias = np.empty_like(bias)
    new_bias[relabel] = bias
    _assert_same(
        collapse_result(features, new_labels, new_weight, new_bias).metrics,
        collapse_result(features, labels, weight, bias).metrics,
    )
    names = np.array([f"class-{i:02d}" for i in range(len(weight))])
    by_name = collapse_result(features, names[labels], weight, bias)
    _assert_same(by_name.metrics, collapse_result(features, labels, weight, bias).metrics)
    assert list(by_name.classes) == list(names)


SCALE_FREE = [
    "nc1",
    "nc1_trace_ratio",
    "cdnv",
    "nc2_equinorm_means",
    "nc2_equiangle_means",
    "nc2_maxangle_means",
    "nc2_etf_distance",
    "gnc2_log_mean",
    "gnc2_log_var",
    "nc3",
    "nc3_gram",
    "unc3_mean",
    "unc3_var",
    "nc4",
    "accuracy",
    "rank_means",
    "effective_rank_means",
    "nc2_equinorm_weights",
    "nc2_equiangle_weights",
    "minority_cos",
    "minority_cos_means",
    "norm_ratio_weights",
]


@pytest.mark.parametrize("scale", [1e-3, 7.0, 1e4])
def test_scale_free_metrics_are_scale_invariant(imbalanced, scale):
    features, labels, weight, _ = imbalanced
    base = collapse_result(features, labels, weight).metrics
    scaled = collapse_result(features * scale, labels, weight * 3.0).metrics
    for key in SCALE_FREE:
        assert scaled[key] == pytest.approx(base[key], rel=1e-9, abs=1e-12), key


def test_features_and_statistics_stay_on_the_given_device(imbalanced):
    features, labels, weight, bias = imbalanced
    stats = CollapseStatistics(len(weight), features.shape[1], weight, bias, device="cpu")
    stats.update(torch.from_numpy(features), torch.from_numpy(labels))
    assert stats.first.sums.dtype == torch.float64 and stats.first.counts.dtype == torch.int64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_give_the_cpu_metrics(imbalanced):
    features, labels, weight, bias = imbalanced
    cuda = collapse_result(torch.from_numpy(features).cuda(), labels, weight, bias)
    _assert_same(cuda.metrics, collapse_result(features, labels, weight, bias).metrics)


def test_saved_statistics_hold_the_whole_symmetric_scatter():
    """d = 300: the accumulator is updated in column blocks; the saved matrix is whole."""
    features, labels, weight, bias = make_imbalanced(dim=300)
    stats = CollapseStatistics(weight.shape[0], features.shape[1], weight, bias)
    stats.update(features, labels)
    stats.start_second_pass()
    stats.update(features, labels)
    saved = stats.state_dict()["scatter"].numpy()
    means = np.stack([features[labels == c].mean(axis=0) for c in np.unique(labels)])
    residual = features - means[labels]
    np.testing.assert_allclose(saved, residual.T @ residual, rtol=1e-10, atol=1e-12)


def _finished(features, labels, weight, bias, min_count=None):
    stats = CollapseStatistics(
        int(labels.max()) + 1, features.shape[1], weight, bias, min_count=min_count
    )
    stats.update(features, labels)
    stats.start_second_pass()
    stats.update(features, labels)
    return stats


@pytest.mark.parametrize(
    "num_classes, dim, min_count",
    [(7, 40, None), (7, 40, 10), (30, 12, None)],  # C ≤ d; a class dropped; C − 1 > d (no NC1)
)
@pytest.mark.parametrize("global_mean", ["class", "sample"])
def test_compact_saved_state_gives_the_metrics_of_the_whole_scatter(
    num_classes, dim, min_count, global_mean
):
    """The compact state (scatter on the span of the means, O(C·d)) finishes to the same
    metrics and spectra as the d×d one — for either global mean, with classes dropped, and
    when C − 1 > d (then no basis at all is kept)."""
    features, labels, weight, bias = make_imbalanced(num_classes=num_classes, dim=dim)
    stats = _finished(features, labels, weight, bias, min_count)
    whole = stats.compute(global_mean=global_mean)
    state = stats.state_dict(compact=True)
    assert "scatter" not in state
    kept = int(state["kept"].sum())  # the basis spans the kept classes' means
    assert kept == (5 if min_count else num_classes)
    assert state["scatter_basis"].shape == ((0, dim) if kept - 1 > dim else (kept, dim))
    read = CollapseStatistics.from_state_dict(state, min_count=min_count)
    got = read.compute(global_mean=global_mean)
    _assert_same(got.metrics, whole.metrics, rel=1e-10)
    np.testing.assert_allclose(got.arrays["sv_features"], whole.arrays["sv_features"], rtol=1e-12)
    # a compact state saved again stays compact; it takes no more data
    assert "scatter" not in read.state_dict()
    with pytest.raises(InputError, match="compact saved state"):
        read.second.update(features, labels)


def test_compact_state_is_kept_only_where_it_is_smaller():
    """C = 7 classes in d = 8: a 7×8 basis and 7×7 projection are not smaller than 8×8."""
    features, labels, weight, bias = make_imbalanced(dim=8)
    state = _finished(features, labels, weight, bias).state_dict(compact=True)
    assert "scatter" in state and "scatter_basis" not in state
