"""Bad inputs raise one-line ValueErrors that say what to fix."""

from __future__ import annotations

import numpy as np
import pytest

from ncviz.errors import InputError, NcvizError, OptionError
from ncviz.metrics import CollapseStatistics, collapse_metrics, regression_metrics


def _data(n_per_class=5, num_classes=3, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), n_per_class)
    return rng.standard_normal((len(labels), dim)) + 3 * np.eye(num_classes, dim)[labels], labels


def _raises(match, fn, *args, error=InputError, **kwargs):
    with pytest.raises(error, match=match) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and len(message) < 300
    assert isinstance(info.value, ValueError) and isinstance(info.value, NcvizError)
    return message


def test_string_and_gapped_labels_are_mapped_and_the_mapping_returned():
    from ncviz.metrics import collapse_result

    features, labels = _data()
    gapped = np.array([3, 10, 42])[labels]
    result = collapse_result(features, gapped)
    assert list(result.classes) == [3, 10, 42]
    assert result.metrics["nc1"] == pytest.approx(collapse_metrics(features, labels)["nc1"])


def test_fewer_than_two_classes():
    features, labels = _data()
    _raises("at least 2 classes", collapse_metrics, features, np.zeros(len(labels), int))


def test_class_with_one_sample_names_the_class_and_the_fix():
    features, labels = _data()
    labels = labels.copy()
    labels[0] = 7
    message = _raises("class 7 has 1 sample", collapse_metrics, features, labels)
    assert "min_count=2" in message


def test_min_count_drops_rare_classes_and_reports_them():
    from ncviz.metrics import collapse_result

    features, labels = _data()
    labels = labels.copy()
    labels[0] = 7
    result = collapse_result(features, labels, min_count=2)
    assert list(result.dropped_classes) == [7]
    assert list(result.classes) == [0, 1, 2]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_features(bad):
    features, labels = _data()
    features[3, 1] = bad
    message = _raises("NaN or Inf in 1 of 15 samples", collapse_metrics, features, labels)
    assert "float32" in message


def test_feature_label_count_mismatch():
    features, labels = _data()
    _raises(
        "labels have 14 entries but features have 15 rows", collapse_metrics, features, labels[:-1]
    )


def test_features_must_be_a_matrix():
    _, labels = _data()
    _raises(r"2-D array of shape \(N, d\)", collapse_metrics, np.zeros((15, 2, 2)), labels)
    _raises("empty", collapse_metrics, np.zeros((0, 3)), [])


def test_weight_with_wrong_shape():
    features, labels = _data()
    _raises("not its transpose", collapse_metrics, features, labels, np.zeros((4, 3)))
    _raises(
        "has 2 rows but the labels have 3 classes",
        collapse_metrics,
        features,
        np.array(["a", "b", "c"])[labels],
        np.ones((2, 4)),
    )
    _raises("bias has 2 entries", collapse_metrics, features, labels, np.ones((3, 4)), np.ones(2))


def test_weight_with_extra_rows_indexed_by_integer_labels():
    features, labels = _data()
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((5, 4))
    got = collapse_metrics(features, labels + 2, weight)
    expected = collapse_metrics(features, labels, weight[2:])
    for key in ("nc3", "nc2_equiangle_weights", "unc3_mean"):
        assert got[key] == pytest.approx(expected[key])


def test_non_integer_float_labels_point_to_regression():
    features, _ = _data()
    _raises("regression_metrics", collapse_metrics, features, np.linspace(0, 1, 15))


def test_unknown_or_invalid_options():
    features, labels = _data()
    _raises("unknown option", collapse_metrics, features, labels, error=OptionError, globalmean="x")
    _raises(
        "global_mean must be one of",
        collapse_metrics,
        features,
        labels,
        error=OptionError,
        global_mean="median",
    )
    _raises("tau must lie in", collapse_metrics, features, labels, error=OptionError, tau=2.0)
    _raises("not among the labels", collapse_metrics, features, labels, minority_classes=[9])


def test_streaming_labels_out_of_range_and_missing_second_pass():
    stats = CollapseStatistics(3, 4)
    features, labels = _data()
    _raises(r"labels must lie in 0..2", stats.update, features, labels + 1)
    stats.update(features, labels)
    _raises("start_second_pass", stats.compute)
    _raises("dimension 5 but 4 was expected", stats.update, np.zeros((2, 5)), [0, 1])


def test_regression_shape_errors():
    features, _ = _data()
    _raises("targets have 3 rows", regression_metrics, features, np.zeros((3, 2)))
    _raises(
        r"shape \(3, 4\) but \(2, 4\)",
        regression_metrics,
        features,
        np.random.default_rng(0).standard_normal((15, 2)),
        np.zeros((3, 4)),
    )
