"""Few-shot transfer (ncviz.transfer): NCM accuracy against a naive reference, the bundled
sweep's directions (Munn et al. 2024), and the sweep trainer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from ncviz.errors import InputError
from ncviz.transfer import SourceSettings, bundled_sweep, few_shot_accuracy, train_transfer_sweep


def test_few_shot_accuracy_equals_a_naive_episode_loop():
    rng = np.random.default_rng(0)
    labels = np.repeat([3, 7, 9], [8, 10, 6])
    features = rng.standard_normal((3, 4))[np.searchsorted([3, 7, 9], labels)]
    features = features + 0.8 * rng.standard_normal((len(labels), 4))
    mean, sd = few_shot_accuracy(features, labels, shots=2, episodes=20, seed=5)
    episodes, again = [], np.random.default_rng(5)
    for _ in range(20):
        support = {
            c: again.choice(np.flatnonzero(labels == c), 2, replace=False) for c in (3, 7, 9)
        }
        chosen = set(np.concatenate(list(support.values())).tolist())
        correct = total = 0
        for i in range(len(labels)):
            if i in chosen:
                continue
            distance = {
                c: np.sum((features[i] - features[s].mean(axis=0)) ** 2) for c, s in support.items()
            }
            correct += min(distance, key=distance.get) == labels[i]
            total += 1
        episodes.append(correct / total)
    assert mean == pytest.approx(np.mean(episodes), abs=1e-12)
    assert sd == pytest.approx(np.std(episodes), abs=1e-12)
    with pytest.raises(InputError, match="more than 6 samples"):
        few_shot_accuracy(features, labels, shots=6)


def test_the_bundled_sweep_shows_the_papers_directions():
    """Measured: ρ(source GC, target CDNV) = 0.77, ρ(source GC, 5-shot accuracy) = −0.75 over
    9 pre-training runs; the GC penalty lowers the source GC by two orders of magnitude."""
    table = pd.read_csv(bundled_sweep())
    assert len(table) >= 6
    assert spearmanr(table["source_gc"], table["target_cdnv"])[0] > 0.5
    assert spearmanr(table["source_gc"], table["shot5_acc"])[0] < -0.5
    by_model = table.set_index("model")
    assert by_model.loc["gc0.1", "source_gc"] < by_model.loc["base", "source_gc"] / 10
    assert (table["source_test_acc"] > 0.95).all()


def test_the_sweep_trainer_writes_checkpoints_and_a_table(tmp_path):
    settings = [SourceSettings("a", epochs=2), SourceSettings("b", epochs=2, gc_penalty=0.1)]
    folder = train_transfer_sweep(tmp_path, settings)
    table = pd.read_csv(folder / "transfer.csv")
    assert list(table["model"]) == ["a", "b"]
    assert sorted(p.name for p in folder.glob("*.safetensors")) == [
        "a.safetensors",
        "b.safetensors",
    ]
    assert {"source_gc", "target_cdnv", "shot1_acc", "shot5_acc_sd"} <= set(table.columns)
