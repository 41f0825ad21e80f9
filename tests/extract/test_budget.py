"""The passes refuse, before allocating, an analysis whose statistics cannot fit the memory it
may use — one line naming the widest layer — instead of dying at the worker's budget."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ncviz.errors import OptionError
from ncviz.extract.budget import MemoryNeed, check_fits, passes_need
from ncviz.extract.extractor import extract
from ncviz.load import load_dataset
from ncviz.server.workers import WorkerError, run_in_worker


def test_the_need_counts_scatters_rows_and_samples():
    need = passes_need({"a": 100, "b": 300}, 10, num_rows=1000, keep_features=True, sample_size=50)
    # d² + C·d float64 per layer, the widest layer's d² + 2·C·d once more, float32 rows
    assert need.statistics == 8 * (100**2 + 1000 + 300**2 + 3000) + 8 * (300**2 + 6000)
    assert need.kept_features == 4 * 1000 * 400 and need.sample == 4 * 50 * 400
    assert need.widest == ("b", 300)
    assert passes_need({"a": 100}, 10, num_rows=1000).kept_features == 0


def test_check_fits_names_the_largest_part_and_its_fix():
    need = MemoryNeed(statistics=3 * 2**30, kept_features=2**30, sample=0, widest=("fc", 20_000))
    check_fits(need, headroom=5 * 2**30)  # fits: nothing said
    with pytest.raises(OptionError) as refused:
        check_fits(need, headroom=2**30)
    message = str(refused.value)
    assert message == (
        "this analysis needs about 4.0 GB (statistics 3.0 GB, widest layer 'fc': d = 20,000) "
        "but 1.0 GB is free for it; analyse fewer or narrower layers (pool='avg' for feature maps)."
    )


def _nc1(model, data, layer, progress=None) -> float:
    statistics = extract(model, data, [layer], progress=progress)[layer].statistics
    return statistics.compute().metrics["nc1"]


def test_a_layer_too_wide_for_the_worker_is_refused_before_its_scatter_exists():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(64, 16_000), nn.ReLU(), nn.Linear(16_000, 32), nn.ReLU(), nn.Linear(32, 10)
    )
    data = load_dataset("builtin:digits?per_class=20")
    with pytest.raises(WorkerError, match=r"needs about 3\.8 GB \(statistics .* d = 16,000\)"):
        run_in_worker(extract, model, data, ["1"], memory_bytes=2**30)
    # within the budget the same model's narrow layer is analysed as usual
    assert run_in_worker(_nc1, model, data, "4:input", memory_bytes=2**30) > 0


def test_a_batch_of_outputs_too_large_is_refused_before_it_runs():
    """Two samples are probed; a batch of 256 of a 2048 × 2048 map would need 4 GiB."""
    model = nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Upsample(scale_factor=256),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(1, 10),
    )
    data = load_dataset("builtin:digits?per_class=30")
    with pytest.raises(WorkerError, match=r"layer outputs 4\.0 GB, a batch of 256 inputs"):
        run_in_worker(extract, model, data, ["1"], memory_bytes=2**30)
