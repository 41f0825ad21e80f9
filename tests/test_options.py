"""One options object from where options enter (library call, CLI, page) to the statistics."""

import numpy as np
import pytest
import torch

from ncviz.analysis import analyze
from ncviz.analysis.options import AnalysisOptions
from ncviz.demos.catalog import bundled_runs_dir
from ncviz.errors import InputError, OptionError
from ncviz.metrics import CollapseOptions, CollapseStatistics, collapse_result

LAST = "epoch_0600.safetensors"


def _last_checkpoint(path):
    return path.name == LAST


def test_the_options_object_reaches_every_result_unchanged():
    options = AnalysisOptions.parse(tau=0.05, dist_exp=2.0)
    assert options.metrics == CollapseOptions(tau=0.05, dist_exp=2.0)
    analysis = analyze(
        bundled_runs_dir() / "digits-mlp-imbalanced",
        cache=False,
        checkpoint_filter=_last_checkpoint,
        tau=0.05,
        dist_exp=2.0,
    )
    assert analysis.results
    for result in analysis.results.values():
        assert result.options.tau == 0.05 and result.options.dist_exp == 2.0
        # and from the run's own options (run.json), which the user did not override
        assert sorted(result.minority_classes.tolist()) == ["5", "6", "7", "8", "9"]


def test_a_run_s_options_fill_in_only_what_the_user_left_at_its_default():
    analysis = analyze(
        bundled_runs_dir() / "digits-mlp-imbalanced",
        cache=False,
        checkpoint_filter=_last_checkpoint,
        minority_classes=["0", "1"],
    )
    for result in analysis.results.values():
        assert sorted(result.minority_classes.tolist()) == ["0", "1"]
    merged = AnalysisOptions.parse(tau=0.05).with_run_metrics({"tau": 0.2, "dist_exp": 2.0})
    assert merged.metrics == CollapseOptions(tau=0.05, dist_exp=2.0)
    assert AnalysisOptions.parse().with_run_metrics({"min_count": 2}).extract.min_count == 2


def test_an_object_and_keywords_give_the_same_result_and_not_both():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(60, 5, generator=generator, dtype=torch.float64)
    labels = torch.arange(60) % 3
    by_object = collapse_result(features, labels, options=CollapseOptions(tau=0.3, dist_exp=2.0))
    by_keywords = collapse_result(features, labels, tau=0.3, dist_exp=2.0)
    assert by_object.metrics == by_keywords.metrics
    with pytest.raises(OptionError, match="not both"):
        collapse_result(features, labels, options=CollapseOptions(), tau=0.3)
    with pytest.raises(OptionError, match="must be a CollapseOptions"):
        collapse_result(features, labels, options={"tau": 0.3})


def test_statistics_keep_the_min_count_they_were_created_with():
    stats = CollapseStatistics(3, 2, min_count=2)
    h, y = torch.randn(9, 2, dtype=torch.float64), torch.arange(9) % 3
    stats.update(h, y)
    stats.start_second_pass()
    stats.update(h, y)
    # an object that leaves min_count open takes the statistics' own
    assert stats.compute(options=CollapseOptions(tau=0.1)).options.min_count == 2
    with pytest.raises(InputError, match="min_count is fixed"):
        stats.compute(options=CollapseOptions(min_count=3))
    with pytest.raises(InputError, match="min_count is fixed"):
        stats.compute(min_count=None)


def test_changes_are_what_differs_from_the_defaults():
    assert CollapseOptions().changes() == {}
    assert CollapseOptions(tau=0.01, global_mean="sample").changes() == {"global_mean": "sample"}
    with pytest.raises(OptionError, match="unknown option"):
        CollapseOptions().updated(taux=1)
    assert np.isclose(CollapseOptions().updated(tau=0.2).tau, 0.2)
